"""Synthetic registries: valid, encrypted like real tenants, found by the door path."""

from __future__ import annotations

import pytest

from gateway.store import (
    Conflict,
    Store,
    ValidationError,
    bulk,
    normalize_id_number,
    normalize_phone,
)
from gateway.store.bulk import SeedResult, seed_synthetic_registry
from gateway.store.db import WRITER_CACHE_KIB
from gateway.store.validation import CARD_NUMBER_MAX

from .factories import FakeClock


def writer_cache_kib(store: Store) -> int:
    return -int(store.transaction(lambda tx: tx.conn.execute("PRAGMA cache_size").fetchone()[0]))


def test_seeded_cards_resolve_through_card_lookup(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 7)  # several transactions, and the next batch overlapping
    seeded = seed_synthetic_registry(store, tenants=30, cards_per_tenant=3, rooms=4)
    assert seeded == SeedResult(first_card=1_000_000, last_card=1_000_089, tenants=30)
    today = clock.now.date()
    holders = set()
    for number in range(seeded.first_card, seeded.last_card + 1):
        grant = store.card_lookup(number)
        assert grant is not None
        assert (grant.card_status, grant.tenant_status, grant.has_pin) == (
            "active",
            "active",
            False,
        )
        assert grant.valid_from <= today <= grant.valid_until
        holders.add(grant.tenant_id)
    assert store.card_lookup(seeded.first_card - 1) is None
    assert store.card_lookup(seeded.last_card + 1) is None
    assert len(holders) == 30
    tenants = store.search_tenants(limit=100)
    assert len(tenants) == 30
    assert sorted({t.room for t in tenants}) == ["0101", "0102", "0103", "0104"]
    assert all(t.source == "city" and len(t.cards) == 3 for t in tenants)
    # Sealed and hashed like real ones: the plaintext opens, is valid, and is found by hash.
    id_numbers = set()
    for tenant in tenants:
        id_number = store.reveal_id_number(tenant.id)
        assert normalize_id_number(id_number) == id_number
        assert normalize_phone(store.reveal_phone(tenant.id)) == store.reveal_phone(tenant.id)
        found = store.find_tenant(id_number)
        assert found is not None
        assert found.id == tenant.id
        id_numbers.add(id_number)
    assert len(id_numbers) == 30
    phone = store.reveal_phone(tenants[0].id)
    assert [t.id for t in store.search_tenants(phone=phone)] == [tenants[0].id]
    # Not announced to the city, and the writer's page cache is back to its usual size.
    assert store.pending_events() == []
    assert writer_cache_kib(store) == WRITER_CACHE_KIB


def test_seeds_of_separate_card_ranges_add_up_and_overlaps_are_refused(store: Store) -> None:
    first = seed_synthetic_registry(store, tenants=5, cards_per_tenant=2)
    second = seed_synthetic_registry(store, tenants=4, first_card=first.last_card + 1)
    assert (second.first_card, second.last_card) == (1_000_010, 1_000_013)
    assert len(store.search_tenants()) == 9
    with pytest.raises(Conflict, match="card 1000012 is already registered"):
        seed_synthetic_registry(store, tenants=3, first_card=1_000_012)
    assert len(store.search_tenants()) == 9


def test_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        seed_synthetic_registry(
            store, tenants=2, cards_per_tenant=2, first_card=CARD_NUMBER_MAX - 2
        )
    assert caught.value.field == "first_card"
    with pytest.raises(ValidationError):
        seed_synthetic_registry(store, tenants=1, cards_per_tenant=0)
    with pytest.raises(ValidationError):
        seed_synthetic_registry(store, tenants=1, rooms=0)
    assert seed_synthetic_registry(store, tenants=0) == SeedResult(1_000_000, 999_999, 0)
    assert store.search_tenants() == []


@pytest.mark.parametrize("n", [0, 999, 1000, 36_499_999, 36_500_000, 2**31, CARD_NUMBER_MAX])
def test_synthetic_id_numbers_are_valid_over_the_whole_card_range(n: int) -> None:
    id_number = bulk._id_number(n)
    assert normalize_id_number(id_number) == id_number
    assert bulk._id_number(n + 1) != id_number
    assert normalize_phone(bulk._phone(n)) == bulk._phone(n)
