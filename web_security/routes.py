"""Who may call each route of an app, read from its role dependencies: the route-table test.

    assert route_roles(create_app(...)) == {
        ("GET", "/healthz"): None,                          # public: no session needed
        ("GET", "/api/v1/entries"): frozenset({"police"}),
        ...
    }

Every route of the app is there, pages (left out of the OpenAPI document) included, so an
application's test that compares this with its table of who may call what fails for a route
added without a row, and for a route whose dependencies let other roles through than the
table says. A route reached without any `RoleCheck` is public.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_parameterless_sub_dependant
from fastapi.routing import APIRoute

from web_security.roles import RoleCheck

Access = frozenset[str] | None


def route_roles(app: FastAPI) -> dict[tuple[str, str], Access]:
    """(method, path) -> the roles that may call it, or None for a public route."""
    found = {(method, path): _access(dependants)
             for method, path, dependants in _walk(app.router.routes, "", ())}  # fmt: skip
    documented = {(method.upper(), path)
                  for path, item in app.openapi()["paths"].items() for method in item}  # fmt: skip
    missed = documented - set(found)
    if missed:  # FastAPI changed how it keeps included routers: this walk must follow
        raise RuntimeError(f"routes in the OpenAPI document not walked: {sorted(missed)}")
    return found


def _walk(routes: Iterable[Any], prefix: str, outer: tuple[Any, ...],
          ) -> Iterator[tuple[str, str, list[Dependant]]]:  # fmt: skip
    """(method, path, the route's dependants) for every API route, with the dependencies its
    routers were included with (`outer`, FastAPI `Depends` markers)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's lazily included router
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + (getattr(context, "prefix", "") or ""),
                             (*outer, *(getattr(context, "dependencies", None) or ())))  # fmt: skip
        elif isinstance(route, APIRoute):
            dependants = [route.dependant, *(
                get_parameterless_sub_dependant(depends=depends, path=route.path)
                for depends in outer)]  # fmt: skip
            for method in route.methods or ():
                yield method, prefix + route.path, dependants


def _access(dependants: list[Dependant]) -> Access:
    checks = [call for dependant in dependants for call in _calls(dependant)
              if isinstance(call, RoleCheck)]  # fmt: skip
    if not checks:
        return None
    allowed: frozenset[str] = checks[0].roles
    for check in checks[1:]:
        allowed &= check.roles
    return allowed


def _calls(dependant: Dependant) -> Iterator[Any]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)
