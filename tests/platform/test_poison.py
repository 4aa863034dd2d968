"""Poison messages: whatever a gateway publishes becomes a reject with a reason, never a stop,
and never holds another gateway's acks. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from rental_platform.store import Store, events_for, gateway_row, rejects, store_batch

from .conftest import GW1, GW2, event, events, message

NESTED = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000  # far past the size limit
DEEP = b"[" * 5000 + b"]" * 5000  # within the size limit, past the parser's recursion


def as_text(seq: int, **fields: object) -> bytes:
    return json.dumps(event(GW1, seq, **fields)).encode()


POISON: list[tuple[bytes, str]] = [
    (NESTED, "too_large"),
    (DEEP, "too_deep"),
    (json.dumps(event(GW1, 2, x=[[[[[[[[["deep"]]]]]]]]])).encode(), "too_deep"),
    (b'{"seq": 2, "x": \xff}', "not_utf8"),
    (b'{"seq": NaN}', "not_json"),
    (b'{"seq": ' + b"9" * 5000 + b"}", "not_json"),
    (as_text(2, door="ma\\u0000in").replace(b"\\\\u0000", b"\\u0000"), "nul_in_text"),
    (as_text(2, room="\\ud800").replace(b"\\\\ud800", b"\\ud800"), "bad_unicode"),
    (as_text(2, room="3" * 5000), "bad_room"),
    (as_text(2, credential={"kind": "card", "number": -1}), "bad_credential"),
    (as_text(2, credential={"kind": "card", "number": 2**40}), "bad_credential"),
    (as_text(2, snapshot={"sha256": "../../etc/passwd", "bytes": 1}), "bad_snapshot"),
    (as_text(2, event_id="a b/c"), "bad_event_id"),
    (as_text(2, type=["access.granted"]), "bad_type"),
    (as_text(2, ts="2026-01-01T00:00:00+00:00" + " " * 100), "bad_ts"),
    (json.dumps(event(GW2, 2)).encode(), "gateway_mismatch"),  # on GW1's topic
]


@pytest.mark.parametrize(
    ("payload", "reason"), POISON, ids=[reason + str(n) for n, (_p, reason) in enumerate(POISON)]
)
def test_a_poison_message_is_a_reject_and_holds_only_its_gateway(
    store: Store, payload: bytes, reason: str
) -> None:
    batch = [
        *events(GW1, 1),
        message(GW1, "events", payload),
        *events(GW1, 3),
        *events(GW2, 1, 2, 3),
    ]
    outcome = store_batch(store, batch)
    assert (outcome.stored, outcome.rejected) == (5, 1)
    # GW1's seq 2 never came in a form that can be stored: its ack stays at 1.
    assert outcome.watermarks == {GW1: 1, GW2: 3}
    [kept] = rejects(store)
    assert (kept["gateway_id"], kept["reason"]) == (GW1, reason)
    assert kept["payload"] == payload[: 64 * 1024]
    assert kept["size"] == len(payload)
    assert gateway_row(store.db, GW1)["rejected"] == 1


def test_a_message_the_database_refuses_is_found_and_rejected_alone(store: Store) -> None:
    """A check that misses something must not stop ingest: the batch is stored again one by
    one, and only the message the database refuses becomes a reject (`unstorable`)."""
    if store.db.postgres:
        store.db.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.door = 'cursed' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW;"
            " END $$"
        )
        store.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    else:
        store.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN"
            " NEW.door = 'cursed' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    batch = [
        *events(GW1, 1),
        message(GW1, "events", event(GW1, 2, door="cursed")),
        *events(GW1, 3),
        *events(GW2, 1),
    ]
    outcome = store_batch(store, batch)
    assert (outcome.stored, outcome.rejected) == (3, 1)
    assert outcome.watermarks == {GW1: 1, GW2: 1}
    assert [r["reason"] for r in rejects(store)] == ["unstorable"]
    assert [e.seq for e in events_for(store, GW1)] == [1, 3]


def test_bad_status_results_and_pictures_are_rejects(store: Store) -> None:
    batch = [
        message(GW1, "status", b'{"state": "online"' + b" " * 20_000 + b"}"),
        message(GW1, "status", b'{"state": "asleep"}'),
        message(GW1, "cmd/result", b'{"counter": 1, "ok": "yes"}'),
        message(GW1, "snapshots/ev-1", b"GIF89a"),
        message(GW1, "snapshots/" + "x" * 300, b"\xff\xd8\xff"),
        message(None, "whatever", b"{}"),
    ]
    outcome = store_batch(store, batch)
    assert outcome.rejected == len(batch)
    assert [r["reason"] for r in rejects(store)] == [
        "too_large",
        "bad_state",
        "bad_result",
        "not_jpeg",
        "bad_event_id",
        "unknown_topic",
    ]
