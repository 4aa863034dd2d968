"""A simulated building for end-to-end tests: libosdp readers on a pty, a config file, a store."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import Config, load_config
from gateway.store import Store, TenantCreate
from tests.store.factories import id_number


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    """End `gateway run` as systemd does (SIGTERM), its whole group if it does not end."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def building_today() -> date:
    """Today in the building's time zone, as the gateway decides it."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Building:
    """Paths and readers of one simulated building."""

    folder: Path
    config_path: Path
    bus: SimulatedBus
    readers: dict[str, SimulatedReader]
    keys: dict[str, bytes | None]
    web_port: int
    cards: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def open_store(self) -> Store:
        return Store.open(self.data_dir, "gw-test-0001")


def write_config(folder: Path, port: str, doors: list[dict[str, object]], web_port: int,
                 baud: int = 115200) -> Path:
    """Write a gateway.toml for `doors` on one bus at `port`."""
    lines = [
        "[gateway]", 'id = "gw-test-0001"', 'data_dir = "data"', 'timezone = "Asia/Shanghai"',
        "", "[building]", 'code = "440305001002-0042"', 'name = "测试楼"', "",
        "[[bus]]", 'name = "rs485-1"', f"port = {json.dumps(port)}", f"baud = {baud}", "",
    ]
    for door in doors:
        lines.append("[[doors]]")
        lines.append('bus = "rs485-1"')
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in door.items())
        lines.append("")
    lines += ["[web]", 'host = "127.0.0.1"', f"port = {web_port}", ""]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines))
    return path


def seed(store: Store, today: date) -> dict[str, int]:
    """Tenants for every decision: returns card numbers by what they should produce."""
    cards = {"valid": 1234567, "valid34": 3_000_000_001, "expired": 2345678,
             "future": 2400000, "suspended": 3456789, "lost": 4567890}
    windows = {
        "expired": (today - timedelta(days=400), today - timedelta(days=1)),
        "future": (today + timedelta(days=1), today + timedelta(days=400)),
    }
    for n, (kind, number) in enumerate(cards.items(), start=1):
        valid_from, valid_until = windows.get(
            kind, (today - timedelta(days=30), today + timedelta(days=365)))
        tenant = store.add_tenant(TenantCreate(
            name=f"租客{n}", id_number=id_number(n), phone=f"139{n:08d}", room=f"{n}01",
            valid_from=valid_from, valid_until=valid_until, cards=(number,)))
        if kind == "suspended":
            store.set_tenant_status(tenant.id, "suspended")
        if kind == "lost":
            store.set_card_status(number, "lost")
    cards["unknown"] = 999999
    return cards


@contextmanager
def building(folder: Path, *, secure: bool = False, contact: bool = False,
             second_door: bool = False, bus_baud: int | None = None,
             config_baud: int = 115200) -> Iterator[Building]:
    """Readers started, config written, registry seeded; the gateway is not started."""
    with ExitStack() as stack:
        bus = stack.enter_context(SimulatedBus(baud=bus_baud))
        keys: dict[str, bytes | None] = {"main": secrets.token_bytes(16) if secure else None}
        main: dict[str, object] = {"name": "main", "address": 1, "unlock_seconds": 4}
        if contact:
            main["contact_input"] = 0
            main["held_open_seconds"] = 5
        if keys["main"] is not None:
            keydir = folder / "keys"
            keydir.mkdir()
            (keydir / "main.scbk").write_text(keys["main"].hex())
            main["scbk_file"] = "keys/main.scbk"
        doors = [main]
        readers = {"main": SimulatedReader(bus, 1, scbk=keys["main"]).start()}
        stack.callback(readers["main"].stop)
        if second_door:
            doors.append({"name": "back", "address": 2, "unlock_seconds": 2})
            keys["back"] = None
            readers["back"] = SimulatedReader(bus, 2).start()
            stack.callback(readers["back"].stop)
        web_port = free_port()
        path = write_config(folder, bus.port, doors, web_port, baud=config_baud)
        b = Building(folder, path, bus, readers, keys, web_port)
        with b.open_store() as store:
            b.cards = seed(store, building_today())
        yield b
