"""Signed commands against a real store: what is executed, and every way one is refused."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import seal_command
from gateway.commands import MAX_QUEUED, CommandExecutor
from gateway.store import Store
from tests.store.factories import id_number

GW = "gw-test-0001"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


class FakeDoor:
    def __init__(self) -> None:
        self.unlocks: list[tuple[float, str, dict[str, Any]]] = []

    def unlock(self, seconds: float, reason: str, extra: dict[str, Any]) -> int:
        self.unlocks.append((seconds, reason, extra))
        return 0


class Lockdown:
    def __init__(self, store: Store) -> None:
        self.store = store

    def set_lockdown(self, on: bool) -> None:
        self.store.set_lockdown(on)


class World:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.door = FakeDoor()
        self.executor = CommandExecutor(
            gateway_id=GW, public_key=KEY.public_key(), store=store,
            doors={"main": self.door}, lockdown=Lockdown(store),
            record=lambda e: store.append_event(e).seq,
            stamp=lambda: {"ts": "2026-11-26T20:00:00+08:00", "clock_synced": True},
            now=lambda: NOW,
        )  # fmt: skip
        self.counter = 0

    def envelope(self, cmd: str, args: dict[str, Any], **kw: Any) -> bytes:
        self.counter += 1
        options: dict[str, Any] = {"gateway_id": GW, "counter": self.counter, "issued_at": NOW}
        options.update(kw)
        return seal_command(kw.pop("key", KEY), cmd=cmd, args=args,
                            **{k: v for k, v in options.items() if k != "key"})  # fmt: skip

    def events(self, kind: str) -> list[dict[str, Any]]:
        rows = self.store.reader().execute(
            "SELECT body FROM events WHERE type = ? ORDER BY seq", (kind,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store.open(tmp_path / "data", GW)
    yield World(store)
    store.close()


def test_unlock_and_lockdown_execute_and_are_journaled(world: World) -> None:
    result = world.executor.execute(world.envelope("unlock", {"door": "main", "seconds": 7}))
    assert result == {"counter": 1, "ok": True, "error": None}
    assert world.door.unlocks == [(7.0, "remote_unlock",
                                   {"credential": {"kind": "command", "counter": 1}})]
    assert world.executor.execute(world.envelope("lockdown", {"on": True}))["ok"]
    assert world.store.lockdown()
    executed = world.events("command.executed")
    assert [(e["counter"], e["cmd"]) for e in executed] == [(1, "unlock"), (2, "lockdown")]
    assert world.store.command_counter() == 2


def test_a_flood_of_commands_is_dropped_unread_beyond_the_queue(world: World) -> None:
    """Anyone the broker lets write P/cmd could queue commands without end; only MAX_QUEUED
    wait, the rest are counted as rejected and cost nothing more (no signature check, no
    event)."""
    replies: list[dict[str, Any]] = []
    envelopes = [world.envelope("lockdown", {"on": n % 2 == 0}) for n in range(MAX_QUEUED + 36)]
    for envelope in envelopes:  # the worker is not started: nothing is taken off the queue
        world.executor.submit(envelope, replies.append)
    assert world.executor.rejected == 36
    assert world.events("command.rejected") == []
    world.executor.start()
    try:
        deadline = time.monotonic() + 30
        while len(replies) < MAX_QUEUED and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        world.executor.stop()
    assert [r["counter"] for r in replies] == list(range(1, MAX_QUEUED + 1))
    assert all(r["ok"] for r in replies)


def _tamper(envelope: bytes) -> bytes:
    outer = json.loads(envelope)
    outer["payload"] = outer["payload"].replace('"seconds":5', '"seconds":600')
    return json.dumps(outer).encode()


def _unsigned(envelope: bytes) -> bytes:
    return json.dumps({"payload": json.loads(envelope)["payload"]}).encode()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda w: _unsigned(w.envelope("unlock", {"door": "main", "seconds": 5})), "malformed"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": 5},
                              key=Ed25519PrivateKey.generate()), "bad_signature"),
        (lambda w: _tamper(w.envelope("unlock", {"door": "main", "seconds": 5})),
         "bad_signature"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": 5},
                              issued_at=NOW - timedelta(hours=1)), "expired"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": 5},
                              issued_at=NOW + timedelta(hours=1)), "not_yet_valid"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": 5},
                              gateway_id="gw-test-0002"), "wrong_gateway"),
        (lambda w: b"not json at all", "malformed"),
        (lambda w: b'\xff\xfe{"payload"', "malformed"),
        (lambda w: b"[1, 2]", "malformed"),
        (lambda w: w.envelope("reboot", {}), "unknown_command"),
        (lambda w: w.envelope("unlock", {"door": "roof", "seconds": 5}), "unknown_door"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": 86400}), "bad_args"),
        (lambda w: w.envelope("unlock", {"door": "main", "seconds": True}), "bad_args"),
        (lambda w: w.envelope("lockdown", {"on": "yes"}), "bad_args"),
    ],
    ids=["unsigned", "forged", "tampered", "expired", "future", "misaddressed", "not-json",
         "not-utf8", "not-object", "unknown-cmd", "unknown-door", "too-long", "bool-seconds",
         "bad-on"],
)  # fmt: skip
def test_refused_commands_do_nothing_but_journal_a_rejection(
    world: World, make: Any, error: str
) -> None:
    result = world.executor.execute(make(world))
    assert result["ok"] is False
    assert result["error"] == error
    assert world.door.unlocks == []
    assert not world.store.lockdown()
    assert world.store.command_counter() == 0  # a refused command spends no counter
    rejected = world.events("command.rejected")
    assert len(rejected) == 1
    assert rejected[0]["reason"] == error
    assert world.events("command.executed") == []


def test_a_replayed_or_older_counter_is_refused(world: World) -> None:
    first = world.envelope("unlock", {"door": "main", "seconds": 5})
    older = world.envelope("lockdown", {"on": True})  # counter 2, delivered late
    newest = world.envelope("lockdown", {"on": False})  # counter 3
    assert world.executor.execute(first)["ok"]
    assert world.executor.execute(newest)["ok"]
    assert world.executor.execute(first) == {"counter": 1, "ok": False, "error": "replayed"}
    assert world.executor.execute(older)["error"] == "replayed"
    assert len(world.door.unlocks) == 1
    assert not world.store.lockdown()
    assert [e["reason"] for e in world.events("command.rejected")] == ["replayed", "replayed"]


def test_the_counter_survives_a_restart(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data", GW)
    world = World(store)
    envelope = world.envelope("lockdown", {"on": True})
    assert world.executor.execute(envelope)["ok"]
    store.close()
    store = Store.open(tmp_path / "data", GW)
    try:
        again = World(store)
        assert again.executor.execute(envelope)["error"] == "replayed"
    finally:
        store.close()


def _tenant(n: int, card: int, **fields: Any) -> dict[str, Any]:
    record = {
        "id": str(uuid.UUID(int=n)), "name": f"居民{n}", "id_number": id_number(n),
        "phone": f"139{n:08d}", "room": "301", "valid_from": "2026-01-01",
        "valid_until": "2027-12-31", "status": "active",
        "cards": [{"number": card, "status": "active"}],
    }  # fmt: skip
    record.update(fields)
    return record


def test_registry_apply_full_then_delta_then_gap(world: World) -> None:
    full = {"version": 1, "base_version": None, "tenants": [_tenant(1, 1001), _tenant(2, 1002)],
            "removed": []}
    assert world.executor.execute(world.envelope("registry.apply", full))["ok"]
    assert world.store.registry_version() == 1
    assert world.store.card_lookup(1002) is not None
    delta = {"version": 2, "base_version": 1, "tenants": [_tenant(3, 1003)],
             "removed": [str(uuid.UUID(int=2))]}
    assert world.executor.execute(world.envelope("registry.apply", delta))["ok"]
    assert world.store.card_lookup(1002) is None
    assert world.store.card_lookup(1003) is not None
    gap = {"version": 4, "base_version": 3, "tenants": [_tenant(4, 1004)], "removed": []}
    result = world.executor.execute(world.envelope("registry.apply", gap))
    assert result["error"] == "version_gap"
    assert world.store.card_lookup(1004) is None
    assert world.store.registry_version() == 2
    executed = world.events("command.executed")
    assert "id_number" not in json.dumps(executed, ensure_ascii=False)


def test_registry_update_with_one_bad_record_applies_nothing(world: World) -> None:
    records = [_tenant(n, 2000 + n) for n in range(1, 6)]
    records[3]["id_number"] = "440305199001011230"  # wrong check digit
    update = {"version": 1, "base_version": None, "tenants": records, "removed": []}
    result = world.executor.execute(world.envelope("registry.apply", update))
    assert result == {"counter": 1, "ok": False, "error": "invalid_registry"}
    assert all(world.store.card_lookup(2000 + n) is None for n in range(1, 6))
    assert world.store.registry_version() is None
    rejected = world.events("command.rejected")
    assert rejected[0]["reason"] == "invalid_registry"
    # The detail says which record, never whose ID number.
    assert "440305199001011230" not in json.dumps(rejected, ensure_ascii=False)
