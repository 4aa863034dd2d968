"""The write API, valid inside one transaction run by the writer thread.

`Store.transaction(fn)` hands `fn` a Transaction; everything `fn` does through it commits
together or not at all. The Store's own write methods are one-call transactions over it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from . import alarms, cards, journal, registry, tenants, upsert
from .context import Context
from .errors import StoreError, ValidationError
from .journal import JournalEntry
from .models import Card, CardStatus, Tenant, TenantCreate, TenantStatus, TenantUpdate, UpsertResult
from .registry import VisitorCodeResult
from .validation import check_card_number

# Keys callers may set; acked_seq and gateway_id have their own guarded paths.
MetaKey = Literal[
    "registry_version", "command_counter", "lockdown", "camera_online", "camera_down"
]
_SETTABLE_META = ("registry_version", "command_counter", "lockdown", "camera_online", "camera_down")
_TRANSACTION_CONTROL = re.compile(
    r"\s*(BEGIN|COMMIT|END|ROLLBACK(?!\s+(TRANSACTION\s+)?TO))\b", re.I
)


class Transaction:
    """Writes inside one BEGIN IMMEDIATE transaction; unusable once the transaction ended."""

    def __init__(self, conn: sqlite3.Connection, ctx: Context) -> None:
        self._conn = conn
        self._ctx = ctx
        self._active = True

    def finish(self) -> None:
        """Called by the store when the transaction ends; later calls raise StoreError."""
        self._active = False

    @property
    def conn(self) -> sqlite3.Connection:
        """The writer's connection, while the transaction lasts."""
        if not self._active:
            raise StoreError("this transaction has ended; start a new one")
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run one SQL statement in the transaction (the store commits; do not BEGIN/COMMIT)."""
        if _TRANSACTION_CONTROL.match(sql):
            raise StoreError("the store begins and commits transactions itself")
        return self.conn.execute(sql, params)

    # Journal and alarms

    def append_event(self, event: Mapping[str, Any], *, alarm: str | None = None) -> JournalEntry:
        """Journal an event, and raise alarm `alarm` for it (see Store.append_event)."""
        if isinstance(event, Mapping) and event.get("type") in journal.SEALED_TYPES:
            # The store journals tenant changes itself, in the transaction that makes them;
            # a second, hand-made copy could disagree with what was committed.
            raise ValidationError("event.type", "tenant.changed is journaled by the store itself")
        return journal.append_event(self.conn, self._ctx, event, alarm)

    def raise_alarm(
        self,
        kind: str,
        *,
        door: str | None = None,
        event_seq: int | None = None,
        detail: str = "",
    ) -> int:
        """Record an alarm not tied to an event (or to an event appended earlier)."""
        return alarms.raise_alarm(
            self.conn, kind, raised_at=self._ctx.now_text(), door=door, event_seq=event_seq,
            detail=detail,
        )  # fmt: skip

    def set_meta(self, key: MetaKey, value: int | str | bool) -> None:
        """Store a gateway setting such as the last accepted command counter."""
        if key not in _SETTABLE_META:
            raise ValidationError("key", f"must be one of {', '.join(_SETTABLE_META)}")
        stored = int(value) if isinstance(value, bool) else value
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, stored),
        )

    # Tenants and cards

    def add_tenant(self, data: TenantCreate) -> str:
        """Create a tenant; return its id."""
        return tenants.add_tenant(self.conn, self._ctx, data)

    def upsert_tenant(self, data: TenantCreate) -> UpsertResult:
        """Create the tenant, or update the one with the same ID number."""
        return upsert.upsert_one(self.conn, self._ctx, data)

    def update_tenant(self, tenant_id: str, changes: TenantUpdate) -> bool:
        """Change some of a tenant's fields; return whether anything changed."""
        return tenants.update_tenant(self.conn, self._ctx, tenant_id, changes)

    def set_tenant_status(self, tenant_id: str, status: TenantStatus) -> bool:
        """Suspend, reactivate or move out (which revokes the active cards)."""
        return tenants.set_status(self.conn, self._ctx, tenant_id, status)

    def remove_tenant(self, tenant_id: str) -> None:
        """Delete a tenant and its cards."""
        tenants.remove_tenant(self.conn, self._ctx, tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant:
        """The tenant as this transaction sees it."""
        return tenants.get_tenant(self.conn, self._ctx, tenant_id)

    def add_card(self, tenant_id: str, number: int, pin: str | None = None) -> Card:
        """Give a card (optionally with a PIN) to a tenant."""
        check_card_number(number)
        tenants.require(self.conn, tenant_id)
        if cards.attach_card(self.conn, self._ctx, tenant_id, number):
            tenants.announce(self.conn, self._ctx, tenant_id, "updated")
        if pin is not None:
            cards.set_pin(self.conn, self._ctx, number, pin)
        return cards.get_card(self.conn, number)

    def set_card_status(self, number: int, status: CardStatus) -> Card:
        """Mark a card lost, revoked or active again."""
        if cards.set_status(self.conn, self._ctx, number, status):
            tenant_id = cards.get_card(self.conn, number).tenant_id
            tenants.announce(self.conn, self._ctx, tenant_id, "updated")
        return cards.get_card(self.conn, number)

    def set_card_pin(self, number: int, pin: str | None) -> Card:
        """Set or clear a card's PIN (not announced: a PIN never leaves the gateway)."""
        cards.set_pin(self.conn, self._ctx, number, pin)
        return cards.get_card(self.conn, number)

    # Visitor codes

    def use_visitor_code(
        self, code: str, door: str, now: datetime | None = None
    ) -> VisitorCodeResult:
        """Check a visitor code at a door (at `now`, default the clock) and count the use."""
        moment = self._ctx.now() if now is None else now
        if moment.tzinfo is None:
            raise ValidationError("now", "must be timezone-aware")
        return registry.use_visitor_code(self.conn, self._ctx.keys, code, door, moment)
