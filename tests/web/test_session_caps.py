"""Session caps: one account's logins end only its own sessions; what a full table answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.store import Role
from gateway.web.app import create_app
from web_security.sessions import MemorySessions, PasswordChanged, SessionsFull

from .building import BuildingGateway
from .conftest import PASSWORDS


def test_a_full_table_refuses_a_new_user_rather_than_end_another_users_session() -> None:
    now = [0.0]
    sessions = MemorySessions[Role](max_sessions=2, max_per_user=2, clock=lambda: now[0])
    police, _ = sessions.create("police", "police", None)
    installer, _ = sessions.create("installer", "installer", None)
    with pytest.raises(SessionsFull):
        sessions.create("head", "building_head", None)
    now[0] += 1
    again, _ = sessions.create("Police", "police", None)  # full, but its own session makes room
    assert sessions.get(police) is None
    assert sessions.get(installer) is not None
    assert sessions.get(again) is not None
    now[0] += 16 * 60  # both idle past 15 minutes: places free again
    sessions.create("head", "building_head", None)


def test_a_login_checked_before_a_password_change_starts_no_session_after_it() -> None:
    sessions = MemorySessions[Role]()
    generation = sessions.generation("head")  # the login starts checking the old password
    sessions.revoke_user("head")  # the password changes meanwhile
    with pytest.raises(PasswordChanged):
        sessions.create("head", "building_head", None, generation=generation)
    sessions.create("head", "building_head", None, generation=sessions.generation("head"))


def test_a_full_table_answers_503_in_json_and_in_chinese_on_the_page(
    gateway: BuildingGateway,
) -> None:
    app = create_app(gateway)
    app.state.web.sessions = MemorySessions[Role](max_sessions=2, max_per_user=2)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for username in ("police", "installer"):
            password = PASSWORDS[username][1]
            answer = client.post("/api/v1/login", json={"username": username, "password": password})
            assert answer.status_code == 200
        head = {"username": "head", "password": PASSWORDS["head"][1]}
        refused = client.post("/api/v1/login", json=head)
        assert refused.status_code == 503
        assert refused.json()["detail"] == "too many sessions are open; try again later"
        page = client.post("/login", data=head, follow_redirects=False)
        assert page.status_code == 503
        assert "当前登录的会话已满" in page.text
