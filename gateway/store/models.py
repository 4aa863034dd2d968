"""The records callers pass in and get back: tenants, cards, users.

Inputs and outputs are separate types on purpose: `Tenant` has no field that could hold a
plaintext ID number or phone, so returning one from an API cannot leak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

TenantStatus = Literal["active", "suspended", "moved_out"]
TenantSource = Literal["local", "city"]
CardStatus = Literal["active", "lost", "revoked", "cancelled"]
Role = Literal["building_head", "police", "installer"]

TENANT_STATUSES: tuple[TenantStatus, ...] = ("active", "suspended", "moved_out")
CARD_STATUSES: tuple[CardStatus, ...] = ("active", "lost", "revoked", "cancelled")
ROLES: tuple[Role, ...] = ("building_head", "police", "installer")


@dataclass(frozen=True, slots=True)
class TenantCreate:
    """A new tenant as typed in or imported; validated and normalised by the store."""

    name: str
    id_number: str = field(repr=False)
    phone: str = field(repr=False)
    room: str
    valid_from: date
    valid_until: date
    status: TenantStatus = "active"
    source: TenantSource = "local"
    cards: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TenantUpdate:
    """A partial change: fields left as None are kept."""

    name: str | None = None
    id_number: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    room: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """A card as shown to people; the PIN hash never leaves the store, only whether there is one."""

    number: int
    tenant_id: str
    status: CardStatus
    has_pin: bool


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as shown to people: ID number and phone masked (`reveal_*` gives the plaintext)."""

    id: str
    name: str
    id_number_masked: str
    phone_masked: str
    room: str
    valid_from: date
    valid_until: date
    status: TenantStatus
    source: TenantSource
    created: str
    updated: str
    cards: tuple[Card, ...]

    def public_json(self) -> dict[str, Any]:
        """The tenant JSON of the HTTP API (SPEC 4), masked."""
        return {
            "id": self.id,
            "name": self.name,
            "id_number": self.id_number_masked,
            "phone": self.phone_masked,
            "room": self.room,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "status": self.status,
            "cards": [{"number": c.number, "status": c.status} for c in self.cards],
        }


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What `upsert_tenant` did: the tenant's id, whether it was new, how many cards it gained."""

    tenant_id: str
    created: bool
    cards_added: int


@dataclass(frozen=True, slots=True)
class User:
    """A web user; the password hash stays in the store."""

    username: str
    role: Role
    created: str
    disabled: bool
    must_change: bool = False  # a one-time password: choose a new one before anything else
