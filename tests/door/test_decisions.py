"""Every rule of SPEC section 6 for card decisions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pytest

from gateway.decisions import decide_card

TODAY = date(2026, 11, 26)


@dataclass(frozen=True)
class Record:
    card_status: str = "active"
    tenant_id: str = "t-1"
    tenant_status: str = "active"
    room: str = "301"
    valid_from: date | None = date(2026, 1, 1)
    valid_until: date | None = date(2027, 1, 1)


def test_valid_card_is_granted_with_tenant_and_room() -> None:
    decision = decide_card(parity_ok=True, record=Record(), today=TODAY, lockdown=False)
    assert decision.granted
    assert (decision.reason, decision.tenant_id, decision.room) == ("tenant_card", "t-1", "301")
    assert decision.alarm is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (None, "unknown_card"),
        (Record(valid_until=date(2026, 11, 25)), "expired"),
        (Record(valid_from=date(2026, 11, 27)), "not_yet_valid"),
        (Record(tenant_status="suspended"), "suspended"),
        (Record(tenant_status="moved_out"), "moved_out"),
        (Record(card_status="revoked"), "revoked_card"),
    ],
)
def test_denials_name_their_reason(record: Record | None, reason: str) -> None:
    decision = decide_card(parity_ok=True, record=record, today=TODAY, lockdown=False)
    assert not decision.granted
    assert decision.reason == reason
    assert decision.alarm is None


def test_validity_bounds_are_inclusive_days() -> None:
    first_and_last = Record(valid_from=TODAY, valid_until=TODAY)
    assert decide_card(parity_ok=True, record=first_and_last, today=TODAY, lockdown=False).granted
    open_ended = Record(valid_from=None, valid_until=None)
    assert decide_card(parity_ok=None, record=open_ended, today=TODAY, lockdown=False).granted


def test_lost_card_is_denied_and_raises_an_alarm_even_in_lockdown() -> None:
    for lockdown in (False, True):
        decision = decide_card(
            parity_ok=True, record=Record(card_status="lost"), today=TODAY, lockdown=lockdown
        )
        assert (decision.granted, decision.reason, decision.alarm) == (False, "lost_card",
                                                                        "lost_card")
        assert decision.tenant_id == "t-1"


def test_bad_parity_is_a_bad_read_whatever_the_registry_says() -> None:
    decision = decide_card(parity_ok=False, record=Record(), today=TODAY, lockdown=False)
    assert (decision.granted, decision.reason, decision.tenant_id) == (False, "bad_read", None)


def test_lockdown_refuses_valid_and_unknown_cards() -> None:
    for record in (Record(), None):
        decision = decide_card(parity_ok=True, record=record, today=TODAY, lockdown=True)
        assert (decision.granted, decision.reason) == (False, "lockdown")


def test_suspension_wins_over_validity_dates() -> None:
    record = replace(Record(), tenant_status="suspended", valid_until=date(2020, 1, 1))
    assert decide_card(parity_ok=True, record=record, today=TODAY, lockdown=False).reason == (
        "suspended"
    )
