-- Insight windows for analysis: one row per window of event time, every instance's and every
-- part's insight records merged (kafka-pipeline sink; schema documented in README "Insights in
-- PostgreSQL"). Applied once by the sink, recorded in sink_schema_version.

-- HyperLogLog type with SQL unions (Debian: postgresql-15-hll). Creating it needs a role that
-- may create extensions; an administrator can run this line once beforehand.
CREATE EXTENSION IF NOT EXISTS hll;

CREATE TABLE insight_windows (
    window_start          timestamptz PRIMARY KEY,  -- [window_start, window_end)
    window_end            timestamptz NOT NULL,
    received              bigint      NOT NULL,     -- valid + dead_lettered
    valid                 bigint      NOT NULL,     -- written to processed_data
    dead_lettered         bigint      NOT NULL,
    dead_lettered_by_code jsonb       NOT NULL,     -- {"missing_field": 12, ...}, non-zero codes
    missing_device_type   bigint      NOT NULL,
    late_events           bigint      NOT NULL,
    by_device_type        jsonb       NOT NULL,     -- valid events by value {"ios": 10, ...}
    by_app_version        jsonb       NOT NULL,
    by_locale             jsonb       NOT NULL,
    ip_classes            jsonb       NOT NULL,
    distinct_users        bigint      NOT NULL,     -- HyperLogLog estimate (±1.6 %)
    distinct_devices      bigint      NOT NULL,
    users_hll             hll         NOT NULL,     -- the same sketches as hll (log2m 12, regwidth 6)
    devices_hll           hll         NOT NULL,
    users_sketch          bytea       NOT NULL,     -- the pipeline's own sketch encoding
    devices_sketch        bytea       NOT NULL,
    lag_count             bigint      NOT NULL,     -- lags recorded (valid events)
    lag_p50_ms            bigint,                   -- NULL when no valid event
    lag_p95_ms            bigint,
    lag_p99_ms            bigint,
    lag_max_ms            bigint      NOT NULL,
    instances             text[]      NOT NULL,     -- pipeline instances that counted events
    partitions            integer[]   NOT NULL,     -- input partitions covered
    records               bigint      NOT NULL,     -- insight records merged into the row
    partial               boolean     NOT NULL,     -- some part was closed early
    final                 boolean,                  -- NULL while records carry no final flag
    published_at          timestamptz NOT NULL,     -- latest publication merged
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- The sink's own state, written in the same transaction as the rows.

-- Per window: the merged insight record (the library's JSON, sketches included) and the
-- digests of the records merged, to drop exact re-sends as `kafka-pipeline insights` does.
CREATE TABLE sink_window_state (
    window_start bigint   PRIMARY KEY,  -- Unix seconds, the record key
    record       text     NOT NULL,
    digests      bigint[] NOT NULL
);

-- Per partition of the insights topic: the next offset to apply. Records below it are applied.
CREATE TABLE sink_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Records that were not insight records: where they were and why they were skipped.
CREATE TABLE sink_skipped (
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    "offset"   bigint      NOT NULL,
    reason     text        NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
