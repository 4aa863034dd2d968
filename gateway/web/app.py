"""The FastAPI application: health and metrics now, the building head's and police pages later."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse


class HealthSource(Protocol):
    """What the web layer asks the running gateway about its health."""

    def health(self) -> dict[str, Any]: ...


def create_app(source: HealthSource) -> FastAPI:
    """Build the web application around a running gateway."""
    app = FastAPI(title="Rental building gateway", version="1", docs_url=None, redoc_url=None)

    @app.get("/healthz", summary="Liveness and readiness, without personal data")
    def healthz() -> JSONResponse:
        report = source.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app
