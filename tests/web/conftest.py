"""The web application over a real store, with one user per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.store import Store
from gateway.web.app import create_app

from .building import BuildingGateway

GATEWAY_ID = "gw-test-0001"
PASSWORDS = {
    "head": ("building_head", "Lou-zhang 2026 kai men"),
    "police": ("police", "Min-jing an jian 4711"),
    "installer": ("installer", "An-zhuang shi fu 0420"),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data", GATEWAY_ID) as opened:
        for username, (role, password) in PASSWORDS.items():
            opened.add_user(username, role, password)
        yield opened


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> BuildingGateway:
    return BuildingGateway(store, tmp_path / "data")


@pytest.fixture
def client(gateway: BuildingGateway) -> Iterator[TestClient]:
    with TestClient(create_app(gateway), base_url="http://127.0.0.1") as test_client:
        yield test_client


def login(client: TestClient, username: str) -> str:
    """Log in as one of PASSWORDS; the client keeps the cookie; returns the CSRF token."""
    response = client.post("/api/v1/login",
                           json={"username": username, "password": PASSWORDS[username][1]})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token
