"""The event journal: seq rules, pending/ack watermark, sealing, alarms, retention, queries."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Conflict, EventQuery, Store, ValidationError

from .conftest import GATEWAY_ID
from .factories import FakeClock, tenant

TS = "2026-11-26T20:01:02.123+08:00"


def access(
    card: int, *, result: str = "granted", reason: str = "tenant", **extra: Any
) -> dict[str, Any]:
    return {
        "type": f"access.{result}",
        "ts": TS,
        "door": "main",
        "credential": {"kind": "card", "number": card},
        "reason": reason,
        "snapshot": None,
        "snapshot_error": "no camera",
        **extra,
    }


def test_append_returns_the_full_event_body(store: Store) -> None:
    entry = store.append_event(access(42, tenant_id="t-1", room="0301"))
    assert entry.seq == 1
    assert entry.body == {
        "schema": 1,
        "gateway_id": GATEWAY_ID,
        "seq": 1,
        "event_id": entry.event_id,
        "ts": TS,
        "type": "access.granted",
        "door": "main",
        "credential": {"kind": "card", "number": 42},
        "reason": "tenant",
        "snapshot": None,
        "snapshot_error": "no camera",
        "tenant_id": "t-1",
        "room": "0301",
    }
    assert json.loads(entry.body_json) == entry.body
    assert store.pending_events()[0].body_json == entry.body_json


def test_caller_may_choose_event_id_once(store: Store) -> None:
    event_id = "0b7a6f7e-5d1c-4c4b-9a43-6f1f5f0f2a10"
    assert (
        store.append_event({"type": "door.forced", "door": "main", "event_id": event_id}).event_id
        == event_id
    )
    with pytest.raises(Conflict, match="already in the journal"):
        store.append_event({"type": "door.forced", "door": "main", "event_id": event_id})


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "access.granted"}, "event.door"),
        ({"type": "door.opened", "door": "main"}, "event.type"),
        ({"type": "door.forced", "door": "main", "seq": 7}, "event.seq"),
        ({"type": "door.forced", "door": "main", "ts": "2026-11-26T20:01:02"}, "event.ts"),
        ({"type": "door.forced", "door": "main", "ts": "yesterday"}, "event.ts"),
        ({"type": "door.forced", "door": "main", "event_id": "42"}, "event.event_id"),
        ({**access(1), "credential": {"kind": "card", "number": 2**32}}, "event.credential.number"),
        ({**access(1), "snapshot_error": None}, "event.snapshot_error"),
        ({**access(1), "tenant": {"id_number": "x"}}, "event.tenant.id_number"),
        (
            {**access(1), "credential": {"kind": "card", "number": 1, "pin": "1234"}},
            "event.credential.pin",
        ),
        ({"type": "tenant.changed", "change": "added", "tenant": {"id": "t"}}, "event.type"),
        ({"type": "command.executed", "payload": float("nan")}, "event"),
    ],
)
def test_malformed_events_are_refused(store: Store, event: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.append_event(event)
    assert caught.value.field == field
    assert store.pending_events() == []


def test_seq_is_contiguous_and_continues_after_reopen(data_dir: Path) -> None:
    for round_ in range(3):
        with Store.open(data_dir, GATEWAY_ID) as store:
            seqs = [
                store.append_event({"type": "reader.online", "door": "main"}).seq for _ in range(5)
            ]
            assert seqs == list(range(round_ * 5 + 1, round_ * 5 + 6))


def test_seq_is_never_reused_after_the_newest_rows_are_deleted(data_dir: Path) -> None:
    with Store.open(data_dir, GATEWAY_ID) as store:
        for _ in range(5):
            store.append_event({"type": "reader.online", "door": "main"})
        store.transaction(lambda tx: tx.execute("DELETE FROM events WHERE seq >= 3"))
        assert store.append_event({"type": "reader.online", "door": "main"}).seq == 6
        store.transaction(lambda tx: tx.execute("DELETE FROM events"))
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.append_event({"type": "reader.online", "door": "main"}).seq == 7


def test_concurrent_appends_get_unique_contiguous_seqs(store: Store) -> None:
    threads, per_thread = 8, 50
    seen: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for _ in range(per_thread):
            seq = store.append_event({"type": "reader.online", "door": f"door-{n}"}).seq
            with lock:
                seen.append(seq)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(seen) == list(range(1, threads * per_thread + 1))
    bodies = store.pending_events(limit=1000)
    assert [e.seq for e in bodies] == sorted(seen)
    assert all(e.body["seq"] == e.seq for e in bodies)


def test_ack_is_a_cumulative_watermark(store: Store) -> None:
    for _ in range(10):
        store.append_event({"type": "reader.online", "door": "main"})
    assert store.acked_seq() == 0
    assert store.acknowledge(4) == 4
    assert [e.seq for e in store.pending_events()] == [5, 6, 7, 8, 9, 10]
    assert store.acknowledge(2) == 4  # never backwards
    assert [e.seq for e in store.pending_events(after_seq=7, limit=2)] == [8, 9]
    assert store.acknowledge(1000) == 10  # never past the last seq
    assert store.pending_events() == []
    # Acknowledged events stay for police queries.
    assert len(store.query_events(EventQuery(limit=100)).entries) == 10


def test_ack_writes_one_row_whatever_it_covers(store: Store) -> None:
    for _ in range(100):
        store.append_event({"type": "reader.online", "door": "main"})

    def changes() -> int:
        return int(store.transaction(lambda tx: tx.execute("SELECT total_changes()").fetchone()[0]))

    before = changes()
    store.acknowledge(100)
    assert changes() - before == 1


def test_tenant_changed_body_is_sealed_at_rest(store: Store) -> None:
    created = store.add_tenant(tenant(1))
    raw = store.reader().execute("SELECT body, sealed_body FROM events").fetchone()
    assert raw[0] is None
    assert b"44030519" not in raw[1]
    (entry,) = store.pending_events()
    assert entry.body["type"] == "tenant.changed"
    assert entry.body["change"] == "added"
    assert entry.body["tenant"]["id"] == created.id
    assert entry.body["tenant"]["id_number"] == tenant(1).id_number
    assert tenant(1).id_number not in repr(entry)


def test_alarm_named_with_an_event_commits_with_it(store: Store) -> None:
    forced = store.append_event({"type": "door.forced", "door": "main"}, alarm="door_forced")
    lost = store.append_event(
        access(9, result="denied", reason="lost_card", room="0301"), alarm="lost_card"
    )
    store.append_event(access(10, result="denied", reason="expired"))
    alarms = store.list_alarms()
    assert [(a.kind, a.event_seq, a.door) for a in alarms] == [
        ("lost_card", lost.seq, "main"),
        ("door_forced", forced.seq, "main"),
    ]
    assert alarms[0].detail == "card 9, room 0301"
    # Raising the same alarm for the same event again is harmless.
    again = store.transaction(lambda tx: tx.raise_alarm("door_forced", event_seq=forced.seq))
    assert again == alarms[1].id
    with pytest.raises(ValidationError, match="alarm kind"):
        store.append_event({"type": "door.forced", "door": "main"}, alarm="Door Forced!")
    assert store.pending_events()[-1].seq == 3  # the refused alarm took its event with it
    seen = store.acknowledge_alarm(alarms[1].id, "wang")
    assert seen.acknowledged_by == "wang"
    assert [a.kind for a in store.list_alarms()] == ["lost_card"]
    assert len(store.list_alarms(open_only=False)) == 2


def test_retention_deletes_only_old_acknowledged_events(store: Store) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(10):
        store.append_event(
            {"type": "reader.online", "door": "main", "ts": (day + timedelta(days=n)).isoformat()}
        )
    store.acknowledge(6)
    deleted = store.delete_events_before(day + timedelta(days=8))
    assert deleted == 6  # events 7 and 8 are old enough but not yet at the city
    remaining = store.query_events(EventQuery(limit=100)).entries
    assert sorted(e.seq for e in remaining) == [7, 8, 9, 10]
    assert store.append_event({"type": "reader.online", "door": "main"}).seq == 11


def test_query_filters_and_pages_newest_first(store: Store, clock: FakeClock) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(30):
        ts = (start + timedelta(hours=n)).isoformat()
        store.append_event(
            {**access(100 + n % 3, room=f"03{n % 3}", tenant_id=f"t{n % 3}"), "ts": ts}
        )
    q = EventQuery(
        card=101, since=start + timedelta(hours=3), until=start + timedelta(hours=25), limit=3
    )
    page = store.query_events(q)
    assert [e.body["ts"][11:13] for e in page.entries] == ["22", "19", "16"]
    assert page.next_cursor is not None
    page2 = store.query_events(
        EventQuery(card=101, since=q.since, until=q.until, limit=3, cursor=page.next_cursor)
    )
    assert [e.body["ts"][11:13] for e in page2.entries] == ["13", "10", "07"]
    page3 = store.query_events(
        EventQuery(card=101, since=q.since, until=q.until, limit=3, cursor=page2.next_cursor)
    )
    assert [e.body["ts"][11:13] for e in page3.entries] == ["04"]
    assert page3.next_cursor is None


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("tenant_id = 't1'", "events_tenant"),
        ("card = 5", "events_card"),
        ("room = '0301'", "events_room"),
        ("ts_ms >= 0 AND ts_ms < 10", "events_ts"),
    ],
)
def test_police_filters_use_their_index(store: Store, where: str, index: str) -> None:
    plan = (
        store.reader()
        .execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM events WHERE {where} ORDER BY ts_ms DESC, seq DESC"
        )
        .fetchall()
    )
    text = " ".join(row[-1] for row in plan)
    assert index in text
    assert "TEMP B-TREE" not in text  # ordered by the index itself, no sort step
