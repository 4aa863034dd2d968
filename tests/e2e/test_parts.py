"""`gateway run` as a building runs it: each part a process, faults put on one part at a time.

The web part killed or hung mid-swipe: the doors keep opening and every swipe is journaled.
The uplink part killed mid-drain: every event reaches the city once, none is lost. The door
part killed: it comes back and the doors open again. All against real processes: the
supervisor, libosdp readers on a pty, Mosquitto and the reference city platform.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text
from gateway.parts.runtime import Runtime
from rental_platform import Platform, PlatformSettings
from tests.cloud.broker import Broker
from tests.e2e.building import Building, building, stop_gateway

GW = "gw-test-0001"


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


class Running:
    """`gateway run` on a building, with the pids of its parts."""

    def __init__(self, b: Building, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.building = b
        self.proc = proc
        self.log = log
        self.runtime = Runtime.for_config(b.config)

    def pid(self, part: str) -> int | None:
        report = self.runtime.read_health(part)
        return None if report is None else int(report["pid"])

    def health(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.building.web_port}/healthz", timeout=2)
        except httpx.HTTPError:
            return None
        report: dict[str, Any] = response.json()
        return report

    def doors_up(self) -> bool:
        """Every part running and reporting, every reader online."""
        report = self.health()
        return report is not None and report["status"] == "ok" and all(
            d["reader_online"] for d in report["doors"].values()) and all(
            self.pid(part) is not None for part in report["parts"])  # fmt: skip

    def swipe_opens(self, card: int) -> bool:
        """Present `card`; whether the reader got the relay command."""
        reader = self.building.readers["main"]
        reader.present_card(card)
        return reader.wait_for_output(timeout=10) is not None

    def granted(self) -> int:
        with self.building.open_store() as store:
            return sum(1 for e in store.events_after(0, 100_000)
                       if e.body["type"] == "access.granted")  # fmt: skip


@contextmanager
def gateway_run(b: Building, tmp_path: Path) -> Iterator[Running]:
    log = tmp_path / "gateway.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-c", str(b.config_path), "run"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    running = Running(b, proc, log)
    try:
        assert wait_until(running.doors_up, 60), log.read_text()[-3000:]
        yield running
    finally:
        stop_gateway(proc)


def test_the_doors_keep_opening_while_the_web_part_hangs_or_dies(tmp_path: Path) -> None:
    with building(tmp_path) as b, gateway_run(b, tmp_path) as run:
        card = b.cards["valid"]
        before = run.granted()
        web = run.pid("web")
        door = run.pid("door")
        assert web is not None
        assert door is not None
        assert web != door

        os.kill(web, signal.SIGSTOP)  # hung: holds its sockets, answers nothing
        try:
            assert run.health() is None
            assert all(run.swipe_opens(card) for _ in range(5))
        finally:
            os.kill(web, signal.SIGCONT)

        os.kill(web, signal.SIGKILL)  # dead, mid-swipe
        assert all(run.swipe_opens(card) for _ in range(5))
        # The supervisor starts it again, alone: the door part is the same process.
        assert wait_until(lambda: run.pid("web") not in (None, web) and run.doors_up(), 60)
        assert run.pid("door") == door
        assert run.granted() == before + 10


def test_a_door_part_that_dies_comes_back(tmp_path: Path) -> None:
    with building(tmp_path) as b, gateway_run(b, tmp_path) as run:
        door = run.pid("door")
        assert door is not None
        os.kill(door, signal.SIGKILL)
        assert wait_until(lambda: run.pid("door") not in (None, door) and run.doors_up(), 60)
        assert run.swipe_opens(b.cards["valid"])


@pytest.fixture
def city(tmp_path: Path) -> Iterator[tuple[Broker, Platform, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    with Broker(tmp_path / "broker") as broker:
        platform = Platform(PlatformSettings(
            host=broker.host, port=broker.port, db=tmp_path / "platform.db",
            client_id="platform", signing_key=key,
        )).start()  # fmt: skip
        platform.wait_connected()
        try:
            yield broker, platform, key
        finally:
            platform.stop()


def test_an_uplink_part_killed_mid_drain_loses_nothing(
    tmp_path: Path, city: tuple[Broker, Platform, Ed25519PrivateKey]
) -> None:
    broker, platform, key = city
    backlog = 5_000
    (tmp_path / "building").mkdir()
    with building(tmp_path / "building") as b:
        with b.config_path.open("a") as config:
            config.write(f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                         f'command_public_key = "{public_key_text(key)}"\n')  # fmt: skip
        with b.open_store() as store:  # days without network: a backlog to drain
            store.transaction(lambda tx: [
                tx.append_event({"type": "reader.online", "door": "main", "n": n})
                for n in range(backlog)])  # fmt: skip
            last = store.last_seq()
        # The city stores nothing until the uplink is killed: the kill lands mid-drain
        # however fast this machine drains, and the new uplink must send the rest again.
        city_paused = threading.Event()
        threading.Thread(target=platform._ingest.write, args=(lambda _conn: city_paused.wait(120),),
                         daemon=True).start()  # fmt: skip
        try:
            with gateway_run(b, tmp_path) as run:
                uplink = run.pid("uplink")
                assert uplink is not None
                assert wait_until(lambda: platform.stats.received > 0, 60)
                os.kill(uplink, signal.SIGKILL)
                with b.open_store() as store:
                    acked_at_kill = store.acked_seq()
                city_paused.set()
                # The doors do not notice.
                assert run.swipe_opens(b.cards["valid"])
                assert wait_until(lambda: run.pid("uplink") not in (None, uplink), 60)
                assert wait_until(lambda: {e.seq for e in platform.events_for(GW)} >= set(
                    range(1, last + 2)), 120), f"stored {len(platform.events_for(GW))}"  # fmt: skip
        finally:
            city_paused.set()
    assert acked_at_kill < last, "the uplink was killed after the drain, not during it"
    seqs = [e.seq for e in platform.events_for(GW)]
    assert len(seqs) == len(set(seqs)), "an event stored twice"
