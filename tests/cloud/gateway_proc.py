"""A gateway process for fault tests: the real Store, Uplink and CommandExecutor, making events.

    python -m tests.cloud.gateway_proc --data DIR --host 127.0.0.1 --port 18830 \\
        --gateway-id gw-test-0001 --rate 50 --count 1000 --public-key B64 [--keepalive 5]

It writes `DIR/gateway.toml` (the journal lives in DIR too), opens `gateway.store.Store`, starts
`gateway.uplink.Uplink` built from that config, and appends access events like a door's
(`store.append_event`, then `uplink.kick()`) at `--rate` per second (0: as fast as the store
commits) until the journal holds `--count` events. It then keeps the uplink running.

- SIGKILL at any moment is the point: started again on the same DIR it carries on from the
  journal (seqs continue, pending events are sent again from the ack watermark).
- SIGUSR1: make no more events, keep sending. SIGUSR2: make `--burst` more events at once, as
  fast as the store commits (a backlog, when the network is down). SIGTERM or SIGINT: stop
  cleanly (offline status, DISCONNECT, deferred store writes saved) and exit 0.

Every `--every` seconds, and once at the end, it prints one line the test can parse:

    progress made=120 making=1 last_seq=870 acked=840 published=131 resent=0 connects=2

`made` counts events this process committed, `making` is 0 once it makes no more (count reached
or SIGUSR1), `acked` is the store's ack watermark; `published`, `resent` (after an ack timeout) and
`connects` are this process's `UplinkStats`. The test's ground truth of "every event made" is the
journal itself (`events.seq` in DIR/gateway.db), which it reads read-only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.envelope import load_public_key
from gateway.clock import rfc3339
from gateway.commands import CommandExecutor
from gateway.config import Config, load_config
from gateway.store import Store
from gateway.uplink import Uplink

CONFIG_FILE = "gateway.toml"
DB_FILE = "gateway.db"  # gateway.store.store.DB_FILE, in DIR (data_dir = ".")
# Denial reasons a door gives (SPEC 6); most events are grants, as in a real building.
DENIALS = ("unknown_card", "expired", "not_yet_valid", "suspended", "lost_card")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gateway_proc", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="config and journal folder")
    parser.add_argument("--host", required=True, help="MQTT broker (or the proxy before it)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gateway-id", required=True)
    parser.add_argument("--public-key", required=True,
                        help="base64 raw Ed25519 public key of the platform ([mqtt])")
    parser.add_argument("--rate", type=float, default=50.0,
                        help="events per second (0: as fast as the store commits)")
    parser.add_argument("--count", type=int, required=True,
                        help="make events until the journal holds this many (0: none)")
    parser.add_argument("--keepalive", type=int, default=5, help="[mqtt] keepalive_seconds")
    parser.add_argument("--ack-timeout", type=float, default=None,
                        help="the session's ack timeout in seconds (default: the production 60)")
    parser.add_argument("--burst", type=int, default=5000,
                        help="events made at full speed on each SIGUSR2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the events' contents")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between progress lines")
    return parser.parse_args(argv)


def write_config(folder: Path, args: argparse.Namespace) -> Path:
    """The gateway.toml of this gateway: one door on a loop:// bus (never opened), [mqtt] set."""
    lines = [
        "[gateway]", f"id = {json.dumps(args.gateway_id)}", 'data_dir = "."',
        'timezone = "Asia/Shanghai"', "",
        "[building]", 'code = "440305001002-0042"', 'name = "测试楼"', "",
        "[[bus]]", 'name = "rs485-1"', 'port = "loop://"', "baud = 115200", "",
        "[[doors]]", 'name = "main"', 'bus = "rs485-1"', "address = 1", "",
        "[mqtt]", f"host = {json.dumps(args.host)}", f"port = {args.port}",
        f"command_public_key = {json.dumps(args.public_key)}",
        f"keepalive_seconds = {args.keepalive}", "",
    ]
    path = folder / CONFIG_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class EventMaker:
    """Access events as gateway/door.py journals them: grants mostly, some denials."""

    def __init__(self, zone: ZoneInfo, seed: int) -> None:
        self._zone = zone
        self._rng = random.Random(seed)
        self._tenants = [str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
                         for _ in range(20)]

    def stamp(self) -> dict[str, Any]:
        """The time fields of a new event (what the gateway's clock gives the doors)."""
        return {"ts": rfc3339(datetime.now(self._zone)), "clock_synced": True}

    def next_event(self) -> dict[str, Any]:
        rng = self._rng
        number = rng.randrange(1, 1 << 24)
        granted = rng.random() < 0.85
        known = granted or rng.random() < 0.5
        tenant = rng.randrange(len(self._tenants))
        return {
            "type": "access.granted" if granted else "access.denied",
            **self.stamp(),
            "door": "main",
            "credential": {"kind": "card", "number": number},
            "tenant_id": self._tenants[tenant] if known else None,
            "room": f"{tenant % 6 + 1}{tenant % 4 + 1:02d}" if known else None,
            "reason": "valid" if granted else rng.choice(DENIALS if known else ("unknown_card",)),
            "snapshot": None,
            "snapshot_error": "disabled",
        }


class StoreLockdown:
    """`gateway.commands.Lockdown` straight on the store (no doors to tell here)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def set_lockdown(self, on: bool) -> None:
        self._store.set_lockdown(on)


def last_seq(store: Store) -> int:
    row = store.reader().execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder: Path = args.data.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config: Config = load_config(write_config(folder, args))
    assert config.mqtt is not None

    stop = threading.Event()
    stop_making = threading.Event()
    bursts: list[int] = []

    def on_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def on_usr1(_signum: int, _frame: FrameType | None) -> None:
        stop_making.set()

    def on_usr2(_signum: int, _frame: FrameType | None) -> None:
        bursts.append(args.burst)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)

    store = Store.open(config.gateway.data_dir, config.gateway.id)
    maker = EventMaker(config.gateway.zone, args.seed + last_seq(store))
    uplink: Uplink | None = None

    def record(event: dict[str, Any]) -> int:
        """Journal an event (a command's outcome) and send it up, as the service does."""
        seq = store.append_event(event).seq
        if uplink is not None:
            uplink.kick()
        return seq

    executor = CommandExecutor(
        gateway_id=config.gateway.id,
        public_key=load_public_key(config.mqtt.command_public_key),
        store=store, doors={}, lockdown=StoreLockdown(store), record=record, stamp=maker.stamp,
    )  # fmt: skip
    uplink = Uplink(config, store, executor)
    if args.ack_timeout is not None:
        # The only setting the config does not carry: tests shorten it so that events a
        # restarted broker dropped are sent again within seconds rather than a minute.
        uplink.session.settings = dataclasses.replace(
            uplink.session.settings, ack_timeout=args.ack_timeout)
    uplink.start()

    made = 0
    target = args.count  # make events until the journal's last seq is this
    stats = uplink.session.stats

    def progress() -> None:
        making = int(not stop_making.is_set() and last_seq(store) < target)
        print(f"progress made={made} making={making} last_seq={last_seq(store)}"
              f" acked={store.acked_seq()} published={stats.published} resent={stats.resent}"
              f" connects={stats.connects}", flush=True)

    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    fast_until = 0  # seqs up to this one are a burst: made without waiting for the rate
    next_event = next_report = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_report:
                progress()
                next_report = now + args.every
            seq = last_seq(store)
            while bursts:
                target = fast_until = max(target, seq) + bursts.pop()
            if stop_making.is_set() or seq >= target:
                stop.wait(max(0.0, next_report - time.monotonic()))
                continue
            if now < next_event and seq >= fast_until:
                stop.wait(min(next_event, next_report) - now)
                continue
            store.append_event(maker.next_event())  # returns once committed
            made += 1
            uplink.kick()
            # A steady rate, not a sleep after each: a slow commit does not lower the rate.
            next_event = max(next_event + interval, now - 1.0)
    finally:
        uplink.stop()
        progress()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
