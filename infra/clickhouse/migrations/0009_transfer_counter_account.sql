-- A transfer entry's credit side (kind 5, docs/economy.md): the entries
-- topic carries it as counter_account (account is the debit side); empty
-- for every other kind. The owner API's /points shows an account's
-- incoming transfers by it. Rows stored before this migration read ''
-- (their transfers' credit sides stay in the entry bytes, column entry).
-- Numbered 0009 to leave 0006..0008 to the branches of this wave.
ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS counter_account String DEFAULT '' CODEC(ZSTD(1)) AFTER account;
