"""Fixtures: the platform's store on either engine, and messages as gateways send them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rental_platform.store import Incoming, Store, StoreConfig

GW1, GW2 = "gw-test-0001", "gw-test-0002"
PREFIX = "rental/v1"

OpenStore = Callable[[], Store]


START = datetime.now(UTC).replace(microsecond=0)


def event(gateway_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A valid SPEC 6 event, the same each time it is made (as a gateway sends it again)."""
    body = {
        "schema": 1,
        "gateway_id": gateway_id,
        "seq": seq,
        "event_id": f"{gateway_id}-{seq}",
        "type": "door.forced",
        "door": "main",
        "ts": (START + timedelta(milliseconds=seq)).isoformat(timespec="milliseconds"),
    }
    body.update(fields)
    return body


def message(
    gateway_id: str | None,
    leaf: str,
    payload: bytes | dict[str, Any],
    *,
    acked: int | None = None,
    received_at: float | None = None,
) -> Incoming:
    """An Incoming as the MQTT thread makes it."""
    data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    topic = f"{PREFIX}/{gateway_id}/{leaf}"
    return Incoming(
        topic, gateway_id, leaf, data, time.time() if received_at is None else received_at, acked
    )


def events(gateway_id: str, *seqs: int, acked: int | None = None) -> list[Incoming]:
    return [message(gateway_id, "events", event(gateway_id, s), acked=acked) for s in seqs]


@pytest.fixture
def store_config(platform_db: str, tmp_path: Path) -> StoreConfig:
    return StoreConfig.for_url(
        platform_db, key_file=tmp_path / "store.key", snapshot_dir=tmp_path / "snapshots"
    )


@pytest.fixture
def open_store(store_config: StoreConfig) -> Iterator[OpenStore]:
    """Open connections to one store (as several instances would); all closed at the end."""
    opened: list[Store] = []

    def make() -> Store:
        store = Store.open(store_config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()
