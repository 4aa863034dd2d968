"""Tenants: create, update, status, removal, search; ID number and phone sealed at rest.

Every local change journals a `tenant.changed` event in the same transaction, so the city
learns exactly what was committed (SPEC 6), and nothing it was not told.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from web_security.masking import mask_id_number, mask_phone

from . import cards, journal
from .context import Context
from .errors import Conflict, NotFound, ValidationError
from .models import TENANT_STATUSES, Tenant, TenantCreate, TenantStatus, TenantUpdate
from .validation import (
    check_card_number,
    check_validity,
    normalize_id_number,
    normalize_name,
    normalize_phone,
    normalize_room,
)

Change = Literal["added", "updated", "removed"]

# Associated data of the sealed columns, followed by the tenant id.
ID_CONTEXT = b"tenants.id_number\0"
PHONE_CONTEXT = b"tenants.phone\0"
_SELECT = (
    "SELECT id, name, id_number_sealed, phone_sealed, room, valid_from, valid_until, status,"
    " source, created, updated FROM tenants"
)


@dataclass(frozen=True, slots=True)
class Person:
    """A tenant's editable fields, validated and normalised (plaintext: never leaves the store)."""

    name: str
    id_number: str
    phone: str
    room: str
    valid_from: date
    valid_until: date


def id_number_hash(ctx: Context, id_number: str) -> bytes:
    """The keyed hash used to find a tenant by (normalised) ID number."""
    return ctx.keys.lookup_hash("id_number", id_number)


def phone_hash(ctx: Context, phone: str) -> bytes:
    """The keyed hash used to find tenants by (normalised) phone number."""
    return ctx.keys.lookup_hash("phone", phone)


def checked(data: TenantCreate) -> tuple[Person, tuple[int, ...]]:
    """The record validated and normalised, and its card numbers (ValidationError if not)."""
    person = Person(
        name=normalize_name(data.name),
        id_number=normalize_id_number(data.id_number),
        phone=normalize_phone(data.phone),
        room=normalize_room(data.room),
        valid_from=data.valid_from,
        valid_until=data.valid_until,
    )
    check_validity(person.valid_from, person.valid_until)
    if data.status not in TENANT_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(TENANT_STATUSES)}")
    if data.source not in ("local", "city"):
        raise ValidationError("source", "must be local or city")
    numbers = tuple(check_card_number(n) for n in data.cards)
    if len(set(numbers)) != len(numbers):
        raise ValidationError("card", "the same card is listed twice")
    return person, numbers


def add_tenant(conn: sqlite3.Connection, ctx: Context, data: TenantCreate) -> str:
    """Insert a new tenant (and its cards); return its id. Conflict if the ID number exists."""
    person, numbers = checked(data)
    if _id_by_hash(conn, id_number_hash(ctx, person.id_number)) is not None:
        raise Conflict("a tenant with this ID number is already registered", field="id_number",
                       code="id_number_taken")  # fmt: skip
    return _create(conn, ctx, person, numbers, data.status, data.source)


INSERT_TENANT = (
    "INSERT INTO tenants (id, name, id_number_sealed, id_number_hash, phone_sealed, phone_hash,"
    " room, valid_from, valid_until, status, source, created, updated)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _create(
    conn: sqlite3.Connection,
    ctx: Context,
    person: Person,
    numbers: tuple[int, ...],
    status: TenantStatus,
    source: str,
) -> str:
    tenant_id = str(uuid.uuid4())
    now = ctx.now_text()
    conn.execute("INSERT OR IGNORE INTO rooms (room, created) VALUES (?, ?)", (person.room, now))
    conn.execute(INSERT_TENANT, tenant_row(ctx, tenant_id, person, status, source, now))
    for number in numbers:
        cards.attach_card(conn, ctx, tenant_id, number)
    if source == "local":
        held = [(number, "active") for number in numbers]
        _journal_change(conn, ctx, "added", tenant_id, person, status, held)
    return tenant_id


def tenant_row(
    ctx: Context, tenant_id: str, person: Person, status: str, source: str, now: str
) -> tuple[Any, ...]:
    """The parameters of INSERT_TENANT: ID number and phone sealed and hashed."""
    return (
        tenant_id, person.name, *sealed_columns(ctx, tenant_id, person), person.room,
        person.valid_from.isoformat(), person.valid_until.isoformat(), status, source, now, now,
    )  # fmt: skip


def sealed_columns(
    ctx: Context, tenant_id: str, person: Person
) -> tuple[bytes, bytes, bytes, bytes]:
    """id_number_sealed, id_number_hash, phone_sealed, phone_hash, bound to the tenant's id."""
    row_id = tenant_id.encode()
    return (
        ctx.keys.seal(person.id_number.encode(), ID_CONTEXT + row_id),
        id_number_hash(ctx, person.id_number),
        ctx.keys.seal(person.phone.encode(), PHONE_CONTEXT + row_id),
        phone_hash(ctx, person.phone),
    )


def update_tenant(
    conn: sqlite3.Connection, ctx: Context, tenant_id: str, changes: TenantUpdate
) -> bool:
    """Apply the fields set in `changes`; return whether anything changed."""
    current = _person(conn, ctx, tenant_id)
    person = Person(
        name=current.name if changes.name is None else normalize_name(changes.name),
        id_number=current.id_number
        if changes.id_number is None
        else normalize_id_number(changes.id_number),
        phone=current.phone if changes.phone is None else normalize_phone(changes.phone),
        room=current.room if changes.room is None else normalize_room(changes.room),
        valid_from=changes.valid_from or current.valid_from,
        valid_until=changes.valid_until or current.valid_until,
    )
    check_validity(person.valid_from, person.valid_until)
    if not _write_person(conn, ctx, tenant_id, current, person):
        return False
    announce(conn, ctx, tenant_id, "updated")
    return True


def _write_person(
    conn: sqlite3.Connection, ctx: Context, tenant_id: str, current: Person, person: Person
) -> bool:
    if current == person:
        return False
    holder = _id_by_hash(conn, id_number_hash(ctx, person.id_number))
    if holder is not None and holder != tenant_id:
        raise Conflict("another tenant has this ID number", field="id_number",
                       code="id_number_taken")  # fmt: skip
    now = ctx.now_text()
    conn.execute("INSERT OR IGNORE INTO rooms (room, created) VALUES (?, ?)", (person.room, now))
    conn.execute(
        "UPDATE tenants SET name = ?, id_number_sealed = ?, id_number_hash = ?, phone_sealed = ?,"
        " phone_hash = ?, room = ?, valid_from = ?, valid_until = ?, updated = ? WHERE id = ?",
        (person.name, *sealed_columns(ctx, tenant_id, person), person.room,
         person.valid_from.isoformat(), person.valid_until.isoformat(), now, tenant_id),
    )  # fmt: skip
    return True


def set_status(
    conn: sqlite3.Connection, ctx: Context, tenant_id: str, status: TenantStatus
) -> bool:
    """Suspend, reactivate or move out a tenant; moving out revokes the active cards."""
    if status not in TENANT_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(TENANT_STATUSES)}")
    if _status(conn, tenant_id) == status:
        return False
    _set_status_row(conn, ctx, tenant_id, status)
    announce(conn, ctx, tenant_id, "updated")
    return True


def _set_status_row(conn: sqlite3.Connection, ctx: Context, tenant_id: str, status: str) -> None:
    conn.execute(
        "UPDATE tenants SET status = ?, updated = ? WHERE id = ?",
        (status, ctx.now_text(), tenant_id),
    )
    if status == "moved_out":
        cards.revoke_all(conn, ctx, tenant_id)


def remove_tenant(conn: sqlite3.Connection, ctx: Context, tenant_id: str) -> None:
    """Delete a tenant and its cards (their past events stay in the journal)."""
    announce(conn, ctx, tenant_id, "removed")
    conn.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))


def announce(conn: sqlite3.Connection, ctx: Context, tenant_id: str, change: Change) -> None:
    """Journal a sealed `tenant.changed` event carrying the tenant as now stored."""
    row = _row(conn, tenant_id)
    held = [(c.number, c.status) for c in cards.cards_of(conn, [tenant_id])[tenant_id]]
    _journal_change(conn, ctx, change, tenant_id, _open_person(ctx, row), row[7], held)


def _journal_change(
    conn: sqlite3.Connection,
    ctx: Context,
    change: Change,
    tenant_id: str,
    person: Person,
    status: str,
    held: Sequence[tuple[int, str]],
) -> None:
    journal.append_event(conn, ctx, change_event(change, tenant_id, person, status, held))


def change_event(
    change: Change, tenant_id: str, person: Person, status: str, held: Sequence[tuple[int, str]]
) -> dict[str, Any]:
    """The `tenant.changed` event (SPEC 6) carrying the tenant record of SPEC 4."""
    record = {
        "id": tenant_id,
        "name": person.name,
        "id_number": person.id_number,
        "phone": person.phone,
        "room": person.room,
        "valid_from": person.valid_from.isoformat(),
        "valid_until": person.valid_until.isoformat(),
        "status": status,
        "cards": [{"number": number, "status": card_status} for number, card_status in held],
    }
    return {"type": "tenant.changed", "change": change, "tenant": record}


def get_tenant(conn: sqlite3.Connection, ctx: Context, tenant_id: str) -> Tenant:
    """The tenant, masked, or NotFound."""
    return _tenants(conn, ctx, [_row(conn, tenant_id)])[0]


def find_by_id_number(conn: sqlite3.Connection, ctx: Context, id_number: str) -> Tenant | None:
    """The tenant with this ID number (matched through the keyed hash), or None."""
    tenant_id = _id_by_hash(conn, id_number_hash(ctx, normalize_id_number(id_number)))
    return None if tenant_id is None else get_tenant(conn, ctx, tenant_id)


def search(
    conn: sqlite3.Connection,
    ctx: Context,
    *,
    name: str | None = None,
    room: str | None = None,
    status: TenantStatus | None = None,
    phone: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Tenant]:
    """Tenants matching every filter given: name substring, exact room, status, exact phone."""
    where: list[str] = []
    params: list[object] = []
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if room:
        where.append("room = ?")
        params.append(room.strip())
    if status:
        where.append("status = ?")
        params.append(status)
    if phone:
        where.append("phone_hash = ?")
        params.append(phone_hash(ctx, normalize_phone(phone)))
    sql = _SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY room, name, id LIMIT ? OFFSET ?"
    return _tenants(conn, ctx, conn.execute(sql, [*params, limit, offset]).fetchall())


def reveal(conn: sqlite3.Connection, ctx: Context, tenant_id: str) -> tuple[str, str]:
    """The plaintext ID number and phone; for the few screens entitled to them."""
    person = _open_person(ctx, _row(conn, tenant_id))
    return person.id_number, person.phone


def _tenants(conn: sqlite3.Connection, ctx: Context, rows: list[Any]) -> list[Tenant]:
    held = cards.cards_of(conn, (row[0] for row in rows))
    result = []
    for row in rows:
        person = _open_person(ctx, row)
        result.append(
            Tenant(
                id=row[0], name=person.name, id_number_masked=mask_id_number(person.id_number),
                phone_masked=mask_phone(person.phone), room=person.room,
                valid_from=person.valid_from, valid_until=person.valid_until, status=row[7],
                source=row[8], created=row[9], updated=row[10], cards=tuple(held[row[0]]),
            )
        )  # fmt: skip
    return result


def require(conn: sqlite3.Connection, tenant_id: str) -> None:
    """Raise NotFound unless the tenant exists."""
    if conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
        raise NotFound(f"no tenant {tenant_id}")


def _row(conn: sqlite3.Connection, tenant_id: str) -> Any:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (tenant_id,)).fetchone()
    if row is None:
        raise NotFound(f"no tenant {tenant_id}")
    return row


def _person(conn: sqlite3.Connection, ctx: Context, tenant_id: str) -> Person:
    return _open_person(ctx, _row(conn, tenant_id))


def _open_person(ctx: Context, row: Any) -> Person:
    row_id = row[0].encode()
    return Person(
        name=row[1],
        id_number=ctx.keys.open(row[2], ID_CONTEXT + row_id).decode(),
        phone=ctx.keys.open(row[3], PHONE_CONTEXT + row_id).decode(),
        room=row[4],
        valid_from=date.fromisoformat(row[5]),
        valid_until=date.fromisoformat(row[6]),
    )


def _status(conn: sqlite3.Connection, tenant_id: str) -> TenantStatus:
    status: TenantStatus = _row(conn, tenant_id)[7]
    return status


def _id_by_hash(conn: sqlite3.Connection, hashed: bytes) -> str | None:
    row = conn.execute("SELECT id FROM tenants WHERE id_number_hash = ?", (hashed,)).fetchone()
    return None if row is None else str(row[0])
