"""Logins, sessions and the lockout, kept in the database so every web instance sees them
(SPEC 8: the same rules as SPEC 4). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from .conftest import PASSWORD, USERS, City


def test_login_sets_a_strict_cookie_and_logout_needs_the_csrf_header(city: City) -> None:
    client = city.client()
    answer = client.post("/api/v1/login", json={"username": "Officer.LI", "password": PASSWORD})
    assert answer.status_code == 200
    assert answer.json()["role"] == "police"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    csrf = answer.json()["csrf_token"]
    assert client.get("/api/v1/gateways").status_code == 200

    assert client.post("/api/v1/logout").status_code == 403  # no X-CSRF-Token
    assert client.post("/api/v1/logout", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/gateways").status_code == 401


def test_a_session_is_live_on_every_instance_and_a_logout_ends_it_on_all(city: City) -> None:
    first, second = city.client(), city.client(city.instance())
    csrf = city.log_in(first, "police")
    second.cookies.update(first.cookies)  # the load balancer sends the next request elsewhere
    assert second.get("/api/v1/gateways").status_code == 200
    assert second.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    first.cookies.update(second.cookies)
    first.cookies.set("session", second.cookies.get("session") or "gone")
    assert first.get("/api/v1/gateways").status_code == 401
    no_table_rows = city.store.db.execute("SELECT count(*) FROM web_sessions").fetchone()[0]
    assert no_table_rows == 0


def test_five_failures_lock_a_name_out_on_every_instance(city: City) -> None:
    clients = [city.client(), city.client(city.instance())]
    for attempt in range(5):  # spread over two instances, as a load balancer would
        answer = clients[attempt % 2].post(
            "/api/v1/login", json={"username": USERS["police"], "password": f"wrong-{attempt}"}
        )
        assert answer.status_code == 401
    right = {"username": USERS["police"].upper(), "password": PASSWORD}
    for client in clients:  # the right password too, from either
        locked = client.post("/api/v1/login", json=right)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 800
    # Another name is not locked by them.
    assert (
        clients[0]
        .post("/api/v1/login", json={"username": USERS["district"], "password": PASSWORD})
        .status_code
        == 200
    )
    # Nothing typed is kept but the name: no password in the database.
    (rows,) = city.store.db.execute("SELECT count(*) FROM login_failures").fetchone()
    assert rows == 5


def test_a_one_time_password_leads_to_the_password_page_and_nowhere_else(city: City) -> None:
    city.add_user("district", "new.clerk", one_time=True)
    client = city.client()
    refused = client.post("/api/v1/login", json={"username": "new.clerk", "password": PASSWORD})
    assert refused.status_code == 403  # the API says: choose a new one first
    page = client.post("/login", data={"username": "new.clerk", "password": PASSWORD})
    assert page.status_code == 303
    assert page.headers["location"] == "/password"
    assert client.get("/fleet").headers["location"] == "/password"
    form = client.get("/password").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    weak = client.post(
        "/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": "1234567890", "repeat": "1234567890"},
    )
    assert weak.status_code == 422
    assert "键盘或字母顺序" in weak.text
    new = "Lantern-42-river"
    done = client.post(
        "/password", data={"csrf_token": csrf, "current": PASSWORD, "new": new, "repeat": new}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/fleet"
    assert client.get("/fleet").status_code == 200
    again = city.client()
    assert (
        again.post("/api/v1/login", json={"username": "new.clerk", "password": new}).status_code
        == 200
    )
