-- Scores, ledger entries and redemptions, as the sink lands them from
-- minecart.scores, minecart.ledger.entries and minecart.redemptions.status.

-- One row per vehicle-day score (scoring.DailyScore). A score re-emitted for
-- the same vehicle-day replaces the older one on merge (latest offset wins).
CREATE TABLE IF NOT EXISTS daily_scores
(
    date               Date,
    vehicle_id         String                     CODEC(ZSTD(1)),
    id                 String                     CODEC(ZSTD(1)),
    device_id          LowCardinality(String),
    tz                 LowCardinality(String),
    window_start       DateTime64(3, 'UTC')       CODEC(DoubleDelta, ZSTD(1)),
    window_end         DateTime64(3, 'UTC')       CODEC(DoubleDelta, ZSTD(1)),
    config_version     LowCardinality(String),
    distance_km        Float64                    CODEC(Gorilla, ZSTD(1)),
    gps_km             Float64                    CODEC(Gorilla, ZSTD(1)),
    odometer_km        Float64                    CODEC(Gorilla, ZSTD(1)),
    driving_s          UInt32,
    harsh_brake        UInt32,
    harsh_accel        UInt32,
    harsh_corner       UInt32,
    speeding_s         UInt32,
    night_s            UInt32,
    fatigue_events     UInt32,
    events             UInt64,
    late_events        Nullable(UInt64),
    gps_jumps          UInt32,
    hdop_rejected      UInt64,
    odometer_rollbacks UInt32,
    score              Float32,
    points             Int64,
    flags              Array(LowCardinality(String)),
    flag_reasons       Array(String),
    events_hash        String,
    src_topic          LowCardinality(String),
    src_partition      Int32,
    src_offset         Int64
)
ENGINE = ReplacingMergeTree(src_offset)
PARTITION BY toYYYYMM(date)
ORDER BY (date, vehicle_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sink_offsets_scores_mv TO sink_offsets AS
SELECT src_topic AS topic, src_partition AS partition, max(src_offset) AS max_offset
FROM daily_scores
GROUP BY topic, partition;

-- One row per ledger entry (ledger.Entry), keyed by its leaf index in the
-- Merkle tree. delta is the signed effect on a balance: credits mint
-- points, debits spend them, adjustments correct.
CREATE TABLE IF NOT EXISTS ledger_entries
(
    leaf_index     UInt64,
    block_height   UInt64                       CODEC(Delta, ZSTD(1)),
    tree_size      UInt64                       CODEC(Delta, ZSTD(1)),
    block_time     DateTime64(3, 'UTC')         CODEC(DoubleDelta, ZSTD(1)),
    kind           Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3),
    id             String                       CODEC(ZSTD(1)),
    vehicle_id     String                       CODEC(ZSTD(1)),
    account        String                       CODEC(ZSTD(1)),
    delta          Int64,
    date           Nullable(Date),
    config_version LowCardinality(String),
    reason         String                       CODEC(ZSTD(1)),
    redemption_id  String                       CODEC(ZSTD(1)),
    ref            String                       CODEC(ZSTD(1)),
    root           String                       CODEC(ZSTD(1)),
    entry          String                       CODEC(ZSTD(1)),
    src_topic      LowCardinality(String),
    src_partition  Int32,
    src_offset     Int64                        CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(block_time)
ORDER BY leaf_index;

CREATE MATERIALIZED VIEW IF NOT EXISTS sink_offsets_ledger_mv TO sink_offsets AS
SELECT src_topic AS topic, src_partition AS partition, max(src_offset) AS max_offset
FROM ledger_entries
GROUP BY topic, partition;

-- Every redemption state change (settlement.Redemption); the latest row per
-- redemption_id (greatest updated, then seq) is its current state.
CREATE TABLE IF NOT EXISTS redemptions
(
    redemption_id      String                   CODEC(ZSTD(1)),
    updated            DateTime64(3, 'UTC')     CODEC(DoubleDelta, ZSTD(1)),
    status             Enum8('PENDING' = 1, 'CONFIRMED' = 2, 'FULFILLED' = 3, 'REJECTED' = 4, 'PARTNER_FAILED' = 5),
    requested          DateTime64(3, 'UTC')     CODEC(DoubleDelta, ZSTD(1)),
    idempotency_key    String                   CODEC(ZSTD(1)),
    owner              String                   CODEC(ZSTD(1)),
    partner            LowCardinality(String),
    item_id            LowCardinality(String),
    quantity           UInt32,
    points             Int64,
    reason             Nullable(String),
    seq                Int64,
    partner_ref        Nullable(String),
    debit_leaf_index   Nullable(UInt64),
    debit_block_height Nullable(UInt64),
    src_topic          LowCardinality(String),
    src_partition      Int32,
    src_offset         Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(requested)
ORDER BY (redemption_id, updated, status);

CREATE MATERIALIZED VIEW IF NOT EXISTS sink_offsets_redemptions_mv TO sink_offsets AS
SELECT src_topic AS topic, src_partition AS partition, max(src_offset) AS max_offset
FROM redemptions
GROUP BY topic, partition;

-- Points per UTC day: minted by credits, spent by debits, adjusted.
CREATE TABLE IF NOT EXISTS points_daily
(
    day      Date,
    kind     Enum8('credit' = 1, 'debit' = 2, 'adjustment' = 3),
    entries  SimpleAggregateFunction(sum, UInt64),
    points   SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS points_daily_mv TO points_daily AS
SELECT toDate(block_time) AS day, kind, count() AS entries, sum(delta) AS points
FROM ledger_entries
GROUP BY day, kind;
