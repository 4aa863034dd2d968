"""The fleet page: every gateway's state, filtered by street and community; a gateway's detail.

For police and district staff. The state comes from each gateway's retained status and its
events (store/fleet.py); a gateway silent past the threshold is flagged, and so is one
offline, with a reader or camera offline, an unsynchronised clock or events queued.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web_security.words import language

from ..search import FilterError
from ..store.fleet import GatewayHealth
from .deps import FleetPage, StateDep, WebState
from .filters import fleet_area
from .i18n import refused
from .pages import error_page, render

router = APIRouter(include_in_schema=False)
# More events than this waiting on a gateway is worth a look: its link or the platform lags.
QUEUE_WORRY = 100


def problems(row: GatewayHealth) -> list[str]:
    """The i18n keys of what needs attention on this gateway (none: it is fine)."""
    found = []
    if row.state != "online":
        found.append("fleet.offline")
    if row.silent and row.state == "online":
        found.append("fleet.silent")
    if row.readers_offline:
        found.append("fleet.readers")
    if row.camera_error:
        found.append("fleet.camera")
    if row.clock_synced is False:
        found.append("fleet.clock")
    if (row.queue_depth or 0) > QUEUE_WORRY:
        found.append("fleet.queue")
    return found


@router.get("/fleet")
def fleet_page(
    request: Request, user: FleetPage, state: StateDep, street: str = "", community: str = ""
) -> Response:
    form = {"street": street[:16], "community": community[:16]}
    try:
        area = fleet_area(street, community, state.primary.sealer)
    except FilterError as exc:
        said = refused(exc.field, exc.code, exc.message, language(request))
        return render(request, "fleet.html", user, status=422, form=form, rows=[], error=said)
    rows = state.fleet(area=area)
    return render(
        request,
        "fleet.html",
        user,
        form=form,
        rows=rows,
        problems=problems,
        minutes=int(state.settings.silent_after // 60),
        online=sum(row.state == "online" for row in rows),
        attention=sum(bool(problems(row)) for row in rows),
    )


@router.get("/fleet/{gateway_id}")
def gateway_page(
    request: Request, gateway_id: str, user: FleetPage, state: StateDep, back: str = ""
) -> Response:
    found = state.fleet(gateway_id=gateway_id[:64])
    if not found:
        return error_page(request, user, 404, "error.not_found")
    return render(
        request,
        "gateway.html",
        user,
        row=found[0],
        problems=problems(found[0]),
        minutes=int(state.settings.silent_after // 60),
        back=_fleet_query(back, state),
    )


def _fleet_query(back: str, state: WebState) -> str:
    """The fleet list's own filters from `back` (a query string), checked: '' when they are
    not a fleet list's, so a link can lead nowhere else."""
    kept = {k: v for k, v in parse_qsl(back[:200]) if k in ("street", "community")}
    try:
        fleet_area(kept.get("street"), kept.get("community"), state.primary.sealer)
    except FilterError:
        return ""
    return urlencode(kept)
