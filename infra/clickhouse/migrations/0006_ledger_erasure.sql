-- Ledger entry kind 8, erasure (docs/ledger.md, Erasure): an identity's
-- pseudonym key destroyed. Adding an Enum8 value is a metadata change.
ALTER TABLE ledger_entries MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'transfer' = 5, 'erasure' = 8);
ALTER TABLE points_daily MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'transfer' = 5, 'erasure' = 8);
