"""The database schema, as sqlite-utils migrations applied in order at every start.

A migration is never edited once released: a change to the schema is a new function below.
The number of applied migrations is the schema version, also written to PRAGMA user_version
so `sqlite3 gateway.db 'PRAGMA user_version'` shows it without this code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .errors import StoreError

migrations = Migrations("rental-gateway")
MIGRATION_NAMES: list[str] = []


def _migration(fn: Callable[[Database], None]) -> Callable[[Database], None]:
    MIGRATION_NAMES.append(fn.__name__)
    return migrations(name=fn.__name__)(fn)


@_migration
def m0001_initial(db: Database) -> None:
    """Rooms, tenants, cards, visitor codes, events journal, alarms, users, meta."""
    for statement in _INITIAL:
        db.execute(statement)


# STRICT tables: SQLite refuses a text in an INTEGER column instead of storing it silently.
_INITIAL = (
    # Small key/value settings: acked_seq, gateway_id, registry_version, command_counter...
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value ANY
    ) STRICT, WITHOUT ROWID""",
    "INSERT INTO meta (key, value) VALUES ('acked_seq', 0), ('lockdown', 0)",
    """CREATE TABLE rooms (
        room TEXT PRIMARY KEY CHECK (length(room) BETWEEN 1 AND 32),
        created TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
    # id_number and phone exist only sealed (AES-GCM, bound to column and tenant id) and as
    # keyed hashes for exact lookup; the UNIQUE hash means one record per person.
    """CREATE TABLE tenants (
        id TEXT PRIMARY KEY CHECK (length(id) = 36),
        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
        id_number_sealed BLOB NOT NULL,
        id_number_hash BLOB NOT NULL UNIQUE,
        phone_sealed BLOB NOT NULL,
        phone_hash BLOB NOT NULL,
        room TEXT NOT NULL REFERENCES rooms (room),
        valid_from TEXT NOT NULL,
        valid_until TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'suspended', 'moved_out')),
        source TEXT NOT NULL CHECK (source IN ('local', 'city')),
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        CHECK (valid_until >= valid_from)
    ) STRICT""",
    "CREATE INDEX tenants_room ON tenants (room)",
    "CREATE INDEX tenants_phone_hash ON tenants (phone_hash)",
    # The card number is the rowid: the door path's lookup is one B-tree descent.
    """CREATE TABLE cards (
        number INTEGER PRIMARY KEY CHECK (number BETWEEN 0 AND 4294967295),
        tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'lost', 'revoked')),
        pin_hash BLOB,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX cards_tenant ON cards (tenant_id)",
    """CREATE TABLE visitor_codes (
        id INTEGER PRIMARY KEY,
        code_hash BLOB NOT NULL UNIQUE,
        door TEXT,
        room TEXT,
        valid_until TEXT NOT NULL,
        valid_until_ms INTEGER NOT NULL,
        max_uses INTEGER NOT NULL CHECK (max_uses >= 1),
        uses INTEGER NOT NULL DEFAULT 0 CHECK (uses BETWEEN 0 AND max_uses),
        created_by TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL
    ) STRICT""",
    # AUTOINCREMENT keeps the highest seq ever used in sqlite_sequence, so a seq is never
    # handed out twice even after retention deleted the newest rows; consumers dedupe on it.
    # body holds the event JSON; tenant.changed events carry identity and are sealed instead.
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        ts TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        type TEXT NOT NULL,
        door TEXT,
        card INTEGER,
        tenant_id TEXT,
        room TEXT,
        result TEXT CHECK (result IN ('granted', 'denied')),
        reason TEXT,
        body TEXT,
        sealed_body BLOB,
        CHECK ((body IS NULL) <> (sealed_body IS NULL))
    ) STRICT""",
    # What police queries filter on, newest first within a time range. Partial indexes skip
    # the events without that column (reader and door events have no tenant or card).
    "CREATE INDEX events_ts ON events (ts_ms)",
    "CREATE INDEX events_tenant ON events (tenant_id, ts_ms) WHERE tenant_id IS NOT NULL",
    "CREATE INDEX events_card ON events (card, ts_ms) WHERE card IS NOT NULL",
    "CREATE INDEX events_room ON events (room, ts_ms) WHERE room IS NOT NULL",
    """CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        raised_at TEXT NOT NULL,
        door TEXT,
        event_seq INTEGER REFERENCES events (seq) ON DELETE SET NULL,
        detail TEXT NOT NULL DEFAULT '',
        acknowledged_by TEXT,
        acknowledged_at TEXT,
        UNIQUE (event_seq, kind)
    ) STRICT""",
    "CREATE INDEX alarms_open ON alarms (id) WHERE acknowledged_at IS NULL",
    # NOCASE: "Wang" and "wang" are the same login, so nobody can register a look-alike.
    """CREATE TABLE users (
        username TEXT PRIMARY KEY COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('building_head', 'police', 'installer')),
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    ) STRICT, WITHOUT ROWID""",
)


@_migration
def m0002_journal_indexed_in_blocks(db: Database) -> None:
    """The events table without AUTOINCREMENT and without per-commit indexes (see journal.py).

    Each of them added a page to every event's commit. seq stays "never reused" through
    meta `seq_floor` (the highest seq deleted, kept by a trigger); police queries and the
    event_id check use `event_keys`/`event_times`, which the writer fills a block of events
    at a time. Existing events are kept as they are, and indexed after the migration.
    """
    for statement in _M0002:
        db.execute(statement)


_M0002 = (
    # The highest seq ever handed out survives the rebuild: sqlite_sequence forgets the table.
    """INSERT INTO meta (key, value) VALUES
        ('seq_floor', coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)),
        ('indexed_seq', 0)""",
    # DROP TABLE runs an implicit DELETE, whose ON DELETE SET NULL would unlink every alarm
    # from its event (foreign keys cannot be switched off inside a transaction): keep the links.
    "CREATE TEMP TABLE m0002_alarm_links AS SELECT id, event_seq FROM alarms"
    " WHERE event_seq IS NOT NULL",
    """CREATE TABLE events_m0002 (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        type TEXT NOT NULL,
        door TEXT,
        card INTEGER,
        tenant_id TEXT,
        room TEXT,
        result TEXT CHECK (result IN ('granted', 'denied')),
        reason TEXT,
        body TEXT,
        sealed_body BLOB,
        CHECK ((body IS NULL) <> (sealed_body IS NULL))
    ) STRICT""",
    "INSERT INTO events_m0002 SELECT seq, event_id, ts, ts_ms, type, door, card, tenant_id,"
    " room, result, reason, body, sealed_body FROM events ORDER BY seq",
    "DROP TABLE events",
    "ALTER TABLE events_m0002 RENAME TO events",
    "UPDATE alarms SET event_seq = (SELECT l.event_seq FROM temp.m0002_alarm_links AS l"
    " WHERE l.id = alarms.id) WHERE id IN (SELECT id FROM temp.m0002_alarm_links)",
    "DROP TABLE temp.m0002_alarm_links",
    # Deleting the newest events must not let their seqs be handed out again: the next seq is
    # above both the highest row and seq_floor. Fires only when the highest row goes.
    """CREATE TRIGGER events_seq_floor AFTER DELETE ON events
        WHEN old.seq > coalesce((SELECT max(seq) FROM events), 0)
        BEGIN
            UPDATE meta SET value = max(value, old.seq) WHERE key = 'seq_floor';
        END""",
    # Police-query keys of every event up to meta indexed_seq, grouped by block of seqs
    # (block = seq / journal.INDEX_BLOCK). A block is written once, in key order, after the
    # table's last block: appends, not scattered page updates. A query probes each block.
    # kind: 'c' card, 't' tenant_id, 'r' room, 'e' event_id.
    """CREATE TABLE event_keys (
        block INTEGER NOT NULL,
        kind TEXT NOT NULL,
        value ANY NOT NULL,
        ts_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (block, kind, value, ts_ms, seq)
    ) STRICT, WITHOUT ROWID""",
    # The time index of the same events, for queries by time alone (newest first).
    """CREATE TABLE event_times (
        ts_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (ts_ms, seq)
    ) STRICT, WITHOUT ROWID""",
)


@_migration
def m0003_snapshot_outbox_and_holds(db: Database) -> None:
    """The snapshot outbox's watermark, and police holds on snapshots (see snapshots.py)."""
    for statement in _M0003:
        db.execute(statement)


_M0003 = (
    # Snapshots of events up to this seq went up (or had none): the outbox starts above it.
    # An existing database starts at its ack watermark, so its past is not sent again.
    "INSERT INTO meta (key, value) VALUES ('snapshot_sent_seq',"
    " (SELECT value FROM meta WHERE key = 'acked_seq'))",
    # A held snapshot is kept past retention_days until the hold is lifted.
    """CREATE TABLE snapshot_holds (
        event_id TEXT PRIMARY KEY CHECK (length(event_id) = 36),
        purpose TEXT NOT NULL CHECK (length(purpose) BETWEEN 1 AND 200),
        held_by TEXT NOT NULL,
        held_at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
)


@_migration
def m0004_audit_log(db: Database) -> None:
    """The police audit log, append-only and hash-chained (see audit.py)."""
    for statement in _M0004:
        db.execute(statement)


_M0004 = (
    """CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        username TEXT NOT NULL,
        role TEXT NOT NULL,
        remote TEXT,
        action TEXT NOT NULL,
        purpose TEXT,
        params TEXT NOT NULL,
        records INTEGER NOT NULL CHECK (records >= 0),
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    ) STRICT""",
    # Append-only: the chain would show a change, the triggers refuse it in the first place.
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)


@_migration
def m0005_one_time_passwords(db: Database) -> None:
    """A user whose password was handed out (provisioning) must choose one before anything."""
    db.execute(
        "ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0"
        " CHECK (must_change IN (0, 1))"
    )


@_migration
def m0006_capture_holds(db: Database) -> None:
    """Events waiting for their snapshot, in the database so every process sees the hold."""
    db.execute("CREATE TABLE captures (seq INTEGER PRIMARY KEY) STRICT")


@_migration
def m0007_cancelled_cards(db: Database) -> None:
    """Cards may be cancelled (注销): refused for good, and an alarm when presented.

    SQLite cannot change a CHECK constraint in place, so the table is rebuilt; nothing refers
    to cards, so dropping the old one loses no link.
    """
    for statement in _M0007:
        db.execute(statement)


_M0007 = (
    """CREATE TABLE cards_m0007 (
        number INTEGER PRIMARY KEY CHECK (number BETWEEN 0 AND 4294967295),
        tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'lost', 'revoked', 'cancelled')),
        pin_hash BLOB,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    ) STRICT""",
    "INSERT INTO cards_m0007 SELECT number, tenant_id, status, pin_hash, created, updated"
    " FROM cards ORDER BY number",
    "DROP TABLE cards",
    "ALTER TABLE cards_m0007 RENAME TO cards",
    "CREATE INDEX cards_tenant ON cards (tenant_id)",
)


@_migration
def m0008_reader_states(db: Database) -> None:
    """Each door's last reader.online or reader.offline found at once, for `P/status`: the
    journal is scanned through this small partial index, never the whole table."""
    db.execute(
        "CREATE INDEX events_reader ON events (door, seq)"
        " WHERE type IN ('reader.online', 'reader.offline')"
    )


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Apply pending migrations inside the caller's transaction; return the schema version."""
    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    unknown = {m.name for m in migrations.applied(db)} - set(MIGRATION_NAMES)
    if unknown:
        raise StoreError(
            "the database was written by a newer version of this software (unknown schema"
            f" changes: {', '.join(sorted(unknown))})"
        )
    migrations.apply(db)
    version = len(MIGRATION_NAMES)
    conn.execute(f"PRAGMA user_version = {version}")
    return version
