"""CSV downloads written a page at a time, so memory stays flat however many rows go out."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence


def csv_chunks(header: Sequence[str], pages: Iterable[Iterable[Sequence[object]]]) -> Iterator[str]:
    """The header (after a BOM: Excel on Chinese Windows then reads UTF-8), then each page."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield "\ufeff" + buffer.getvalue()
    for rows in pages:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(rows)
        yield buffer.getvalue()
