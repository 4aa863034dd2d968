"""The city's web application: wiring only.

`create_app(state)` puts the API and the pages together around a `WebState`; nothing here does
I/O at import. Every response carries web_security's headers (a strict CSP naming the one
inline stylesheet by hash; HSTS under HTTPS), and errors become answers in one place: a bad
filter 422 with its code and words, the database away 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from web_security.headers import SecurityHeaders
from web_security.words import api_language, language

from ..search import FilterError
from ..store.database import DATABASE_AWAY, transient
from . import api, api_police, pages, pages_fleet, pages_police
from .deps import GUARD, WebState
from .i18n import refused, word


def create_app(state: WebState) -> FastAPI:
    """Build the application around the web process's state."""
    app = FastAPI(
        title="Rental entry: the city platform", version="1", docs_url=None, redoc_url=None
    )
    app.state.web = state
    app.add_middleware(SecurityHeaders, styles=(pages.STYLESHEET,), tls=state.secure_cookies)
    for module in (api, api_police, pages, pages_fleet, pages_police):
        app.include_router(module.router)
    GUARD.handle_page_refusals(
        app,
        lambda request, code: pages.render(request, "error.html", None, status=403, message=code),
    )

    def answer(request: Request, status: int, body: dict[str, Any], said: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({**body, "said": said}, status_code=status)
        return pages.render(request, "error.html", None, status=status, error_text=said)

    @app.exception_handler(FilterError)
    def _bad_filter(request: Request, exc: FilterError) -> Response:
        said = refused(exc.field, exc.code, exc.message, api_language(request))
        return answer(
            request, 422, {"detail": str(exc), "code": exc.code, "field": exc.field}, said
        )

    @app.exception_handler(RequestValidationError)
    def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        errors = jsonable_encoder(exc.errors())
        fields = sorted({str(e["loc"][-1]) for e in errors if e.get("loc")})
        lang = api_language(request) if request.url.path.startswith("/api/") else language(request)
        said = word("filter.bad_request", lang).format(fields=", ".join(fields))
        return answer(
            request,
            422,
            {"detail": errors, "code": "bad_request", "field": fields[0] if fields else None},
            said,
        )

    def _database_away(request: Request, _exc: Exception) -> Response:
        said = word("error.database", api_language(request))
        return answer(request, 503, {"detail": "the database cannot be reached just now"}, said)

    for away in DATABASE_AWAY:  # what `transient` calls the server away or busy
        app.add_exception_handler(away, _database_away)

    @app.get("/healthz", summary="Whether this web process reaches its databases; no personal data")
    def healthz() -> JSONResponse:
        try:
            for pool in {id(p): p for p in (state.primary, state.reads)}.values():
                pool.run(lambda s: s.db.execute("SELECT 1").fetchone())
        except Exception as exc:
            if not transient(exc):
                raise
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
