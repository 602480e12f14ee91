-- Every reserved ledger entry kind (docs/ledger.md): rescore 4, transfer 5,
-- campaign 6, bonus 7 (docs/campaigns.md), erasure 8. Adding enum values
-- changes no stored row; campaign entries have delta 0, bonuses +amount.
ALTER TABLE ledger_entries MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'rescore' = 4, 'transfer' = 5, 'campaign' = 6, 'bonus' = 7, 'erasure' = 8);
ALTER TABLE points_daily MODIFY COLUMN kind Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3, 'rescore' = 4, 'transfer' = 5, 'campaign' = 6, 'bonus' = 7, 'erasure' = 8);
