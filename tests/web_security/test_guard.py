"""The library on an application of its own roles: logins, role dependencies, CSRF, the route
table and the headers, as the city's platform would use them (police and district staff)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from web_security import passwords
from web_security.headers import SecurityHeaders, style_hash
from web_security.login import CSRF_HEADER, LoginRefused, end_session, log_in
from web_security.roles import CsrfField, RoleGuard, check_csrf
from web_security.routes import route_roles
from web_security.sessions import MemorySessions, Session
from web_security.throttle import LoginThrottle

CityRole = Literal["police", "district"]
STYLESHEET = "body { color: #222 }"
PASSWORD = "Shi-qu an quan 2026"


@dataclass(frozen=True)
class Officer:
    username: str
    role: CityRole
    must_change: bool = False


@dataclass
class CityState:
    sessions: MemorySessions[CityRole] = field(default_factory=MemorySessions[CityRole])
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    secure_cookies: bool = False


def city_state(request: Request) -> CityState:
    state: CityState = request.app.state.city
    return state


HASH = passwords.hash_password(PASSWORD)
OFFICERS = {"li": Officer("li", "police"), "zhao": Officer("zhao", "district"),
            "new": Officer("new", "police", must_change=True)}  # fmt: skip


def verify(username: str, password: str) -> Officer | None:
    return OFFICERS.get(username) if passwords.verify_password(HASH, password).ok else None


GUARD = RoleGuard[CityRole](("police", "district"), lambda request: city_state(request).sessions)
Anyone = Annotated[Session[CityRole], Depends(GUARD.session)]
Police = Annotated[Session[CityRole], Depends(GUARD.require("police"))]
PolicePage = Annotated[Session[CityRole], Depends(GUARD.page_role("police"))]
PageUser = Annotated[Session[CityRole], Depends(GUARD.page_session)]


Staff = Annotated[Session[CityRole], Depends(GUARD.require("police", "district"))]


def staff_name(user: Staff) -> str:
    """A dependency of its own that needs a role: the route table still sees the role."""
    return user.username


def city_app() -> FastAPI:
    app = FastAPI()
    app.state.city = CityState()
    app.add_middleware(SecurityHeaders, styles=(STYLESHEET,), tls=False)
    fleet = APIRouter(prefix="/api/v1/fleet", dependencies=[Depends(GUARD.require("district"))])

    @fleet.get("")
    def gateways(_name: Annotated[str, Depends(staff_name)]) -> list[str]:
        return []

    @app.post("/api/v1/login")
    def login(request: Request, response: Response, username: str) -> dict[str, str]:
        try:
            session = log_in(request, response, city_state(request), verify, username, PASSWORD,
                             one_time_ok=True)  # fmt: skip
        except LoginRefused as refused:
            return {"refused": refused.key}
        return {"csrf_token": session.csrf_token}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/logout", status_code=204)
    def logout(request: Request, _user: Anyone) -> Response:
        response = Response(status_code=204)
        end_session(request, response, city_state(request))
        return response

    @app.post("/api/v1/holds")
    def hold(user: Police) -> dict[str, str]:
        return {"by": user.username}

    @app.get("/police")
    def police_page(user: PolicePage) -> PlainTextResponse:
        return PlainTextResponse(user.username)

    @app.post("/password")
    def renew(user: PageUser, csrf_token: CsrfField) -> PlainTextResponse:
        check_csrf(user, csrf_token)
        return PlainTextResponse("renewed")

    app.include_router(fleet)

    GUARD.handle_page_refusals(app, lambda _request, code: PlainTextResponse(code, 403))
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(city_app(), base_url="http://127.0.0.1") as test_client:
        yield test_client


def log_in_as(client: TestClient, username: str) -> str:
    client.cookies.clear()
    answer = client.post("/api/v1/login", params={"username": username}).json()
    token: str = answer["csrf_token"]
    return token


def test_the_route_table_is_read_from_the_role_dependencies() -> None:
    assert route_roles(city_app()) == {
        ("POST", "/api/v1/login"): None,
        ("GET", "/healthz"): None,
        ("POST", "/api/v1/logout"): {"police", "district"},
        ("POST", "/api/v1/holds"): {"police"},
        ("GET", "/police"): {"police"},
        ("POST", "/password"): {"police", "district"},
        # The router's own dependency narrows the route's: only district staff get in.
        ("GET", "/api/v1/fleet"): {"district"},
    }


def test_the_api_refuses_strangers_other_roles_and_forged_requests(client: TestClient) -> None:
    assert client.post("/api/v1/login", params={"username": "wu"}).json() == {
        "refused": "login.failed"
    }
    assert client.post("/api/v1/holds").status_code == 401
    csrf = log_in_as(client, "zhao")
    assert client.get("/api/v1/fleet").status_code == 200
    refused = client.post("/api/v1/holds", headers={CSRF_HEADER: csrf})
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "this page is not for your role",
    )
    csrf = log_in_as(client, "li")
    assert client.get("/api/v1/fleet").status_code == 403
    forged = client.post("/api/v1/holds", headers={CSRF_HEADER: csrf[:-1]})
    assert (forged.status_code, forged.json()["detail"]) == (
        403,
        "missing or wrong X-CSRF-Token header",
    )
    assert client.post("/api/v1/holds", headers={CSRF_HEADER: csrf}).json() == {"by": "li"}


def test_a_one_time_password_reaches_only_logout_and_the_password_page(client: TestClient,
                                                                        ) -> None:  # fmt: skip
    csrf = log_in_as(client, "new")
    refused = client.post("/api/v1/holds", headers={CSRF_HEADER: csrf})
    assert refused.json()["detail"] == "choose a new password first (/password)"
    page = client.get("/police", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/password")
    assert client.post("/password", data={"csrf_token": "x"}).text == "error.csrf"
    assert client.post("/password", data={"csrf_token": csrf}).text == "renewed"
    assert client.post("/api/v1/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    gone = client.get("/police", follow_redirects=False)
    assert (gone.status_code, gone.headers["location"]) == (303, "/login")


def test_pages_send_strangers_to_login_and_other_roles_away(client: TestClient) -> None:
    assert client.get("/police", follow_redirects=False).headers["location"] == "/login"
    log_in_as(client, "zhao")
    assert (client.get("/police").status_code, client.get("/police").text) == (
        403,
        "error.forbidden",
    )
    log_in_as(client, "li")
    assert client.get("/police").text == "li"


def test_every_response_allows_only_the_named_stylesheet_inline(client: TestClient) -> None:
    csp = client.get("/healthz").headers["Content-Security-Policy"]
    assert f"style-src 'self' '{style_hash(STYLESHEET)}';" in csp
    assert "unsafe-inline" not in csp
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


def test_a_guard_refuses_roles_the_application_does_not_have() -> None:
    with pytest.raises(ValueError, match="polise"):
        GUARD.require("polise")  # type: ignore[arg-type]
