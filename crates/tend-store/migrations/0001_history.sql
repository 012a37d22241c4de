-- Tend history, first schema. Times are Unix milliseconds (UTC). Worker ids are interned in `workers`
-- so the sample tables carry a small integer key.

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE workers (
    wid         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    pool        TEXT NOT NULL,
    source      TEXT,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    removed_at  INTEGER
);
CREATE INDEX workers_pool ON workers(pool);

-- Every tend_core Event: the columns a query filters on, plus the whole event as JSON.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    run         INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    worker      TEXT,
    pool        TEXT,
    incarnation INTEGER,
    pid         INTEGER,
    from_state  TEXT,
    to_state    TEXT,
    cause       TEXT,
    payload     TEXT NOT NULL
);
CREATE INDEX events_worker_at ON events(worker, at);
CREATE INDEX events_pool_at ON events(pool, at);
CREATE INDEX events_at ON events(at);

-- Raw samples: one row per reading of one incarnation. Clustered by (worker, time).
CREATE TABLE samples (
    wid              INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    incarnation      INTEGER NOT NULL,
    pid              INTEGER,
    state            TEXT,
    cpu_percent      REAL,
    cpu_host_percent REAL,
    memory_bytes     INTEGER,
    memory_percent   REAL,
    disk_read_bytes  INTEGER,
    disk_write_bytes INTEGER,
    net_rx_bytes     INTEGER,
    net_tx_bytes     INTEGER,
    threads          INTEGER,
    fds              INTEGER,
    requests         INTEGER,
    custom           TEXT,
    PRIMARY KEY (wid, at, incarnation)
) WITHOUT ROWID;

-- Names of custom metrics seen per worker, so an export knows its columns before it streams.
CREATE TABLE custom_metrics (
    wid   INTEGER NOT NULL,
    name  TEXT NOT NULL,
    PRIMARY KEY (wid, name)
) WITHOUT ROWID;

-- Rollups: min/avg/max per built-in metric over a bucket (1 minute, 1 hour). `n` = samples in it.
CREATE TABLE rollup_minute (
    wid INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    cpu_percent_min REAL, cpu_percent_avg REAL, cpu_percent_max REAL,
    cpu_host_percent_min REAL, cpu_host_percent_avg REAL, cpu_host_percent_max REAL,
    memory_bytes_min REAL, memory_bytes_avg REAL, memory_bytes_max REAL,
    memory_percent_min REAL, memory_percent_avg REAL, memory_percent_max REAL,
    disk_read_bytes_min REAL, disk_read_bytes_avg REAL, disk_read_bytes_max REAL,
    disk_write_bytes_min REAL, disk_write_bytes_avg REAL, disk_write_bytes_max REAL,
    net_rx_bytes_min REAL, net_rx_bytes_avg REAL, net_rx_bytes_max REAL,
    net_tx_bytes_min REAL, net_tx_bytes_avg REAL, net_tx_bytes_max REAL,
    threads_min REAL, threads_avg REAL, threads_max REAL,
    fds_min REAL, fds_avg REAL, fds_max REAL,
    PRIMARY KEY (wid, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_hour (
    wid INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    cpu_percent_min REAL, cpu_percent_avg REAL, cpu_percent_max REAL,
    cpu_host_percent_min REAL, cpu_host_percent_avg REAL, cpu_host_percent_max REAL,
    memory_bytes_min REAL, memory_bytes_avg REAL, memory_bytes_max REAL,
    memory_percent_min REAL, memory_percent_avg REAL, memory_percent_max REAL,
    disk_read_bytes_min REAL, disk_read_bytes_avg REAL, disk_read_bytes_max REAL,
    disk_write_bytes_min REAL, disk_write_bytes_avg REAL, disk_write_bytes_max REAL,
    net_rx_bytes_min REAL, net_rx_bytes_avg REAL, net_rx_bytes_max REAL,
    net_tx_bytes_min REAL, net_tx_bytes_avg REAL, net_tx_bytes_max REAL,
    threads_min REAL, threads_avg REAL, threads_max REAL,
    fds_min REAL, fds_avg REAL, fds_max REAL,
    PRIMARY KEY (wid, bucket)
) WITHOUT ROWID;

-- Every alert state change.
CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    rule       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    pool       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    state      TEXT NOT NULL,
    value      REAL,
    threshold  REAL,
    since      INTEGER NOT NULL,
    started    INTEGER,
    message    TEXT NOT NULL,
    payload    TEXT NOT NULL
);
CREATE INDEX alerts_subject_at ON alerts(subject, at);
CREATE INDEX alerts_pool_at ON alerts(pool, at);
CREATE INDEX alerts_rule_subject ON alerts(rule, subject, id);

-- Every completed (or failed) recycle, with what the worker looked like just before.
CREATE TABLE recycles (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    worker        TEXT NOT NULL,
    pool          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    old_pid       INTEGER,
    new_pid       INTEGER,
    uptime_secs   REAL,
    requests      INTEGER,
    last_metrics  TEXT
);
CREATE INDEX recycles_worker_at ON recycles(worker, at);
CREATE INDEX recycles_pool_at ON recycles(pool, at);

-- Errors and warnings: failed recycles, restart storms, degraded sources, reported errors.
CREATE TABLE errors (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    level    TEXT NOT NULL,
    worker   TEXT,
    pool     TEXT,
    source   TEXT,
    message  TEXT NOT NULL
);
CREATE INDEX errors_at ON errors(at);

-- Spawned processes, so that a restarted Tend can find what a crashed one left running.
CREATE TABLE processes (
    pid          INTEGER NOT NULL,
    start_ticks  INTEGER NOT NULL,
    run          INTEGER NOT NULL,
    worker       TEXT NOT NULL,
    pool         TEXT NOT NULL,
    incarnation  INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    PRIMARY KEY (pid, start_ticks)
) WITHOUT ROWID;
CREATE INDEX processes_open ON processes(ended_at);
