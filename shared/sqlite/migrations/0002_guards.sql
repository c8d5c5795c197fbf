-- 0002: no snapshot can exhaust the lot ordinals; retracted snapshots are remembered.
--
-- Nothing existing is rewritten: the migration creates two empty tables and
-- redefines the availability view (0.3 s measured on a year of observations,
-- 45 M rows, 629 MB: docs/RELIABILITY.md).

-- availability_obs_overflow: the observations of lots whose lot_ids ordinal is
-- 65536 or more, which do not fit the 16 low bits of availability_obs.k.
-- The feeds list about 1,430 IDs (660 in 2016, 946 in 2019): the 65,536
-- packed ordinals hold 45 times that, so this table stays empty in practice;
-- it exists so that no snapshot, however many new IDs it brings, can make a
-- later one fail (and an availability snapshot bringing more than 5,000 new
-- IDs is refused before it takes any: snapshot.MaxNewLotIDs). The limit is
-- now lot_ids.n's own, a 64-bit rowid (2^63 - 1): at 5,000 new IDs per
-- accepted snapshot, 1.8e15 snapshots; the disk fills long before. Keyed
-- like availability_obs (fetch second, then lot), about 17 bytes a row.
-- Two snapshots in the same second: the larger value wins, as there.
CREATE TABLE availability_obs_overflow (
    t   INTEGER NOT NULL,
    lot INTEGER NOT NULL,
    v   INTEGER NOT NULL,
    PRIMARY KEY (t, lot)
) WITHOUT ROWID;

DROP VIEW availability;
CREATE VIEW availability AS
SELECT l.id AS parking_id,
       o.v  AS available_car,
       strftime('%Y-%m-%dT%H:%M:%S+08:00', (o.k >> 16) + 28800, 'unixepoch') AS recorded_at
FROM availability_obs o
JOIN lot_ids l ON l.n = (o.k & 65535)
UNION ALL
SELECT l.id, w.v, strftime('%Y-%m-%dT%H:%M:%S+08:00', w.t + 28800, 'unixepoch')
FROM availability_obs_overflow w
JOIN lot_ids l ON l.n = w.lot;

-- retractions: snapshots an operator withdrew (`loader retract`). The data a
-- retracted snapshot brought was taken out of the database in the transaction
-- that wrote its row here, and an apply refuses its key, and any key with its
-- sha256, for ever: a redelivery, a replay, a backfill or a reconcile never
-- applies it again. sha256 is empty when the key was retracted before the
-- loader had seen it (only the key is known then).
CREATE TABLE retractions (
    key        TEXT PRIMARY KEY,
    dataset    TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    outcome    TEXT NOT NULL, -- the ledger outcome before the retraction ('' if none)
    reason     TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX retractions_sha256 ON retractions (sha256) WHERE sha256 <> '';
