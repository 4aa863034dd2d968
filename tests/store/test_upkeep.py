"""The door part's store does no upkeep in its writer; the others write at its priority and
pace their disk writes.

Measured under every load at once (bench/door_isolation.py), a swipe's journal commit waited
for three things besides its own page: the write lock held by a niced part that the door's
priority kept off the CPU, the WAL checkpoint that SQLite runs inside whichever commit finds
the WAL over 1,000 pages, and a block of the journal's index written by the door's own writer.
Its commit's fsync also waited for the device to write what the import had written.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gateway.store import Store, Yielding
from gateway.store import journal as journal_module
from gateway.store import writer as writer_module
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
        ceiling = Yielding(lock_nice=-5)
        stores.append(Store.open(data_dir, GATEWAY_ID, clock=clock, yielding=ceiling))

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


def _fill(store: Store, megabytes: int) -> None:
    """One transaction writing about `megabytes` MB to the WAL."""

    def write(tx: Transaction) -> None:
        tx.conn.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
        tx.conn.execute("INSERT INTO filler VALUES (randomblob(?))", (megabytes * 1_000_000,))

    store.transaction(write)


def test_a_yielding_writer_pauses_after_writing_more_than_its_burst(
    data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = data_dir / "probe"
    before = writer_module._thread_written()
    data_dir.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b"x" * 1_000_000)
    if writer_module._thread_written() - before < 1_000_000:
        pytest.skip("this filesystem does not count a thread's writes (tmpfs)")
    pauses: list[float] = []
    monkeypatch.setattr(writer_module, "_sleep", pauses.append)
    pacing = Yielding(disk_bytes_per_s=1e6, disk_burst_bytes=1_000_000)
    with Store.open(data_dir, GATEWAY_ID, clock=clock, yielding=pacing) as web:
        _fill(web, 3)
    # (3 MB written - 1 MB of burst) at 1 MB/s: 2 s, the cap. Read after close, which waits
    # for the writer thread: the caller has its result before the pause.
    assert pauses
    assert 1.5 < pauses[0] <= writer_module.MAX_PAUSE_SECONDS
    pauses.clear()
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as cli:
        _fill(cli, 3)
    assert pauses == []
