-- Rollups of custom metrics (reported or scraped; kept as JSON in samples.custom): min/avg/max per
-- metric name over a bucket, so a custom metric has the same 30-day / 1-year history as a built-in one.
CREATE TABLE custom_rollup_minute (
    wid    INTEGER NOT NULL,
    name   TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    min    REAL,
    avg    REAL,
    max    REAL,
    PRIMARY KEY (wid, name, bucket)
) WITHOUT ROWID;

CREATE TABLE custom_rollup_hour (
    wid    INTEGER NOT NULL,
    name   TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    min    REAL,
    avg    REAL,
    max    REAL,
    PRIMARY KEY (wid, name, bucket)
) WITHOUT ROWID;
