"""The event journal: seq rules, pending/ack watermark, sealing, alarms, retention, queries."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from gateway.store import Conflict, EventQuery, Store, ValidationError, journal, schema, writer
from gateway.store.context import Context, epoch_ms
from gateway.store.crypto import Keys, load_or_create_key
from gateway.store.journal import JournalEntry
from gateway.store.schema import MIGRATION_NAMES

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


def test_a_reader_is_offline_while_its_last_word_is_offline(store: Store) -> None:
    assert store.readers_offline() == []
    for door, kind in [("main", "reader.offline"), ("back", "reader.offline"),
                       ("main", "reader.online"), ("side", "reader.online")]:  # fmt: skip
        store.append_event({"type": kind, "door": door})
        store.append_event({"type": "door.forced", "door": door})  # not a reader's word
    assert store.readers_offline() == ["back"]
    plan = store.reader().execute(
        "EXPLAIN QUERY PLAN SELECT door FROM events WHERE type IN ('reader.online',"
        " 'reader.offline') AND door = 'main' ORDER BY seq DESC LIMIT 1"
    ).fetchall()
    assert any("events_reader" in str(row) for row in plan), plan


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


def test_ack_is_saved_later_with_another_write_in_one_row(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(100):
        store.append_event({"type": "reader.online", "door": "main"})

    def saved() -> int:
        with sqlite3.connect(data_dir / "gateway.db") as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'acked_seq'").fetchone()[0])

    def changes() -> int:
        return int(store.transaction(lambda tx: tx.execute("SELECT total_changes()").fetchone()[0]))

    monkeypatch.setattr(writer, "DEFER_SETTLE_SECONDS", 3600.0)
    monkeypatch.setattr(writer, "DEFER_MAX_SECONDS", 3600.0)
    before = changes()
    assert store.acknowledge(100) == 100
    # The watermark moved for everyone in this process at once, without a commit of its own.
    assert (store.acked_seq(), store.pending_events(), saved()) == (100, [], 0)
    assert changes() == before  # the next write did not take it: it is only just deferred
    monkeypatch.setattr(writer, "DEFER_SETTLE_SECONDS", 0.0)
    store.append_event({"type": "reader.online", "door": "main"})
    assert saved() == 100
    assert changes() - before == 2  # the event and the one meta row, in the same commit


def test_ack_is_saved_alone_after_a_few_seconds_and_at_close(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "DEFER_MAX_SECONDS", 0.05)
    with Store.open(data_dir, GATEWAY_ID) as store:
        for _ in range(3):
            store.append_event({"type": "reader.online", "door": "main"})
        store.acknowledge(2)
        deadline = time.monotonic() + 5
        while journal.acked_seq(store.reader()) != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert journal.acked_seq(store.reader()) == 2
    monkeypatch.setattr(writer, "DEFER_MAX_SECONDS", 3600.0)
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.acknowledge(3) == 3
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.acked_seq() == 3  # written by close()
        assert store.pending_events() == []


def test_a_failing_deferred_write_does_not_fail_the_event(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: sqlite3.Connection, seq: int) -> None:
        conn.execute("UPDATE meta SET value = 'x' WHERE key = 'acked_seq'")
        raise sqlite3.OperationalError("disk I/O error")

    store.append_event({"type": "reader.online", "door": "main"})
    monkeypatch.setattr(writer, "DEFER_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(journal, "save_acked", broken)
    store.acknowledge(1)
    assert store.append_event({"type": "reader.online", "door": "main"}).seq == 2
    assert journal.acked_seq(store.reader()) == 0  # its savepoint was undone, not the event
    assert store.acked_seq() == 1  # and it is still pending
    assert store.writable()


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


def plans(store: Store, query: EventQuery) -> list[tuple[int, int, str]]:
    """EXPLAIN QUERY PLAN of the statement `query_events` runs for `query`: (id, parent, step)."""
    statements: list[str] = []
    reader = store.reader()
    reader.set_trace_callback(statements.append)
    try:
        store.query_events(query)
    finally:
        reader.set_trace_callback(None)
    rows = reader.execute(f"EXPLAIN QUERY PLAN {statements[-1]}").fetchall()
    return [(row[0], row[1], row[-1]) for row in rows]


@pytest.mark.parametrize(
    ("query", "search"),
    [
        (EventQuery(tenant_id="t1"), "SEARCH k USING PRIMARY KEY (block=? AND kind=? AND value=?)"),
        (
            EventQuery(card=5, door="main"),
            "SEARCH k USING PRIMARY KEY (block=? AND kind=? AND value=?)",
        ),
        (
            EventQuery(room="0301", since=datetime(2026, 1, 1, tzinfo=UTC)),
            "SEARCH k USING PRIMARY KEY (block=? AND kind=? AND value=? AND ts_ms>?)",
        ),
        (
            EventQuery(
                since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 2, 1, tzinfo=UTC)
            ),
            "SEARCH t USING PRIMARY KEY (ts_ms>? AND ts_ms<?)",
        ),
        (
            EventQuery(cursor="1764158462123:42", door="main"),
            "SEARCH t USING PRIMARY KEY (ts_ms<?)",
        ),
    ],
)
def test_police_filters_use_the_block_index(store: Store, query: EventQuery, search: str) -> None:
    steps = plans(store, query)
    plan = " | ".join(step for _, _, step in steps)
    assert search in plan
    # Events are only ever read by seq: indexed ones one by one, the rest above indexed_seq.
    assert "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)" in plan
    assert "SCAN events" not in plan
    assert "SCAN e " not in f"{plan} "
    if query.card is None and query.tenant_id is None and query.room is None:
        # By time alone the index is read newest first until the page is full: nothing is
        # sorted in the loop that reads it (only the few rows it gives, afterwards).
        (loop,) = {parent for _, parent, step in steps if step.startswith("SEARCH t ")}
        assert not [step for _, parent, step in steps if parent == loop and "TEMP B-TREE" in step]


# The block index: police queries and the event_id check see every event, indexed or not.

TENANTS = ("t-a", "t-b", "t-c", "t-d")
ROOMS = ("0101", "0102", "0201")
DOORS = ("main", "north", "garage")


def random_event(rng: random.Random, start: datetime) -> dict[str, Any]:
    """A door-path event with a random time (out of order, often equal) and random fields."""
    ts = (start + timedelta(minutes=rng.randrange(600))).isoformat(timespec="milliseconds")
    kind = rng.random()
    if kind < 0.7:
        granted = rng.random() < 0.6
        return {
            **access(rng.randrange(12), result="granted" if granted else "denied",
                     reason="tenant_card" if granted else "expired"),
            "ts": ts, "door": rng.choice(DOORS),
            "tenant_id": rng.choice((None, *TENANTS)), "room": rng.choice((None, *ROOMS)),
        }  # fmt: skip
    if kind < 0.8:
        return {
            **access(0, reason="visitor_code"), "ts": ts, "door": rng.choice(DOORS),
            "credential": {"kind": "visitor_code", "code_id": 3}, "room": rng.choice(ROOMS),
        }  # fmt: skip
    return {
        "type": rng.choice(("reader.online", "door.forced")),
        "ts": ts,
        "door": rng.choice(DOORS),
    }


def fields(entry: JournalEntry) -> dict[str, Any]:
    """What a police query filters on, worked out from the event as sent."""
    body = entry.body
    credential = body.get("credential") or {}
    tenant = body.get("tenant") or {}
    return {
        "seq": entry.seq,
        "ts_ms": epoch_ms(datetime.fromisoformat(body["ts"])),
        "type": body["type"],
        "door": body.get("door"),
        "card": credential.get("number") if credential.get("kind") == "card" else None,
        "tenant_id": tenant.get("id", body.get("tenant_id")),
        "room": tenant.get("room", body.get("room")),
        "result": {"access.granted": "granted", "access.denied": "denied"}.get(body["type"]),
    }


def random_query(rng: random.Random, start: datetime) -> EventQuery:
    def some(values: tuple[Any, ...]) -> Any:
        return rng.choice(values) if rng.random() < 0.3 else None

    since = start + timedelta(minutes=rng.randrange(600)) if rng.random() < 0.4 else None
    until = start + timedelta(minutes=rng.randrange(600)) if rng.random() < 0.4 else None
    types = tuple(
        rng.sample(("access.granted", "access.denied", "door.forced", "tenant.changed"), 2)
    )
    return EventQuery(
        since=since, until=until, door=some(DOORS), room=some(ROOMS), tenant_id=some(TENANTS),
        card=some(tuple(range(12))), result=some(("granted", "denied")),
        types=types if rng.random() < 0.2 else (), limit=rng.randint(1, 40),
    )  # fmt: skip


def expected(events: list[dict[str, Any]], q: EventQuery) -> list[int]:
    """The seqs `q` must return, by brute force: newest first, then highest seq."""
    wanted = {"door": q.door, "room": q.room, "tenant_id": q.tenant_id, "card": q.card,
              "result": q.result}  # fmt: skip
    return [
        e["seq"]
        for e in sorted(events, key=lambda e: (e["ts_ms"], e["seq"]), reverse=True)
        if all(value is None or e[key] == value for key, value in wanted.items())
        and (q.since is None or e["ts_ms"] >= epoch_ms(q.since))
        and (q.until is None or e["ts_ms"] < epoch_ms(q.until))
        and (not q.types or e["type"] in q.types)
    ]


def every_page(store: Store, q: EventQuery) -> list[int]:
    seqs: list[int] = []
    cursor = None
    while True:
        page = store.query_events(replace(q, cursor=cursor))
        assert len(page.entries) <= q.limit
        assert page.entries or cursor is None  # a cursor is only given when more follow
        seqs += [e.seq for e in page.entries]
        if page.next_cursor is None:
            return seqs
        cursor = page.next_cursor


def index_all(store: Store) -> int:
    """Index every complete block now; return indexed_seq."""

    def run(tx: Any) -> int:
        while journal.index_next_block(tx.conn):
            pass
        return int(tx.execute(f"SELECT {journal.INDEXED}").fetchone()[0])

    return int(store.transaction(run))


def test_queries_find_exactly_the_right_events_indexed_or_not(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "INDEX_BLOCK", 64)  # many blocks from a few hundred events
    monkeypatch.setattr(journal, "index_due", lambda conn: False)  # the test indexes by hand
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    queries = [random_query(rng, start) for _ in range(60)]
    queries += [EventQuery(limit=7), EventQuery(card=3, limit=2), EventQuery(tenant_id="t-a")]
    queries += [EventQuery(types=("tenant.changed",), room="0301", limit=1)]
    journaled: list[dict[str, Any]] = []

    def append(count: int) -> None:
        batch = [random_event(rng, start) for _ in range(count)]
        entries = store.transaction(lambda tx: [tx.append_event(e) for e in batch])
        journaled.extend(fields(e) for e in entries)
        for n in range(2):  # tenant.changed: sealed, its columns from the tenant record
            store.add_tenant(tenant(len(journaled) + n, room="0301"))
        journaled.extend(fields(e) for e in store.pending_events(after_seq=journaled[-1]["seq"]))

    def check(indexed: int) -> None:
        assert int(store.reader().execute(f"SELECT {journal.INDEXED}").fetchone()[0]) == indexed
        for q in queries:
            assert every_page(store, q) == expected(journaled, q), q

    append(700)
    check(indexed=0)  # nothing indexed: all from the events above indexed_seq
    last = journaled[-1]["seq"]
    check(indexed=index_all(store))
    assert 0 < last - (last // 64 * 64 - 1) < 64  # the newest block is incomplete: not indexed
    append(150)  # two more blocks complete, not indexed yet
    check(indexed=last // 64 * 64 - 1)
    check(indexed=index_all(store))
    # Retention takes the events and their index entries.
    store.acknowledge(400)
    deleted = store.delete_events_before(start + timedelta(minutes=300))
    gone = {
        e["seq"]
        for e in journaled
        if e["seq"] <= 400 and e["ts_ms"] < epoch_ms(start) + 300 * 60_000
    }
    assert deleted == len(gone) > 0
    journaled = [e for e in journaled if e["seq"] not in gone]
    check(indexed=index_all(store))
    reader = store.reader()
    for table in ("event_keys", "event_times"):
        left = {row[0] for row in reader.execute(f"SELECT seq FROM {table}")}
        assert not left & gone
    assert {row[0] for row in reader.execute("SELECT DISTINCT seq FROM event_times")} == {
        e["seq"] for e in journaled if e["seq"] <= index_all(store)
    }


def test_a_chosen_event_id_is_refused_once_journaled_indexed_or_not(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "INDEX_BLOCK", 4)
    monkeypatch.setattr(journal, "index_due", lambda conn: False)  # the test indexes by hand
    chosen = [str(uuid.UUID(int=n, version=4)) for n in range(9)]
    for event_id in chosen:
        store.append_event({"type": "door.forced", "door": "main", "event_id": event_id})
    generated = store.append_event({"type": "door.forced", "door": "main"}).event_id

    def refused() -> None:
        for event_id in (*chosen, generated):
            with pytest.raises(Conflict, match="already in the journal"):
                store.append_event({"type": "door.forced", "door": "main", "event_id": event_id})

    refused()  # none indexed
    assert index_all(store) == 7  # blocks 1-3 and 4-7 indexed, seqs 8-10 not
    refused()
    with pytest.raises(Conflict):  # twice in one transaction
        store.transaction(lambda tx: [tx.append_event({"type": "door.forced", "door": "main",
                                                        "event_id": chosen[0][:-1] + "f"})
                                      for _ in range(2)])  # fmt: skip
    assert store.append_event({"type": "door.forced", "door": "main"}).seq == 11


def test_seq_is_never_reused_after_retention_took_every_event(data_dir: Path) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    online = {"type": "reader.online", "door": "main", "ts": day.isoformat()}
    with Store.open(data_dir, GATEWAY_ID) as store:
        for _ in range(5):
            store.append_event(online)
        store.acknowledge(5)
        assert store.delete_events_before(day + timedelta(days=1)) == 5
        assert store.append_event(online).seq == 6
        store.acknowledge(6)
        assert store.delete_events_before(day + timedelta(days=1)) == 1
        assert store.reader().execute("SELECT count(*) FROM events").fetchone()[0] == 0
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.append_event(online).seq == 7
        assert store.acknowledge(100) == 7  # not past the last seq


def m0001_database(data_dir: Path, clock: FakeClock) -> list[tuple[Any, ...]]:
    """A database as the first schema wrote it (4 KiB pages); returns its event rows."""
    data_dir.mkdir(mode=0o700)
    ctx = Context(GATEWAY_ID, Keys(load_or_create_key(data_dir / "secret.key")), clock)
    conn = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    schema.migrations.apply(Database(conn), stop_before="m0002_journal_indexed_in_blocks")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO meta (key, value) VALUES ('gateway_id', ?)", (GATEWAY_ID,))
    rng = random.Random(3)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    events = [random_event(rng, start) for _ in range(1490)]
    person = {"id": "t-a", "room": "0101", "id_number": "110101199003074477"}
    events[99] = {"type": "tenant.changed", "change": "added", "tenant": person}
    rows = [journal.prepare_event(ctx, e).row(ctx, seq) for seq, e in enumerate(events, 1)]
    conn.executemany(journal.INSERT_EVENT, rows)
    for seq in range(1491, 1501):  # journaled and deleted since: their seqs are used up
        conn.execute(journal.INSERT_EVENT, journal.prepare_event(ctx, events[0]).row(ctx, seq))
    conn.execute("DELETE FROM events WHERE seq > 1490")
    conn.execute(
        "INSERT INTO alarms (kind, raised_at, door, event_seq) VALUES ('door_forced', 'x',"
        " 'main', 7), ('lost_card', 'y', 'main', 1300), ('tamper', 'z', NULL, NULL)"
    )
    conn.execute("UPDATE meta SET value = 1200 WHERE key = 'acked_seq'")
    conn.execute("COMMIT")
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() == (
        1500,
    )
    conn.close()
    return rows


def test_a_first_schema_database_migrates_with_its_events_seqs_and_ack(
    data_dir: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = m0001_database(data_dir, clock)
    alarms_before = sqlite3.connect(data_dir / "gateway.db").execute(
        "SELECT * FROM alarms ORDER BY id").fetchall()  # fmt: skip
    monkeypatch.setattr(journal, "index_due", lambda conn: False)  # first: nothing indexed
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        reader = store.reader()
        assert store.schema_version() == len(MIGRATION_NAMES)
        assert reader.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATION_NAMES)
        assert reader.execute("PRAGMA page_size").fetchone()[0] == 4096  # kept
        assert reader.execute("SELECT * FROM events ORDER BY seq").fetchall() == rows
        assert reader.execute("SELECT * FROM alarms ORDER BY id").fetchall() == alarms_before
        assert reader.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.acked_seq() == 1200
        assert [e.seq for e in store.pending_events(limit=1000)] == list(range(1201, 1491))
        journaled = [fields(journal.decode_row(store.ctx.keys, row[:2] + row[-2:])) for row in rows]
        queries = [
            EventQuery(card=5),
            EventQuery(tenant_id="t-a", limit=9),
            EventQuery(room="0101"),
            EventQuery(door="north", limit=50),
            EventQuery(types=("tenant.changed",)),
        ]
        for indexed in (0, 1023):  # nothing indexed yet, then the first block
            if indexed:
                assert index_all(store) == indexed
            for q in queries:
                assert every_page(store, q) == expected(journaled, q), q
            with pytest.raises(Conflict):  # event_ids of migrated events are known
                store.append_event({**access(1), "event_id": rows[1400][1]})
            with pytest.raises(Conflict):
                store.append_event({**access(1), "event_id": rows[5][1]})
        assert store.append_event(access(1)).seq == 1501  # above the deleted 1491-1500
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.schema_version() == len(MIGRATION_NAMES)
        assert store.append_event(access(1)).seq == 1502
        assert store.acked_seq() == 1200
