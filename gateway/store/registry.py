"""What the door path asks: who holds this card, is this PIN right, may this visitor code open.

Card and PIN checks are reads on the caller's own connection: one primary-key query, no
writer round trip. Visitor codes change state (their use count), so they go through the writer.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from .cards import pin_hash
from .context import Context, epoch_ms, timestamp
from .crypto import Keys
from .errors import ValidationError
from .models import CardStatus, TenantStatus
from .validation import CARD_NUMBER_MAX, normalize_room

VisitorCodeReason = Literal["unknown", "expired", "used_up", "wrong_door"]

_LOOKUP = (
    "SELECT c.number, c.status, c.tenant_id, t.status, t.room, t.valid_from, t.valid_until,"
    " c.pin_hash FROM cards AS c JOIN tenants AS t ON t.id = c.tenant_id WHERE c.number = ?"
)
_SELECT_CODES = (
    "SELECT id, door, room, valid_until, max_uses, uses, created_by, note, created"
    " FROM visitor_codes"
)
_INSERT_CODE = (
    "INSERT INTO visitor_codes (code_hash, door, room, valid_until, valid_until_ms, max_uses,"
    " created_by, note, created) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (code_hash) DO NOTHING"
    " RETURNING id, door, room, valid_until, max_uses, uses, created_by, note, created"
)


@dataclass(frozen=True, slots=True)
class CardGrant:
    """Everything the access decision needs about a card and its holder."""

    card_number: int
    card_status: CardStatus
    tenant_id: str
    tenant_status: TenantStatus
    room: str
    valid_from: date
    valid_until: date
    pin_hash: bytes | None = field(repr=False)

    @property
    def has_pin(self) -> bool:
        """Whether the card also needs a PIN."""
        return self.pin_hash is not None


def card_lookup(conn: sqlite3.Connection, number: int) -> CardGrant | None:
    """The card and its holder, or None for a card the building does not know."""
    if not 0 <= number <= CARD_NUMBER_MAX:
        return None
    row = conn.execute(_LOOKUP, (number,)).fetchone()
    if row is None:
        return None
    return CardGrant(
        row[0], row[1], row[2], row[3], row[4],
        date.fromisoformat(row[5]), date.fromisoformat(row[6]), row[7],
    )  # fmt: skip


def verify_pin(conn: sqlite3.Connection, keys: Keys, number: int, pin: str) -> bool:
    """True when the card exists, has a PIN, and `pin` is it (constant-time comparison)."""
    row = None
    if 0 <= number <= CARD_NUMBER_MAX:
        row = conn.execute("SELECT pin_hash FROM cards WHERE number = ?", (number,)).fetchone()
    # Hash even when there is nothing to compare with, so the answer takes the same time.
    candidate = pin_hash(keys, number, pin)
    return row is not None and row[0] is not None and Keys.same(candidate, row[0])


@dataclass(frozen=True, slots=True)
class VisitorCode:
    """A visitor code as listed to people (the code itself is only shown once, at creation)."""

    id: int
    door: str | None
    room: str | None
    valid_until: str
    max_uses: int
    uses: int
    created_by: str
    note: str
    created: str


@dataclass(frozen=True, slots=True)
class IssuedVisitorCode:
    """A freshly created code: `code` is the only copy of the plaintext; hand it to the visitor."""

    code: str = field(repr=False)
    visitor_code: VisitorCode


@dataclass(frozen=True, slots=True)
class VisitorCodeResult:
    """Whether a code opened the door; `reason` says why not; `room` is the one visited."""

    ok: bool
    reason: VisitorCodeReason | None = None
    code_id: int | None = None
    room: str | None = None
    uses_left: int = 0


def create_visitor_code(
    conn: sqlite3.Connection,
    ctx: Context,
    *,
    door: str | None,
    valid_until: datetime,
    max_uses: int,
    created_by: str,
    room: str | None = None,
    note: str = "",
    digits: int = 8,
) -> IssuedVisitorCode:
    """Store a new random numeric code (only its keyed hash is kept) and return it once."""
    now = ctx.now()
    if valid_until.tzinfo is None or valid_until <= now:
        raise ValidationError("valid_until", "must be a timezone-aware time in the future")
    if not 1 <= max_uses <= 1000:
        raise ValidationError("max_uses", "must be 1..1000")
    if door is not None and not door.strip():
        raise ValidationError("door", "must be a door name, or None for every door")
    if room is not None:
        room = normalize_room(room)
    if not created_by.strip():
        raise ValidationError("created_by", "is required")
    if not 6 <= digits <= 12:
        raise ValidationError("digits", "must be 6..12")
    for _attempt in range(10):
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        hashed = ctx.keys.lookup_hash("visitor_code", code)
        # A spent or expired code with the same digits may be forgotten and its number reused.
        conn.execute(
            "DELETE FROM visitor_codes"
            " WHERE code_hash = ? AND (valid_until_ms <= ? OR uses >= max_uses)",
            (hashed, epoch_ms(now)),
        )
        row = conn.execute(
            _INSERT_CODE,
            (hashed, door, room, timestamp(valid_until), epoch_ms(valid_until), max_uses,
             created_by.strip(), note, timestamp(now)),
        ).fetchone()  # fmt: skip
        if row is not None:
            return IssuedVisitorCode(code, VisitorCode(*row))
    raise ValidationError("digits", "too many live codes of this length; use more digits")


def use_visitor_code(
    conn: sqlite3.Connection, keys: Keys, code: str, door: str, now: datetime
) -> VisitorCodeResult:
    """Count one use of `code` at `door` if it is valid there now; otherwise say why not."""
    hashed = keys.lookup_hash("visitor_code", code)
    now_ms = epoch_ms(now)
    # The happy path is one UPDATE: the check and the increment cannot be separated.
    row = conn.execute(
        "UPDATE visitor_codes SET uses = uses + 1 WHERE code_hash = ? AND valid_until_ms > ?"
        " AND uses < max_uses AND (door IS NULL OR door = ?) RETURNING id, room, max_uses - uses",
        (hashed, now_ms, door),
    ).fetchone()
    if row is not None:
        return VisitorCodeResult(ok=True, code_id=row[0], room=row[1], uses_left=row[2])
    row = conn.execute(
        "SELECT id, room, valid_until_ms, max_uses - uses FROM visitor_codes WHERE code_hash = ?",
        (hashed,),
    ).fetchone()
    if row is None:
        return VisitorCodeResult(ok=False, reason="unknown")
    code_id, room, until_ms, left = row
    reason: VisitorCodeReason
    if until_ms <= now_ms:
        reason = "expired"
    elif left <= 0:
        reason = "used_up"
    else:
        reason = "wrong_door"
    return VisitorCodeResult(
        ok=False, reason=reason, code_id=code_id, room=room, uses_left=max(left, 0)
    )


def list_visitor_codes(conn: sqlite3.Connection, live_at: datetime | None) -> list[VisitorCode]:
    """Codes newest first; with `live_at`, only those still usable at that time."""
    sql = _SELECT_CODES
    params: tuple[int, ...] = ()
    if live_at is not None:
        sql += " WHERE valid_until_ms > ? AND uses < max_uses"
        params = (epoch_ms(live_at),)
    return [VisitorCode(*row) for row in conn.execute(sql + " ORDER BY id DESC", params)]
