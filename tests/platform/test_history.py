"""Retention and police holds (both engines), and pictures as content-addressed files."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

from rental_platform.store import (
    Store,
    events_for,
    place_hold,
    release_hold,
    snapshot_bytes,
    store_batch,
    upkeep,
)
from rental_platform.store.snapshots import key_of

from .conftest import GW1, event, message

NOW = datetime(2026, 12, 8, tzinfo=UTC).timestamp()
OLD = datetime(2026, 3, 15, tzinfo=UTC).timestamp()  # its month ended > 180 days before NOW
RECENT = datetime(2026, 9, 1, tzinfo=UTC).timestamp()
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(3000)


def test_retention_drops_old_months_but_keeps_held_events_and_their_pictures(store: Store) -> None:
    batch = [message(GW1, "events", event(GW1, seq), received_at=OLD) for seq in (1, 2, 3)]
    batch += [
        message(GW1, "events", event(GW1, 4), received_at=RECENT),
        message(GW1, "snapshots/gw-test-0001-2", JPEG, received_at=OLD),
        message(GW1, "snapshots/gw-test-0001-3", JPEG[:-1], received_at=OLD),
    ]
    store_batch(store, batch)
    sha = hashlib.sha256(JPEG).hexdigest()
    picture = store.config.snapshot_dir / key_of(sha)
    assert picture.read_bytes() == JPEG  # content-addressed: ab/cd/abcd….jpg
    # A picture written by an instance that died before its row committed: nobody names it.
    orphan = store.config.snapshot_dir / key_of(store.snapshots.put(b"\xff\xd8orphan"))
    for path in store.config.snapshot_dir.glob("??/??/*.jpg"):
        os.utime(path, (OLD, OLD))

    hold = place_hold(store.db, "case 2026-117", [(GW1, 2)], NOW)
    upkeep(store, NOW)
    assert [e.seq for e in events_for(store, GW1)] == [2, 4]
    assert snapshot_bytes(store, GW1, "gw-test-0001-2") == JPEG  # held: its picture stays
    assert snapshot_bytes(store, GW1, "gw-test-0001-3") is None
    assert len(list(store.config.snapshot_dir.glob("??/??/*.jpg"))) == 1
    assert not orphan.exists()

    release_hold(store, hold, NOW)
    upkeep(store, NOW)
    assert [e.seq for e in events_for(store, GW1)] == [4]
    assert snapshot_bytes(store, GW1, "gw-test-0001-2") is None
    assert not picture.exists()


def test_a_hold_released_within_retention_puts_the_event_back(store: Store) -> None:
    store_batch(store, [message(GW1, "events", event(GW1, 1), received_at=RECENT)])
    first = place_hold(store.db, "case A", [(GW1, 1)], NOW)
    second = place_hold(store.db, "case B", [(GW1, 1)], NOW)
    release_hold(store, first, NOW)
    assert store.db.execute("SELECT held FROM events").fetchone()[0]  # B still holds it
    release_hold(store, second, NOW)
    assert not store.db.execute("SELECT held FROM events").fetchone()[0]
    upkeep(store, NOW)
    assert [e.seq for e in events_for(store, GW1)] == [1]
