-- 0002: summaries, so that stats answer in milliseconds at any size.
--
-- Stats used to scan every observation (20 s at a year). These tables hold the same
-- figures, kept up to date in the transaction that changes what they summarise (the
-- apply, the legacy import), and like everything else a function of the set of snapshots
-- applied: they summarise rows, and an apply adds the rows it inserted, never the rows it
-- was offered (a replay inserts nothing, so it adds nothing). `loader stats -full`
-- computes the figures from the tables themselves, to check these.

-- obs_months: per calendar month (Asia/Taipei, as stats group them) of availability_obs,
-- the observations, the distinct lots among them (the month's rows in obs_month_lots), and
-- the first and last fetch second. Observations are never deleted, so each figure only grows.
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
-- every observation by month.
CREATE TEMP TABLE migrate_months AS
WITH RECURSIVE bounds(lo, hi) AS (
    SELECT (SELECT min(k) >> 16 FROM availability_obs), (SELECT max(k) >> 16 FROM availability_obs)
), months(start) AS (
    SELECT date(lo + 28800, 'unixepoch', 'start of month') FROM bounds WHERE lo IS NOT NULL
    UNION ALL
    SELECT date(start, '+1 month') FROM months, bounds WHERE date(start, '+1 month') <= date(hi + 28800, 'unixepoch')
)
SELECT substr(start, 1, 7) AS month,
       (unixepoch(start) - 28800) << 16 AS lo,
       (unixepoch(date(start, '+1 month')) - 28800) << 16 AS hi
FROM months;

INSERT INTO obs_month_lots (month, lot)
SELECT DISTINCT m.month, o.k & 65535
FROM temp.migrate_months m JOIN availability_obs o ON o.k >= m.lo AND o.k < m.hi;

INSERT INTO obs_months (month, observations, lots, first_unix, last_unix)
SELECT m.month,
       (SELECT count(*) FROM availability_obs WHERE k >= m.lo AND k < m.hi),
       (SELECT count(*) FROM obs_month_lots l WHERE l.month = m.month),
       (SELECT min(k) >> 16 FROM availability_obs WHERE k >= m.lo AND k < m.hi),
       (SELECT max(k) >> 16 FROM availability_obs WHERE k >= m.lo AND k < m.hi)
FROM temp.migrate_months m
WHERE EXISTS (SELECT 1 FROM availability_obs WHERE k >= m.lo AND k < m.hi);

DROP TABLE temp.migrate_months;

INSERT INTO ledger_counts (dataset, outcome, snapshots, last_applied_at)
SELECT dataset, outcome, count(*), max(applied_at) FROM snapshots GROUP BY dataset, outcome;
