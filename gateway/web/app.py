"""The FastAPI application: the JSON API (SPEC 4), health and metrics.

`create_app(gateway)` builds it around a running gateway; nothing here does I/O at import.
Every response carries security headers with a strict Content-Security-Policy (no inline
script, no inline style but the page's own stylesheet by its hash, nothing from elsewhere),
and store errors become HTTP errors in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway.store import Conflict, NotFound, Role, StoreClosed, ValidationError
from gateway.web import api, pages, pages_head, pages_police
from gateway.web.deps import GUARD, WebGateway, WebState
from gateway.web.i18n import Refused, explain, form_refusals
from gateway.web.metrics import metrics_text
from web_security.headers import SecurityHeaders
from web_security.sessions import MemorySessions
from web_security.throttle import LoginThrottle
from web_security.words import api_language, language


def create_app(gateway: WebGateway, *, tls: bool = False) -> FastAPI:
    """Build the web application around a running gateway."""
    app = FastAPI(title="Rental building gateway", version="1", docs_url=None, redoc_url=None)
    app.state.web = WebState(gateway, MemorySessions[Role](), LoginThrottle(), secure_cookies=tls)
    app.add_middleware(SecurityHeaders, styles=(pages.STYLESHEET,), tls=tls)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(pages_head.router)
    app.include_router(pages_police.router)
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    add_listener = getattr(gateway, "add_listener", None)
    if add_listener is not None:
        add_listener(app.state.web.unknown_cards.on_event)

    GUARD.handle_page_refusals(app, lambda request, code: pages.render(
        request, "error.html", None, status=403, message=code))

    def _error(request: Request, status: int, body: dict[str, Any],
               refusals: Sequence[Refused] = ()) -> Response:  # fmt: skip
        """JSON for the API, with `said`: the refusals in the caller's language, each field
        named in it; for a page, the error page in the page's language."""
        if request.url.path.startswith("/api/"):
            if refusals:
                lang = api_language(request)
                body = {**body, "said": "；".join(explain(item, lang) for item in refusals)}
            return JSONResponse(body, status_code=status)
        detail = body["detail"]
        if isinstance(detail, str):
            return pages.render(request, "error.html", None, status=status, error_text=detail)
        lang = language(request)
        text = "；".join(explain(refused, lang) for refused in form_refusals(detail))
        return pages.render(request, "error.html", None, status=status, error_text=text)

    def _invalid_body(where: str, field: str, message: str) -> dict[str, Any]:
        # FastAPI's own 422 shape, so one schema describes every 422 of the API.
        return {"detail": [{"loc": [where, field], "msg": message, "type": "value_error"}]}

    @app.exception_handler(ValidationError)
    def _invalid(request: Request, exc: ValidationError) -> Response:
        # The store checks more than the schema can say (ID number check digits, cursors).
        where = "query" if request.method == "GET" else "body"
        return _error(request, 422, _invalid_body(where, exc.field, exc.message), [exc])

    @app.exception_handler(RequestValidationError)
    def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            errors = jsonable_encoder(exc.errors())
            return _error(request, 422, {"detail": errors}, form_refusals(errors))
        return _error(request, 422, {"detail": [
            {"loc": e.get("loc", ()), "msg": e.get("msg", ""), "type": e.get("type", ""),
             "ctx": e.get("ctx") or {}} for e in exc.errors()]})  # fmt: skip

    @app.exception_handler(OverflowError)
    def _too_large(request: Request, _exc: OverflowError) -> Response:
        # A number past SQLite's 64 bits, in a path or query: bad input, not a server fault.
        return _error(request, 422, _invalid_body("query", "number", "a number is too large"))

    @app.exception_handler(NotFound)
    def _missing(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, {"detail": str(exc)})

    @app.exception_handler(Conflict)
    def _conflict(request: Request, exc: Conflict) -> Response:
        return _error(request, 409, {"detail": str(exc), "field": exc.field}, [exc])

    @app.exception_handler(StoreClosed)
    def _closed(request: Request, _exc: StoreClosed) -> Response:
        return _error(request, 503, {"detail": "the gateway is stopping"})

    @app.get("/healthz", summary="Liveness and readiness, without personal data")
    def healthz() -> JSONResponse:
        report = gateway.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @app.get("/metrics", summary="Prometheus text, without personal data",
             response_class=PlainTextResponse)  # fmt: skip
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics_text(gateway.health(), app.state.web.sessions.count()),
                                 media_type="text/plain; version=0.0.4")  # fmt: skip

    return app
