"""Tenants and cards: CRUD, uniqueness rules, masking, and the tenant.changed journal."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.store import Conflict, NotFound, Store, TenantUpdate, ValidationError

from .factories import id_number, tenant


def changes(store: Store) -> list[tuple[str, str]]:
    return [
        (e.body["change"], e.body["tenant"]["id"])
        for e in store.pending_events(limit=1000)
        if e.body["type"] == "tenant.changed"
    ]


def test_add_returns_the_masked_public_form(store: Store) -> None:
    created = store.add_tenant(tenant(1, room="0301", cards=(7, 8)))
    assert created.id_number_masked == id_number(1)[:4] + "*" * 10 + id_number(1)[-4:]
    assert created.phone_masked == "139****0001"
    assert [c.number for c in created.cards] == [7, 8]
    assert created.public_json()["id_number"] == created.id_number_masked
    assert id_number(1) not in repr(created) + repr(tenant(1)) + str(created.public_json())
    assert store.get_tenant(created.id) == created
    assert store.reveal_id_number(created.id) == id_number(1)
    assert store.reveal_phone(created.id) == "13900000001"
    assert changes(store) == [("added", created.id)]


def test_same_id_number_twice_is_a_conflict(store: Store) -> None:
    store.add_tenant(tenant(1))
    with pytest.raises(Conflict, match="already registered") as caught:
        store.add_tenant(replace(tenant(2), id_number=id_number(1).lower()))
    assert caught.value.field == "id_number"


def test_invalid_input_names_the_field(store: Store) -> None:
    for bad, field in (
        (replace(tenant(1), phone="12345"), "phone"),
        (replace(tenant(1), name="  "), "name"),
        (replace(tenant(1), valid_until=date(2025, 1, 1)), "valid_until"),
        (replace(tenant(1), cards=(5, 5)), "card"),
    ):
        with pytest.raises(ValidationError) as caught:
            store.add_tenant(bad)
        assert caught.value.field == field
    assert store.search_tenants() == []


def test_card_of_another_tenant_is_refused_unless_revoked(store: Store) -> None:
    a = store.add_tenant(tenant(1, room="0301", cards=(500,)))
    b = store.add_tenant(tenant(2))
    with pytest.raises(Conflict, match=r"card 500 belongs to another tenant \(room 0301"):
        store.add_card(b.id, 500)
    assert store.add_card(a.id, 500).tenant_id == a.id  # same holder: no-op
    store.move_out(a.id)  # hands the card back
    assert store.get_card(500).status == "revoked"
    reissued = store.add_card(b.id, 500)
    assert (reissued.tenant_id, reissued.status) == (b.id, "active")


def test_update_changes_only_given_fields_and_journals_once(store: Store) -> None:
    created = store.add_tenant(tenant(1, room="0301"))
    updated = store.update_tenant(created.id, TenantUpdate(room="0502", phone="13700000000"))
    assert (updated.room, updated.phone_masked, updated.name) == (
        "0502",
        "137****0000",
        created.name,
    )
    store.update_tenant(created.id, TenantUpdate(room="0502"))  # no change, no event
    assert changes(store) == [("added", created.id), ("updated", created.id)]
    other = store.add_tenant(tenant(2))
    with pytest.raises(Conflict, match="another tenant has this ID number"):
        store.update_tenant(other.id, TenantUpdate(id_number=id_number(1)))


def test_status_changes_and_move_out(store: Store) -> None:
    created = store.add_tenant(tenant(1, cards=(1, 2)))
    store.set_card_status(2, "lost")
    assert store.set_tenant_status(created.id, "suspended").status == "suspended"
    moved = store.move_out(created.id)
    assert moved.status == "moved_out"
    assert [(c.number, c.status) for c in moved.cards] == [(1, "revoked"), (2, "lost")]
    with pytest.raises(ValidationError):
        store.set_tenant_status(created.id, "gone")  # type: ignore[arg-type]


def test_remove_deletes_tenant_and_cards_but_journals_it(store: Store) -> None:
    created = store.add_tenant(tenant(1, cards=(9,)))
    store.remove_tenant(created.id)
    with pytest.raises(NotFound):
        store.get_tenant(created.id)
    assert store.card_lookup(9) is None
    removed = [e for e in store.pending_events() if e.body.get("change") == "removed"]
    assert removed[0].body["tenant"]["id_number"] == id_number(1)


def test_search_by_name_room_status_phone_and_id_number(store: Store) -> None:
    for n in range(10):
        store.add_tenant(
            replace(tenant(n, room=f"0{n % 3}01"), name=f"王{n}" if n < 5 else f"李{n}")
        )
    assert len(store.search_tenants(name="王")) == 5
    assert [t.room for t in store.search_tenants(room="0101")] == ["0101"] * 3
    assert [t.name for t in store.search_tenants(phone="139 0000 0007")] == ["李7"]
    assert store.search_tenants(name="%") == []  # LIKE wildcards are literal
    found = store.find_tenant(id_number(3))
    assert found is not None
    assert found.name == "王3"
    assert store.find_tenant(id_number(42)) is None
    assert len(store.search_tenants(limit=4, offset=8)) == 2


def test_upsert_matches_by_id_number_and_only_adds_cards(store: Store) -> None:
    first = store.transaction(lambda tx: tx.upsert_tenant(tenant(1, room="0301", cards=(1,))))
    assert first.created
    assert first.cards_added == 1
    store.move_out(first.tenant_id)
    again = store.transaction(lambda tx: tx.upsert_tenant(tenant(1, room="0402", cards=(1, 2))))
    assert (again.tenant_id, again.created, again.cards_added) == (first.tenant_id, False, 2)
    back = store.get_tenant(first.tenant_id)
    assert (back.room, back.status) == ("0402", "active")  # moved back in
    assert [(c.number, c.status) for c in back.cards] == [(1, "active"), (2, "active")]
