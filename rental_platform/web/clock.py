"""One clock for people: every time shown in its building's zone, in one format.

An event's time is shown as its gateway wrote it, in the building's own UTC offset (SPEC 6's
`ts` carries it); the platform's own times (a gateway's state since, the audit log) are shown
in the building's offset where there is a building, else in the city's zone. Without this, a
picture and a log line of the same moment would read 8 hours apart.

    shown("2026-03-01T08:00:00.123+08:00")        # '2026-03-01 08:00:00'
    shown_epoch(1772323200.0, "+08:00")            # '2026-03-01 08:00:00'
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

FORMAT = "%Y-%m-%d %H:%M:%S"


def shown(ts: str | None) -> str:
    """An RFC 3339 time as written, in its own offset; '' when it is not one."""
    if not ts:
        return ""
    try:
        return datetime.fromisoformat(ts).strftime(FORMAT)
    except ValueError:
        return ts


def zone_of(offset: str | None, fallback: tzinfo) -> tzinfo:
    """The zone of an offset "+08:00"; `fallback` when there is none."""
    if not offset:
        return fallback
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def moment(epoch: float, offset: str | None, fallback: tzinfo) -> datetime:
    """Unix seconds in the building's offset (`fallback` when it is not known)."""
    return datetime.fromtimestamp(epoch, zone_of(offset, fallback))


def shown_epoch(epoch: float | None, offset: str | None, fallback: tzinfo) -> str:
    """Unix seconds as shown to people, in the building's offset; '' for None."""
    return "" if epoch is None else moment(epoch, offset, fallback).strftime(FORMAT)
