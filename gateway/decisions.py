"""Access decisions: a credential and the registry in, granted or denied with a reason out.

Pure functions with no I/O, so every rule of SPEC section 6 is tested directly and the door path
stays a straight line: frame -> credential -> `decide_card` -> relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Protocol

GRANTED_CARD: Final = "tenant_card"
GRANTED_VISITOR: Final = "visitor_code"

BAD_READ: Final = "bad_read"
UNKNOWN_CARD: Final = "unknown_card"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not_yet_valid"
LOST_CARD: Final = "lost_card"
REVOKED_CARD: Final = "revoked_card"
CANCELLED_CARD: Final = "cancelled_card"
SUSPENDED: Final = "suspended"
MOVED_OUT: Final = "moved_out"
LOCKDOWN: Final = "lockdown"
WRONG_PIN: Final = "wrong_pin"
PIN_TIMEOUT: Final = "pin_timeout"


class CardRecord(Protocol):
    """What the registry knows about a card and its holder (see `Store.card_lookup`)."""

    @property
    def card_status(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def tenant_status(self) -> str: ...
    @property
    def room(self) -> str: ...
    @property
    def valid_from(self) -> date | None: ...
    @property
    def valid_until(self) -> date | None: ...


# Card states whose presentation is an alarm, with the reason (and alarm kind) they give.
_ALARMING: Final = {"lost": LOST_CARD, "cancelled": CANCELLED_CARD}


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one access attempt."""

    granted: bool
    reason: str
    tenant_id: str | None = None
    room: str | None = None
    alarm: str | None = None  # an alarm to raise with the event, e.g. "lost_card"


def decide_card(
    *, parity_ok: bool | None, record: CardRecord | None, today: date, lockdown: bool
) -> Decision:
    """Decide whether a card may open a door.

    `parity_ok` is False for a Wiegand read whose parity failed: it is denied as `bad_read`
    before any lookup, so a misread can never match another tenant's card.

    >>> decide_card(parity_ok=False, record=None, today=date(2026, 1, 1), lockdown=False).reason
    'bad_read'
    """
    if parity_ok is False:
        return Decision(False, BAD_READ)
    if record is None:
        return Decision(False, LOCKDOWN if lockdown else UNKNOWN_CARD)
    who = {"tenant_id": record.tenant_id, "room": record.room}
    if record.card_status in _ALARMING:
        # A lost or cancelled card is refused and raised as an alarm even under lockdown:
        # whoever holds it now is not the tenant it was given to.
        reason = _ALARMING[record.card_status]
        return Decision(False, reason, alarm=reason, **who)
    if lockdown:
        return Decision(False, LOCKDOWN, **who)
    if record.card_status != "active":
        return Decision(False, REVOKED_CARD, **who)
    if record.tenant_status == "suspended":
        return Decision(False, SUSPENDED, **who)
    if record.tenant_status != "active":
        return Decision(False, MOVED_OUT, **who)
    if record.valid_from is not None and today < record.valid_from:
        return Decision(False, NOT_YET_VALID, **who)
    if record.valid_until is not None and today > record.valid_until:
        return Decision(False, EXPIRED, **who)
    return Decision(True, GRANTED_CARD, **who)
