-- Ledger entry kind 5, transfer (docs/economy.md, docs/ledger.md "Transfers"):
-- the entries topic now carries kind 'transfer' (delta = the effect on the
-- debit account: -amount for a single-phase transfer or a post, 0 for a
-- pending transfer, a void or an expiry). Extending an Enum8 is a metadata
-- change; rows already stored keep their values.
ALTER TABLE ledger_entries MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'transfer' = 5);
ALTER TABLE points_daily MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'transfer' = 5);
