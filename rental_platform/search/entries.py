"""Police search over every building's entries: one page at a time, newest first.

    page = search_entries(store, entry_filter)
    page.entries        # [{…the event's JSON (SPEC 6)…, "building": "440305001002-0042",
                        #   "name": "张三" or None}]
    page.next_cursor    # None on the last page, else the `cursor` for the next
    for page in export_pages(store, entry_filter): ...     # every page, for the CSV export

Entries are `access.granted` and `access.denied` events (`result` set). Every filter kind is
bound by one index ending in `ts_epoch, result` (schema.py, version 2): an area by its prefix
of the building code, a gateway, a card, a room within its building, or the time alone; an ID
number by the tenants whose `tenant.changed` carried it (their keyed hash), each read through
the tenant index. So a page costs the rows it returns, however large the city's history.

`store` may be a connection to a hot standby (`--search-db`): nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import cursor
from .filters import EntryFilter, FilterError
from .people import names_for

if TYPE_CHECKING:
    from ..store import Store

_COLUMNS = (
    "gateway_id, seq, ts_epoch, body, sealed, district, street, community, building, tenant_id"
)
_ORDER = " ORDER BY ts_epoch DESC, gateway_id DESC, seq DESC"


@dataclass(frozen=True, slots=True)
class EntryPage:
    """One page of a search: the entries (SPEC 8's JSON), and the cursor of the next page."""

    entries: list[dict[str, Any]]
    next_cursor: str | None


def search_entries(store: Store, entry_filter: EntryFilter) -> EntryPage:
    """The page of entries `entry_filter` asks for (FilterError for a gateway that is not
    known, or not within the area also asked)."""
    _check_gateway(store, entry_filter)
    query = entries_sql(store, entry_filter)
    rows = [] if query is None else store.db.execute(*query).fetchall()
    more = len(rows) > entry_filter.limit  # one more than the page was read to tell this
    rows = rows[: entry_filter.limit]
    names = names_for(store, {(r[0], r[9]) for r in rows if r[9] is not None})
    entries = [_entry(store, row, names) for row in rows]
    after = None
    if more:
        last = rows[-1]
        after = cursor.encode(
            store.sealer,
            entry_filter.fingerprint(),
            cursor.Position(float(last[2]), str(last[0]), int(last[1])),
        )
    return EntryPage(entries, after)


def entries_sql(store: Store, entry_filter: EntryFilter) -> tuple[str, list[Any]] | None:
    """The SELECT of a page (one row more than the limit) and its parameters; None when an
    ID number searched belongs to no tenant known. For EXPLAIN in tests and benchmarks too."""
    where, params = _conditions(entry_filter)
    take = entry_filter.limit + 1
    if entry_filter.id_hash is None:
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)}{_ORDER} LIMIT ?"
        return sql, [*params, take]
    # The tenants registered with this ID number, each through the tenant index: one
    # newest-first range per (gateway, tenant), merged.
    tenants = store.db.execute(
        "SELECT DISTINCT gateway_id, tenant_id FROM events WHERE id_hash = ?"
        " AND type = 'tenant.changed' AND tenant_id IS NOT NULL ORDER BY 1, 2",
        (entry_filter.id_hash,),
    ).fetchall()
    if not tenants:
        return None
    one = (
        f"SELECT * FROM (SELECT {_COLUMNS} FROM events WHERE tenant_id = ? AND gateway_id = ?"
        f" AND {' AND '.join(where)}{_ORDER} LIMIT ?) AS t"
    )
    values: list[Any] = []
    for gateway_id, tenant_id in tenants:
        values.extend((tenant_id, gateway_id, *params, take))
    return " UNION ALL ".join(one for _ in tenants) + _ORDER + " LIMIT ?", [*values, take]


def export_pages(
    store: Store, entry_filter: EntryFilter, page_size: int = 500
) -> Iterator[EntryPage]:
    """Every page of the search from `entry_filter`'s position on, `page_size` entries each."""
    entry_filter = replace(entry_filter, limit=page_size)
    while True:
        page = search_entries(store, entry_filter)
        yield page
        if page.next_cursor is None:
            return
        position = cursor.decode(store.sealer, entry_filter.fingerprint(), page.next_cursor)
        entry_filter = replace(entry_filter, after=position)


def _check_gateway(store: Store, entry_filter: EntryFilter) -> None:
    gateway_id = entry_filter.gateway_id
    if gateway_id is None:
        return
    row = store.db.execute(
        "SELECT building_code FROM gateways WHERE gateway_id = ?", (gateway_id,)
    ).fetchone()
    if row is None:
        raise FilterError("gateway_id", "unknown_gateway", f"no gateway {gateway_id} has sent"
                          " anything to the platform")  # fmt: skip
    prefix = entry_filter.building or entry_filter.community or entry_filter.street
    if prefix and row[0] and not row[0].startswith(prefix):
        raise FilterError("gateway_id", "outside_area", f"{gateway_id} is in building"
                          f" {row[0]}, outside the area {prefix} also given")  # fmt: skip


def _conditions(f: EntryFilter) -> tuple[list[str], list[Any]]:
    where = ["result IS NOT NULL"]  # entries only, as every search index is
    params: list[Any] = []
    given: list[tuple[str, object]] = list(
        zip(("district", "street", "community", "building"), f.area, strict=False)
    )
    given += [("gateway_id", f.gateway_id), ("card", f.card), ("room", f.room)]
    given += [("result", f.result)]
    for column, value in given:
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if f.since is not None:
        where.append("ts_epoch >= ?")
        params.append(f.since.timestamp())
    if f.until is not None:
        where.append("ts_epoch < ?")
        params.append(f.until.timestamp())
    if f.after is not None:
        where.append(
            "ts_epoch <= ? AND (ts_epoch < ? OR gateway_id < ? OR (gateway_id = ? AND seq < ?))"
        )
        at = f.after
        params.extend((at.ts_epoch, at.ts_epoch, at.gateway_id, at.gateway_id, at.seq))
    return where, params


def _entry(store: Store, row: Any, names: dict[tuple[str, str], str]) -> dict[str, Any]:
    gateway_id, seq, _ts, body, sealed, district, street, community, building, tenant_id = row
    if body is None:  # never for an entry today; sealed rows open the same way
        body = store.sealer.open(bytes(sealed), f"events\0{gateway_id}\0{seq}").decode()
    entry: dict[str, Any] = json.loads(body)
    entry["building"] = (
        f"{district}{street}{community}-{building}" if district and building else None
    )
    entry["name"] = names.get((gateway_id, tenant_id)) if tenant_id else None
    return entry
