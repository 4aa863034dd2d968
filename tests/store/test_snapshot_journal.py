"""Events whose snapshot is still being captured: held from the uplink, filled in, released;
the snapshot outbox's watermark; police holds."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Store, ValidationError

from .conftest import GATEWAY_ID
from .factories import FakeClock

SHA = "ab" * 32


def access(card: int = 7) -> dict[str, Any]:
    return {
        "type": "access.granted",
        "door": "main",
        "credential": {"kind": "card", "number": card},
        "reason": "tenant",
        "snapshot": None,
        "snapshot_error": "interrupted",
    }


def online() -> dict[str, Any]:
    return {"type": "reader.online", "door": "main"}


def pending_seqs(store: Store) -> list[int]:
    return [seq for seq, _ in store.pending_bodies(0, 100)]


def test_a_held_event_and_every_later_one_wait_until_the_snapshot_is_filled(store: Store) -> None:
    first = store.append_event(online())
    held = store.append_event(access(), capture=True)
    later = store.append_event(online())
    assert pending_seqs(store) == [first.seq]
    assert [e.seq for e in store.pending_events()] == [first.seq]
    assert store.captures_running() == 1

    final = store.fill_snapshot(held.seq, {"sha256": SHA, "bytes": 1234})
    assert final is not None
    assert final.body["snapshot"] == {"sha256": SHA, "bytes": 1234}
    assert "snapshot_error" not in final.body
    bodies = dict(store.pending_bodies(0, 100))
    assert list(bodies) == [first.seq, held.seq, later.seq]
    # The uplink sends exactly the text the entry carries, encoded as the journal encodes.
    assert bodies[held.seq].decode() == final.body_json
    assert list(json.loads(final.body_json)) == [k for k in held.body if k != "snapshot_error"]
    assert store.captures_running() == 0


def test_a_capture_that_failed_records_why(store: Store) -> None:
    held = store.append_event(access(), capture=True)
    final = store.fill_snapshot(held.seq, None, "stale_frame")
    assert final is not None
    assert final.body["snapshot"] is None
    assert final.body["snapshot_error"] == "stale_frame"
    assert pending_seqs(store) == [held.seq]


def test_only_the_first_filler_wins(store: Store) -> None:
    held = store.append_event(access(), capture=True)
    assert store.fill_snapshot(held.seq, None, "timeout") is not None
    assert store.fill_snapshot(held.seq, {"sha256": SHA, "bytes": 1}) is None
    body = json.loads(dict(store.pending_bodies(0, 10))[held.seq])
    assert body["snapshot_error"] == "timeout"


def test_a_released_capture_goes_up_as_interrupted(store: Store) -> None:
    held = store.append_event(access(), capture=True)
    store.release_capture(held.seq)
    body = json.loads(dict(store.pending_bodies(0, 10))[held.seq])
    assert body["snapshot"] is None
    assert body["snapshot_error"] == "interrupted"
    assert store.fill_snapshot(held.seq, {"sha256": SHA, "bytes": 1}) is None


def test_an_event_that_is_refused_leaves_no_hold_behind(store: Store) -> None:
    bad = access()
    del bad["reason"]
    with pytest.raises(ValidationError):
        store.append_event(bad, capture=True)
    assert store.captures_running() == 0
    after = store.append_event(online())
    assert pending_seqs(store) == [after.seq]


def test_after_a_restart_an_unfinished_capture_reads_interrupted(
    data_dir: Path, clock: FakeClock
) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        held = store.append_event(access(), capture=True)
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        # Another process opening the store (the web, the uplink) must not end a capture
        # that the running door process is waiting for: the hold is still there.
        assert pending_seqs(store) == []
        # The door process lets every hold go when it starts: nobody captures for them now.
        assert store.release_all_captures() == 1
        body = json.loads(dict(store.pending_bodies(0, 10))[held.seq])
        assert body["snapshot_error"] == "interrupted"


def test_the_uplink_never_reads_a_body_before_its_snapshot_is_filled(store: Store) -> None:
    """Fills race reads: every body read must be final, never the held one."""
    rng = random.Random(4)
    finals: dict[int, bytes] = {}
    seen: dict[int, bytes] = {}
    stop = threading.Event()
    failures: list[str] = []

    def read() -> None:
        cursor = 0
        while not stop.is_set() or cursor < max(finals, default=0):
            for seq, body in store.pending_bodies(cursor, 50):
                if b'"interrupted"' in body:
                    failures.append(f"seq {seq} read before its snapshot was filled")
                seen[seq] = body
                cursor = seq

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(300):
            if rng.random() < 0.5:
                entry = store.append_event(online())
                finals[entry.seq] = entry.body_json.encode()
                continue
            held = store.append_event(access(n), capture=True)
            filled = store.fill_snapshot(held.seq, {"sha256": SHA, "bytes": n + 1})
            assert filled is not None
            finals[filled.seq] = filled.body_json.encode()
    finally:
        stop.set()
        reader.join(30)
    assert not failures
    assert seen == finals  # each once, final, and none missing


def test_the_outbox_finds_snapshots_only_up_to_what_was_acknowledged(store: Store) -> None:
    seqs = []
    for n in range(4):
        held = store.append_event(access(n), capture=True)
        if n == 1:
            store.fill_snapshot(held.seq, None, "camera_offline")
        else:
            store.fill_snapshot(held.seq, {"sha256": SHA, "bytes": 100 + n})
        seqs.append(held.seq)
    first = store.next_snapshot(0, seqs[2])
    assert first is not None
    assert (first.seq, first.bytes) == (seqs[0], 100)
    second = store.next_snapshot(first.seq, seqs[2])
    assert second is not None
    assert second.seq == seqs[2]
    assert store.next_snapshot(second.seq, seqs[2]) is None  # seqs[3] is not acked yet
    assert second.event_id == json.loads(dict(store.pending_bodies(0, 9))[seqs[2]])["event_id"]


def test_the_outbox_watermark_is_saved_with_a_later_write(data_dir: Path, clock: FakeClock) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.snapshot_sent_seq() == 0
        store.snapshots_sent(5)
        store.snapshots_sent(3)  # never backwards
        assert store.snapshot_sent_seq() == 5
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.snapshot_sent_seq() == 5  # saved at close


def test_an_older_database_starts_its_outbox_at_its_ack_watermark(
    data_dir: Path, clock: FakeClock
) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        for _ in range(3):
            store.append_event(online())
        store.acknowledge(2)
    conn = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
    conn.execute("DELETE FROM meta WHERE key = 'snapshot_sent_seq'")
    conn.execute("DROP TABLE snapshot_holds")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm0003_snapshot_outbox_and_holds'")
    conn.close()
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.snapshot_sent_seq() == 2


def test_police_holds_are_kept_renewed_and_lifted(store: Store) -> None:
    event_id = "0b8f3f9e-7a57-4f0c-9d51-3b1f2f6c9a10"
    store.hold_snapshot(event_id, "  案件 2026-118 ", "officer.li")
    store.hold_snapshot(event_id, "案件 2026-119", "officer.wang")
    [hold] = store.snapshot_holds()
    assert (hold.event_id, hold.purpose) == (event_id, "案件 2026-119")
    assert hold.held_by == "officer.wang"
    with pytest.raises(ValidationError):
        store.hold_snapshot(event_id, "   ", "officer.li")
    assert store.release_snapshot(event_id)
    assert not store.release_snapshot(event_id)
    assert store.snapshot_holds() == []
