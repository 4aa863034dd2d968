"""The police audit log: append-only and hash-chained.

Every police query, export, picture viewed and ID number revealed is a row: who, when, from
where, why (the case number), with which parameters, and how many records it returned. Each
row's `hash` is a keyed MAC (HMAC-SHA256 under a key derived from `secret.key`) over the
previous row's hash and the row itself, so a row changed, removed or inserted anywhere breaks
every hash after it, and a copy of the database alone is not enough to forge a new chain.
Triggers refuse UPDATE and DELETE.

    store.audit(username="li.police", role="police", remote="10.0.0.7", action="entries.query",
                purpose="案件 2026-118", params={"room": "301"}, records=12)
    store.verify_audit()      # AuditCheck(ok=True, rows=1, first_bad=None)

An export is two rows, since its count is known only at the end and a row cannot be changed:
`export.started` (the query and the purpose, 0 records) committed before the first row is
sent, then `export.finished` or `export.cut` with `params={"start": <its seq>}` and the rows
sent. A start with no end (the process was killed, the power cut, or it still runs) reads as
`export_state="unfinished"`, and the chain still verifies: every row was whole when written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from web_security.purpose import PurposeError
from web_security.purpose import clean_purpose as clean

from .crypto import Keys
from .errors import ValidationError

GENESIS = b"\0" * 32
# What police actions are called in the log. (Rows written before exports had two rows say
# `entries.export`, with the count; nothing writes it any more.)
ACTIONS = frozenset({
    "entries.query", "export.started", "export.finished", "export.cut", "snapshot.view",
    "snapshot.hold", "id_number.reveal", "audit.view",
})  # fmt: skip
# Actions done for a case: the row must say which.
NEEDS_PURPOSE = frozenset({"entries.query", "export.started", "snapshot.hold", "id_number.reveal"})
# The rows that end an export: `params={"start": seq}` names the export.started row they close.
EXPORT_ENDS = frozenset({"export.finished", "export.cut"})
_MAX_PARAMS = 4096

ExportState = Literal["finished", "cut", "unfinished"]
_STATE: dict[str, ExportState] = {"export.finished": "finished", "export.cut": "cut"}



@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit log."""

    seq: int
    ts: str
    username: str
    role: str
    remote: str | None
    action: str
    purpose: str | None
    params: dict[str, Any]
    records: int
    hash: str  # hex
    # For an export.started row, how the download ended: finished, cut (the client went away
    # or the stream failed) or unfinished (no end row: killed, or still running). Else None.
    export_state: ExportState | None = None


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The outcome of walking the chain: `first_bad` is the seq where it breaks."""

    ok: bool
    rows: int
    first_bad: int | None = None


def clean_purpose(text: str) -> str:
    """The purpose (case number or reason) as stored: trimmed, and refused when it shows nothing
    (web_security.purpose, the platform's rule too).

    >>> clean_purpose(" \u3000案件 2026-118\u200b ")
    '案件 2026-118'
    """
    try:
        return clean(text)
    except PurposeError as refused:
        raise ValidationError("purpose", refused.message) from None


def _mac(keys: Keys, previous: bytes, fields: tuple[Any, ...]) -> bytes:
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return keys.lookup_hash("audit-chain", previous.hex() + text)


def _fields(seq: int, ts: str, username: str, role: str, remote: str | None, action: str,
            purpose: str | None, params: str, records: int) -> tuple[Any, ...]:  # fmt: skip
    return (seq, ts, username, role, remote, action, purpose, params, records)


def append(
    conn: sqlite3.Connection,
    keys: Keys,
    *,
    ts: str,
    username: str,
    role: str,
    remote: str | None,
    action: str,
    purpose: str | None,
    params: dict[str, Any],
    records: int,
) -> AuditRecord:
    """Add a row at the end of the chain (in the caller's write transaction)."""
    if action not in ACTIONS:
        raise ValidationError("action", f"unknown audit action {action!r}")
    if records < 0:
        raise ValidationError("records", "must not be negative")
    if purpose is not None:
        purpose = clean_purpose(purpose)
    elif action in NEEDS_PURPOSE:
        raise ValidationError("purpose", f"is required for {action}")
    if action in EXPORT_ENDS:
        _check_export_end(conn, params)
    params_text = json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if len(params_text) > _MAX_PARAMS:
        raise ValidationError("params", f"are longer than {_MAX_PARAMS} characters")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, previous = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    fields = _fields(seq, ts, username, role, remote, action, purpose, params_text, records)
    digest = _mac(keys, previous, fields)
    conn.execute(
        "INSERT INTO audit (seq, ts, username, role, remote, action, purpose, params, records,"
        " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (*fields, previous, digest),
    )
    return AuditRecord(seq, ts, username, role, remote, action, purpose, params, records,
                       digest.hex(), _export_state(action, None))  # fmt: skip


def _check_export_end(conn: sqlite3.Connection, params: dict[str, Any]) -> None:
    start = params.get("start")
    if set(params) != {"start"} or type(start) is not int:
        raise ValidationError("params", 'an export\'s end names its start only: {"start": seq}')
    row = conn.execute("SELECT action FROM audit WHERE seq = ?", (start,)).fetchone()
    if row is None or row[0] != "export.started":
        raise ValidationError("params", f"row {start} is not the start of an export")
    if _export_ends(conn, [start]):
        raise ValidationError("params", f"the export of row {start} has ended already")


def _export_ends(conn: sqlite3.Connection, starts: Iterable[int]) -> dict[int, str]:
    """{start seq: the action of its end row} for those of `starts` that have one."""
    wanted = set(starts)
    if not wanted:
        return {}
    # An end row always comes after its start: only the rows since the oldest start are read.
    rows = conn.execute(
        "SELECT json_extract(params, '$.start'), action FROM audit"
        " WHERE seq > ? AND action IN ('export.finished', 'export.cut')",
        (min(wanted),),
    )
    return {start: action for start, action in rows if start in wanted}


def page(conn: sqlite3.Connection, *, before: int | None, limit: int) -> list[AuditRecord]:
    """Rows newest first, below seq `before` (None: from the newest)."""
    rows = conn.execute(
        "SELECT seq, ts, username, role, remote, action, purpose, params, records, hash"
        " FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
        (before if before is not None else 2**62, limit),
    ).fetchall()
    ends = _export_ends(conn, (r[0] for r in rows if r[5] == "export.started"))
    return [
        AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9].hex(),
                    _export_state(r[5], ends.get(r[0])))
        for r in rows
    ]


def _export_state(action: str, end: str | None) -> ExportState | None:
    """How an export.started row's download ended, given its end row's action (None: none)."""
    if action != "export.started":
        return None
    return _STATE.get(end or "", "unfinished")


def verify(conn: sqlite3.Connection, keys: Keys) -> AuditCheck:
    """Walk the whole chain from the first row; report the first row that does not verify."""
    previous = GENESIS
    expected_seq = 1
    rows = 0
    cursor = conn.execute(
        "SELECT seq, ts, username, role, remote, action, purpose, params, records, prev_hash,"
        " hash FROM audit ORDER BY seq"
    )
    for row in cursor:
        rows += 1
        seq = row[0]
        fields = _fields(*row[:9])
        if (
            seq != expected_seq
            or not Keys.same(row[9], previous)
            or not Keys.same(row[10], _mac(keys, previous, fields))
        ):
            return AuditCheck(False, rows, seq)
        previous = row[10]
        expected_seq = seq + 1
    return AuditCheck(True, rows)
