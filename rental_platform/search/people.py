"""Who a tenant is, from the sealed `tenant.changed` events: names for display, a reveal.

    names_for(store, {("gw-440305-0042", tenant_id)})   # {(gateway, tenant): "张三"}
    reveal_id_number(store, "gw-440305-0042", tenant_id)  # the full number, or None

A tenant's identity reaches the platform only in `tenant.changed` (SPEC 6), sealed whole in
the store. A name is opened only to be shown with that tenant's entries, and only from the
same gateway's events: a tenant id is looked up per gateway, so no gateway can name another's
tenants by sending a `tenant.changed` with their id. The newest change that carries a name
wins. The full ID number is opened by `reveal_id_number` alone, which the caller audits first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store


def _changes(
    store: Store, tenants: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest `tenant` record with a name per (gateway, tenant), opened."""
    pairs = sorted(set(tenants))
    if not pairs:
        return {}
    db = store.db
    source, params = db.rows_of(pairs, ["text", "text"])
    rows = db.execute(
        "SELECT gateway_id, tenant_id, seq, sealed FROM events WHERE type = 'tenant.changed'"
        f" AND (gateway_id, tenant_id) IN (SELECT c0, c1 FROM ({source}) AS p)"
        " ORDER BY ts_epoch DESC, seq DESC",
        params,
    ).fetchall()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for gateway_id, tenant_id, seq, sealed in rows:
        key = (gateway_id, tenant_id)
        if key in found or sealed is None:
            continue
        event = json.loads(store.sealer.open(bytes(sealed), f"events\0{gateway_id}\0{seq}"))
        tenant = event.get("tenant")
        if isinstance(tenant, dict) and isinstance(tenant.get("name"), str) and tenant["name"]:
            found[key] = tenant
    return found


def names_for(store: Store, tenants: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The name of each (gateway_id, tenant_id) known from its gateway's `tenant.changed`."""
    return {key: str(tenant["name"]) for key, tenant in _changes(store, tenants).items()}


def reveal_id_number(store: Store, gateway_id: str, tenant_id: str) -> str | None:
    """The tenant's full ID number from its gateway's newest `tenant.changed`, or None.

    Audit the reveal (`id_number.reveal`) before showing it; never log or store the result.
    """
    tenant = _changes(store, [(gateway_id, tenant_id)]).get((gateway_id, tenant_id))
    number = None if tenant is None else tenant.get("id_number")
    return number if isinstance(number, str) else None
