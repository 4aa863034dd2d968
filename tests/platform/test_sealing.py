"""Personal data at rest: no plaintext ID number or phone anywhere in the platform's database
(events, rejects, conflicts), lookup by keyed hash, and a store key that is checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rental_platform.store import (
    Store,
    StoreConfig,
    StoreKeyError,
    events_for,
    rejects,
    store_batch,
)
from rental_platform.store.sealing import Sealer

from .conftest import GW1, event, message

ID_NUMBER, PHONE, NAME = "11010519491231002X", "13800138000", "王小明"


def tenant_changed(seq: int, **fields: object) -> dict[str, object]:
    tenant = {
        "id": "0b5d3c9e-5a43-4f8e-9d3c-4a8f1c2b7e61",
        "name": NAME,
        "id_number": ID_NUMBER,
        "phone": PHONE,
        "room": "301",
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
        "status": "active",
        "cards": [{"number": 123456, "status": "active"}],
    }
    return event(
        GW1, seq, **{"type": "tenant.changed", "change": "added", "tenant": tenant, **fields}
    )


def everything_stored(store: Store, config: StoreConfig) -> bytes:
    """Every byte the database holds for these tables, as the engine keeps them."""
    if store.db.postgres:
        rows = store.db.execute(
            "SELECT string_agg(t::text, '|') FROM (SELECT e::text AS t FROM events e"
            " UNION ALL SELECT r::text FROM rejects r UNION ALL SELECT c::text FROM conflicts c"
            " UNION ALL SELECT g::text FROM gateways g) AS a"
        ).fetchone()
        return str(rows[0]).encode()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    folder = Path(config.url).parent
    return b"".join(p.read_bytes() for p in folder.glob(Path(config.url).name + "*") if p.is_file())


def test_tenant_changes_are_sealed_and_found_by_id_number_hash(
    store: Store, store_config: StoreConfig
) -> None:
    real = tenant_changed(1)
    batch = [
        message(GW1, "events", real),
        message(GW1, "events", tenant_changed(2, ts="not a time")),  # a reject
        message(GW1, "events", tenant_changed(3)),
        message(GW1, "events", tenant_changed(3, change="updated")),
    ]  # a conflict
    outcome = store_batch(store, batch)
    assert (outcome.stored, outcome.rejected, outcome.conflicts) == (2, 1, 1)

    stored = everything_stored(store, store_config)
    for secret in (ID_NUMBER, PHONE, NAME, ID_NUMBER.lower()):
        assert secret.encode() not in stored
        assert json.dumps(secret).encode() not in stored  # \\u escaped

    # An officer types the number with a lower-case x: the same hash.
    wanted = store.sealer.id_number_hash(ID_NUMBER.lower())
    rows = store.db.execute(
        "SELECT seq, room, tenant_id, body FROM events WHERE id_hash = ? ORDER BY seq", (wanted,)
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [(1, "301", None), (3, "301", None)]
    assert rows[0][2] == "0b5d3c9e-5a43-4f8e-9d3c-4a8f1c2b7e61"
    # Opened with the key, the event is what the gateway sent.
    assert events_for(store, GW1)[0].event == real
    assert rejects(store)[0]["payload"] == json.dumps(tenant_changed(2, ts="not a time")).encode()


def test_the_store_key_is_made_private_and_refused_when_it_is_not_the_databases(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    first = Store.open(store_config)
    assert store_config.key_file.stat().st_mode & 0o777 == 0o600
    first.close()
    other_key = tmp_path / "other.key"
    with pytest.raises(StoreKeyError, match="not the one the database was filled with"):
        Store.open(StoreConfig(store_config.url, other_key, store_config.snapshot_dir))
    os.chmod(store_config.key_file, 0o644)
    with pytest.raises(StoreKeyError, match="chmod 600"):
        Store.open(store_config)
    short = tmp_path / "short.key"
    short.write_bytes(b"0" * 31)
    short.chmod(0o600)
    with pytest.raises(StoreKeyError, match="not a store key"):
        Sealer.from_file(short, create=False)
    with pytest.raises(StoreKeyError, match="no store key"):
        Sealer.from_file(tmp_path / "missing.key", create=False)
