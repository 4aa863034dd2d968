"""The police audit: every search, picture view, export and reveal, in a hash chain whose head
is anchored outside the database.

    log = AuditLog(Database.open(primary_url), store.sealer)
    log.record(username="li.police", role="police", remote="10.0.0.7", action="entries.query",
               purpose=entry_filter.purpose, params=entry_filter.audit_params(), records=12)
    anchors = AnchorFile(Path("/mnt/audit-anchors/city.jsonl"))    # on another host
    log.anchor(signing_key, anchors)       # periodically: the head, signed, appended there
    verify(db, store.sealer, anchors.read(), public_key)   # AuditCheck(ok=True, rows=…)

Three locks, each against someone the others do not stop (docs/platform.md, "The audit"):

- Each row's `mac` is HMAC-SHA256 under the store key's lookup key (which the platform's hosts
  hold and the database does not) over the previous row's `mac` and the row itself. Whoever
  holds only the database cannot change, remove or insert a row, nor rebuild the chain, without
  every later `mac` failing to verify.
- A chain cut short at its end still verifies row by row. So the platform signs the head
  (`seq`, `mac`) with its Ed25519 command key and appends it to a place the database's
  administrator cannot write (`AnchorFile` on another host, append-only): a head missing from
  the chain, or different in it, shows rows removed or rewritten before it, even by someone
  holding the store key but not the signing key.
- Rows are written in the caller's request before its results are shown: a search whose audit
  row cannot be written is not answered.

No plaintext ID number ever enters a row: `record` refuses params or a purpose holding one.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .search.filters import FilterError, clean_purpose, refuse_id_numbers
from .store import Database
from .store.sealing import Sealer

GENESIS = bytes(32)
AUDIT_LOCK = 0x52_50_41_55_44  # "RPAUD": one row appended at a time across instances
ACTIONS = frozenset({
    "entries.query", "export.started", "export.finished", "export.cut", "snapshot.view",
    "id_number.reveal", "audit.view",
})  # fmt: skip
NEEDS_PURPOSE = frozenset({"entries.query", "export.started", "id_number.reveal"})
EXPORT_ENDS = frozenset({"export.finished", "export.cut"})
MAX_PARAMS = 4096
ANCHOR_DOMAIN = b"rental-platform/audit-head/v1\0"  # never a command's signed bytes
# Written out in each statement: every value goes in as a parameter.
_SELECT = "SELECT seq, at, username, role, remote, action, purpose, params, records, mac FROM audit"
_WALK = 5000  # rows read per query while verifying


class AuditError(Exception):
    """An audit row refused, or a chain that went backwards since its last anchor."""


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit."""

    seq: int
    at: float
    username: str
    role: str
    remote: str | None
    action: str
    purpose: str | None
    params: dict[str, Any]
    records: int
    mac: str  # hex


@dataclass(frozen=True, slots=True)
class Anchor:
    """A signed head of the chain: every row up to `seq` as it was when signed."""

    seq: int
    mac: str  # hex of row `seq`'s mac
    at: float
    signature: str  # base64 Ed25519 over ANCHOR_DOMAIN + payload

    def payload(self) -> bytes:
        text = json.dumps({"seq": self.seq, "mac": self.mac, "at": self.at}, sort_keys=True)
        return text.encode()

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature), ANCHOR_DOMAIN + self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True


class AnchorSink(Protocol):
    """An append-only place outside the database for signed heads."""

    def append(self, anchor: Anchor) -> None: ...

    def read(self) -> list[Anchor]: ...


class AnchorFile:
    """Signed heads as JSON lines appended to a file (fsynced), for a host the database's
    administrator has no access to: an NFS export of another machine, a file with `chattr +a`
    there. A torn last line (a crash while appending) is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, anchor: Anchor) -> None:
        line = json.dumps({"seq": anchor.seq, "mac": anchor.mac, "at": anchor.at,
                           "sig": anchor.signature}, sort_keys=True) + "\n"  # fmt: skip
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[Anchor]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        anchors = []
        for number, line in enumerate(lines, 1):
            try:
                item = json.loads(line)
                anchors.append(Anchor(int(item["seq"]), str(item["mac"]), float(item["at"]),
                                      str(item["sig"])))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    break  # torn by a crash while appending
                raise AuditError(f"{self.path}:{number}: not an anchor") from None
        return anchors


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """The outcome of `verify`: `first_bad` is the seq where the chain breaks, `reason` why."""

    ok: bool
    rows: int
    anchored: int = 0  # the highest seq an anchor vouches for
    first_bad: int | None = None
    reason: str | None = None


def chain_mac(sealer: Sealer, previous: bytes, fields: Sequence[Any]) -> bytes:
    """A row's mac: keyed by the store key's lookup key, over the previous mac and the row."""
    text = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
    return sealer.mac("audit-chain", previous + text.encode())


class AuditLog:
    """Appending to and reading the audit (on the primary), from any thread."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        self._lock = threading.Lock()

    def record(self, *, username: str, role: str, remote: str | None, action: str,
               purpose: str | None, params: dict[str, Any], records: int,
               at: float | None = None) -> AuditRow:  # fmt: skip
        """Append a row and commit it; AuditError (or FilterError for the purpose) if refused."""
        if action not in ACTIONS:
            raise AuditError(f"unknown audit action {action!r}")
        if records < 0 or not username or not role:
            raise AuditError("an audit row needs its user, role and a count of records")
        if purpose is not None:
            purpose = clean_purpose(purpose)  # refuses an ID number in it too
        elif action in NEEDS_PURPOSE:
            raise FilterError("purpose", "purpose_required", f"is required for {action}")
        text = json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        refuse_id_numbers(text, "params")
        if len(text) > MAX_PARAMS:
            raise AuditError(f"audit params longer than {MAX_PARAMS} characters")
        when = time.time() if at is None else at
        with self._lock, self.db.transaction():
            if self.db.postgres:
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (AUDIT_LOCK,))
            if action in EXPORT_ENDS:
                self._check_export_end(params)
            last = self.db.execute(
                "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, previous = (1, GENESIS) if last is None else (int(last[0]) + 1, bytes(last[1]))
            fields = (seq, when, username, role, remote, action, purpose, text, records)
            mac = chain_mac(self.sealer, previous, fields)
            self.db.execute(
                "INSERT INTO audit (seq, at, username, role, remote, action, purpose, params,"
                " records, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, mac),
            )
        return AuditRow(seq, when, username, role, remote, action, purpose, params, records,
                        mac.hex())  # fmt: skip

    def _check_export_end(self, params: dict[str, Any]) -> None:
        start = params.get("start")
        if set(params) != {"start"} or type(start) is not int:
            raise AuditError('an export\'s end names its start only: {"start": seq}')
        row = self.db.execute("SELECT action FROM audit WHERE seq = ?", (start,)).fetchone()
        if row is None or row[0] != "export.started":
            raise AuditError(f"row {start} is not the start of an export")

    def page(self, *, before: int | None = None, limit: int = 100) -> list[AuditRow]:
        """Rows newest first, below seq `before` (None: from the newest)."""
        with self._lock:
            rows = self.db.execute(
                _SELECT + " WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (2**62 if before is None else before, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def anchor(self, signing_key: Ed25519PrivateKey, sink: AnchorSink) -> Anchor | None:
        """Sign the head and append it to `sink` (None when nothing was added since the last
        anchor). AuditError if the chain no longer holds the last anchored head: rows were
        removed or rewritten, and signing the new head would vouch for that."""
        with self._lock:
            head = self.db.execute(
                "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            anchors = sink.read()
            last = anchors[-1] if anchors else None
            if last is not None:
                row = self.db.execute("SELECT mac FROM audit WHERE seq = ?", (last.seq,)).fetchone()
                if row is None or bytes(row[0]).hex() != last.mac:
                    raise AuditError(
                        f"the audit no longer holds row {last.seq} as anchored:"
                        " rows were removed or rewritten (run the verify)"
                    )
            if head is None or (last is not None and int(head[0]) == last.seq):
                return None
            unsigned = Anchor(int(head[0]), bytes(head[1]).hex(), time.time(), "")
            signature = signing_key.sign(ANCHOR_DOMAIN + unsigned.payload())
            anchor = Anchor(unsigned.seq, unsigned.mac, unsigned.at,
                            base64.b64encode(signature).decode())  # fmt: skip
            sink.append(anchor)
        return anchor


def _row(r: Sequence[Any]) -> AuditRow:
    return AuditRow(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], json.loads(r[7]),
                    int(r[8]), bytes(r[9]).hex())  # fmt: skip


def _walk(db: Database) -> Iterator[Sequence[Any]]:
    after = 0
    while True:
        rows = db.execute(
            _SELECT + " WHERE seq > ? ORDER BY seq LIMIT ?", (after, _WALK)
        ).fetchall()
        yield from rows
        if len(rows) < _WALK:
            return
        after = int(rows[-1][0])


def verify(
    db: Database, sealer: Sealer, anchors: Sequence[Anchor], public_key: Ed25519PublicKey
) -> AuditCheck:
    """Walk the whole chain and hold it against every signed anchor.

    Finds a row changed (its mac), removed or inserted (the seqs, and every later mac), a chain
    rebuilt without the store key (the first mac), and rows cut from the end or rebuilt with
    the key (an anchor's head missing or different).
    """
    for anchor in anchors:
        if not anchor.signed_by(public_key):
            return AuditCheck(False, 0, first_bad=anchor.seq, reason="an anchor's signature"
                              " does not verify with the platform's public key")  # fmt: skip
    wanted = {a.seq: a.mac for a in anchors}
    previous, expected, rows = GENESIS, 1, 0
    for row in _walk(db):
        rows += 1
        seq, mac = int(row[0]), bytes(row[9])
        fields = (seq, float(row[1]), *row[2:8], int(row[8]))
        if seq != expected:
            return AuditCheck(False, rows, first_bad=expected, reason=f"row {expected} is"
                              f" missing (the next row is {seq})")  # fmt: skip
        if not hmac.compare_digest(mac, chain_mac(sealer, previous, fields)):
            return AuditCheck(False, rows, first_bad=seq, reason=f"row {seq} is not as it was"
                              " written (changed, inserted, or the chain rebuilt)")  # fmt: skip
        if seq in wanted and wanted.pop(seq) != mac.hex():
            return AuditCheck(False, rows, first_bad=seq, reason=f"row {seq} differs from its"
                              " signed anchor: the chain was rebuilt before it")  # fmt: skip
        previous, expected = mac, seq + 1
    if wanted:
        cut = min(wanted)
        return AuditCheck(False, rows, first_bad=expected, reason=f"the chain ends at row"
                          f" {expected - 1} but row {cut} was anchored: rows were removed"
                          " from its end")  # fmt: skip
    return AuditCheck(True, rows, anchored=max((a.seq for a in anchors), default=0))
