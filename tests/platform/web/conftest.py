"""Fixtures: the city's web application over the platform's store, on either engine.

def test_x(city: City) -> None:
    client = city.client()                       # a browser of its own (cookies)
    csrf = city.log_in(client, "police")
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from rental_platform.store import Store, StoreConfig
from rental_platform.store.users import add_user
from rental_platform.web.app import create_app
from rental_platform.web.deps import WebState
from rental_platform.web.process import close_state, open_state
from rental_platform.web.settings import WebSettings
from web_security.passwords import hash_password

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
