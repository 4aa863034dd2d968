"""Opening the platform's store: database, store key, snapshot store, and their defaults.

    store = Store.open(StoreConfig.for_url("postgresql://platform@db:5432/city"))
    ingest.store_batch(store, messages)
    store.close()

`--db` is a PostgreSQL URL (`postgresql://USER@HOST:PORT/DB`; a password comes from
`~/.pgpass` or `PGPASSWORD`, as for every libpq program) or a SQLite file path. Beside a
SQLite file `city.db` the store key defaults to `city.db.key` and pictures to
`city.db.snapshots/`; for PostgreSQL to `/var/lib/rental-platform/store.key` and
`/var/lib/rental-platform/snapshots/`. A missing store key is made at first start (mode 0600)
and its fingerprint written to the database; an instance whose key differs refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from .database import Database, is_postgres_url
from .schema import migrate
from .sealing import Sealer, StoreKeyError
from .snapshots import FolderSnapshots, SnapshotStore

PLATFORM_HOME = Path("/var/lib/rental-platform")


@dataclass(frozen=True, slots=True)
class Limits:
    """Retention and size limits of the store."""

    retention_days: float = 180.0  # GB 50396-2007 5.2.2 asks for 180 days of records
    snapshot_retention_days: float = 180.0
    snapshot_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the store's parts are; `for_url` fills in the defaults."""

    url: str
    key_file: Path
    snapshot_dir: Path
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def for_url(
        cls,
        url: str | Path,
        *,
        key_file: Path | None = None,
        snapshot_dir: Path | None = None,
        limits: Limits | None = None,
    ) -> StoreConfig:
        """The configuration for `--db URL`, with the documented defaults."""
        text = str(url)
        if is_postgres_url(text):
            home = PLATFORM_HOME
            default_key, default_pictures = home / "store.key", home / "snapshots"
        else:
            default_key = Path(f"{text}.key")
            default_pictures = Path(f"{text}.snapshots")
        return cls(
            text, key_file or default_key, snapshot_dir or default_pictures, limits or Limits()
        )

    def with_limits(self, limits: Limits) -> StoreConfig:
        """The same store with other limits."""
        return replace(self, limits=limits)


class Store:
    """A connection to the store with the keys and pictures that go with it.

    One thread at a time; the platform opens one for its writer and one for readers.
    """

    def __init__(
        self, config: StoreConfig, db: Database, sealer: Sealer, snapshots: SnapshotStore
    ) -> None:
        self.config = config
        self.db = db
        self.sealer = sealer
        self.snapshots = snapshots
        self.limits = config.limits
        self.months: set[datetime] = set()  # partitions known to exist
        self.swept_at = float("-inf")  # the last walk through the pictures' folder

    @classmethod
    def open(cls, config: StoreConfig, *, prepare: bool = True) -> Store:
        """Connect; with `prepare`, apply migrations and check the store key against the
        database's (StoreKeyError if another key was used with it)."""
        sealer = Sealer.from_file(config.key_file, create=True)
        db = Database.open(config.url)
        store = cls(config, db, sealer, FolderSnapshots(config.snapshot_dir))
        if prepare:
            migrate(db)
            check_key(db, sealer)
        return store

    def sibling(self) -> Store:
        """Another connection to the same store (for another thread)."""
        return Store(self.config, Database.open(self.config.url), self.sealer, self.snapshots)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()


def check_key(db: Database, sealer: Sealer) -> None:
    """Record the store key's fingerprint, or refuse a key that is not the recorded one."""
    with db.transaction():
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('store_key', ?) ON CONFLICT (key) DO NOTHING",
            (sealer.fingerprint,),
        )
        (recorded,) = db.execute("SELECT value FROM meta WHERE key = 'store_key'").fetchone()
    if recorded != sealer.fingerprint:
        raise StoreKeyError(
            "this store key is not the one the database was filled with: every instance on"
            " one database needs the same key file (copy it, mode 0600)"
        )
