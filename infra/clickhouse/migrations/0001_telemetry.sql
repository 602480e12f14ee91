-- The telemetry firehose: one row per clean telemetry event
-- (minecart.telemetry.clean), written by services/sink.
--
-- Layout: monthly partitions (drop a month at a time), sorted by vehicle and
-- time so one vehicle's track over a range is one contiguous read. The rest
-- of the key (device_id, seq) is the event's identity: ReplacingMergeTree
-- collapses a row inserted twice into one on merge (the sink also skips
-- records at or below the offsets already stored, see sink_offsets).
-- Codecs, chosen by measuring simulated fleet telemetry (docs/analytics.md):
-- DoubleDelta for the regular timestamps and for positions stored as
-- integer micro-degrees (0.11 m; ~1 byte per coordinate against ~5 for
-- Gorilla on Float64), Delta for counters (seq, odometer in metres,
-- offsets), plain ZSTD for the noisy Float32 sensor readings (it beat
-- Gorilla on speed, heading and acceleration). Optional readings are
-- Nullable (NULL = not reported) instead of the event's sentinel values.
CREATE TABLE IF NOT EXISTS telemetry
(
    vehicle_id      String                       CODEC(ZSTD(1)),
    time            DateTime64(3, 'UTC')         CODEC(DoubleDelta, ZSTD(1)),
    device_id       LowCardinality(String),
    seq             UInt64                       CODEC(Delta, ZSTD(1)),
    event_id        String                       CODEC(ZSTD(1)),
    tz              LowCardinality(String),
    lat_e6          Int32                        CODEC(DoubleDelta, ZSTD(1)),
    lon_e6          Int32                        CODEC(DoubleDelta, ZSTD(1)),
    hdop            Nullable(Float32)            CODEC(ZSTD(1)),
    speed_kmh       Float32                      CODEC(ZSTD(1)),
    heading_deg     Float32                      CODEC(ZSTD(1)),
    accel_lon_ms2   Float32                      CODEC(ZSTD(1)),
    accel_lat_ms2   Float32                      CODEC(ZSTD(1)),
    speed_limit_kmh Nullable(Float32)            CODEC(ZSTD(1)),
    odometer_m      UInt64                       CODEC(Delta, ZSTD(1)),
    engine_on       Bool                         CODEC(ZSTD(1)),
    fuel_pct        Nullable(Float32)            CODEC(ZSTD(1)),
    battery_v       Nullable(Float32)            CODEC(ZSTD(1)),
    coolant_c       Nullable(Float32)            CODEC(ZSTD(1)),
    fault_codes     Array(LowCardinality(String)),
    src_topic       LowCardinality(String),
    src_partition   Int32                        CODEC(ZSTD(1)),
    src_offset      Int64                        CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'UTC') MATERIALIZED now64(3) CODEC(DoubleDelta, ZSTD(1)),
    lat             Float64 ALIAS lat_e6 / 1e6,
    lon             Float64 ALIAS lon_e6 / 1e6,
    odometer_km     Float64 ALIAS odometer_m / 1000
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (vehicle_id, time, device_id, seq);

-- The highest offset stored per source partition, kept by materialized
-- views on every sink table in the same insert as the rows: the sink
-- resumes after these offsets, so a batch written again after a crash
-- between insert and offset commit is not stored twice.
CREATE TABLE IF NOT EXISTS sink_offsets
(
    topic      LowCardinality(String),
    partition  Int32,
    max_offset SimpleAggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (topic, partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS sink_offsets_telemetry_mv TO sink_offsets AS
SELECT src_topic AS topic, src_partition AS partition, max(src_offset) AS max_offset
FROM telemetry
GROUP BY topic, partition;
