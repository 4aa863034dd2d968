"""Cards held by tenants: attach, status, PIN; the rule that a card has one holder."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .context import Context
from .crypto import Keys
from .errors import Conflict, NotFound, ValidationError
from .models import CARD_STATUSES, Card, CardStatus
from .validation import check_card_number, check_pin

_SELECT = "SELECT number, tenant_id, status, pin_hash IS NOT NULL FROM cards"


def pin_hash(keys: Keys, number: int, pin: str) -> bytes:
    """Keyed hash of a card's PIN.

    A keyed hash rather than argon2: the door path checks a PIN in microseconds, and the
    10^4..10^8 PIN space is only searchable with the key, which is not in the database.
    The card number is mixed in so two cards with PIN 1234 do not share a hash.
    """
    return keys.lookup_hash("pin", f"{number}:{pin}")


def attach_card(conn: sqlite3.Connection, ctx: Context, tenant_id: str, number: int) -> bool:
    """Give card `number` to the tenant; return False when the tenant already holds it.

    A card held by another tenant is a Conflict unless it was revoked (handed back at move-out),
    in which case it is re-issued, active and without PIN: landlords reuse physical cards.
    A lost card is never re-issued this way; someone must mark it found (active) on purpose.
    """
    check_card_number(number)
    now = ctx.now_text()
    # Insert first: a new card (the common case, and every card of a bulk import) costs one
    # statement; the holder is only looked up when the number is taken.
    inserted = conn.execute(
        "INSERT INTO cards (number, tenant_id, status, created, updated)"
        " VALUES (?, ?, 'active', ?, ?) ON CONFLICT (number) DO NOTHING",
        (number, tenant_id, now, now),
    )
    if inserted.rowcount == 1:
        return True
    holder, status = conn.execute(
        "SELECT tenant_id, status FROM cards WHERE number = ?", (number,)
    ).fetchone()
    if holder == tenant_id and status != "revoked":
        return False
    if status != "revoked":
        (room,) = conn.execute("SELECT room FROM tenants WHERE id = ?", (holder,)).fetchone()
        raise Conflict(
            f"card {number} belongs to another tenant (room {room}, card {status})", field="card",
            code="card_taken", params={"number": number, "room": room, "status": status},
        )  # fmt: skip
    conn.execute(
        "UPDATE cards SET tenant_id = ?, status = 'active', pin_hash = NULL, updated = ?"
        " WHERE number = ?",
        (tenant_id, now, number),
    )
    return True


def get_card(conn: sqlite3.Connection, number: int) -> Card:
    """The card, or NotFound."""
    row = conn.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
    if row is None:
        raise NotFound(f"no card {number}")
    return _card(row)


def set_status(conn: sqlite3.Connection, ctx: Context, number: int, status: CardStatus) -> bool:
    """Change a card's status; return whether it changed."""
    if status not in CARD_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(CARD_STATUSES)}")
    current = get_card(conn, number).status
    if current == status:
        return False
    if current == "cancelled":
        raise Conflict(f"card {number} is cancelled for good", field="status",
                       code="card_cancelled", params={"number": number})  # fmt: skip
    conn.execute(
        "UPDATE cards SET status = ?, updated = ? WHERE number = ?",
        (status, ctx.now_text(), number),
    )
    return True


def set_pin(conn: sqlite3.Connection, ctx: Context, number: int, pin: str | None) -> None:
    """Set or (with None) clear a card's PIN."""
    get_card(conn, number)
    hashed = None if pin is None else pin_hash(ctx.keys, number, check_pin(pin))
    conn.execute(
        "UPDATE cards SET pin_hash = ?, updated = ? WHERE number = ?",
        (hashed, ctx.now_text(), number),
    )


def revoke_all(conn: sqlite3.Connection, ctx: Context, tenant_id: str) -> None:
    """Revoke a tenant's active cards (lost and cancelled ones stay so: their alarm still fires)."""
    conn.execute(
        "UPDATE cards SET status = 'revoked', updated = ?"
        " WHERE tenant_id = ? AND status = 'active'",
        (ctx.now_text(), tenant_id),
    )


def cards_of(conn: sqlite3.Connection, tenant_ids: Iterable[str]) -> dict[str, list[Card]]:
    """Cards of several tenants in one query, by tenant id, in card-number order."""
    ids = list(tenant_ids)
    found: dict[str, list[Card]] = {tenant_id: [] for tenant_id in ids}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"{_SELECT} WHERE tenant_id IN ({','.join('?' * len(chunk))}) ORDER BY number",
            chunk,
        )
        for row in rows:
            found[row[1]].append(_card(row))
    return found


def _card(row: tuple[int, str, CardStatus, int]) -> Card:
    number, tenant_id, status, has_pin = row
    return Card(number=number, tenant_id=tenant_id, status=status, has_pin=bool(has_pin))
