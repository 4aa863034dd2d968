"""A minimal central consumer for the fleet benchmark's own tests of itself.

Shared subscription on every gateway's events, one SQLite file (WAL, synchronous=FULL), dedupe
on (gateway_id, seq), a cumulative `{"seq": N}` on `P/ack` once N and all below are committed.

    python -m bench.fleet_standin --port 1883 --db events.db --client-id platform-1
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_sync.topics import Topics, fleet_filter, gateway_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    gateway_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    received REAL NOT NULL, PRIMARY KEY (gateway_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS floors (gateway_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


def run(host: str, port: int, db_path: str, client_id: str, prefix: str) -> None:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    floors: dict[str, int] = dict(db.execute("SELECT gateway_id, seq FROM floors").fetchall())
    above: dict[str, set[int]] = defaultdict(set)
    batch: list[tuple[str, int, str, float]] = []
    stop = False

    def on_stop(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(f"$share/platform/{fleet_filter(prefix, 'events')}", qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        received = time.time()
        gateway = gateway_of(prefix, msg.topic)
        try:
            event = json.loads(msg.payload)
            seq = int(event["seq"])
        except (ValueError, KeyError, TypeError):
            return
        if gateway is not None and event.get("gateway_id") == gateway:
            batch.append((gateway, seq, msg.payload.decode(), received))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: Path(db_path + ".ready").touch()
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=props)
    while not stop:
        client.loop(timeout=0.01)
        if not batch:
            continue
        rows, batch[:] = list(batch), []
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?,?)", rows)
        moved: dict[str, int] = {}
        for gateway, seq, _body, _at in rows:
            floor = floors.get(gateway, 0)
            if seq <= floor:
                moved[gateway] = floor  # a duplicate: ack again, the gateway may not know
                continue
            above[gateway].add(seq)
            while floor + 1 in above[gateway]:
                floor += 1
                above[gateway].discard(floor)
            floors[gateway] = floor
            moved[gateway] = floor
        db.executemany("INSERT OR REPLACE INTO floors VALUES (?,?)", list(moved.items()))
        db.execute("COMMIT")
        for gateway, floor in moved.items():
            if floor > 0:
                client.publish(Topics(prefix, gateway).ack, json.dumps({"seq": floor}), qos=1)
    client.disconnect()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--client-id", default="platform-1")
    parser.add_argument("--prefix", default="rental/v1")
    args = parser.parse_args()
    run(args.host, args.port, args.db, args.client_id, args.prefix)


if __name__ == "__main__":
    main()
