"""Test data: valid resident ID numbers, tenants, a controllable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from gateway.store import TenantCreate
from web_security.id_numbers import id_check_char


def id_number(n: int, region: str = "440305") -> str:
    """The n-th distinct valid ID number (birth date and sequence derived from n)."""
    born = date(1950, 1, 1) + timedelta(days=n // 1000)
    first17 = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return first17 + id_check_char(first17)


def phone(n: int) -> str:
    """The n-th distinct mobile number."""
    return f"139{n:08d}"


def tenant(n: int, room: str | None = None, cards: tuple[int, ...] = ()) -> TenantCreate:
    """A valid TenantCreate numbered n."""
    return TenantCreate(
        name=f"租客{n}",
        id_number=id_number(n),
        phone=phone(n),
        room=room or f"{n % 30 + 1:02d}{n % 4 + 1:02d}",
        valid_from=date(2026, 1, 1),
        valid_until=date(2026, 12, 31),
        cards=cards,
    )


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
