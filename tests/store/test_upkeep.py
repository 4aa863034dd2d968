"""The door part's store does no upkeep in its writer, and the others write at its priority.

Measured under every load at once (bench/door_isolation.py), a swipe's journal commit waited
for three things besides its own page: the write lock held by a niced part that the door's
priority kept off the CPU, the WAL checkpoint that SQLite runs inside whichever commit finds
the WAL over 1,000 pages, and a block of the journal's index written by the door's own writer.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gateway.store import Store
from gateway.store import journal as journal_module
from gateway.store.tx import Transaction

from .conftest import GATEWAY_ID
from .factories import FakeClock


def test_a_store_without_upkeep_never_checkpoints_in_a_commit(
    data_dir: Path, clock: FakeClock
) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock, upkeep=False) as door:
        assert door._writer is not None
        assert door._writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as web:
        assert web._writer is not None
        assert web._writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_its_own_thread_checkpoints_the_wal(data_dir: Path, clock: FakeClock) -> None:
    db = data_dir / "gateway.db"
    with Store.open(data_dir, GATEWAY_ID, clock=clock, upkeep=False) as door:
        size_before = db.stat().st_size
        # Well over 1,000 pages of WAL: without a checkpoint, nothing reaches the file.
        door.transaction(lambda tx: [
            tx.append_event({"type": "reader.online", "door": "main", "n": n})
            for n in range(6000)])  # fmt: skip
        deadline = time.monotonic() + 30
        while db.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > size_before, "the WAL was never checkpointed"


def test_a_store_without_upkeep_leaves_the_index_to_the_others(
    data_dir: Path, clock: FakeClock
) -> None:
    def append_blocks(tx: Transaction) -> None:
        for n in range(3 * journal_module.INDEX_BLOCK):
            tx.append_event({"type": "reader.online", "door": "main", "n": n})

    with Store.open(data_dir, GATEWAY_ID, clock=clock, upkeep=False) as door:
        door.transaction(append_blocks)
        # The writer looks for upkeep whenever its queue empties, so before it runs this one.
        door.transaction(lambda tx: None)
        assert journal_module.index_due(door.reader())
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as web:
        deadline = time.monotonic() + 30
        while journal_module.index_due(web.reader()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not journal_module.index_due(web.reader())


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a thread's priority needs root")
def test_a_write_holds_the_lock_at_the_door_priority_and_then_gives_it_back(
    data_dir: Path, clock: FakeClock
) -> None:
    seen: dict[str, int] = {}

    def open_niced() -> None:
        # Threads inherit their creator's niceness: the writer thread starts at 5, as the
        # web part's does.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
        stores.append(Store.open(data_dir, GATEWAY_ID, clock=clock, lock_nice=-5))

    stores: list[Store] = []
    opener = threading.Thread(target=open_niced)
    opener.start()
    opener.join()
    with stores[0] as web:
        writer_tid: list[int] = []

        def inside(_tx: object) -> None:
            writer_tid.append(threading.get_native_id())
            seen["inside"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        web.transaction(inside)
        assert seen["inside"] == -5
        assert os.getpriority(os.PRIO_PROCESS, writer_tid[0]) == 5
