"""What every store operation needs besides a connection: gateway id, keys, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .crypto import Keys


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """RFC 3339 text with milliseconds and the moment's own offset."""
    return moment.isoformat(timespec="milliseconds")


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, for range queries independent of the offset written."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Context:
    """Gateway identity, derived keys and the clock (injectable so tests control time)."""

    gateway_id: str
    keys: Keys
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the store's clock must return timezone-aware datetimes")
        return moment

    def now_text(self) -> str:
        """The current time as stored in created/updated columns."""
        return timestamp(self.now())
