"""Opening SQLite connections with the settings the store relies on."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from .errors import StoreError

log = logging.getLogger(__name__)

# How long a statement waits for another process's lock before failing with "database is
# locked". Within one process the writer thread never waits: it is the only writer.
BUSY_TIMEOUT_MS = 5000
# The writer waits longer: `gateway tenants import` beside the running service holds the
# write lock for its one transaction (well under a second for 20,000 rows here, more on a
# Pi), and a door event that waits is better than one that fails.
WRITER_BUSY_TIMEOUT_MS = 30_000
# But not in SQLite's busy handler, which backs off to one try every 100 ms: a door event
# could wait up to 100 ms longer than the import that held the lock. The writer connection's
# handler gives up after a few tries 1-5 ms apart, and the writer thread starts it again
# until WRITER_BUSY_TIMEOUT_MS have passed (writer.py).
WRITER_RETRY_MS = 10
# Bulk imports dirty many pages of randomly keyed indexes; a larger page cache keeps them in
# memory until COMMIT (SQLite's default is 2 MiB).
WRITER_CACHE_KIB = 16 * 1024
# Page size of a database created from now on (an existing one keeps its own: changing it
# means rewriting the whole file). Every event's commit writes its page of the events table to
# the WAL, and Linux charges a commit for each 4 KiB page of the file it dirties after the last
# fsync: a 4096-byte page is a 4120-byte WAL frame, which always spans two (docs/store.md).
NEW_DATABASE_PAGE_SIZE = 2048
# After a checkpoint, cut the WAL back to this size so a one-off bulk import does not leave
# a large file on the SD card for good.
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024
# A store without upkeep (the door part's) checkpoints the WAL from a thread of its own this
# often, instead of inside whichever of its commits first finds the WAL over 1,000 pages.
CHECKPOINT_SECONDS = 1.0


def create_db_file(path: Path) -> None:
    """Create an empty database file readable by its owner only, if none exists.

    SQLite gives the -wal and -shm files the mode of the database file, so creating it as
    0600 ourselves (instead of letting sqlite3 use 0644 minus umask) covers all three.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def connect_writer(
    path: Path, busy_timeout_ms: int = WRITER_BUSY_TIMEOUT_MS, *, autocheckpoint: bool = True
) -> sqlite3.Connection:
    """Open the writing connection: WAL, synchronous=FULL, foreign keys, busy timeout.

    isolation_level=None leaves transaction control to us (the writer issues BEGIN IMMEDIATE);
    check_same_thread=False because the connection is opened by Store.open and then used only
    by the writer thread. `busy_timeout_ms` applies while opening (switching a new database to
    WAL needs a moment alone with it); afterwards the handler retries for WRITER_RETRY_MS and
    the writer thread repeats BEGIN until its own deadline.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Only takes effect on a new, empty database, and must come before WAL mode.
        conn.execute(f"PRAGMA page_size = {NEW_DATABASE_PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: could not switch to WAL mode (got {mode!r})")
        # synchronous is per connection and not stored in the file. NORMAL loses the last
        # commits on a power cut (about half of them in our test); FULL loses none.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Overwrite deleted row content in pages we touch anyway: a removed tenant's name does
        # not linger in free space. FAST costs no extra I/O.
        conn.execute("PRAGMA secure_delete = FAST")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        conn.execute(f"PRAGMA busy_timeout = {WRITER_RETRY_MS}")
        # Bulk upserts stage their prepared rows (sealed already) in TEMP tables before taking
        # the write lock; in memory they cost no SD card writes.
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open a read-only connection (mode=ro and query_only): it can never write by mistake."""
    uri = f"file:{quote(str(path))}?mode=ro"
    # check_same_thread=False only so Store.close() may close it from another thread; each
    # reader connection is otherwise used by the one thread that opened it.
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Every read inside sees one state of the database (a WAL read transaction)."""
    if conn.in_transaction:  # the writer's own transaction: one state already
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")  # ends the read transaction; nothing was written


class Checkpointer:
    """PASSIVE WAL checkpoints every CHECKPOINT_SECONDS, on a connection and thread of their own.

    A PASSIVE checkpoint copies what no reader still needs into the database file without
    taking the write lock, so the writer's commits go on meanwhile.
    """

    def __init__(self, path: Path, interval: float = CHECKPOINT_SECONDS) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # tried again at the next interval
                    log.debug("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
