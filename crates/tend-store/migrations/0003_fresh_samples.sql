-- The newest raw samples, as the writer commits them every second. Rows are appended in time order, so a
-- commit writes a few pages at the end of this table (and of its small index) instead of one page per
-- worker in `samples`, which is clustered by worker. Every few seconds the writer moves them into
-- `samples`, sorted, in one transaction; readers see both tables through `samples_all`, and a row is in
-- exactly one of them at any moment.
CREATE TABLE samples_fresh (
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
    custom           TEXT
);
CREATE UNIQUE INDEX samples_fresh_key ON samples_fresh(wid, at, incarnation);

CREATE VIEW samples_all AS
    SELECT wid, at, incarnation, pid, state, cpu_percent, cpu_host_percent, memory_bytes, memory_percent,
           disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes, threads, fds, requests, custom
    FROM samples
    UNION ALL
    SELECT wid, at, incarnation, pid, state, cpu_percent, cpu_host_percent, memory_bytes, memory_percent,
           disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes, threads, fds, requests, custom
    FROM samples_fresh;
