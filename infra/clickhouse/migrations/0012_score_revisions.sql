-- Every revision of a vehicle-day's score (docs/scoring.md "Late data",
-- docs/analytics.md "daily_scores: revisions"). Scoring re-scores a closed
-- day into DailyScore revision 1, 2, ... when late data arrives; the table
-- keeps each revision as its own row (revision is the last column of the
-- sorting key, so ReplacingMergeTree(src_offset) only collapses copies of
-- the same revision, as a sink redelivery writes) and readers take the
-- greatest (revision, src_offset) per vehicle-day. Also the record's other
-- fields the table lacked: release_ms (Unix ms the ledger books the
-- revision at, 0 for revision 0), late_added (events added after the close,
-- over all revisions) and region. Rows stored before this migration read
-- revision 0, release_ms 0, late_added 0, region NULL; MODIFY ORDER BY may
-- only append a column added by the same ALTER, so the four are added and
-- the key extended in one statement. Existing data parts keep their order
-- (every old row has revision 0, so they stay sorted by the new key).
ALTER TABLE daily_scores
    ADD COLUMN IF NOT EXISTS revision UInt32 AFTER events_hash,
    ADD COLUMN IF NOT EXISTS release_ms Int64 AFTER revision,
    ADD COLUMN IF NOT EXISTS late_added UInt64 AFTER release_ms,
    ADD COLUMN IF NOT EXISTS region LowCardinality(Nullable(String)) AFTER late_added,
    MODIFY ORDER BY (date, vehicle_id, revision);
