"""Rules across entries: buses named by doors exist, names are unique, one address per reader."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from tests.config.support import MINIMAL, problems, write

SECOND_BUS = '\n[[bus]]\nname = "rs485-2"\nport = "/dev/ttyUSB1"\nbaud = 9600\n'


def door(name: str, bus: str, address: int) -> str:
    """Return a [[doors]] table."""
    return f'\n[[doors]]\nname = "{name}"\nbus = "{bus}"\naddress = {address}\n'


def test_door_on_unknown_bus(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('bus = "rs485-1"', 'bus = "rs485-l"'))

    assert problems(path) == [
        'doors.0.bus: no [[bus]] is named "rs485-l" (did you mean "rs485-1"?)'
    ]


def test_door_on_unknown_bus_lists_the_buses_when_nothing_is_close(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('bus = "rs485-1"', 'bus = "uart"') + SECOND_BUS)

    assert problems(path) == ['doors.0.bus: no [[bus]] is named "uart" (known: rs485-1, rs485-2)']


def test_duplicate_address_on_one_bus(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + door("back", "rs485-1", 2) + door("side", "rs485-1", 1))

    assert problems(path) == [
        'doors.2.address: address 1 on bus "rs485-1" is already taken by door "main" (doors.0);'
        " each reader on a bus needs an address of its own"
    ]


def test_same_address_on_different_buses_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + SECOND_BUS + door("back", "rs485-2", 1))

    config = load_config(path)

    assert [(d.bus, d.address) for d in config.doors] == [("rs485-1", 1), ("rs485-2", 1)]
    assert config.bus("rs485-2").port == "/dev/ttyUSB1"


def test_duplicate_door_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + door("main", "rs485-1", 2))

    assert problems(path) == [
        'doors.1.name: "main" is already the name of doors.0; names must be unique'
    ]


def test_duplicate_bus_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + SECOND_BUS.replace("rs485-2", "rs485-1"))

    assert problems(path) == [
        'bus.1.name: "rs485-1" is already the name of bus.0; names must be unique'
    ]


def test_cross_checks_run_next_to_field_errors(tmp_path: Path) -> None:
    text = MINIMAL.replace("baud = 9600", "baud = 1") + door("back", "rs485-1", 1)

    assert problems(write(tmp_path, text)) == [
        "bus.0.baud: must be 9600, 19200, 38400, 57600, 115200 or 230400 (got 1)",
        'doors.1.address: address 1 on bus "rs485-1" is already taken by door "main" (doors.0);'
        " each reader on a bus needs an address of its own",
    ]


def test_entries_with_wrong_types_are_left_to_their_field_errors(tmp_path: Path) -> None:
    text = MINIMAL + door("back", "rs485-1", 1).replace("address = 1", 'address = "1"')

    assert problems(write(tmp_path, text)) == ['doors.1.address: must be a whole number, not "1"']
