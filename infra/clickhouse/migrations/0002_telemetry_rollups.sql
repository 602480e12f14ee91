-- Rollups kept by materialized views as telemetry lands.
--
-- Harsh and speeding columns count SAMPLES over the default thresholds of
-- services/scoring (brake <= -0.40 g and accel >= 0.35 g above 10 km/h,
-- |lateral| >= 0.40 g above 30 km/h, speed > limit + 10%): a quick heat
-- signal. The episode counts that scoring rewards are in daily_scores.

-- Per vehicle and UTC hour.
CREATE TABLE IF NOT EXISTS telemetry_hourly
(
    vehicle_id           String,
    hour                 DateTime('UTC'),
    events               SimpleAggregateFunction(sum, UInt64),
    moving_events        SimpleAggregateFunction(sum, UInt64),
    speed_sum            SimpleAggregateFunction(sum, Float64),
    speed_max            SimpleAggregateFunction(max, Float32),
    odometer_min_m       SimpleAggregateFunction(min, Nullable(UInt64)),
    odometer_max_m       SimpleAggregateFunction(max, Nullable(UInt64)),
    harsh_brake_samples  SimpleAggregateFunction(sum, UInt64),
    harsh_accel_samples  SimpleAggregateFunction(sum, UInt64),
    harsh_corner_samples SimpleAggregateFunction(sum, UInt64),
    speeding_samples     SimpleAggregateFunction(sum, UInt64),
    fault_samples        SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (vehicle_id, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_hourly_mv TO telemetry_hourly AS
SELECT
    vehicle_id,
    toStartOfHour(time) AS hour,
    count() AS events,
    countIf(speed_kmh > 0) AS moving_events,
    sum(toFloat64(speed_kmh)) AS speed_sum,
    max(speed_kmh) AS speed_max,
    min(if(odometer_m > 0, odometer_m, NULL)) AS odometer_min_m,
    max(if(odometer_m > 0, odometer_m, NULL)) AS odometer_max_m,
    countIf(accel_lon_ms2 <= -0.40 * 9.80665 AND speed_kmh >= 10) AS harsh_brake_samples,
    countIf(accel_lon_ms2 >= 0.35 * 9.80665 AND speed_kmh >= 10) AS harsh_accel_samples,
    countIf(abs(accel_lat_ms2) >= 0.40 * 9.80665 AND speed_kmh >= 30) AS harsh_corner_samples,
    countIf(speed_limit_kmh > 0 AND speed_kmh > speed_limit_kmh * 1.1) AS speeding_samples,
    countIf(notEmpty(fault_codes)) AS fault_samples
FROM telemetry
GROUP BY vehicle_id, hour;

-- Fleet totals per UTC day.
CREATE TABLE IF NOT EXISTS fleet_daily
(
    day                 Date,
    events              SimpleAggregateFunction(sum, UInt64),
    vehicles            AggregateFunction(uniq, String),
    devices             AggregateFunction(uniq, String),
    harsh_samples       SimpleAggregateFunction(sum, UInt64),
    speeding_samples    SimpleAggregateFunction(sum, UInt64),
    vehicles_with_fault AggregateFunction(uniq, String),
    speed_max           SimpleAggregateFunction(max, Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY day;

CREATE MATERIALIZED VIEW IF NOT EXISTS fleet_daily_mv TO fleet_daily AS
SELECT
    toDate(time) AS day,
    count() AS events,
    uniqState(vehicle_id) AS vehicles,
    uniqState(toString(device_id)) AS devices,
    countIf((accel_lon_ms2 <= -0.40 * 9.80665 OR accel_lon_ms2 >= 0.35 * 9.80665) AND speed_kmh >= 10
        OR abs(accel_lat_ms2) >= 0.40 * 9.80665 AND speed_kmh >= 30) AS harsh_samples,
    countIf(speed_limit_kmh > 0 AND speed_kmh > speed_limit_kmh * 1.1) AS speeding_samples,
    uniqIfState(vehicle_id, notEmpty(fault_codes)) AS vehicles_with_fault,
    max(speed_kmh) AS speed_max
FROM telemetry
GROUP BY day;
