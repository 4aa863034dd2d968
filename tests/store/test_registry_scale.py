"""The door path stays fast with a registry of 1,000,000 cards."""

from __future__ import annotations

import random
import time

from gateway.store import Store
from gateway.store.bulk import seed_synthetic_registry

CARDS = 1_000_000
TENANTS = 100_000


def test_card_lookup_with_a_million_cards(store: Store) -> None:
    start = time.perf_counter()
    seeded = seed_synthetic_registry(store, tenants=TENANTS, cards_per_tenant=CARDS // TENANTS)
    print(f"seeded {CARDS} cards of {TENANTS} tenants in {time.perf_counter() - start:.1f} s")
    rng = random.Random(7)
    known = [rng.randint(seeded.first_card, seeded.last_card) for _ in range(20_000)]
    unknown = [seeded.first_card - 1, seeded.last_card + 1, 3]
    store.card_lookup(0)  # open this thread's reader
    timings = []
    for number in known + unknown:
        start = time.perf_counter()
        grant = store.card_lookup(number)
        timings.append(time.perf_counter() - start)
        assert (grant is not None) == (number in known)
    timings.sort()
    p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
    print(f"card_lookup with {CARDS} cards: p50 {p50 * 1e6:.1f} µs, p99 {p99 * 1e6:.1f} µs")
