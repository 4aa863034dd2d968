"""Police search across the city: SPEC 8's `GET /api/v1/entries`, its pictures and export.

    from rental_platform.search import FilterError, parse_entry_filter, search_entries

    try:
        entry_filter = parse_entry_filter(request.query_params.multi_items(), store.sealer)
    except FilterError as refused:    # 422 {"error": refused.code, "field": …, "message": …}
        ...
    page = search_entries(store, entry_filter)   # FilterError too: unknown gateway, outside area
    {"entries": page.entries, "next_cursor": page.next_cursor}
    audit.record(..., action="entries.query", purpose=entry_filter.purpose,
                 params=entry_filter.audit_params(), records=len(page.entries))

    picture = entry_picture(store, event_id)      # Picture(jpeg=…) or None → 404
    rows = (csv_row(e) for page in export_pages(store, entry_filter) for e in page.entries)

| module | holds |
|---|---|
| `filters.py` | `parse_entry_filter`, `EntryFilter`, `FilterError`: every filter checked |
| `cursor.py` | the opaque keyset cursor, bound to its search's filters |
| `entries.py` | `search_entries`, `export_pages`: the query, newest first, index-bound |
| `people.py` | tenants' names (and `reveal_id_number`) from sealed `tenant.changed` events |
| `pictures.py` | `entry_picture`: an entry's picture from the snapshot store, checked |
| `export.py` | `CSV_HEADER`, `csv_row`: entries as CSV cells with a Chinese header |

Nothing here writes: `store` may be opened on a hot standby. The audit is `rental_platform.audit`
(on the primary). docs/platform.md, "Police search", has the design and the indexes.
"""

from .cursor import Position
from .entries import EntryPage, entries_sql, export_pages, search_entries
from .export import CSV_HEADER, csv_row
from .filters import LIMIT_MAX, EntryFilter, FilterError, parse_entry_filter
from .people import names_for, reveal_id_number
from .pictures import Picture, entry_picture

__all__ = [
    "CSV_HEADER",
    "LIMIT_MAX",
    "EntryFilter",
    "EntryPage",
    "FilterError",
    "Picture",
    "Position",
    "csv_row",
    "entries_sql",
    "entry_picture",
    "export_pages",
    "names_for",
    "parse_entry_filter",
    "reveal_id_number",
    "search_entries",
]
