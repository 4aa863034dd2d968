"""What every route needs: the running gateway, the session, the role, the CSRF check.

Roles are dependencies, never `if`s in a route body:

    @router.get("/tenants")
    def list_tenants(user: BuildingHead, store: StoreDep) -> list[TenantOut]: ...

A route without a login dependency is public (`/healthz`, `/metrics`, `POST /login`);
`tests/web/test_routes.py` checks every route against the table of who may call it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request

from gateway.camera.snapshots import SnapshotStore
from gateway.store import SNAPSHOT_TYPES, JournalEntry, Role, Store
from gateway.web.sessions import LoginThrottle, Session, Sessions, SetupCode

COOKIE = "session"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WebGateway(Protocol):
    """The running gateway as the web layer sees it."""

    store: Store | None
    snapshots: SnapshotStore

    def health(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class WebState:
    """Shared by every request: the gateway, its sessions, the login throttle."""

    gateway: WebGateway
    sessions: Sessions
    throttle: LoginThrottle
    secure_cookies: bool  # set under TLS
    setup_code: SetupCode = field(default_factory=SetupCode)


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def store(state: Annotated[WebState, Depends(web_state)]) -> Store:
    """The gateway's store; 503 while the gateway is still starting or already stopping."""
    opened = state.gateway.store
    if opened is None:
        raise HTTPException(503, "the gateway is starting; try again in a moment")
    return opened


def entry_with_snapshot(store: Store, event_id: str) -> JournalEntry:
    """The journaled entry `event_id` if it has a snapshot; 404 otherwise."""
    entry = store.find_event(event_id) if len(event_id) == 36 else None
    if entry is None or entry.body["type"] not in SNAPSHOT_TYPES or not entry.body.get("snapshot"):
        raise HTTPException(404, "no snapshot for this entry")
    return entry


def snapshot_bytes(state: WebState, entry: JournalEntry) -> bytes | None:
    """The entry's JPEG, or None when it is no longer kept."""
    return state.gateway.snapshots.read(entry.event_id, datetime.fromisoformat(entry.body["ts"]))


def snapshot_intact(entry: JournalEntry, data: bytes) -> bool:
    """Whether the file is the one the event recorded (its sha256)."""
    return bool(hashlib.sha256(data).hexdigest() == entry.body["snapshot"]["sha256"])


def remote_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def session(request: Request, state: Annotated[WebState, Depends(web_state)]) -> Session:
    """The caller's live session (401 without one), CSRF checked on state-changing requests."""
    found = state.sessions.get(request.cookies.get(COOKIE))
    if found is None:
        raise HTTPException(401, "not logged in, or the session ended",
                            headers={"WWW-Authenticate": "Cookie"})  # fmt: skip
    if request.method in _UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), found.csrf_token.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header")
    return found


def require(*roles: Role) -> Callable[..., Session]:
    """A dependency that lets only these roles through (403 for the others)."""

    def check(current: Annotated[Session, Depends(session)]) -> Session:
        if current.role not in roles:
            raise HTTPException(403, "this page is not for your role")
        return current

    check.__name__ = f"require_{'_or_'.join(roles)}"
    return check


StateDep = Annotated[WebState, Depends(web_state)]
StoreDep = Annotated[Store, Depends(store)]
AnyUser = Annotated[Session, Depends(session)]
BuildingHead = Annotated[Session, Depends(require("building_head"))]
Police = Annotated[Session, Depends(require("police"))]
Installer = Annotated[Session, Depends(require("installer"))]
HeadOrPolice = Annotated[Session, Depends(require("building_head", "police"))]
