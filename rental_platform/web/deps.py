"""What every route needs: the web state, the caller's session and role, the stores.

Roles are dependencies, never `if`s in a route body (`web_security.roles` over the platform's
roles); `tests/platform/web/test_routes.py` checks every route against the table of who may
call it:

    @router.get("/api/v1/gateways")
    def gateways(_user: PoliceOrDistrict, state: StateDep) -> GatewaysOut: ...

Two pools of connections: `primary` (users, sessions, the lockout: every write) and `reads`
(police search and the fleet: `--search-db`, a hot standby, when given; else the primary); and
the audit, on the primary, on a connection of its own (`audit.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request, Response

from web_security import passwords
from web_security.login import remote_address, restart_sessions
from web_security.roles import RoleGuard
from web_security.sessions import Session

from ..audit import AuditRow
from ..search import Picture, entry_picture
from ..search.filters import clean_purpose
from ..store.fleet import GatewayHealth, fleet
from ..store.logins import DbSessions, DbThrottle
from ..store.pool import StorePool
from ..store.users import ROLES, Account, Role, find_user, replace_hash
from .audit import AuditWriter
from .settings import WebSettings


@dataclass(slots=True)
class WebState:
    """Shared by every request of one web process (web_security's `LoginState`)."""

    settings: WebSettings
    primary: StorePool
    reads: StorePool
    sessions: DbSessions
    throttle: DbThrottle
    secure_cookies: bool  # people reach the pages over HTTPS
    zone: ZoneInfo  # the city's
    audit: AuditWriter

    @classmethod
    def over(
        cls, settings: WebSettings, primary: StorePool, reads: StorePool, audit: AuditWriter
    ) -> WebState:
        return cls(
            settings,
            primary,
            reads,
            DbSessions(primary),
            DbThrottle(primary),
            settings.https,
            ZoneInfo(settings.zone),
            audit,
        )

    def verify(self, username: str, password: str) -> Account | None:
        """The account if `password` is theirs (web_security's `Verify`); an unknown name
        costs a hash too, so timing does not tell which names exist."""
        found = self.primary.run(lambda s: find_user(s.db, username))
        stored = found[1] if found else passwords.DUMMY_HASH
        checked = passwords.verify_password(stored, password)
        if found is None or not checked.ok:
            return None
        if checked.new_hash is not None:
            new = checked.new_hash
            self.primary.run(lambda s: replace_hash(s.db, found[0].username, stored, new))
        return found[0]

    def change_password(
        self, request: Request, response: Response, account: Account, new: str
    ) -> Session[Role]:
        """Replace the password (WeakPasswordError, HashingBusy) and end every session of the
        user, the caller's too; the caller goes on in a fresh one set on `response`."""
        passwords.check_policy(new, account.username)
        digest = passwords.hash_password(new)
        self.primary.run(lambda s: replace_hash(s.db, account.username, None, digest))
        fresh = Account(account.username, account.role, must_change=False)
        return restart_sessions(request, response, self, fresh)

    def fleet(
        self, *, area: tuple[str, ...] = (), gateway_id: str | None = None
    ) -> list[GatewayHealth]:
        """Every gateway's health (in an area, or one), from `reads`."""
        return self.reads.run(
            lambda s: fleet(
                s.db,
                area=area,
                gateway_id=gateway_id,
                now=time.time(),
                silent_after=self.settings.silent_after,
            )
        )

    def record(
        self,
        request: Request,
        user: Session[Role],
        action: str,
        purpose: str | None,
        params: dict[str, Any],
        records: int,
    ) -> AuditRow:
        """Append the audit row on the primary, committed before anything is shown."""
        return self.audit.run(
            lambda log: log.record(
                username=user.username,
                role=user.role,
                remote=remote_address(request),
                action=action,
                purpose=purpose,
                params=params,
                records=records,
            )
        )

    def picture(
        self, request: Request, user: Session[Role], event_id: str, purpose: str | None
    ) -> Picture | None:
        """An entry's picture, audited first whether or not it is there; the purpose is
        optional, but when given it must say something (FilterError)."""
        case = clean_purpose(purpose) if purpose else None
        picture = self.reads.run(lambda store: entry_picture(store, event_id[:128]))
        params = {"event_id": event_id[:128]}
        self.record(request, user, "snapshot.view", case, params, 0 if picture is None else 1)
        return picture


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


GUARD = RoleGuard[Role](ROLES, lambda request: web_state(request).sessions)

StateDep = Annotated[WebState, Depends(web_state)]
AnyUser = Annotated[Session[Role], Depends(GUARD.session)]
Police = Annotated[Session[Role], Depends(GUARD.require("police"))]
PoliceOrDistrict = Annotated[Session[Role], Depends(GUARD.require("police", "district"))]
PageUser = Annotated[Session[Role], Depends(GUARD.page_session)]
PolicePage = Annotated[Session[Role], Depends(GUARD.page_role("police"))]
FleetPage = Annotated[Session[Role], Depends(GUARD.page_role("police", "district"))]
