"""Roles as FastAPI dependencies, for any application's roles; CSRF checks.

Roles are dependencies, never `if`s in a route body. An application makes one `RoleGuard`
over its roles and the place its sessions live, then names the dependencies it uses:

    GUARD = RoleGuard(("police", "district"), lambda request: request.app.state.web.sessions)
    Police = Annotated[Session[Role], Depends(GUARD.require("police"))]

    @router.get("/api/v1/entries")
    def entries(user: Police) -> ...: ...

The API's dependencies (`session`, `require`) answer 401 and 403 themselves and check the
`X-CSRF-Token` header on every state-changing request. The pages' (`page_session`,
`page_role`) raise `LoginRequired`, `PasswordChangeRequired` or `WrongRole`, which the
application turns into a redirect or its own error page; a form carries the CSRF token in a
field, checked with `check_csrf`. `web_security.routes.route_roles` reads these dependencies
back from every route of an app, for its route-table test.
"""

# No `from __future__ import annotations` here: FastAPI reads a callable object's annotations
# as they are, and could not resolve them from strings.

import hmac
from collections.abc import Callable, Iterable
from typing import Annotated, Generic

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from web_security.login import COOKIE, CSRF_HEADER
from web_security.sessions import R, Session, SessionStore

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# The codes a page's refusal carries (another role's page, a forged or expired form); an
# application words each one.
PAGE_REFUSAL_KEYS = ("error.forbidden", "error.csrf")
# A form's hidden `csrf_token` field.
CsrfField = Annotated[str, Form(max_length=128)]


class LoginRequired(Exception):
    """A page asked for without a live session: the application sends the login page."""


class PasswordChangeRequired(Exception):
    """A page asked for with a one-time password: the application sends the password page."""


class WrongRole(Exception):
    """A logged-in user asked for another role's page."""


class BadCsrf(Exception):
    """A form came without this session's token (another site, or an expired page)."""


def check_csrf(session: Session[R], token: str) -> None:
    """Refuse a form post whose hidden token is not this session's (BadCsrf)."""
    if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise BadCsrf


class RoleCheck(Generic[R]):
    """A FastAPI dependency: the caller's session if its role is one of `roles`.

    Made by `RoleGuard`; `roles` stays readable for `route_roles`. `one_time_ok` is the API's:
    a page lets a one-time password through on the guard's `one_time_paths` only.
    """

    def __init__(self, guard: "RoleGuard[R]", roles: Iterable[R], *, page: bool,
                 one_time_ok: bool) -> None:  # fmt: skip
        self.guard = guard
        self.roles = frozenset(roles)
        self.page = page
        self.one_time_ok = one_time_ok
        if not self.roles:
            raise ValueError("a role check needs at least one role")
        unknown = self.roles - guard.roles
        if unknown:
            raise ValueError(f"not roles of this application: {sorted(unknown)}")

    def __call__(self, request: Request) -> Session[R]:
        found = self.guard.sessions(request).get(request.cookies.get(COOKIE))
        if self.page:
            return self._page(request, found)
        return self._api(request, found)

    def _api(self, request: Request, found: Session[R] | None) -> Session[R]:
        if found is None:
            raise HTTPException(401, "not logged in, or the session ended",
                                headers={"WWW-Authenticate": "Cookie"})  # fmt: skip
        if request.method in _UNSAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
                raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
        if found.role not in self.roles:
            raise HTTPException(403, "this page is not for your role")
        if found.must_change and not self.one_time_ok:
            raise HTTPException(403, f"choose a new password first ({self.guard.renew_page})")
        return found

    def _page(self, request: Request, found: Session[R] | None) -> Session[R]:
        if found is None:
            raise LoginRequired
        if found.must_change and request.url.path not in self.guard.one_time_paths:
            raise PasswordChangeRequired
        if found.role not in self.roles:
            raise WrongRole
        return found


class RoleGuard(Generic[R]):
    """The role dependencies of one application: `roles` are all of its roles, `sessions`
    finds its session store from a request.

    A one-time password reaches only the API's `session` (to log out) and, among pages,
    `renew_page` (where a new password is chosen) and `logout_page`.
    """

    def __init__(self, roles: Iterable[R], sessions: Callable[[Request], SessionStore[R]], *,
                 login_page: str = "/login", renew_page: str = "/password",
                 logout_page: str = "/logout") -> None:  # fmt: skip
        self.roles = frozenset(roles)
        self.sessions = sessions
        self.login_page = login_page
        self.renew_page = renew_page
        self.one_time_paths = frozenset({renew_page, logout_page})
        self.session = RoleCheck(self, self.roles, page=False, one_time_ok=True)
        self.page_session = RoleCheck(self, self.roles, page=True, one_time_ok=False)

    def require(self, *roles: R) -> RoleCheck[R]:
        """An API dependency that lets only these roles through: 401 without a session, 403
        for another role, a wrong CSRF header or a one-time password."""
        return RoleCheck(self, roles, page=False, one_time_ok=False)

    def page_role(self, *roles: R) -> RoleCheck[R]:
        """A page dependency that lets only these roles through (LoginRequired,
        PasswordChangeRequired, WrongRole)."""
        return RoleCheck(self, roles, page=True, one_time_ok=False)

    def handle_page_refusals(self, app: FastAPI, refuse: Callable[[Request, str], Response],
                             ) -> None:  # fmt: skip
        """Answer the pages' refusals on `app`: no session, to `login_page`; a one-time
        password, to `renew_page` (303 both); another role's page and a form without this
        session's token, with `refuse(request, code)`, `code` being "error.forbidden" or
        "error.csrf" (`PAGE_REFUSAL_KEYS`), for the application to answer (a 403) in its own
        words."""

        def to_login(_request: Request, _exc: Exception) -> Response:
            return RedirectResponse(self.login_page, status_code=303)

        def to_renew(_request: Request, _exc: Exception) -> Response:
            return RedirectResponse(self.renew_page, status_code=303)

        app.add_exception_handler(LoginRequired, to_login)
        app.add_exception_handler(PasswordChangeRequired, to_renew)
        forbidden, csrf = PAGE_REFUSAL_KEYS
        app.add_exception_handler(WrongRole, lambda request, _exc: refuse(request, forbidden))
        app.add_exception_handler(BadCsrf, lambda request, _exc: refuse(request, csrf))
