"""The enrollment long poll: capped, and never holding a worker thread while it waits.

Over real HTTP against the real application served by uvicorn on loopback (`WebServer`).
"""

from __future__ import annotations

from concurrent.futures import as_completed

import httpx

from gateway.store import JournalEntry, Role
from gateway.web import deps
from web_security.sessions import Session

from .building import BuildingGateway
from .conftest import PASSWORDS
from .flood import at_once, serving


def test_enrollment_long_polls_are_capped_and_never_hold_up_logins_or_health(
    gateway: BuildingGateway,
) -> None:
    head = {"username": "head", "password": PASSWORDS["head"][1]}
    police = {"username": "police", "password": PASSWORDS["police"][1]}
    with serving(gateway) as (url, app), httpx.Client(base_url=url, timeout=120) as client:
        assert client.post("/api/v1/login", json=head).status_code == 200
        polls = at_once(
            url, 40, lambda poll, _: poll.get("/cards/next-unknown?after=0"), client.cookies
        )
        refused = []
        for future in as_completed(polls, timeout=120):
            refused.append(future.result())
            if len(refused) == 38:
                break
        assert [r.status_code for r in refused] == [429] * 38
        assert "已有其他页面在等待刷卡" in refused[0].json()["detail"]
        waiting = [f for f in polls if not f.done()]
        assert len(waiting) == 2
        # While two pages wait for a card: health, the login page and a login all answer.
        assert client.get("/healthz").status_code == 200
        assert client.get("/login").status_code == 200
        assert client.post("/api/v1/login", json=police).status_code == 200
        assert not any(f.done() for f in waiting)  # still waiting: nothing above waited on them
        card = {"kind": "card", "number": 4242}
        app.state.web.unknown_cards.on_event(JournalEntry(
            seq=7, event_id="0b8f3f9e-7a57-4f0c-9d51-3b1f2f6c9a10", body_json="",
            body={"type": "access.denied", "reason": "unknown_card", "door": "main",
                  "credential": card},
        ))  # fmt: skip
        for future in waiting:
            answer = future.result(timeout=120)
            assert answer.status_code == 200
            assert answer.json() == {"number": 4242, "door": "main", "door_label": "正门",
                                     "after": 7}


def _session(csrf: str) -> Session[Role]:
    return Session("head", "building_head", csrf, None, 0.0, 0.0)


def test_long_polls_are_capped_per_session_and_in_all() -> None:
    polls = deps.LongPolls(per_session=2, total=3)
    one, two = _session("one"), _session("two")
    with polls.hold(one) as first, polls.hold(one) as second, polls.hold(one) as third:
        assert (first, second, third) == (None, None, "card.polls_session")
        with polls.hold(two) as fourth, polls.hold(two) as fifth:
            assert (fourth, fifth) == (None, "card.polls_total")
    with polls.hold(one) as again, polls.hold(one) as twice:
        assert (again, twice) == (None, None)  # the places came back
