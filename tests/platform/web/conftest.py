"""Fixtures: the city's web application over the platform's store, on either engine.

def test_x(city: City) -> None:
    client = city.client()                       # a browser of its own (cookies)
    csrf = city.log_in(client, "police")
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from rental_platform.store import Store, StoreConfig, set_building, store_batch
from rental_platform.store.users import add_user
from rental_platform.web.app import create_app
from rental_platform.web.deps import WebState
from rental_platform.web.process import close_state, open_state
from rental_platform.web.settings import WebSettings
from web_security.passwords import hash_password

from ..conftest import event, message

A, B = "gw-440305-0042", "gw-440305-0043"
TENANT = "0b5d3c9e-5a43-4f8e-9d3c-4a8f1c2b7e61"
ID_NUMBER = "11010519491231002X"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
PURPOSE = "案件 2026-118"
ENTRIES = 60  # card 1001 at A: more than a page of the page's 50


def fill_city(store: Store, picture_bytes: bytes = JPEG) -> None:
    """A: 60 entries of card 1001, a tenant registered with an ID number, and their entry
    with a picture; B, on the same street: one entry of card 1001."""
    set_building(store.db, A, "440305001002-0042")
    set_building(store.db, B, "440305001003-0043")
    card = {"kind": "card", "number": 1001}
    batch = [
        message(
            A,
            "events",
            event(
                A,
                seq,
                type="access.granted",
                credential=card,
                room="301",
                reason="tenant_card",
                snapshot=None,
                ts=f"2026-03-01T08:{seq - 1:02d}:00+08:00",
            ),
        )
        for seq in range(1, ENTRIES + 1)
    ]
    tenant = {"id": TENANT, "name": "王小明", "id_number": ID_NUMBER, "room": "301"}
    batch.append(
        message(A, "events", event(A, 61, type="tenant.changed", change="added", tenant=tenant))
    )
    picture = {"sha256": hashlib.sha256(picture_bytes).hexdigest(), "bytes": len(picture_bytes)}
    batch.append(
        message(
            A,
            "events",
            event(
                A,
                62,
                type="access.denied",
                room="301",
                credential={"kind": "card", "number": 3003},
                tenant_id=TENANT,
                reason="expired",
                snapshot=picture,
                ts="2026-03-01T09:30:00+08:00",
            ),
        )
    )
    batch.append(message(A, f"snapshots/{A}-62", picture_bytes))
    batch.append(
        message(
            B,
            "events",
            event(
                B,
                1,
                type="access.granted",
                credential=card,
                room="101",
                reason="tenant_card",
                snapshot=None,
                ts="2026-03-01T10:00:00+08:00",
            ),
        )
    )
    store_batch(store, batch)


PASSWORD = "Kq7#city-Wall9"
USERS = {"police": "officer.li", "district": "clerk.zhou"}


@functools.cache
def password_hash() -> str:
    """One argon2id hash for every test user: each costs tens of milliseconds."""
    return hash_password(PASSWORD)


@dataclass
class City:
    """The web over one store; `instance()` makes another process's worth of state."""

    settings: WebSettings
    store: Store
    states: list[WebState] = field(default_factory=list)

    def instance(self) -> WebState:
        state = open_state(self.settings)
        self.states.append(state)
        return state

    def client(self, state: WebState | None = None) -> TestClient:
        return TestClient(create_app(state or self.states[0]), follow_redirects=False)

    def add_user(self, role: str, name: str | None = None, *, one_time: bool = False) -> str:
        name = name or USERS[role]
        add_user(self.store.db, name, role, password_hash(), must_change=one_time, now=time.time())
        return name

    def log_in(self, client: TestClient, role: str, name: str | None = None) -> str:
        """Log in over the API; the CSRF token."""
        answer = client.post(
            "/api/v1/login", json={"username": name or USERS[role], "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["csrf_token"])


@pytest.fixture
def city(store: Store, store_config: StoreConfig) -> Iterator[City]:
    settings = WebSettings(
        host="127.0.0.1",
        port=0,
        db=store_config.url,
        store_key=store_config.key_file,
        snapshot_dir=store_config.snapshot_dir,
    )
    made = City(settings, store)
    made.instance()
    made.add_user("police")
    made.add_user("district")
    yield made
    for state in made.states:
        close_state(state)
