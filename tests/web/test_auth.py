"""Logins, sessions, CSRF, lockout, logout, security headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.store import Role
from gateway.web.app import create_app
from tests.store.factories import id_number
from web_security.sessions import MemorySessions
from web_security.throttle import LoginThrottle

from .building import BuildingGateway
from .conftest import PASSWORDS, login

TENANT = {
    "name": "张伟", "id_number": id_number(1), "phone": "13800138000", "room": "301",
    "valid_from": "2026-01-01", "valid_until": "2027-01-01",
}  # fmt: skip


def test_login_gives_the_role_a_csrf_token_and_a_strict_httponly_cookie(
    client: TestClient,
) -> None:
    response = client.post("/api/v1/login",
                           json={"username": "head", "password": PASSWORDS["head"][1]})
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "building_head"
    assert len(body["csrf_token"]) >= 32
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback; Secure under TLS
    assert client.get("/api/v1/tenants").status_code == 200


def test_wrong_passwords_get_401_and_after_five_429_even_with_the_right_one(
    client: TestClient,
) -> None:
    for _ in range(5):
        response = client.post("/api/v1/login", json={"username": "Head", "password": "wrong!"})
        assert response.status_code == 401
    right = {"username": "head", "password": PASSWORDS["head"][1]}
    blocked = client.post("/api/v1/login", json=right)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # Another user is not locked out by it.
    other = {"username": "police", "password": PASSWORDS["police"][1]}
    assert client.post("/api/v1/login", json=other).status_code == 200


def test_an_unknown_user_is_401_like_a_wrong_password(client: TestClient) -> None:
    response = client.post("/api/v1/login", json={"username": "nobody", "password": "x" * 12})
    assert response.status_code == 401
    assert response.json()["detail"] == "wrong username or password"


def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    csrf = login(client, "head")
    cookie = client.cookies.get("session")
    assert client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    # The old cookie, replayed, is dead.
    client.cookies.set("session", cookie or "")
    assert client.get("/api/v1/tenants").status_code == 401


def test_state_changes_need_the_csrf_header(client: TestClient) -> None:
    csrf = login(client, "head")
    assert client.post("/api/v1/tenants", json=TENANT).status_code == 403
    assert client.post("/api/v1/tenants", json=TENANT,
                       headers={"X-CSRF-Token": "forged"}).status_code == 403  # fmt: skip
    assert client.post("/api/v1/logout").status_code == 403
    created = client.post("/api/v1/tenants", json=TENANT, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for response in (client.get("/healthz"), client.get("/api/v1/tenants"),
                     client.post("/api/v1/login", json={})):  # fmt: skip
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_idle_and_old_sessions_end() -> None:
    now = [1000.0]
    sessions = MemorySessions[Role](idle_seconds=900, max_seconds=3600, clock=lambda: now[0])
    token, _ = sessions.create("head", "building_head", None)
    now[0] += 899
    assert sessions.get(token) is not None  # and the idle timer restarts
    now[0] += 899
    assert sessions.get(token) is not None
    now[0] += 901
    assert sessions.get(token) is None
    token, _ = sessions.create("head", "building_head", None)
    for _ in range(8):
        now[0] += 450
        assert sessions.get(token) is not None
    now[0] += 1
    assert sessions.get(token) is None  # active, but older than max_seconds
    assert sessions.get("not-a-token") is None


def test_the_throttle_forgets_failures_after_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(5):
        throttle.failed("Wang")
    assert throttle.retry_after("wang") > 0
    now[0] += 15 * 60 + 1
    assert throttle.retry_after("wang") == 0


def test_under_tls_the_cookie_is_secure_and_hsts_is_sent(gateway: BuildingGateway) -> None:
    with TestClient(create_app(gateway, tls=True), base_url="https://127.0.0.1") as client:
        response = client.post("/api/v1/login",
                               json={"username": "head", "password": PASSWORDS["head"][1]})
        assert response.status_code == 200
        assert "secure" in response.headers["set-cookie"].lower()
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
