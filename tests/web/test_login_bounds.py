"""What a flood of logins and sessions may cost, tried as an attacker would.

Over real HTTP against the real application served by uvicorn on loopback (`WebServer`), with
argon2 counted where it runs (`PasswordHasher.hash` and `.verify`, the real ones, wrapped).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.store import Role
from gateway.web.app import create_app
from web_security import passwords
from web_security.sessions import MemorySessions

from .building import BuildingGateway
from .conftest import PASSWORDS, login
from .flood import at_once, serving, statuses


class Argon2Calls:
    """How many argon2 hashes and checks ran, and the most that ran at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.peak = 0
        self._running = 0
        self._lock = threading.Lock()

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
                self._running += 1
                self.peak = max(self.peak, self._running)
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1

        return counted


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> Argon2Calls:
    calls = Argon2Calls()
    monkeypatch.setattr(PasswordHasher, "verify", calls.wrap(PasswordHasher.verify))
    monkeypatch.setattr(PasswordHasher, "hash", calls.wrap(PasswordHasher.hash))
    return calls


@pytest.fixture
def served(gateway: BuildingGateway) -> Iterator[tuple[str, FastAPI]]:
    with serving(gateway) as found:
        yield found


# Requests at once: below uvicorn's own limit (server.LIMIT_CONCURRENCY), whose 503 would
# answer the rest before the app sees them; behind the edge at most 48 arrive at once anyway.
AT_ONCE = 60


def test_parallel_logins_for_one_user_check_at_most_five_passwords(
    served: tuple[str, FastAPI], argon2_calls: Argon2Calls
) -> None:
    url, _ = served
    seen = statuses(
        at_once(
            url,
            AT_ONCE,
            lambda client, i: client.post(
                "/api/v1/login", json={"username": "head", "password": f"guess number {i}"}
            ),
        )
    )
    assert argon2_calls.calls <= 5, seen
    assert seen[401] == argon2_calls.calls
    assert seen[429] == AT_ONCE - seen[401]
    right = httpx.post(
        f"{url}/api/v1/login", json={"username": "head", "password": PASSWORDS["head"][1]}
    )
    assert right.status_code == 429  # locked out: the right password is not even checked
    assert argon2_calls.calls <= 5


def test_parallel_failed_logins_never_hash_more_than_two_passwords_at_once(
    served: tuple[str, FastAPI], argon2_calls: Argon2Calls
) -> None:
    url, _ = served
    futures = at_once(
        url,
        AT_ONCE,
        lambda client, i: client.post(
            "/api/v1/login", json={"username": f"guess-{i:03d}", "password": "not the password"}
        ),
    )
    seen = statuses(futures)
    # Each check takes 19 MiB: two at once (passwords.HASH_WORKERS) bound the memory.
    assert argon2_calls.peak <= 2
    assert set(seen) <= {401, 503}, seen
    assert seen[401] == argon2_calls.calls
    for future in futures:
        response = future.result()
        if response.status_code == 503:
            assert response.json()["detail"].startswith("busy checking other logins")
            assert response.headers["Retry-After"] == "1"


def test_a_busy_login_says_so_in_chinese_on_the_page_and_in_json_on_the_api(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashing = passwords.HashingThreads(workers=1, queue=0)
    monkeypatch.setattr(passwords, "HASHING", hashing)
    started, release = threading.Event(), threading.Event()

    def hold_the_only_thread() -> bool:
        started.set()
        return release.wait()

    holder = threading.Thread(target=hashing.run, args=(hold_the_only_thread,))
    holder.start()
    try:
        assert started.wait(30)
        right = {"username": "head", "password": PASSWORDS["head"][1]}
        page = client.post("/login", data=right, follow_redirects=False)
        assert page.status_code == 503
        assert "正在处理其他登录" in page.text
        api = client.post("/api/v1/login", json=right)
        assert api.status_code == 503
        assert api.headers["Retry-After"] == "1"
    finally:
        release.set()
        holder.join()
    # Refused for lack of a hashing thread is not a failed login: nothing was locked out.
    assert client.post("/api/v1/login", json=right).status_code == 200


def test_a_thousand_logins_of_one_user_leave_other_users_sessions_alone() -> None:
    now = [0.0]
    sessions = MemorySessions[Role](clock=lambda: now[0])
    police, _ = sessions.create("police", "police", None)
    head = []
    for _ in range(1000):
        now[0] += 0.1
        head.append(sessions.create("head", "building_head", None)[0])
    assert sessions.get(police) is not None
    alive = [token for token in head if sessions.get(token) is not None]
    assert alive == head[-sessions.max_per_user :]  # the user's own longest idle went first


def test_a_password_change_ends_the_users_other_sessions_and_renews_its_own(
    gateway: BuildingGateway,
) -> None:
    app = create_app(gateway)
    mine, thief, other = (TestClient(app, base_url="http://127.0.0.1") for _ in range(3))
    login(thief, "head")
    login(other, "police")
    mine.post("/login", data={"username": "head", "password": PASSWORDS["head"][1]})
    before = mine.cookies["session"]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', mine.get("/password").text)
    assert csrf is not None
    new = "Xin mi-ma 2026 for the door"
    done = mine.post(
        "/password",
        follow_redirects=False,
        data={
            "csrf_token": csrf.group(1),
            "current": PASSWORDS["head"][1],
            "new": new,
            "repeat": new,
        },
    )
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert thief.get("/api/v1/tenants").status_code == 401
    assert mine.get("/api/v1/tenants").status_code == 200  # the changer goes on, freshly
    assert mine.cookies["session"] != before
    mine.cookies.set("session", before)
    assert mine.get("/api/v1/tenants").status_code == 401  # a copy of the old cookie is dead
    assert other.get("/api/v1/alarms").status_code == 200  # other users are left alone


def test_the_current_password_on_the_password_page_counts_towards_the_lockout(
    client: TestClient,
) -> None:
    client.post("/login", data={"username": "head", "password": PASSWORDS["head"][1]})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/password").text)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "new": "Xin mi-ma 2026 for the door",
            "repeat": "Xin mi-ma 2026 for the door"}  # fmt: skip
    for i in range(5):
        assert client.post("/password", data={**form, "current": f"guess {i}"}).status_code == 401
    locked = client.post("/password", data={**form, "current": PASSWORDS["head"][1]})
    assert locked.status_code == 429
    assert "失败次数过多" in locked.text
