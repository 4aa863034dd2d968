"""The picture of an entry, for `GET /api/v1/entries/{event_id}/snapshot`.

    picture = entry_picture(store, event_id)     # Picture(…, jpeg=b"\\xff\\xd8…") or None

The picture is given only when it is the one the entry names: the `snapshots` row that the
gateway's `P/snapshots/{event_id}` made must carry the SHA-256 that the event's `snapshot`
field says, and the bytes read back must hash to it. An event id two entries carry (one was
forged) is refused as ambiguous rather than answered with either's picture.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .filters import FilterError

if TYPE_CHECKING:
    from ..store import Store

_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")  # as the store checks it (messages.py)


@dataclass(frozen=True, slots=True)
class Picture:
    """An entry's picture and what it belongs to."""

    gateway_id: str
    seq: int
    event_id: str
    sha256: str
    jpeg: bytes


def entry_picture(store: Store, event_id: str) -> Picture | None:
    """The entry's picture, or None (no such entry, no picture, or past its retention)."""
    if not _EVENT_ID.fullmatch(event_id):
        raise FilterError("event_id", "event_id", "is not an event id")
    rows = store.db.execute(
        "SELECT gateway_id, seq, snapshot_sha256 FROM events"
        " WHERE event_id = ? AND result IS NOT NULL",
        (event_id,),
    ).fetchall()
    if len(rows) > 1:
        raise FilterError("event_id", "ambiguous", f"{len(rows)} entries carry this id (one"
                          " was forged): search by gateway to tell them apart")  # fmt: skip
    if not rows or rows[0][2] is None:
        return None
    gateway_id, seq, sha256 = rows[0]
    named = store.db.execute(
        "SELECT sha256 FROM snapshots WHERE gateway_id = ? AND event_id = ?",
        (gateway_id, event_id),
    ).fetchone()
    if named is None or named[0] != sha256:
        return None
    jpeg = store.snapshots.get(sha256)
    if jpeg is None or hashlib.sha256(jpeg).hexdigest() != sha256:
        return None
    return Picture(gateway_id, int(seq), event_id, sha256, jpeg)
