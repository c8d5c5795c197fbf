-- 0003: summaries, so that stats answer in milliseconds at any size.
--
-- Stats used to scan every observation (20 s at a year). These tables hold the same
-- figures, kept up to date in the transaction that changes what they summarise (the
-- apply, the legacy import), and like everything else a function of the set of snapshots
-- applied: they summarise rows, and an apply adds the rows it inserted, never the rows it
-- was offered (a replay inserts nothing, so it adds nothing). `loader stats -full`
-- computes the figures from the tables themselves, to check these.

-- obs_months: per calendar month (Asia/Taipei, as stats group them) of the observations
-- (availability_obs and availability_obs_overflow), their count, the distinct lots among
-- them (the month's rows in obs_month_lots), and the first and last fetch second. An apply
-- only adds to them; a retraction (`loader retract`), which deletes observations, counts
-- the months it touched again from their key ranges.
CREATE TABLE obs_months (
    month        TEXT PRIMARY KEY,  -- '2026-11'
    observations INTEGER NOT NULL,
    lots         INTEGER NOT NULL,
    first_unix   INTEGER NOT NULL,
    last_unix    INTEGER NOT NULL
) WITHOUT ROWID;

-- obs_month_lots: the lots (lot_ids.n) with at least one observation in the month.
CREATE TABLE obs_month_lots (
    month TEXT NOT NULL,
    lot   INTEGER NOT NULL,
    PRIMARY KEY (month, lot)
) WITHOUT ROWID;

-- ledger_counts: the snapshots ledger counted by dataset and outcome, with the newest
-- applied_at of each. A refused row that is applied later leaves 'refused' (its count
-- goes down; last_applied_at, the newest refusal recorded, stays).
CREATE TABLE ledger_counts (
    dataset         TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    snapshots       INTEGER NOT NULL,
    last_applied_at TEXT NOT NULL,
    PRIMARY KEY (dataset, outcome)
) WITHOUT ROWID;

-- The refused snapshots, newest first, without scanning the ledger (a row a year of
-- 105,000 live snapshots otherwise).
CREATE INDEX snapshots_refused ON snapshots (applied_at, key) WHERE outcome = 'refused';

-- Fill them for an existing database. Months are key ranges of availability_obs (its key
-- is fetch second << 16 | lot), so each month is counted by a range scan: no sort of
-- every observation by month. The overflow table (empty in practice) is keyed by second.
CREATE TEMP TABLE migrate_months AS
WITH RECURSIVE bounds(lo, hi) AS (
    SELECT min(t), max(t) FROM (
        SELECT min(k) >> 16 AS t FROM availability_obs UNION ALL SELECT max(k) >> 16 FROM availability_obs
        UNION ALL SELECT min(t) FROM availability_obs_overflow UNION ALL SELECT max(t) FROM availability_obs_overflow)
), months(start) AS (
    SELECT date(lo + 28800, 'unixepoch', 'start of month') FROM bounds WHERE lo IS NOT NULL
    UNION ALL
    SELECT date(start, '+1 month') FROM months, bounds WHERE date(start, '+1 month') <= date(hi + 28800, 'unixepoch')
)
SELECT substr(start, 1, 7) AS month,
       unixepoch(start) - 28800 AS t0,
       unixepoch(date(start, '+1 month')) - 28800 AS t1,
       (unixepoch(start) - 28800) << 16 AS lo,
       (unixepoch(date(start, '+1 month')) - 28800) << 16 AS hi
FROM months;

INSERT INTO obs_month_lots (month, lot)
SELECT DISTINCT m.month, o.k & 65535
FROM temp.migrate_months m JOIN availability_obs o ON o.k >= m.lo AND o.k < m.hi;
INSERT INTO obs_month_lots (month, lot)
SELECT DISTINCT m.month, w.lot
FROM temp.migrate_months m JOIN availability_obs_overflow w ON w.t >= m.t0 AND w.t < m.t1;

INSERT INTO obs_months (month, observations, lots, first_unix, last_unix)
SELECT month, n, (SELECT count(*) FROM obs_month_lots l WHERE l.month = c.month), first_unix, last_unix
FROM (
    SELECT m.month,
           (SELECT count(*) FROM availability_obs WHERE k >= m.lo AND k < m.hi)
             + (SELECT count(*) FROM availability_obs_overflow WHERE t >= m.t0 AND t < m.t1) AS n,
           min(coalesce((SELECT min(k) >> 16 FROM availability_obs WHERE k >= m.lo AND k < m.hi), m.t1),
               coalesce((SELECT min(t) FROM availability_obs_overflow WHERE t >= m.t0 AND t < m.t1), m.t1)) AS first_unix,
           max(coalesce((SELECT max(k) >> 16 FROM availability_obs WHERE k >= m.lo AND k < m.hi), -1),
               coalesce((SELECT max(t) FROM availability_obs_overflow WHERE t >= m.t0 AND t < m.t1), -1)) AS last_unix
    FROM temp.migrate_months m
) c
WHERE n > 0;

DROP TABLE temp.migrate_months;

INSERT INTO ledger_counts (dataset, outcome, snapshots, last_applied_at)
SELECT dataset, outcome, count(*), max(applied_at) FROM snapshots GROUP BY dataset, outcome;
