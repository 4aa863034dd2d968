"""CSV downloads written a page at a time, so memory stays flat however many rows go out.

Every export of both applications (the gateway's tenants and entries, the city's police
export) is written here, so two things hold for all:

- A text cell that starts with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`
  (OWASP's advice against CSV injection): a spreadsheet would otherwise run a tenant named
  `=HYPERLINK(...)` as a formula. The cost: a room called "-1F" reads "'-1F".
- `CsvDownload` tells its caller how the download ended, once and as soon as it ends: all rows
  sent, or cut (the client went away, or a page failed) after so many rows. Without it, a
  download cut off was noticed only when the garbage collector got to the generator, tens of
  seconds later, or never if the process died first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Pages = Iterable[Iterable[Sequence[object]]]  # pages of rows of cells


def safe_cell(value: object) -> object:
    """`value`, with a leading `'` when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_pages(header: Sequence[str], pages: Pages) -> Iterator[tuple[str, int]]:
    """(text, rows in it): the header (after a BOM: Excel on Chinese Windows then reads UTF-8),
    then each page, every cell through `safe_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield "\ufeff" + buffer.getvalue(), 0
    for rows in pages:
        buffer.seek(0)
        buffer.truncate()
        count = 0
        for row in rows:
            writer.writerow([safe_cell(value) for value in row])
            count += 1
        yield buffer.getvalue(), count


def csv_chunks(header: Sequence[str], pages: Pages) -> Iterator[str]:
    """The text of `csv_pages`, for a plain StreamingResponse."""
    return (text for text, _ in csv_pages(header, pages))


class CsvDownload(StreamingResponse):
    """A CSV attachment streamed a page at a time; `on_end(rows_sent, finished)` runs once,
    in a worker thread, as soon as the download ends however it ends.

    `rows_sent` counts the rows handed to the server; `finished` is False when the client went
    away or a page failed before the last row.
    """

    def __init__(self, header: Sequence[str], pages: Pages, *, filename: str,
                 on_end: Callable[[int, bool], None]) -> None:  # fmt: skip
        # The body comes from stream_response below, not from StreamingResponse's iterator.
        super().__init__(
            (),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
        self._chunks = csv_pages(header, pages)
        self._on_end = on_end
        self.rows_sent = 0
        self.finished = False

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        # Pages are read in a worker thread; one still being read when the client leaves is
        # abandoned, so a slow read does not hold up the audit of the cut.
        while chunk := await anyio.to_thread.run_sync(_next, self._chunks, abandon_on_cancel=True):
            text, rows = chunk
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
            self.rows_sent += rows
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a cancelled request (the server stopping) still records its end.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._on_end, self.rows_sent, self.finished)


def _next(chunks: Iterator[tuple[str, int]]) -> tuple[str, int] | None:
    return next(chunks, None)
