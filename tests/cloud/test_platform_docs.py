"""docs/platform.md and configs/mosquitto/ cannot drift from the code and the tested broker."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rental_platform import Platform, PlatformSettings, TlsFiles
from rental_platform.cli import build_parser

from .broker import Broker, acl_text
from .mqtt import NOT_AUTHORIZED
from .pki import Pki
from .test_consumer import GW1, GW2, Gateway, event

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "platform.md").read_text()
SHIPPED = ROOT / "configs" / "mosquitto"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, f"{prefix} {name}") or [f"{prefix} {name}"])
    return found


def test_every_command_is_documented() -> None:
    commands = _commands(build_parser(), "rental-platform")
    assert "rental-platform send unlock" in commands
    for command in commands:
        *head, last = command.split(" ")
        if head[-1] == "send":
            assert f"GATEWAY_ID {last}" in DOC, command
        else:
            assert f"`{command}" in DOC, command


def test_the_shipped_acl_is_the_tested_one() -> None:
    assert (SHIPPED / "acl").read_text() == acl_text()


class ShippedBroker(Broker):
    """A Broker running configs/mosquitto/mosquitto.conf, with only paths and port replaced."""

    def config_text(self) -> str:
        pki = self.pki
        assert pki is not None
        local = {
            "listener": f"listener {self.port} {self.host}",
            "cafile": f"cafile {pki.ca}",
            "certfile": f"certfile {pki.server.cert}",
            "keyfile": f"keyfile {pki.server.key}",
            "acl_file": f"acl_file {self.acl_file}",
            "persistence_location": f"persistence_location {self.persistence_dir}/",
            "log_dest": f"log_dest file {self.log_file}",
        }
        lines = []
        for line in (SHIPPED / "mosquitto.conf").read_text().splitlines():
            key = line.split(" ", 1)[0]
            lines.append(local.pop(key, line))
        assert local == {}, f"the shipped config lacks {sorted(local)}"
        if os.geteuid() == 0:
            lines.append("user root")
        return "\n".join(lines) + "\n"


def test_the_shipped_broker_config_runs_the_platform(tmp_path: Path, pki: Pki) -> None:
    with ShippedBroker(tmp_path / "broker", pki=pki) as broker:
        files = broker.credentials("platform")
        settings = PlatformSettings(
            host=broker.host, port=broker.port, db=tmp_path / "city.db",
            tls=TlsFiles(str(broker.ca_file), str(files.cert), str(files.key)),
            signing_key=Ed25519PrivateKey.generate())
        gateway = Gateway(broker, GW1)
        with Platform(settings) as platform:
            platform.wait_connected()
            gateway.send(1, 2)
            gateway.wait_ack(2)
            refused = gateway.probe.publish_wait(f"rental/v1/{GW2}/events", event(GW2, 1))
            assert refused == NOT_AUTHORIZED
            # A registry envelope of several MiB passes max_packet_size.
            tenants = [{"id": n, "name": "x" * 100} for n in range(40_000)]
            assert len(json.dumps(tenants)) > 4_000_000
            platform.send_registry(GW1, 1, None, tenants, [], timeout=30)
            gateway.probe.wait_for(lambda: bool(gateway.probe.received(gateway.topics.cmd)),
                                   timeout=30)
        gateway.close()
