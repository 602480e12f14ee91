-- Ledger entry kind 4 = rescore (docs/ledger.md, "Rescore"): a credited
-- vehicle-day re-scored after late data, with its signed delta. Adding an
-- enum value is a metadata-only change; rows already stored keep theirs.
ALTER TABLE ledger_entries MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'rescore' = 4, 'transfer' = 5);
ALTER TABLE points_daily MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'rescore' = 4, 'transfer' = 5);
