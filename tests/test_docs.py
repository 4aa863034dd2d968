"""Documentation that cannot drift: every command of `gateway` is in the README."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str = "gateway") -> list[str]:
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                found.extend(nested or [f"{prefix} {name}"])
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = _commands(build_parser())
    assert "gateway tenants import" in commands
    missing = [c for c in commands if c.split(" ", 1)[1] not in README]
    assert missing == []


def test_every_provision_option_is_documented() -> None:
    install = (Path(__file__).resolve().parent.parent / "docs" / "install.md").read_text()
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))  # fmt: skip
    options = [option for action in commands.choices["provision"]._actions
               for option in action.option_strings if option.startswith("--")]  # fmt: skip
    assert "--lang" in options
    assert [o for o in options if o != "--help" and f"`{o}" not in install] == []


def test_every_mqtt_topic_is_documented() -> None:
    from cloud_sync.topics import Topics

    topics = Topics("rental/v1", "gw")
    leaves = [topics.status, topics.events, topics.snapshot("{event_id}"), topics.ack, topics.cmd,
              topics.cmd_result, topics.web_csr]  # fmt: skip
    uplink = (Path(__file__).resolve().parent.parent / "docs" / "uplink.md").read_text()
    missing = [t for t in leaves if "P/" + t.removeprefix("rental/v1/gw/") not in uplink]
    assert missing == []


def test_every_event_type_is_documented() -> None:
    from gateway.store import EVENT_TYPES

    uplink = (Path(__file__).resolve().parent.parent / "docs" / "uplink.md").read_text()
    assert [t for t in sorted(EVENT_TYPES) if f"`{t}`" not in uplink] == []


def test_every_web_route_is_documented(tmp_path: Path) -> None:
    from gateway.store import Store
    from gateway.web.app import create_app
    from tests.web.building import BuildingGateway
    from web_security.routes import route_roles

    web = (Path(__file__).resolve().parent.parent / "docs" / "web.md").read_text()
    with Store.open(tmp_path, "gw-docs-0001") as store:
        found = route_roles(create_app(BuildingGateway(store, tmp_path)))
    missing = sorted(f"{method} {path}" for method, path in found
                     if f"`{method} {path}`" not in web and f"{method} {path}`" not in web)
    assert missing == []


def test_credential_paths_are_documented() -> None:
    config = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    assert "`credential:FILE`" in config
