"""Connections, PRAGMAs, migrations, and the writer thread's transaction rules."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from gateway.store import Store, StoreClosed, StoreError, Transaction
from gateway.store.db import WRITER_RETRY_MS, connect_writer
from gateway.store.schema import MIGRATION_NAMES
from gateway.store.writer import Writer

from .conftest import GATEWAY_ID


def test_writer_connection_uses_wal_full_sync_and_foreign_keys(store: Store) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[object, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        )

    # A short busy timeout: the writer thread itself waits for other processes (below).
    assert store.transaction(lambda tx: pragmas(tx.conn)) == ("wal", 2, 1, WRITER_RETRY_MS)


def test_writer_takes_the_lock_as_soon_as_another_process_releases_it(
    store: Store, data_dir: Path
) -> None:
    other = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    committed: list[float] = []

    def append() -> None:
        store.append_event({"type": "reader.online", "door": "main"})
        committed.append(time.perf_counter())

    door = threading.Thread(target=append)
    door.start()
    # Held for 34 tries of the writer's busy timeout; SQLite's own handler would by now be
    # trying once every 100 ms, and notice the release up to 0.1 s late.
    time.sleep(0.34)
    released = time.perf_counter()
    other.execute("COMMIT")
    door.join()
    other.close()
    assert 0 < committed[0] - released < 0.05


def test_writer_gives_up_after_its_lock_timeout(data_dir: Path) -> None:
    Store.open(data_dir, GATEWAY_ID).close()
    other = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    writer = Writer(connect_writer(data_dir / "gateway.db"), lock_timeout=0.05)
    writer.start()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.submit(
                lambda conn: conn.execute("UPDATE meta SET value = 1 WHERE key = 'lockdown'")
            )
        assert not writer.healthy()
        other.execute("COMMIT")
        writer.submit(lambda conn: conn.execute("UPDATE meta SET value = 1 WHERE key = 'lockdown'"))
        assert writer.healthy()
    finally:
        writer.close()
        other.close()


def test_reader_is_per_thread_and_read_only(store: Store) -> None:
    mine = store.reader()
    assert store.reader() is mine
    theirs: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: theirs.append(store.reader()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
        mine.execute("INSERT INTO rooms (room, created) VALUES ('x', 'y')")


def test_constructor_does_no_io(tmp_path: Path) -> None:
    store = Store(tmp_path / "nowhere", GATEWAY_ID)
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(StoreClosed, match="not open"):
        store.reader()
    store.close()


def test_migrations_are_idempotent_and_versioned(data_dir: Path) -> None:
    for _ in range(3):
        with Store.open(data_dir, GATEWAY_ID) as store:
            assert store.schema_version() == len(MIGRATION_NAMES)
    db = Database(data_dir / "gateway.db")
    applied = db.execute("SELECT name FROM _sqlite_migrations").fetchall()
    assert [name for (name,) in applied] == MIGRATION_NAMES
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATION_NAMES)
    db.close()


def test_database_from_a_newer_version_is_refused(data_dir: Path) -> None:
    Store.open(data_dir, GATEWAY_ID).close()
    conn = sqlite3.connect(data_dir / "gateway.db")
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('rental-gateway', 'm9999_future', 'x')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        Store.open(data_dir, GATEWAY_ID)


def test_database_of_another_gateway_is_refused(data_dir: Path) -> None:
    Store.open(data_dir, GATEWAY_ID).close()
    with pytest.raises(StoreError, match="belongs to gateway 'gw-test-0001'"):
        Store.open(data_dir, "gw-other-0002")


def test_bad_gateway_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="gateway_id"):
        Store.open(tmp_path, "Not An Id")


def test_disk_full_shows_in_writable_until_a_write_succeeds(store: Store) -> None:
    # A page budget on the writer's connection stands in for a full SD card.
    pages = store.transaction(lambda tx: tx.execute("PRAGMA page_count").fetchone()[0])
    store.transaction(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages + 2}"))
    assert store.writable()

    def fill() -> None:
        for n in range(1000):
            store.append_event({"type": "reader.online", "door": "x" * 1000 + str(n)})

    with pytest.raises(sqlite3.OperationalError, match="full"):
        fill()
    assert not store.writable()
    store.transaction(lambda tx: tx.execute("PRAGMA max_page_count = 1000000"))
    assert store.writable()
    entries = store.pending_events(limit=1000)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))


def test_lockdown_flag_persists(data_dir: Path) -> None:
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert not store.lockdown()
        store.set_lockdown(True)
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.lockdown()


def test_close_is_idempotent_and_final(store: Store) -> None:
    store.close()
    store.close()
    assert not store.writable()
    with pytest.raises(StoreClosed):
        store.append_event({"type": "reader.online", "door": "main"})
    with pytest.raises(StoreClosed):
        store.card_lookup(1)


def test_transaction_returns_result_after_commit(store: Store) -> None:
    def two_events(tx: Transaction) -> list[int]:
        return [tx.append_event({"type": "reader.online", "door": d}).seq for d in ("a", "b")]

    assert store.transaction(two_events) == [1, 2]
    assert [e.seq for e in store.pending_events()] == [1, 2]


def test_exception_rolls_back_and_reaches_the_caller(store: Store) -> None:
    class Boom(Exception):
        pass

    def fail(tx: Transaction) -> None:
        tx.append_event({"type": "reader.online", "door": "main"})
        raise Boom

    with pytest.raises(Boom):
        store.transaction(fail)
    assert store.pending_events() == []
    # The writer is still alive and seq 1 was not burnt by the rolled-back insert.
    assert store.append_event({"type": "reader.online", "door": "main"}).seq == 1


def test_sql_errors_propagate_with_their_type(store: Store) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.transaction(lambda tx: tx.execute("SELECT * FROM missing_table"))


def test_nested_write_is_refused_instead_of_deadlocking(store: Store) -> None:
    with pytest.raises(StoreError, match="inside a transaction"):
        store.transaction(lambda tx: store.append_event({"type": "reader.online", "door": "x"}))


def test_transaction_control_statements_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="begins and commits"):
        store.transaction(lambda tx: tx.execute("COMMIT"))


def test_tx_is_unusable_after_its_transaction(store: Store) -> None:
    leaked = store.transaction(lambda tx: tx)
    with pytest.raises(StoreError, match="has ended"):
        leaked.append_event({"type": "reader.online", "door": "main"})
