"""`pending_bodies`, the uplink's read: the exact bytes of what `pending_events` returns."""

from __future__ import annotations

from gateway.store import Store

from .factories import tenant


def test_pending_bodies_match_pending_events_sealed_ones_included(store: Store) -> None:
    store.append_event({"type": "reader.online", "door": "main"})
    store.add_tenant(tenant(1, cards=(4242,)))  # journals a sealed tenant.changed
    store.append_event({"type": "door.forced", "door": "main"})
    entries = store.pending_events()
    assert [e.body["type"] for e in entries] == ["reader.online", "tenant.changed", "door.forced"]
    assert store.pending_bodies() == [(e.seq, e.body_json.encode()) for e in entries]
    store.acknowledge(entries[0].seq)
    assert [seq for seq, _ in store.pending_bodies()] == [e.seq for e in entries[1:]]
    assert [seq for seq, _ in store.pending_bodies(after_seq=entries[1].seq)] == [entries[2].seq]
    assert store.pending_bodies(limit=1) == [(entries[1].seq, entries[1].body_json.encode())]
