"""The platform's schema, as numbered migrations for SQLite and PostgreSQL, applied at start.

`schema_migrations` lists the versions applied. `migrate` applies the missing ones in one
transaction under a lock, so two instances starting at once never both apply one: PostgreSQL
takes a transaction-scoped advisory lock, SQLite `BEGIN IMMEDIATE`. A migration is never
edited once released; a change is a new one, written for both engines.

The events table (docs/platform.md, "The events table") is partitioned by month in PostgreSQL:
`PARTITION BY RANGE (held, received_at)`, one partition per month of `received_at` with
`held = false`, and `events_held` for every event under a police hold. Holding an event moves
its row to `events_held` (an UPDATE of the key moves rows between partitions), so dropping a
month past retention drops nothing held. SQLite keeps one table with the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database

# Any constant of our own: the advisory lock that serialises migrations between instances.
MIGRATION_LOCK = 0x52_50_4D_49_47  # "RPMIG"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    sqlite: str
    postgres: str


def _common(binary: str, serial: str) -> str:
    """Tables whose SQL is the same in both engines but for binary and serial column types."""
    return f"""
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE gateways (
        gateway_id TEXT PRIMARY KEY,
        watermark BIGINT NOT NULL DEFAULT 0,   -- every seq <= watermark is stored centrally
        floor BIGINT NOT NULL DEFAULT 0,       -- highest `acked` user property seen
        duplicates BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        conflicts BIGINT NOT NULL DEFAULT 0,
        hold_below BIGINT,                     -- lowest seq in an open conflict: no ack past it
        last_event_at DOUBLE PRECISION,
        building_code TEXT,                    -- 440305001002-0042, from status or config
        district TEXT, street TEXT, community TEXT, building TEXT
    );
    CREATE TABLE ahead (
        gateway_id TEXT NOT NULL,
        seq BIGINT NOT NULL,                   -- stored, above the gateway's watermark
        PRIMARY KEY (gateway_id, seq)
    );
    CREATE TABLE conflicts (
        id {serial},
        gateway_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        digest {binary} NOT NULL,
        sealed {binary} NOT NULL,              -- the other body, whole
        received_at DOUBLE PRECISION NOT NULL,
        resolved_at DOUBLE PRECISION,
        UNIQUE (gateway_id, seq, digest)
    );
    CREATE TABLE rejects (
        id {serial},
        gateway_id TEXT,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        size BIGINT NOT NULL,                  -- bytes received
        sealed {binary},                       -- the first 64 KiB, sealed
        received_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX rejects_gateway ON rejects (gateway_id, id);
    CREATE TABLE status (
        gateway_id TEXT PRIMARY KEY,
        state TEXT,
        body TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE snapshots (
        gateway_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,                  -- the file in the snapshot store
        bytes BIGINT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (gateway_id, event_id)
    );
    CREATE INDEX snapshots_sha256 ON snapshots (sha256);
    CREATE INDEX snapshots_received ON snapshots (received_at);
    CREATE TABLE command_counters (
        gateway_id TEXT PRIMARY KEY,
        counter BIGINT NOT NULL
    );
    CREATE TABLE commands (
        gateway_id TEXT NOT NULL,
        counter BIGINT NOT NULL,
        cmd TEXT,
        summary TEXT,                          -- never the args: a registry carries personal data
        issued_at TEXT,
        expires_at TEXT,
        sent_at DOUBLE PRECISION,
        ok BOOLEAN,                            -- NULL until the gateway's result arrives
        error TEXT,
        result_at DOUBLE PRECISION,
        PRIMARY KEY (gateway_id, counter)
    );
    CREATE TABLE holds (
        id {serial},
        purpose TEXT NOT NULL,                 -- the case number
        created_at DOUBLE PRECISION NOT NULL,
        released_at DOUBLE PRECISION
    );
    CREATE TABLE hold_events (
        hold_id BIGINT NOT NULL REFERENCES holds (id),
        gateway_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (hold_id, gateway_id, seq)
    );
    CREATE INDEX hold_events_event ON hold_events (gateway_id, seq)
    """


def _events(partitioned: bool, binary: str) -> str:
    tail = " PARTITION BY RANGE (held, received_at)" if partitioned else ""
    # Unique per partition in PostgreSQL (history.ensure_months makes the monthly ones): it
    # cannot be unique across partitions without the partition key; see gateways.py.
    gateway_seq = (
        "CREATE UNIQUE INDEX events_held_gateway_seq ON events_held (gateway_id, seq)"
        if partitioned
        else "CREATE UNIQUE INDEX events_gateway_seq ON events (gateway_id, seq)"
    )
    held = (
        "CREATE TABLE events_held PARTITION OF events"
        " FOR VALUES FROM (true, MINVALUE) TO (MAXVALUE, MAXVALUE);"
        if partitioned
        else ""
    )
    return f"""
    CREATE TABLE events (
        gateway_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        ts_epoch DOUBLE PRECISION NOT NULL,    -- the gateway's ts, Unix seconds
        received_at DOUBLE PRECISION NOT NULL, -- when an instance received it (partition key)
        stored_at DOUBLE PRECISION NOT NULL,   -- when its batch was written
        district TEXT, street TEXT, community TEXT, building TEXT,
        door TEXT,
        card BIGINT,
        tenant_id TEXT,
        room TEXT,
        result TEXT,                           -- granted / denied (access.*)
        reason TEXT,
        id_hash {binary},                      -- tenant.changed: keyed hash of the ID number
        snapshot_sha256 TEXT,
        digest {binary} NOT NULL,              -- keyed hash of the payload: resend or another?
        body TEXT,                             -- the event JSON as received; NULL when sealed
        sealed {binary},                       -- tenant.changed: the event JSON, sealed
        held BOOLEAN NOT NULL DEFAULT false    -- under a police hold
    ){tail};
    {held}
    {gateway_seq};
    CREATE INDEX events_event_id ON events (event_id);
    CREATE INDEX events_ts ON events (ts_epoch);
    CREATE INDEX events_street ON events (district, street, ts_epoch);
    CREATE INDEX events_community ON events (district, street, community, ts_epoch);
    CREATE INDEX events_building ON events (district, street, community, building, ts_epoch);
    CREATE INDEX events_room ON events (district, street, community, building, room, ts_epoch)
        WHERE room IS NOT NULL;
    CREATE INDEX events_card ON events (card, ts_epoch) WHERE card IS NOT NULL;
    CREATE INDEX events_id_hash ON events (id_hash, ts_epoch) WHERE id_hash IS NOT NULL;
    CREATE INDEX events_received ON events (received_at) WHERE NOT held
    """


def _search(postgres: bool) -> str:
    """Version 2: indexes that bind every police filter, and the audit chain.

    Police search reads entries only (`result` is set exactly for `access.*`), so its indexes
    are partial: door and reader events cost them nothing. Each ends in `ts_epoch, result`:
    a filter and a time range are one index range read newest first, and `result` is checked
    on the index entry before any row is fetched (docs/platform.md, "Police search"). They
    replace version 1's indexes over every event. `events_received` served SQLite's retention
    only: PostgreSQL drops whole partitions, so there it was weight on every insert.
    """
    binary = "BYTEA" if postgres else "BLOB"
    entries = "WHERE result IS NOT NULL"
    received = "DROP INDEX events_received;" if postgres else ""
    return f"""
    DROP INDEX events_ts;
    DROP INDEX events_street;
    DROP INDEX events_community;
    DROP INDEX events_building;
    DROP INDEX events_room;
    DROP INDEX events_card;
    {received}
    CREATE INDEX entries_ts ON events (ts_epoch, result) {entries};
    CREATE INDEX entries_street ON events (district, street, ts_epoch, result) {entries};
    CREATE INDEX entries_community
        ON events (district, street, community, ts_epoch, result) {entries};
    CREATE INDEX entries_building
        ON events (district, street, community, building, ts_epoch, result) {entries};
    CREATE INDEX entries_room
        ON events (district, street, community, building, room, ts_epoch, result) {entries};
    CREATE INDEX entries_gateway ON events (gateway_id, ts_epoch, result) {entries};
    CREATE INDEX entries_card ON events (card, ts_epoch, result) {entries};
    CREATE INDEX entries_tenant ON events (tenant_id, ts_epoch, result) {entries};
    CREATE INDEX tenant_changes ON events (gateway_id, tenant_id, ts_epoch)
        WHERE type = 'tenant.changed';
    CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,                -- 1, 2, 3, … without gaps
        at DOUBLE PRECISION NOT NULL,          -- Unix seconds
        username TEXT NOT NULL,
        role TEXT NOT NULL,
        remote TEXT,                           -- the client's address
        action TEXT NOT NULL,
        purpose TEXT,                          -- the case number or reason
        params TEXT NOT NULL,                  -- JSON; never a plaintext ID number
        records BIGINT NOT NULL,
        mac {binary} NOT NULL                  -- keyed MAC over the previous row's and this row
    )
    """


_WEB_REQUESTS = """
    CREATE TABLE web_requests (
        gateway_id TEXT PRIMARY KEY,
        csr TEXT NOT NULL,                     -- PEM, checked to be a signed request
        received_at DOUBLE PRECISION NOT NULL
    )
    """


def _web(binary: str, serial: str) -> str:
    """Version 3: the city's pages: users, their server-side sessions, the login lockout
    (docs/platform.md, "The web"); and each gateway's parts as its events last told, for the
    fleet page."""
    return f"""
    CREATE TABLE users (
        username TEXT PRIMARY KEY,             -- as typed when made
        name_key TEXT NOT NULL UNIQUE,         -- casefolded: names compare case-insensitively
        role TEXT NOT NULL,                    -- police / district
        password_hash TEXT NOT NULL,           -- argon2id (web_security.passwords)
        must_change BOOLEAN NOT NULL,          -- a one-time password: a new one first
        generation BIGINT NOT NULL DEFAULT 0,  -- bumped when all its sessions end
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE web_sessions (
        digest {binary} PRIMARY KEY,           -- SHA-256 of the cookie's token, never the token
        name_key TEXT NOT NULL,
        username TEXT NOT NULL,
        role TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        remote TEXT,
        must_change BOOLEAN NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions (name_key, last_seen);
    CREATE INDEX web_sessions_seen ON web_sessions (last_seen);
    CREATE TABLE login_failures (
        id {serial},
        name_key TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        checking BOOLEAN NOT NULL              -- reserved, its password still being checked
    );
    CREATE INDEX login_failures_name ON login_failures (name_key, at);
    CREATE INDEX login_failures_at ON login_failures (at);
    CREATE TABLE gateway_parts (
        gateway_id TEXT NOT NULL,
        part TEXT NOT NULL,                    -- clock, camera, reader:<door>
        ok BOOLEAN NOT NULL,
        detail TEXT,                           -- a camera's snapshot_error
        seq BIGINT NOT NULL,                   -- the event that said so: a later one wins
        ts TEXT NOT NULL,                      -- its ts, with the building's offset
        PRIMARY KEY (gateway_id, part)
    );
    ALTER TABLE status ADD COLUMN since DOUBLE PRECISION  -- received in this state since
    """


MIGRATIONS = [
    Migration(
        1,
        sqlite=_common("BLOB", "INTEGER PRIMARY KEY") + ";" + _events(False, "BLOB"),
        postgres=_common("BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        + ";"
        + _events(True, "BYTEA"),
    ),
    Migration(2, sqlite=_search(False), postgres=_search(True)),
    Migration(
        3,
        sqlite=_web("BLOB", "INTEGER PRIMARY KEY"),
        postgres=_web("BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    ),
    # Each gateway's latest page certificate request (retained on P/web/csr), for `certify`.
    Migration(
        4,
        sqlite=_WEB_REQUESTS,
        postgres=_WEB_REQUESTS,
    ),
]


class SchemaError(Exception):
    """The database is not one this program can use."""


def migrate(db: Database) -> list[int]:
    """Apply the migrations this database lacks; return their versions (safe to run at once
    from several instances)."""
    with db.transaction():
        if db.postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        elif _old_sqlite_layout(db):
            raise SchemaError(
                f"{db.url} was made by an earlier rental-platform (no schema_migrations):"
                " start a new database file; gateways send again whatever was not acknowledged"
            )
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {int(row[0]) for row in db.execute("SELECT version FROM schema_migrations")}
        newest = max((m.version for m in MIGRATIONS), default=0)
        if done and max(done) > newest:
            raise SchemaError(
                f"the database is at schema version {max(done)}, newer than"
                f" this program's {newest}: upgrade rental-platform"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            db.script(migration.postgres if db.postgres else migration.sqlite)
            db.execute(
                "INSERT INTO schema_migrations (version, applied_at)"
                " VALUES (?, extract(epoch FROM now()))"
                if db.postgres
                else "INSERT INTO schema_migrations (version, applied_at) VALUES (?, unixepoch())",
                (migration.version,),
            )
            applied.append(migration.version)
    return applied


def _old_sqlite_layout(db: Database) -> bool:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return int(version) > 0 and "schema_migrations" not in tables
