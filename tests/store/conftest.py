"""Fixtures: a real store in a temporary directory, on a clock the test controls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store

from .factories import FakeClock

GATEWAY_ID = "gw-test-0001"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path, clock: FakeClock) -> Iterator[Store]:
    store = Store.open(data_dir, GATEWAY_ID, clock=clock)
    yield store
    store.close()
