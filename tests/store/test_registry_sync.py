"""The city downlink's store side: command counter, registry version, registry.apply."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.store import (
    RegistryInvalid,
    Store,
    ValidationError,
    VersionGap,
    VersionNotNewer,
)
from gateway.store import sync as sync_module

from .conftest import GATEWAY_ID
from .factories import FakeClock, id_number, phone, tenant
from .test_plaintext import checkpoint, files_containing


def tid(n: int) -> str:
    """The city's id of tenant n."""
    return str(uuid.UUID(int=n))


def city(n: int, *cards: int | tuple[int, str], **fields: Any) -> dict[str, Any]:
    """Tenant n as the city sends it (SPEC 4); cards are numbers or (number, status)."""
    record: dict[str, Any] = {
        "id": tid(n),
        "name": f"居民{n}",
        "id_number": id_number(n),
        "phone": phone(n),
        "room": f"{n % 30 + 1:02d}01",
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
        "status": "active",
        "cards": [
            {"number": c, "status": "active"}
            if isinstance(c, int)
            else {"number": c[0], "status": c[1]}
            for c in cards
        ],
    }
    record.update(fields)
    return record


def snapshot(store: Store) -> dict[str, tuple[Any, ...]]:
    """Every tenant by id: fields, source and cards."""
    return {
        t.id: (t.name, t.room, t.valid_from, t.valid_until, t.status, t.source,
               tuple((c.number, c.status) for c in t.cards))
        for t in store.search_tenants(limit=10_000)
    }  # fmt: skip


def holder(store: Store, number: int) -> str | None:
    grant = store.card_lookup(number)
    return None if grant is None else grant.tenant_id


def ack_everything(store: Store) -> None:
    pending = store.pending_events(limit=10_000)
    if pending:
        store.acknowledge(pending[-1].seq)


def pending_count(store: Store) -> int:
    return len(store.pending_events(limit=10_000))


# Command counter


def test_counter_only_rises_and_survives_a_reopen(data_dir: Path, clock: FakeClock) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.command_counter() == 0
        assert store.claim_command_counter(5)
        assert not store.claim_command_counter(5)  # replayed
        assert not store.claim_command_counter(4)  # older
        assert store.claim_command_counter(9)
        assert store.command_counter() == 9
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.command_counter() == 9
        assert not store.claim_command_counter(9)
        assert store.claim_command_counter(10)
        assert store.command_counter() == 10


def test_a_refused_counter_writes_nothing(store: Store, data_dir: Path) -> None:
    assert store.claim_command_counter(3)
    wal = data_dir / "gateway.db-wal"
    size = wal.stat().st_size
    assert not store.claim_command_counter(2)
    assert not store.claim_command_counter(3)
    assert wal.stat().st_size == size
    assert store.command_counter() == 3


@pytest.mark.parametrize("counter", [True, "7", 7.0, -1, 2**63, None])
def test_a_malformed_counter_is_refused(store: Store, counter: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        store.claim_command_counter(counter)
    assert raised.value.field == "counter"
    assert store.command_counter() == 0


# Versions


def test_registry_version_is_none_until_applied_and_survives_a_reopen(
    data_dir: Path, clock: FakeClock
) -> None:
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.registry_version() is None
        result = store.apply_registry(7, None, [city(1, 100)])
        assert (result.version, result.previous_version, result.full) == (7, None, True)
        assert store.registry_version() == 7
    with Store.open(data_dir, GATEWAY_ID, clock=clock) as store:
        assert store.registry_version() == 7
        assert holder(store, 100) == tid(1)


def test_a_delta_needs_the_registry_it_was_made_for(store: Store) -> None:
    with pytest.raises(VersionGap) as raised:
        store.apply_registry(2, 1, [city(1, 100)])  # nothing applied yet
    assert (raised.value.error, raised.value.current) == ("version_gap", None)
    store.apply_registry(3, None, [city(1, 100)])
    before = snapshot(store)
    with pytest.raises(VersionGap) as raised:
        store.apply_registry(5, 4, [city(2, 200)], [tid(1)])
    assert (raised.value.error, raised.value.current, raised.value.base_version) == (
        "version_gap", 3, 4,
    )  # fmt: skip
    assert "send the full set" in str(raised.value)
    assert snapshot(store) == before
    assert store.registry_version() == 3
    assert holder(store, 200) is None


def test_a_version_not_above_the_current_one_is_refused(store: Store) -> None:
    store.apply_registry(3, None, [city(1, 100)])
    before = snapshot(store)
    with pytest.raises(VersionNotNewer) as raised:
        store.apply_registry(3, None, [city(1, 100)])  # the same command delivered twice
    assert (raised.value.error, raised.value.current) == ("already_applied", 3)
    with pytest.raises(VersionNotNewer) as raised:
        store.apply_registry(2, None, [city(2, 200)])
    assert raised.value.error == "stale_version"
    with pytest.raises(VersionNotNewer) as raised:
        store.apply_registry(3, 3, [city(2, 200)])
    assert raised.value.error == "already_applied"
    assert snapshot(store) == before
    assert store.registry_version() == 3


@pytest.mark.parametrize(
    ("version", "base", "field"),
    [
        (True, None, "version"),
        ("2", None, "version"),
        (-1, None, "version"),
        (2, "1", "base_version"),
    ],
)
def test_malformed_versions_are_refused(store: Store, version: Any, base: Any, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        store.apply_registry(version, base, [])
    assert raised.value.field == field


# Full sets and deltas


def test_a_full_set_replaces_the_registry(store: Store) -> None:
    first = store.apply_registry(1, None, [city(1, 100), city(2, 200, 201), city(3, 300)])
    assert (first.added, first.updated, first.removed, first.cards_written) == (3, 0, 0, 4)
    assert holder(store, 201) == tid(2)
    second = store.apply_registry(
        2, None,
        [city(1, 100), city(2, 201, name="新名字", status="suspended"), city(4, 300, 400)],
    )  # fmt: skip
    assert (second.added, second.updated, second.unchanged, second.removed) == (1, 1, 1, 1)
    assert (second.cards_written, second.cards_removed) == (2, 1)  # 300 moved, 400 new; 200
    tenants = snapshot(store)
    assert set(tenants) == {tid(1), tid(2), tid(4)}
    assert tenants[tid(2)][0] == "新名字"
    assert tenants[tid(2)][4] == "suspended"
    assert tenants[tid(2)][6] == ((201, "active"),)
    assert {t[5] for t in tenants.values()} == {"city"}
    assert holder(store, 200) is None  # dropped from tenant 2
    assert holder(store, 300) == tid(4)  # tenant 3 left, its card went to tenant 4
    grant = store.card_lookup(201)
    assert grant is not None
    assert grant.tenant_status == "suspended"


def test_a_delta_changes_only_what_it_lists(store: Store) -> None:
    store.apply_registry(1, None, [city(1, 100), city(2, 200), city(3, 300), city(4, 400)])
    result = store.apply_registry(
        2, 1,
        # The card 100 moves from tenant 1 to tenant 2 in one delta; tenant 1 stays with 101.
        [city(1, 101), city(2, 100, (200, "lost")), city(5, 500, room="9901")],
        [tid(3), tid(99)],  # 99 was never here: nothing to do
    )  # fmt: skip
    assert (result.added, result.updated, result.removed, result.unchanged) == (1, 2, 1, 0)
    assert (holder(store, 100), holder(store, 101), holder(store, 500)) == (tid(2), tid(1), tid(5))
    assert holder(store, 300) is None
    assert holder(store, 400) == tid(4)  # not listed: untouched
    lost = store.card_lookup(200)
    assert lost is not None
    assert lost.card_status == "lost"
    assert store.search_tenants(room="9901")[0].id == tid(5)  # its room was created
    assert store.registry_version() == 2


def test_two_tenants_may_swap_id_numbers(store: Store) -> None:
    """A data-entry mix-up corrected by the city: the UNIQUE ID hash must not trip half-way."""
    store.apply_registry(1, None, [city(1, 100), city(2, 200)])
    store.apply_registry(
        2, 1, [city(1, 100, id_number=id_number(2)), city(2, 200, id_number=id_number(1))]
    )
    assert store.reveal_id_number(tid(1)) == id_number(2)
    assert store.reveal_id_number(tid(2)) == id_number(1)
    found = store.find_tenant(id_number(1))
    assert found is not None
    assert found.id == tid(2)


def test_a_card_keeps_its_pin_with_its_holder_and_loses_it_with_a_new_one(store: Store) -> None:
    store.apply_registry(1, None, [city(1, 100, 101), city(2, 200)])
    store.set_card_pin(100, "2468")
    store.set_card_pin(101, "1357")
    store.apply_registry(2, None, [city(1, (100, "lost"), phone="13800000000"), city(2, 200, 101)])
    assert store.verify_pin(100, "2468")  # same holder: a new status, the same PIN
    assert not store.verify_pin(101, "1357")  # a new holder does not get the old PIN
    assert holder(store, 101) == tid(2)


def test_applying_writes_no_tenant_changed_events(store: Store) -> None:
    store.apply_registry(1, None, [city(n, 100 + n) for n in range(1, 6)])
    store.apply_registry(2, 1, [city(1, 101, name="改名")], [tid(2)])
    store.apply_registry(3, None, [city(3, 103)])
    assert pending_count(store) == 0
    # A local change to a city tenant is news for the city, and is announced.
    store.set_card_status(103, "lost")
    [entry] = store.pending_events()
    assert (entry.body["type"], entry.body["tenant"]["id"]) == ("tenant.changed", tid(3))


def test_an_unchanged_full_set_writes_only_the_version(store: Store) -> None:
    records = [city(n, 100 + n) for n in range(1, 20)]
    store.apply_registry(1, None, records)
    before = {t.id: t.updated for t in store.search_tenants(limit=100)}
    result = store.apply_registry(2, None, records)
    assert (result.added, result.updated, result.unchanged, result.removed) == (0, 0, 19, 0)
    assert (result.cards_written, result.cards_removed) == (0, 0)
    assert {t.id: t.updated for t in store.search_tenants(limit=100)} == before
    assert store.registry_version() == 2


# Local tenants the city has not heard about yet


def test_unacknowledged_local_tenants_survive_a_full_set(store: Store) -> None:
    acked = store.add_tenant(tenant(50, cards=(5000,)))
    ack_everything(store)
    fresh = store.add_tenant(tenant(51, cards=(5100,)))  # registered minutes ago
    result = store.apply_registry(1, None, [city(1, 100)])
    assert result.kept_local == (fresh.id,)
    assert result.removed == 1
    tenants = snapshot(store)
    assert set(tenants) == {tid(1), fresh.id}
    assert tenants[fresh.id][5] == "local"
    assert holder(store, 5100) == fresh.id  # the new resident still gets in
    assert holder(store, 5000) is None
    assert acked.id not in tenants
    # Once the city has the registration, its next full set decides.
    ack_everything(store)
    store.apply_registry(2, None, [city(1, 100)])
    assert set(snapshot(store)) == {tid(1)}


def test_a_tenant_changed_here_since_is_kept_as_it_is(store: Store) -> None:
    """A lost card reported here must not become active again from an older city record."""
    store.apply_registry(1, None, [city(1, 100), city(2, 200)])
    store.set_card_status(100, "lost")
    store.add_card(tid(1), 101)
    result = store.apply_registry(2, None, [city(1, 100, name="新"), city(2, 200, name="新")])
    assert result.kept_local == (tid(1),)
    assert result.updated == 1
    tenants = snapshot(store)
    assert tenants[tid(1)][0] == "居民1"
    assert tenants[tid(1)][6] == ((100, "lost"), (101, "active"))
    assert tenants[tid(2)][0] == "新"
    # Nor is it removed by a delta until the city has seen the change.
    result = store.apply_registry(3, 2, [], [tid(1)])
    assert (result.kept_local, result.removed) == ((tid(1),), 0)
    assert holder(store, 101) == tid(1)
    ack_everything(store)
    assert store.apply_registry(4, 3, [], [tid(1)]).removed == 1
    assert holder(store, 101) is None


def test_a_tenant_removed_here_is_not_brought_back_before_the_city_knows(store: Store) -> None:
    store.apply_registry(1, None, [city(1, 100), city(2, 200)])
    store.remove_tenant(tid(1))
    result = store.apply_registry(2, None, [city(1, 100), city(2, 200)])
    assert result.kept_local == (tid(1),)
    assert holder(store, 100) is None


def test_a_card_of_an_unacknowledged_tenant_is_a_conflict(store: Store) -> None:
    fresh = store.add_tenant(tenant(51, room="0707", cards=(5100,)))
    with pytest.raises(RegistryInvalid) as raised:
        store.apply_registry(1, None, [city(1, 5100), city(2, id_number=id_number(51))])
    messages = [(p.index, p.tenant_id, p.error.field, str(p.error)) for p in raised.value.problems]
    assert [m[:3] for m in messages] == [(0, tid(1), "cards"), (1, tid(2), "id_number")]
    assert all(fresh.id in m[3] and "room 0707" in m[3] for m in messages)
    assert all("not yet acknowledged by the city" in m[3] for m in messages)
    assert store.registry_version() is None
    assert holder(store, 5100) == fresh.id


# All or nothing


def test_one_bad_record_applies_nothing_and_every_problem_is_listed(store: Store) -> None:
    store.apply_registry(1, None, [city(1, 100), city(2, 200), city(3, 300)])
    before = snapshot(store)
    bad_digit = id_number(11)[:-1] + ("0" if id_number(11)[-1] != "0" else "1")
    records: list[Any] = [
        city(10, 1000),
        city(11, id_number=bad_digit),
        city(12, status="evicted"),
        city(13, valid_from="2026-12-31", valid_until="2026-01-01"),
        city(14, valid_until="2026/12/31"),
        city(15, 1500),
        city(16, 1500),  # the same card as tenants[5]
        {**city(17), "id": "17"},
        {**city(18), "id": tid(0xAB18).upper()},
        city(19, (1900, "stolen")),
        city(20, 300),  # held by tenant 3, which this delta neither replaces nor removes
        city(21, id_number=id_number(2)),  # tenant 2 is this person
        "not an object",
        city(23, 1001, id=tid(10)),  # the same id as tenants[0]
        {k: v for k, v in city(24).items() if k != "phone"},
    ]
    with pytest.raises(RegistryInvalid) as raised:
        store.apply_registry(2, 1, records, [tid(0xAB03).upper(), tid(1), tid(10)])
    assert raised.value.error == "invalid_registry"
    found: list[tuple[Any, ...]] = [
        (p.section, p.index, p.error.field) for p in raised.value.problems
    ]
    assert found == [
        ("tenants", 1, "id_number"),
        ("tenants", 2, "status"),
        ("tenants", 3, "valid_until"),
        ("tenants", 4, "valid_until"),
        ("tenants", 6, "cards"),
        ("tenants", 7, "id"),
        ("tenants", 8, "id"),
        ("tenants", 9, "cards[0].status"),
        ("tenants", 12, "tenant"),
        ("tenants", 13, "id"),
        ("tenants", 14, "phone"),
        ("removed", 0, "id"),
        ("removed", 2, "id"),  # also listed in tenants
    ]
    ids = {(p.section, p.index): p.tenant_id for p in raised.value.problems}
    assert ids[("tenants", 1)] == tid(11)
    assert ids[("tenants", 7)] is None
    assert "UUID" in str(raised.value)
    assert "tenants[5]" in str(raised.value)  # where card 1500 was listed first
    # Conflicts with the registry are found once the records themselves are right.
    good = [records[0], records[5], records[10], records[11]]
    with pytest.raises(RegistryInvalid) as raised:
        store.apply_registry(2, 1, good, [tid(1)])
    found = [(p.section, p.index, p.tenant_id, p.error.field) for p in raised.value.problems]
    assert found == [("tenants", 2, tid(20), "cards"), ("tenants", 3, tid(21), "id_number")]
    assert "room 0401" in str(raised.value)  # where card 300 is
    assert snapshot(store) == before
    assert store.registry_version() == 1
    # The same records as a full set replace tenants 2 and 3: no conflict left.
    store.apply_registry(2, None, good)
    assert (holder(store, 300), holder(store, 1500)) == (tid(20), tid(15))


# Concurrency


def test_a_change_between_planning_and_writing_is_planned_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_registry(1, None, [city(1, 100), city(2, 200)])
    ack_everything(store)
    plan = sync_module.plan_registry
    calls = 0

    def plan_then_change(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        made = plan(*args, **kwargs)
        if calls == 1:  # someone at the web page, after the plan was made
            store.add_card(tid(2), 201)
        return made

    monkeypatch.setattr(sync_module, "plan_registry", plan_then_change)
    result = store.apply_registry(2, None, [city(1, 100, name="新"), city(2, 200, name="新")])
    assert result.attempts == 2
    # The second plan saw the local change, not yet acknowledged: tenant 2 is kept as it is.
    assert result.kept_local == (tid(2),)
    assert holder(store, 201) == tid(2)
    assert snapshot(store)[tid(1)][0] == "新"


def test_a_change_by_another_process_is_noticed(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's import runs beside the service: a second store on the same database."""
    store.apply_registry(1, None, [city(1, 100)])
    ack_everything(store)
    plan = sync_module.plan_registry
    with Store.open(data_dir, GATEWAY_ID) as other:
        calls = 0

        def plan_then_import(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            made = plan(*args, **kwargs)
            if calls == 1:
                other.upsert_tenants([tenant(60, cards=(600,))])
            return made

        monkeypatch.setattr(sync_module, "plan_registry", plan_then_import)
        result = store.apply_registry(2, None, [city(1, 100)])
    assert result.attempts == 2
    assert len(result.kept_local) == 1  # the imported tenant's event is not acknowledged yet
    assert holder(store, 600) == result.kept_local[0]


def test_a_registry_that_keeps_changing_is_planned_inside_the_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_registry(1, None, [city(1, 100)])
    ack_everything(store)
    plan = sync_module.plan_registry
    calls = 0

    def plan_then_change(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        made = plan(*args, **kwargs)
        if calls <= sync_module.PLAN_ATTEMPTS:  # busy at the web page every time
            store.add_card(tid(1), 100 + calls)
            ack_everything(store)
        return made

    monkeypatch.setattr(sync_module, "plan_registry", plan_then_change)
    result = store.apply_registry(2, None, [city(1, 100, name="新")])
    assert result.attempts == sync_module.PLAN_ATTEMPTS + 1
    tenants = snapshot(store)
    assert tenants[tid(1)][0] == "新"
    assert tenants[tid(1)][6] == ((100, "active"),)  # the city's list, the local ones acked


def test_a_change_that_journals_nothing_is_noticed_too(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes of source="city" announce nothing: the rows themselves are compared."""
    store.apply_registry(1, None, [city(1, 100)])
    plan = sync_module.plan_registry
    with Store.open(data_dir, GATEWAY_ID) as other:
        calls = 0

        def plan_then_write(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            made = plan(*args, **kwargs)
            if calls == 1:
                other.upsert_tenants([replace(tenant(60, cards=(600,)), source="city")])
            return made

        monkeypatch.setattr(sync_module, "plan_registry", plan_then_write)
        result = store.apply_registry(2, None, [city(1, 100)])
    assert pending_count(store) == 0
    assert (result.attempts, result.removed, result.kept_local) == (2, 1, ())
    assert set(snapshot(store)) == {tid(1)}  # exactly the full set, as the city sent it
    assert holder(store, 600) is None


def test_a_version_applied_meanwhile_by_another_process_is_not_overwritten(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_registry(1, None, [city(1, 100)])
    plan = sync_module.plan_registry
    with Store.open(data_dir, GATEWAY_ID) as other:
        calls = 0

        def plan_then_apply(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            made = plan(*args, **kwargs)
            if calls == 1:  # the same tenants, a later version
                other.apply_registry(3, None, [city(1, 100)])
            return made

        monkeypatch.setattr(sync_module, "plan_registry", plan_then_apply)
        with pytest.raises(VersionNotNewer) as raised:
            store.apply_registry(2, None, [city(1, 100)])
    assert (raised.value.error, raised.value.current) == ("stale_version", 3)
    assert store.registry_version() == 3


# Secrets


def test_no_plaintext_id_numbers_or_phones_from_the_city_on_disk(data_dir: Path) -> None:
    records = [city(n, 100 + n) for n in range(1, 41)]
    secrets = [r["id_number"] for r in records] + [r["phone"] for r in records]
    with Store.open(data_dir, GATEWAY_ID) as store:
        store.apply_registry(1, None, records)
        changed = [{**r, "phone": f"137{n:08d}"} for n, r in enumerate(records[:10])]
        secrets += [r["phone"] for r in changed]
        store.apply_registry(2, 1, changed)
        assert store.reveal_phone(tid(1)) == "13700000000"
        assert files_containing(data_dir, secrets) == []
        checkpoint(data_dir)
        assert files_containing(data_dir, secrets) == []
    assert files_containing(data_dir, secrets) == []


def test_records_are_normalised_like_local_ones(store: Store) -> None:
    raw = city(1, 100, name="  王伟 ", phone="+86 138-0013-8000",
               id_number=id_number(1)[:-1] + id_number(1)[-1].lower())  # fmt: skip
    store.apply_registry(1, None, [raw])
    stored = store.get_tenant(tid(1))
    assert stored.name == "王伟"
    assert store.reveal_phone(tid(1)) == "13800138000"
    assert store.reveal_id_number(tid(1)) == id_number(1).upper()
    assert stored.source == "city"


def test_a_local_tenant_the_city_adopts_becomes_a_city_record(store: Store) -> None:
    local = store.add_tenant(replace(tenant(70, room="0101", cards=(700,)), name="本地"))
    ack_everything(store)
    record = city(70, 700, id=local.id, name="本地", room="0101")
    result = store.apply_registry(1, None, [record])
    assert (result.updated, result.removed, result.kept_local) == (1, 0, ())
    assert store.get_tenant(local.id).source == "city"
    assert holder(store, 700) == local.id
