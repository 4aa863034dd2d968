"""What arrives, and the checks a message passes before anything of it is stored.

Every gateway can publish anything on its own topics, so nothing here trusts a payload: its
size is checked before it is decoded, its encoding before it is parsed, its nesting while it is
parsed, and every field the store puts in a column for its type, length and characters (a NUL
or a lone surrogate cannot be stored in PostgreSQL text, and an index entry past ~2.7 kB fails
the insert: either would fail the whole batch). A failed check is an `Invalid` with a reason,
which becomes a row of `rejects`; it never stops ingest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

# SQLite's INTEGER and PostgreSQL's bigint.
MAX_INT = 2**63 - 1
# A SPEC 6 event is a few hundred bytes; a tenant.changed with many cards a few kB.
MAX_EVENT_BYTES = 64 * 1024
MAX_STATUS_BYTES = 16 * 1024
MAX_REQUEST_BYTES = 16 * 1024  # a page certificate request (PEM)
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024
# The deepest SPEC 6 event is three levels (event → tenant → cards → card).
MAX_DEPTH = 8
MAX_TEXT = 200  # any string kept in a column (door, room, reason, ids)
MAX_CARD = 2**32 - 1  # SPEC 6: 26-bit or 34-bit Wiegand, at most 32 data bits

_ID_TEXT = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class Invalid(Exception):
    """A message the platform refuses to store as what it claims to be; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as the MQTT thread received it."""

    topic: str
    gateway_id: str | None
    leaf: str  # "events", "status", "cmd/result", "snapshots/<event_id>", or the unknown rest
    payload: bytes
    received_at: float
    acked: int | None  # the gateway's `acked` user property (events only)


@dataclass(frozen=True, slots=True)
class Event:
    """An event that passed every check: its JSON and the columns the store keeps of it."""

    gateway_id: str
    seq: int
    event_id: str
    type: str
    ts_epoch: float
    body: dict[str, Any]
    text: str  # the payload as received (UTF-8)
    door: str | None
    card: int | None
    tenant_id: str | None
    room: str | None
    reason: str | None
    result: str | None  # "granted" / "denied" for access.*
    snapshot_sha256: str | None
    id_number: str | None  # tenant.changed only; never stored as it is


def json_object(payload: bytes, limit: int) -> dict[str, Any]:
    """`payload` parsed as one JSON object within the limits; Invalid saying why not."""
    if len(payload) > limit:
        raise Invalid("too_large")
    try:
        # Decoded first: json.loads would also take UTF-16 or UTF-32 bytes, which could not
        # then be stored as the text they claim to be.
        text = payload.decode()
    except UnicodeDecodeError:
        raise Invalid("not_utf8") from None
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise Invalid("too_deep") from None
    except ValueError:  # also a number past int's 4300 digits
        raise Invalid("not_json") from None
    if not isinstance(body, dict):
        raise Invalid("not_object")
    _check_depth(body, 1)
    # Only an escape can put a NUL or a lone surrogate into a parsed string (the raw text is
    # valid UTF-8 without control characters): look closer only when one is there.
    if _SUSPECT_ESCAPE.search(text):
        _check_strings(body)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_depth(value: dict[str, Any] | list[Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Invalid("too_deep")
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, dict | list):
            _check_depth(item, depth + 1)


def _check_strings(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
    elif isinstance(value, str):
        _check_text(value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise Invalid("nul_in_text")
    try:
        text.encode()
    except UnicodeEncodeError:  # an escaped lone surrogate, "\ud800"
        raise Invalid("bad_unicode") from None


def parse_event(message: Incoming) -> Event:
    """The event of an `events` message checked against SPEC 6; Invalid saying why not."""
    body = json_object(message.payload, MAX_EVENT_BYTES)
    # The broker's ACL ties a topic to the identity publishing on it: an event naming
    # another gateway is forged or misrouted, and is never stored as that gateway's.
    if body.get("gateway_id") != message.gateway_id or message.gateway_id is None:
        raise Invalid("gateway_mismatch")
    seq = body.get("seq")
    if type(seq) is not int or not 1 <= seq <= MAX_INT:
        raise Invalid("bad_seq")
    if body.get("schema") != 1:
        raise Invalid("bad_schema")
    event_id = _text(body, "event_id", required=True) or ""
    kind = _text(body, "type", required=True) or ""
    if not _ID_TEXT.fullmatch(event_id):
        raise Invalid("bad_event_id")
    credential = body.get("credential")
    card = None
    if credential is not None:
        if not isinstance(credential, dict):
            raise Invalid("bad_credential")
        card = credential.get("number")
        if card is not None and (type(card) is not int or not 0 <= card <= MAX_CARD):
            raise Invalid("bad_credential")
    snapshot = body.get("snapshot")
    sha = None
    if snapshot is not None:
        sha = snapshot.get("sha256") if isinstance(snapshot, dict) else None
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise Invalid("bad_snapshot")
    id_number = None
    tenant_id = _text(body, "tenant_id")
    room = _text(body, "room")
    if kind == "tenant.changed":
        tenant = body.get("tenant")
        if not isinstance(tenant, dict):
            raise Invalid("bad_tenant")
        id_number = _text(tenant, "id_number")
        tenant_id = tenant_id or _text(tenant, "id")
        room = room or _text(tenant, "room")
    result = kind.removeprefix("access.") if kind in ("access.granted", "access.denied") else None
    return Event(
        gateway_id=message.gateway_id,
        seq=seq,
        event_id=event_id,
        type=kind,
        ts_epoch=_epoch(body.get("ts")),
        body=body,
        text=message.payload.decode(),
        door=_text(body, "door"),
        card=card,
        tenant_id=tenant_id,
        room=room,
        reason=_text(body, "reason"),
        result=result,
        snapshot_sha256=sha,
        id_number=id_number,
    )


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise Invalid(f"bad_{name}")
    return value


def _epoch(value: Any) -> float:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        if moment is None or moment.tzinfo is None or len(value) > 40:
            raise Invalid("bad_ts")
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise Invalid("bad_ts") from None


def check_status(message: Incoming) -> tuple[dict[str, Any], str]:
    """A `status` message: its JSON and its state."""
    body = json_object(message.payload, MAX_STATUS_BYTES)
    state = body.get("state")
    if state not in ("online", "offline"):
        raise Invalid("bad_state")
    return body, state


def check_request(message: Incoming) -> str:
    """A `web/csr` message: a PEM certificate request whose signature verifies. Whether it
    asks for the right name is `certify`'s to say, when it is used."""
    if len(message.payload) > MAX_REQUEST_BYTES:
        raise Invalid("too_large")
    try:
        request = x509.load_pem_x509_csr(message.payload)
        intact = request.is_signature_valid
    except Exception:  # noqa: BLE001 - any undecodable request is the same reject
        raise Invalid("bad_request") from None
    if not intact:
        raise Invalid("bad_request")
    return message.payload.decode("ascii")


def check_result(message: Incoming) -> tuple[int, bool, str | None]:
    """A `cmd/result` message: (counter, ok, error)."""
    body = json_object(message.payload, MAX_STATUS_BYTES)
    counter, ok, error = body.get("counter"), body.get("ok"), body.get("error")
    if type(counter) is not int or not 1 <= counter <= MAX_INT or not isinstance(ok, bool):
        raise Invalid("bad_result")
    return counter, ok, None if error is None else str(error)[:MAX_TEXT]
