"""What an event costs the storage: its commit writes the events table's page and nothing else.

The figures themselves come from `python -m bench.bytes_per_event` (docs/benchmarks.md); these
tests pin the structure they rest on, in WAL pages, which do not depend on the disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import Store, journal, writer
from gateway.store.db import NEW_DATABASE_PAGE_SIZE

from .conftest import GATEWAY_ID

WAL_HEADER, FRAME_HEADER = 32, 24


def wal_frames(data_dir: Path, truncate: bool = False) -> int:
    """Frames in the WAL file; with `truncate`, checkpoint first so it starts empty."""
    db = data_dir / "gateway.db"
    with sqlite3.connect(db) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        if truncate:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (data_dir / "gateway.db-wal").stat().st_size
    return max(0, size - WAL_HEADER) // (FRAME_HEADER + page)


def swipe(n: int) -> dict[str, object]:
    return {
        "type": "access.granted",
        "ts": "2026-11-26T20:01:02.123+08:00",
        "clock_synced": True,
        "door": "main",
        "credential": {"kind": "card", "number": 1_000_000 + n},
        "tenant_id": f"00000000-0000-4000-8000-{n:012d}",
        "room": f"{n % 40:04d}",
        "reason": "tenant_card",
        "snapshot": None,
        "snapshot_error": "disabled",
    }


def written_kib() -> float:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_new_database_has_small_pages(store: Store) -> None:
    page = store.reader().execute("PRAGMA page_size").fetchone()[0]
    assert page == NEW_DATABASE_PAGE_SIZE < 4096


def test_an_event_commits_its_page_of_the_events_table_only(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "DEFER_SETTLE_SECONDS", 3600.0)
    monkeypatch.setattr(writer, "DEFER_MAX_SECONDS", 3600.0)
    for n in range(20):  # the table has its first pages
        store.append_event(swipe(n))
    before = wal_frames(data_dir, truncate=True)
    count = 90  # below the autocheckpoint and the first index block
    for n in range(count):
        entry = store.append_event(swipe(n))
        store.acknowledge(entry.seq)
    frames = wal_frames(data_dir) - before
    # One frame (the last leaf of `events`) per commit; when that leaf is full, the new leaf,
    # its parent and the database header too. Three such rows fit in a 2 KiB page. The old
    # schema wrote 7 (4 police indexes, event_id, sqlite_sequence), and the ack one more.
    assert count <= frames <= count * (1 + 2 / 3) + 2
    assert store.acked_seq() == 110
    assert journal.acked_seq(store.reader()) == 0  # acks wait, and ride with a later commit


def test_a_block_is_indexed_in_one_sequential_write(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "index_due", lambda conn: False)
    store.transaction(lambda tx: [tx.append_event(swipe(n)) for n in range(1100)])
    before = wal_frames(data_dir, truncate=True)
    assert store.transaction(lambda tx: journal.index_next_block(tx.conn))
    frames = wal_frames(data_dir) - before
    page = store.reader().execute("PRAGMA page_size").fetchone()[0]
    # About 200 bytes of keys per event (card, tenant, room, event_id, time), written once
    # into new pages; a page per event here and there would be 1023 frames and more.
    assert frames * page < 1023 * 300


def test_writes_per_event_stay_low(data_dir: Path) -> None:
    """The process's write_bytes, close (checkpoint) included; 0 where it is not counted."""
    with Store.open(data_dir, GATEWAY_ID) as store:
        for n in range(20):
            store.append_event(swipe(n))
    count = 300
    store = Store.open(data_dir, GATEWAY_ID)
    start = written_kib()
    for n in range(count):
        store.acknowledge(store.append_event(swipe(n)).seq)
    store.close()
    # The old schema: about 50 KiB. A commit cannot cost less than the 4 KiB page it dirties.
    assert (written_kib() - start) / count < 14
