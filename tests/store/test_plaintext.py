"""No plaintext ID number or phone anywhere under data_dir: database, WAL, shm, any file."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from gateway.store import Store, TenantUpdate

from .conftest import GATEWAY_ID
from .factories import id_number, phone, tenant


def files_containing(data_dir: Path, secrets: list[str]) -> list[tuple[str, str]]:
    found = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(path.name, s) for s in secrets if s.encode() in data]
    return found


def checkpoint(data_dir: Path) -> None:
    conn = sqlite3.connect(data_dir / "gateway.db")
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    assert busy == 0


def test_no_plaintext_id_numbers_or_phones_on_disk(data_dir: Path) -> None:
    secrets = [id_number(n) for n in range(50)] + [phone(n) for n in range(50)]
    store = Store.open(data_dir, GATEWAY_ID)
    for n in range(50):
        store.add_tenant(tenant(n, cards=(1000 + n,)))
    first = store.search_tenants(room=tenant(0).room)[0]
    store.update_tenant(first.id, TenantUpdate(phone="13700000000", id_number=id_number(999)))
    secrets += ["13700000000", id_number(999)]
    # Everything has gone through the journal too (tenant.changed bodies carry the plaintext).
    assert len(store.pending_events(limit=1000)) == 51
    assert (data_dir / "gateway.db-wal").stat().st_size > 0
    assert files_containing(data_dir, secrets) == []
    checkpoint(data_dir)
    assert files_containing(data_dir, secrets) == []
    store.close()
    assert files_containing(data_dir, secrets) == []


def test_removed_tenant_name_does_not_linger_in_the_database_file(data_dir: Path) -> None:
    with Store.open(data_dir, GATEWAY_ID) as store:
        for n in range(20):
            store.add_tenant(tenant(n))
        leaving = store.add_tenant(replace(tenant(99), name="欧阳娜娜"))
        checkpoint(data_dir)
        assert files_containing(data_dir, ["欧阳娜娜"]) == [("gateway.db", "欧阳娜娜")]
        store.remove_tenant(leaving.id)
        checkpoint(data_dir)
    # secure_delete zeroes the row; the event that announced it is sealed.
    assert files_containing(data_dir, ["欧阳娜娜"]) == []


def test_no_plaintext_after_a_bulk_import(data_dir: Path) -> None:
    records = [tenant(n, cards=(n,)) for n in range(200)]
    secrets = [id_number(n) for n in range(200)] + [phone(n) for n in range(200)]
    with Store.open(data_dir, GATEWAY_ID) as store:
        assert store.upsert_tenants(records).journaled == 200
        changed = [replace(r, phone=f"137{n:08d}") for n, r in enumerate(records[:50])]
        assert store.upsert_tenants(changed).journaled == 50
        secrets += [f"137{n:08d}" for n in range(50)]
        assert files_containing(data_dir, secrets) == []
        checkpoint(data_dir)
        assert files_containing(data_dir, secrets) == []
    assert files_containing(data_dir, secrets) == []
