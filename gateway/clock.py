"""Wall-clock time for events: RFC 3339 timestamps and whether the clock can be trusted.

A Raspberry Pi has no real-time clock: it boots with the time it last saved (or 1970) and only
learns the real time once NTP synchronises. Every event therefore records `clock_synced`, so the
police can tell a trustworthy timestamp from one taken before the first synchronisation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from datetime import date, datetime, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

# adjtimex(2) returns the clock state; TIME_ERROR means the kernel's STA_UNSYNC flag is set,
# i.e. no NTP client has disciplined the clock. This is what `timedatectl` reports as
# "System clock synchronized: no".
_TIME_ERROR = 5
_TIMEX_SIZE = 512  # larger than struct timex on every Linux ABI; modes=0 reads only


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def clock_synchronised() -> bool:
    """Tell whether the kernel considers the system clock synchronised (NTP)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "adjtimex"):
        return False
    buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # zeroed: modes = 0, nothing is changed
    state = int(libc.adjtimex(buf))
    return state not in (-1, _TIME_ERROR)


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 with milliseconds and offset."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return moment.isoformat(timespec="milliseconds")


# How every time a person reads is written: the page, exports, the demo, the camera overlay.
SHOWN_FORMAT = "%Y-%m-%d %H:%M:%S"


def shown(moment: str | datetime | None, zone: tzinfo) -> str:
    """`moment` as people read it: in the building's zone `zone`, `2026-12-07 15:50:51`.

    Stored times are RFC 3339 with an offset, some in UTC (the audit log, alarms, visitor
    codes), events in the building's zone; shown side by side they must agree, so every one
    is converted here. Empty for None or "".

    >>> shown("2026-12-07T07:50:51.123Z", ZoneInfo("Asia/Shanghai"))
    '2026-12-07 15:50:51'
    """
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        raise ValueError("a time without a zone cannot be shown in the building's")
    return moment.astimezone(zone).strftime(SHOWN_FORMAT)


def now_rfc3339(zone: tzinfo) -> str:
    """Return the current time in `zone` as an RFC 3339 string."""
    return rfc3339(datetime.now(zone))


class BuildingClock:
    """Event time stamps in the building's time zone, with the synchronisation flag."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._synced = False
        self._checked = float("-inf")

    def synced(self) -> bool:
        """Whether the clock is synchronised (checked at most every 10 s)."""
        now = time.monotonic()
        if now - self._checked > 10.0:  # adjtimex is cheap, but not on every event
            self._synced = clock_synchronised()
            self._checked = now
        return self._synced

    def stamp(self) -> dict[str, Any]:
        """`ts` and `clock_synced` for an event taken now."""
        return {"ts": rfc3339(datetime.now(self.zone)), "clock_synced": self.synced()}

    def today(self) -> date:
        """The building's date today."""
        return datetime.now(self.zone).date()
