"""A large import from the page is written in batches: the write lock is let go between them.

On a single transaction, a 100,000-row import from the page held SQLite's write lock for
seconds, and the door part's journal commit waited all that time (one decision took 4.3 s;
GB 50396 asks for 2 s at most).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import Store, UpsertRejected, ValidationError

from .conftest import GATEWAY_ID
from .factories import FakeClock, tenant

BATCH = 50


def changed_seqs(store: Store) -> list[int]:
    return [e.seq for e in store.events_after(0, 10_000) if e.body["type"] == "tenant.changed"]


def test_a_door_event_is_committed_between_two_batches(
    store: Store, data_dir: Path, clock: FakeClock
) -> None:
    records = [tenant(n, cards=(9_000_000 + n,)) for n in range(1, 4 * BATCH + 1)]
    door = Store.open(data_dir, GATEWAY_ID, clock=clock)  # the door part's own store
    door_seqs: list[int] = []
    batches_begun = 0

    def progress(stage: str, done: int, total: int) -> None:
        # Each batch reports in its own records: total == BATCH. When the second batch
        # starts sealing (before any lock), the first has committed and let the lock go.
        nonlocal batches_begun
        if stage == "sealing" and done == 0 and total == BATCH:
            batches_begun += 1
            if batches_begun == 2:
                door_seqs.append(door.append_event({"type": "reader.online", "door": "main"}).seq)

    try:
        result = store.upsert_tenants(records, progress=progress, batch=BATCH)
    finally:
        door.close()
    assert result.added == len(records)
    assert batches_begun == 4
    [door_seq] = door_seqs
    changed = changed_seqs(store)
    assert len(changed) == len(records)
    # The door's event went in between the import's: not after all of them.
    assert min(changed) < door_seq < max(changed)
    assert sum(1 for seq in changed if seq < door_seq) == BATCH


def test_a_bad_record_in_the_last_batch_writes_nothing(store: Store) -> None:
    records = [tenant(n) for n in range(1, 3 * BATCH + 1)]
    records.append(tenant(1))  # the same person twice, in the last batch
    with pytest.raises((UpsertRejected, ValidationError)):
        store.upsert_tenants(records, batch=BATCH)
    assert changed_seqs(store) == []
    assert store.search_tenants(limit=10) == []


def test_an_import_with_batches_passes_them_to_the_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import tenant_csv

    lines = ["room,name,id_number,phone,card,valid_from,valid_until"]
    for n in range(1, 2 * BATCH + 2):
        t = tenant(n)
        lines.append(f"{t.room},{t.name},{t.id_number},{t.phone},{8_000_000 + n},"
                     f"{t.valid_from},{t.valid_until}")  # fmt: skip
    calls: list[int | None] = []
    original = store.upsert_tenants

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("batch"))  # type: ignore[arg-type]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "upsert_tenants", spy)
    result = tenant_csv.import_tenant_data(store, "\n".join(lines).encode(), batch=BATCH)
    assert result.added == 2 * BATCH + 1
    assert calls == [BATCH]
    assert len(changed_seqs(store)) == 2 * BATCH + 1
