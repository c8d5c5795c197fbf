-- 0001: the first schema.
--
-- Every time a user sees is ISO 8601 text with the +08:00 offset (Asia/Taipei has
-- no DST), derived from the fetch time of a snapshot, never from the loader's clock,
-- so the database is a function of the set of snapshots applied, not of their order.
-- Text in that one fixed offset sorts chronologically, so it is compared as text.

-- meta: the loader's own bookkeeping (last open time). Not user data.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- parking_lots: the current list of lots, one row per lot ID ever seen, with the
-- columns of the original project. Derived entirely from lot_versions:
--   attributes  from the latest version in which the lot was present;
--   tw97x/tw97y the raw strings parsed as numbers (NULL when not numbers);
--   total_*     parsed integers, empty or not a number -> 0 (as the original did);
--   lon/lat     WGS84 from geo.Locate when it could place the lot, else NULL;
--   coord_note  geo.Locate's note: how the position was obtained, or why there is none;
--   created_at  the first time the lot was present;
--   updated_at  the effective time of the latest present version;
--   deleted_at  when the lot's latest version is "absent", the time it disappeared
--               (NULL while the lot is listed). A restored lot gets NULL again.
CREATE TABLE parking_lots (
    id           TEXT PRIMARY KEY,
    area         TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    address      TEXT NOT NULL,
    tel          TEXT NOT NULL,
    pay_ex       TEXT NOT NULL,
    service_time TEXT NOT NULL,
    tw97x        REAL,
    tw97y        REAL,
    total_car    INTEGER NOT NULL,
    total_motor  INTEGER NOT NULL,
    total_bike   INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT,
    lon          REAL,
    lat          REAL,
    coord_note   TEXT NOT NULL
);
CREATE INDEX parking_lots_deleted_at ON parking_lots (deleted_at);

-- lot_versions: the lot history. The run-length encoding, over the applied lots
-- snapshots in fetch-time order, of each lot's state (present with these raw
-- attribute strings, or absent). A row at effective_at exists iff the lot's state
-- at that snapshot differs from its state at the previous applied lots snapshot.
-- present = 0 marks the snapshot in which the lot disappeared (a soft delete);
-- its attribute columns are then empty. Attribute values are the feed's raw text.
CREATE TABLE lot_versions (
    parking_id   TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    present      INTEGER NOT NULL CHECK (present IN (0, 1)),
    area         TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    address      TEXT NOT NULL,
    tel          TEXT NOT NULL,
    pay_ex       TEXT NOT NULL,
    service_time TEXT NOT NULL,
    tw97x        TEXT NOT NULL,
    tw97y        TEXT NOT NULL,
    total_car    TEXT NOT NULL,
    total_motor  TEXT NOT NULL,
    total_bike   TEXT NOT NULL,
    PRIMARY KEY (parking_id, effective_at)
) WITHOUT ROWID;
CREATE INDEX lot_versions_effective_at ON lot_versions (effective_at);

-- lot_ids: a small integer for every ID seen in either feed, so that an
-- availability observation stores 1-2 bytes instead of a 6-character string.
-- The ordinals depend on arrival order; nothing user-facing exposes them.
CREATE TABLE lot_ids (
    n  INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE
);

-- availability_obs: the compact time series behind the availability view.
-- One row per (fetch time, lot) for valid observations only (>= 0 free spaces;
-- -9 and other negatives or non-integers are "unknown" and not stored, the
-- original project's -9 rule). The key packs both into the rowid:
--   k = t << 16 | lot   (t: fetch time in unix seconds; lot: lot_ids.n < 65536)
-- so a row is a 7-byte varint key and a 1-2 byte value, ~14 bytes on disk with
-- the cell pointer, and appends in time order fill pages completely (SQLite's
-- quick balance for rowid tables). A WITHOUT ROWID (t, lot) key costs ~17.
-- Two snapshots in the same second: the larger value wins (deterministic).
-- A time range is a key range: k BETWEEN t1 << 16 AND (t2 << 16) | 65535.
CREATE TABLE availability_obs (
    k INTEGER PRIMARY KEY,
    v INTEGER NOT NULL
);

-- availability: the user-facing time series, in the original project's shape.
-- recorded_at is the fetch time as +08:00 text.
CREATE VIEW availability AS
SELECT l.id AS parking_id,
       o.v  AS available_car,
       strftime('%Y-%m-%dT%H:%M:%S+08:00', (o.k >> 16) + 28800, 'unixepoch') AS recorded_at
FROM availability_obs o
JOIN lot_ids l ON l.n = (o.k & 65535);

-- availability_latest: the newest observation of every lot ever seen in the live
-- feed. available_car is NULL when the value was unknown (raw keeps it, e.g. "-9").
-- Only moves forward in fetch time; at equal times the larger value wins.
CREATE TABLE availability_latest (
    parking_id    TEXT PRIMARY KEY,
    available_car INTEGER,
    raw           TEXT NOT NULL,
    observed_at   TEXT NOT NULL,
    observed_unix INTEGER NOT NULL
);

-- snapshots: the ledger. One row per snapshot key the loader has seen, written in
-- the same transaction as the rows the snapshot changed.
--   outcome applied    : applied; it was the newest of its dataset when applied
--           superseded : a lots snapshot older than the newest applied one; it
--                        only refined history (still counts as applied data)
--           duplicate  : same sha256 as an applied snapshot of the dataset
--           refused    : not applied (reason says why); may be applied later
--   applied_at is the loader's clock (to the second); fetched_ms (unix milliseconds)
--   finds a lots snapshot's neighbours. Lots times (here and in parking_lots and
--   lot_versions) carry milliseconds: two lots fetches in one second stay two points.
--   quality is a JSON document of data-quality counts (see Quality in Go).
CREATE TABLE snapshots (
    key          TEXT PRIMARY KEY,
    dataset      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    fetched_at   TEXT NOT NULL,
    fetched_ms   INTEGER NOT NULL,
    applied_at   TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    changed      INTEGER NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'superseded', 'refused')),
    reason       TEXT NOT NULL DEFAULT '',
    quality      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX snapshots_dataset_fetched ON snapshots (dataset, fetched_ms);
CREATE INDEX snapshots_dataset_sha256 ON snapshots (dataset, sha256);

-- rejections: messages or snapshots refused before they could be applied
-- (poison messages: undecodable, unknown version, missing object, ...).
-- body is an excerpt of at most 1 KiB.
CREATE TABLE rejections (
    id         INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    dataset    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    body       BLOB,
    at         TEXT NOT NULL
);
