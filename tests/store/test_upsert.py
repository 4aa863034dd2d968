"""Bulk upserts: planned outside the write lock, applied in a short transaction, all or none."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.store import (
    Conflict,
    Store,
    TenantCreate,
    TenantUpdate,
    UpsertRejected,
    ValidationError,
)
from gateway.store.upsert import PLAN_ATTEMPTS

from .conftest import GATEWAY_ID
from .factories import FakeClock, id_number, tenant

Registry = dict[str, tuple[Any, ...]]


@pytest.fixture
def other(data_dir: Path, store: Store, clock: FakeClock) -> Iterator[Store]:
    """A second store on the same database: another writer, like `gateway run` beside the CLI."""
    second = Store.open(data_dir, GATEWAY_ID, clock=clock)
    yield second
    second.close()


def registry(store: Store) -> Registry:
    """Every tenant by plaintext ID number (tenant ids differ between stores)."""
    return {
        store.reveal_id_number(t.id): (
            t.name, store.reveal_phone(t.id), t.room, t.valid_from, t.valid_until, t.status,
            t.source, tuple((c.number, c.status, c.has_pin) for c in t.cards),
        )
        for t in store.search_tenants(limit=1000)
    }  # fmt: skip


def announced(store: Store, after_seq: int) -> list[tuple[str, dict[str, Any]]]:
    """The tenant.changed events after `after_seq`: change and record without the tenant id."""
    found = []
    for entry in store.pending_events(after_seq=after_seq, limit=1000):
        assert entry.body["type"] == "tenant.changed"
        record = {k: v for k, v in entry.body["tenant"].items() if k != "id"}
        found.append((entry.body["change"], record))
    return found


def last_seq(store: Store) -> int:
    events = store.pending_events(limit=10_000)
    return events[-1].seq if events else 0


def registered(store: Store) -> dict[str, str]:
    """A registry with a moved-out, a suspended, a lost-card and a plain tenant; their ids."""
    moved = store.add_tenant(tenant(1, room="0101", cards=(11, 12)))
    store.move_out(moved.id)  # cards 11 and 12 revoked
    lost = store.add_tenant(tenant(2, room="0102", cards=(21,)))
    store.set_card_status(21, "lost")
    suspended = store.add_tenant(tenant(3, room="0103", cards=(31,)))
    store.set_tenant_status(suspended.id, "suspended")
    plain = store.add_tenant(tenant(4, room="0104", cards=(41,)))
    return {"moved": moved.id, "lost": lost.id, "suspended": suspended.id, "plain": plain.id}


def batch(newcomer_first: bool) -> list[TenantCreate]:
    records = [
        tenant(10, room="0201", cards=(100, 101)),  # new
        tenant(1, room="0101", cards=(11,)),  # moved out, back: active, card 11 re-issued
        replace(tenant(2, room="0102"), phone="13700000002"),  # phone changed, lost card kept
        tenant(3, room="0103", cards=(32,)),  # suspended stays suspended, gains a card
        tenant(4, room="0104", cards=(41,)),  # exactly as registered: nothing to do
    ]
    newcomer = tenant(11, room="0202", cards=(12,))  # takes card 12, revoked from tenant 1
    return [newcomer, *records] if newcomer_first else [*records, newcomer]


@pytest.mark.parametrize("newcomer_first", [False, True])
def test_bulk_upsert_equals_upserting_one_record_after_the_other(
    tmp_path: Path, clock: FakeClock, newcomer_first: bool
) -> None:
    records = batch(newcomer_first)
    with (
        Store.open(tmp_path / "bulk", GATEWAY_ID, clock=clock) as bulk,
        Store.open(tmp_path / "one", GATEWAY_ID, clock=clock) as one,
    ):
        registered(bulk)
        registered(one)
        before = last_seq(bulk)
        result = bulk.upsert_tenants(records)
        singles = one.transaction(lambda tx: [tx.upsert_tenant(r) for r in records])
        assert registry(bulk) == registry(one)
        events = announced(bulk, before)
        assert events == announced(one, before)
    assert (result.added, result.updated, result.unchanged) == (2, 4, 1)
    assert result.cards_added == sum(s.cards_added for s in singles) == 5
    assert result.journaled == len(events) == 5  # the unchanged tenant is not announced
    assert (result.attempts, result.lock_seconds > 0) == (1, True)
    # Tenant 1's event lists card 12 (revoked) only while the newcomer has not taken it.
    (back,) = [record for _, record in events if record["id_number"] == id_number(1)]
    expected = [(11, "active")] if newcomer_first else [(11, "active"), (12, "revoked")]
    assert [(c["number"], c["status"]) for c in back["cards"]] == expected


def test_the_events_carry_the_records_as_committed(store: Store) -> None:
    ids = registered(store)
    before = last_seq(store)
    store.upsert_tenants(batch(newcomer_first=False))
    events = {e.body["tenant"]["id_number"]: e.body for e in store.pending_events(after_seq=before)}
    back = events[id_number(1)]["tenant"]
    assert (events[id_number(1)]["change"], back["id"], back["status"]) == (
        "updated",
        ids["moved"],
        "active",
    )
    assert back["cards"] == [
        {"number": 11, "status": "active"},
        {"number": 12, "status": "revoked"},
    ]
    assert events[id_number(2)]["tenant"]["phone"] == "13700000002"
    assert events[id_number(2)]["tenant"]["cards"] == [{"number": 21, "status": "lost"}]
    assert events[id_number(3)]["tenant"]["status"] == "suspended"
    assert id_number(4) not in events
    newcomer = events[id_number(11)]
    assert newcomer["change"] == "added"
    assert newcomer["tenant"]["cards"] == [{"number": 12, "status": "active"}]
    # Seqs follow on from the registry's events, and every body carries its own.
    entries = store.pending_events(after_seq=before)
    assert [e.seq for e in entries] == list(range(before + 1, before + 6))
    assert all(e.body["seq"] == e.seq for e in entries)


def test_every_problem_is_reported_and_nothing_is_written(store: Store) -> None:
    registered(store)
    before, tenants_before = last_seq(store), registry(store)
    records = [
        tenant(20, cards=(41,)),  # held by tenant 4
        tenant(21, cards=(21, 22)),  # 21 is tenant 2's lost card
        replace(tenant(22), phone="12345"),
        tenant(23, cards=(230,)),
        tenant(23, cards=(231, 230)),  # the same person again, and card 230 again
    ]
    with pytest.raises(UpsertRejected) as caught:
        store.upsert_tenants(records)
    problems = [
        (p.index, type(p.error), p.error.field, str(p.error)) for p in caught.value.problems
    ]
    assert problems == [
        (0, Conflict, "card", "card 41 belongs to another tenant (room 0104, card active)"),
        (1, Conflict, "card", "card 21 belongs to another tenant (room 0102, card lost)"),
        (
            2,
            ValidationError,
            "phone",
            "phone: must be an 11-digit mainland mobile number starting with 1",
        ),
        (4, ValidationError, "id_number", "id_number: the same person is listed twice"),
        (4, ValidationError, "card", "card: card 230 is listed twice"),
    ]
    assert registry(store) == tenants_before
    assert last_seq(store) == before


def test_check_only_reports_without_writing(store: Store) -> None:
    registered(store)
    before, tenants_before = last_seq(store), registry(store)
    result = store.upsert_tenants(batch(newcomer_first=False), check_only=True)
    assert (result.added, result.updated, result.journaled, result.lock_seconds) == (2, 4, 5, 0.0)
    assert registry(store) == tenants_before
    assert last_seq(store) == before


def test_nothing_to_change_takes_no_write_lock(store: Store) -> None:
    records = [tenant(n, cards=(n,)) for n in range(1, 30)]
    assert store.upsert_tenants(records).journaled == 29
    before = last_seq(store)
    again = store.upsert_tenants(records)
    assert (again.added, again.updated, again.unchanged) == (0, 29, 29)
    assert (again.journaled, again.lock_seconds) == (0, 0.0)
    assert last_seq(store) == before


class Hook:
    """A progress hook doing `action` (another writer's change) as `stage` starts, or ends."""

    def __init__(
        self, stage: str, action: Callable[[], object], *, times: int = 1, at_end: bool = False
    ) -> None:
        self.stage, self.action, self.left, self.at_end = stage, action, times, at_end
        self.current = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        starting, self.current = stage != self.current, stage
        if stage != self.stage or not self.left:
            return
        if (done == total) if self.at_end else starting:
            self.left -= 1
            self.action()


def when(stage: str, action: Callable[[], object], *, times: int = 1, at_end: bool = False) -> Hook:
    return Hook(stage, action, times=times, at_end=at_end)


def test_a_tenant_changed_meanwhile_is_planned_again(store: Store, other: Store) -> None:
    ids = registered(store)
    records = [replace(tenant(4, room="0104"), name="王五"), tenant(50, cards=(500,))]
    before = last_seq(store)
    # Another writer gives tenant 4 a card after the plan read the registry.
    result = store.upsert_tenants(
        records, progress=when("sealing", lambda: other.add_card(ids["plain"], 42))
    )
    assert result.attempts == 2
    events = [e.body for e in store.pending_events(after_seq=before)]
    assert [e["tenant"]["name"] for e in events] == [tenant(4).name, "王五", tenant(50).name]
    assert events[0]["tenant"]["cards"] == events[1]["tenant"]["cards"]  # other's, then ours
    assert events[1]["tenant"]["name"] == "王五"
    assert events[1]["tenant"]["cards"] == [
        {"number": 41, "status": "active"},
        {"number": 42, "status": "active"},
    ]


def test_a_move_out_meanwhile_is_undone_as_if_it_came_first(store: Store, other: Store) -> None:
    ids = registered(store)
    records = [replace(tenant(4, room="0104"), phone="13700000004")]
    result = store.upsert_tenants(
        records, progress=when("sealing", lambda: other.move_out(ids["plain"]))
    )
    assert result.attempts == 2
    back = store.get_tenant(ids["plain"])
    assert (back.status, back.phone_masked) == ("active", "137****0004")
    assert [(c.number, c.status) for c in back.cards] == [(41, "revoked")]


def test_the_same_person_registered_meanwhile_is_updated_not_duplicated(
    store: Store, other: Store
) -> None:
    records = [tenant(60, room="0601", cards=(600,)), tenant(61)]
    result = store.upsert_tenants(
        records, progress=when("sealing", lambda: other.add_tenant(tenant(60, room="0999")))
    )
    assert (result.attempts, result.added, result.updated) == (2, 1, 1)
    found = store.find_tenant(id_number(60))
    assert found is not None
    assert (found.room, [c.number for c in found.cards]) == ("0601", [600])
    assert len(store.search_tenants()) == 2


def test_a_card_taken_meanwhile_is_a_conflict(store: Store, other: Store) -> None:
    records = [tenant(70, cards=(700,)), tenant(71, cards=(701,))]
    take = when("sealing", lambda: other.add_tenant(tenant(72, room="0702", cards=(701,))))
    with pytest.raises(UpsertRejected) as caught:
        store.upsert_tenants(records, progress=take)
    assert [str(p.error) for p in caught.value.problems] == [
        "card 701 belongs to another tenant (room 0702, card active)"
    ]
    assert [t.name for t in store.search_tenants()] == [tenant(72).name]


def test_a_registry_that_keeps_changing_is_planned_under_the_lock(
    store: Store, other: Store
) -> None:
    ids = registered(store)
    cards = iter(range(900, 1000))
    busy = when("sealing", lambda: other.add_card(ids["plain"], next(cards)), times=PLAN_ATTEMPTS)
    records = [replace(tenant(4, room="0104"), name="赵六"), tenant(80, cards=(800,))]
    result = store.upsert_tenants(records, progress=busy)
    assert result.attempts == PLAN_ATTEMPTS + 1
    assert (result.added, result.updated) == (1, 1)
    last = store.pending_events(limit=1000)[-2].body["tenant"]
    assert last["name"] == "赵六"
    assert [c["number"] for c in last["cards"]] == [41, 900, 901, 902]


@pytest.mark.parametrize("moment", ["matching", "sealing"])
def test_door_events_meanwhile_take_their_seqs_and_the_import_the_next(
    store: Store, other: Store, moment: str
) -> None:
    door = {"type": "reader.online", "door": "main"}
    # After "matching": before the events are encoded, which then start after the door's.
    # After "sealing": they are staged already, so the transaction encodes them again.
    hook = when(moment, lambda: [other.append_event(door) for _ in range(3)], at_end=True)
    result = store.upsert_tenants([tenant(n, cards=(n,)) for n in range(1, 11)], progress=hook)
    assert result.attempts == 1
    entries = store.pending_events(limit=100)
    assert [e.seq for e in entries] == list(range(1, 14))
    assert [e.body["type"] for e in entries] == ["reader.online"] * 3 + ["tenant.changed"] * 10
    assert all(e.body["seq"] == e.seq for e in entries)


def test_staging_does_not_hold_the_write_lock(store: Store, data_dir: Path) -> None:
    staged, release = threading.Event(), threading.Event()

    def stage(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TEMP TABLE t (x)")
        conn.execute("INSERT INTO temp.t VALUES (1)")
        staged.set()
        release.wait(10)

    worker = threading.Thread(target=lambda: store._submit(stage, lock=False))
    worker.start()
    try:
        assert staged.wait(10)
        outsider = sqlite3.connect(data_dir / "gateway.db", timeout=0, isolation_level=None)
        outsider.execute("BEGIN IMMEDIATE")  # would raise "database is locked"
        outsider.execute("UPDATE meta SET value = 1 WHERE key = 'lockdown'")
        outsider.execute("COMMIT")
        outsider.close()
    finally:
        release.set()
        worker.join()
    assert store.lockdown()


def test_a_single_upsert_still_raises_its_own_error(store: Store) -> None:
    created = store.add_tenant(tenant(1, cards=(5,)))
    with pytest.raises(Conflict, match="card 5 belongs to another tenant"):
        store.transaction(lambda tx: tx.upsert_tenant(tenant(2, cards=(5,))))
    with pytest.raises(ValidationError):
        store.transaction(lambda tx: tx.upsert_tenant(replace(tenant(2), phone="1")))
    result = store.transaction(lambda tx: tx.upsert_tenant(tenant(1, cards=(5, 6))))
    assert (result.tenant_id, result.created, result.cards_added) == (created.id, False, 1)
    store.update_tenant(created.id, TenantUpdate(room="0909"))
    assert store.get_tenant(created.id).room == "0909"
