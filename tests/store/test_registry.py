"""The door path's questions: card lookup, PIN, visitor codes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.store import Store, ValidationError

from .factories import FakeClock, tenant


def test_card_lookup_returns_card_and_holder(store: Store) -> None:
    created = store.add_tenant(tenant(1, room="0301", cards=(16_777_215, 2**32 - 1)))
    grant = store.card_lookup(16_777_215)
    assert grant is not None
    assert (grant.card_number, grant.card_status, grant.tenant_id) == (
        16_777_215,
        "active",
        created.id,
    )
    assert (grant.tenant_status, grant.room) == ("active", "0301")
    assert (grant.valid_from, grant.valid_until) == (date(2026, 1, 1), date(2026, 12, 31))
    assert not grant.has_pin
    assert store.card_lookup(2**32 - 1) is not None


def test_card_lookup_reflects_status_changes_at_once(store: Store) -> None:
    created = store.add_tenant(tenant(1, cards=(5,)))
    assert store.card_lookup(6) is None
    assert store.card_lookup(-1) is None
    assert store.card_lookup(2**64) is None
    store.set_card_status(5, "lost")
    grant = store.card_lookup(5)
    assert grant is not None
    assert grant.card_status == "lost"
    store.set_tenant_status(created.id, "suspended")
    grant = store.card_lookup(5)
    assert grant is not None
    assert grant.tenant_status == "suspended"


def test_pin_is_verified_against_a_keyed_hash(store: Store) -> None:
    created = store.add_tenant(tenant(1, cards=(5, 6)))
    store.add_card(created.id, 7, pin="2468")
    store.set_card_pin(5, "1357")
    assert store.verify_pin(5, "1357")
    assert not store.verify_pin(5, "1358")
    assert store.verify_pin(7, "2468")
    assert not store.verify_pin(6, "1357")  # no PIN set
    assert not store.verify_pin(99, "1357")  # no such card
    grant = store.card_lookup(5)
    assert grant is not None
    assert grant.has_pin
    assert "pin_hash" not in repr(grant)
    # Same PIN on two cards: different hashes.
    store.set_card_pin(6, "1357")
    hashes = store.reader().execute("SELECT pin_hash FROM cards WHERE number IN (5, 6)").fetchall()
    assert hashes[0] != hashes[1]
    store.set_card_pin(5, None)
    assert not store.verify_pin(5, "1357")
    with pytest.raises(ValidationError, match="pin"):
        store.set_card_pin(5, "12")


def test_visitor_code_use_limit_expiry_and_door(store: Store, clock: FakeClock) -> None:
    issued = store.create_visitor_code(
        door="main", valid_until=clock.now + timedelta(hours=2), max_uses=2, created_by="wang"
    )
    code = issued.code
    assert len(code) == 8
    assert code.isdigit()
    assert code not in repr(issued)
    now = clock.now
    assert store.use_visitor_code(code, "garage", now).reason == "wrong_door"
    first = store.use_visitor_code(code, "main", now)
    assert (first.ok, first.uses_left) == (True, 1)
    assert store.use_visitor_code(code, "main", now).ok
    assert store.use_visitor_code(code, "main", now).reason == "used_up"
    assert (
        store.use_visitor_code("00000000" if code != "00000000" else "1", "main", now).reason
        == "unknown"
    )

    any_door = store.create_visitor_code(
        door=None, valid_until=clock.now + timedelta(hours=1), max_uses=5, created_by="wang"
    ).code
    assert store.use_visitor_code(any_door, "garage", now).ok
    late = now + timedelta(hours=1)
    assert store.use_visitor_code(any_door, "garage", late).reason == "expired"
    assert [c.uses for c in store.list_visitor_codes()] == [1, 2]
    assert store.list_visitor_codes(live_at=now) == [store.list_visitor_codes()[0]]
    # Only the keyed hash is stored.
    hashes = store.reader().execute("SELECT code_hash FROM visitor_codes").fetchall()
    assert all(code.encode() not in h for (h,) in hashes)


def test_visitor_code_reports_the_room_and_defaults_to_the_clock(
    store: Store, clock: FakeClock
) -> None:
    code = store.create_visitor_code(
        door=None, room="0301", valid_until=clock.now + timedelta(minutes=5), max_uses=1,
        created_by="wang", note="plumber",
    ).code  # fmt: skip
    clock.advance(minutes=6)
    result = store.use_visitor_code(code, "main")
    assert (result.ok, result.reason, result.room) == (False, "expired", "0301")
    assert store.list_visitor_codes()[0].room == "0301"


def test_visitor_code_input_is_checked(store: Store, clock: FakeClock) -> None:
    with pytest.raises(ValidationError, match="valid_until"):
        store.create_visitor_code(door="main", valid_until=clock.now, max_uses=1, created_by="w")
    with pytest.raises(ValidationError, match="max_uses"):
        store.create_visitor_code(
            door="main", valid_until=clock.now + timedelta(hours=1), max_uses=0, created_by="w"
        )
