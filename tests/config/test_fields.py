"""Rules of single keys, and how their problems read: names, types, ranges, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from tests.config.support import MINIMAL, problem_keys, problems, write


@pytest.mark.parametrize("bad_id", ["GW-1", "gw", "-gw-1", "gw_1", "gw 1", "g" * 65])
def test_bad_gateway_id(tmp_path: Path, bad_id: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"gw-test-01"', f'"{bad_id}"'))

    [problem] = problems(path)
    assert problem.startswith(
        "gateway.id: must be 3 to 64 lowercase letters, digits or dashes, starting with a letter"
        ' or digit, e.g. "gw-440305-0042" (got "'
    )


@pytest.mark.parametrize("reserved", ["platform", "rental-platform-1"])
def test_platform_identities_are_not_gateway_ids(tmp_path: Path, reserved: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"gw-test-01"', f'"{reserved}"'))

    [problem] = problems(path)
    assert problem.startswith("gateway.id: ")
    assert "reserved for the city platform" in problem


@pytest.mark.parametrize("good_id", ["gw1", "440305-0042", "g" * 64])
def test_good_gateway_id(tmp_path: Path, good_id: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"gw-test-01"', f'"{good_id}"'))

    assert load_config(path).gateway.id == good_id


def test_unknown_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[building]", 'timezone = "Beijing"\n\n[building]'))

    assert problems(path) == [
        'gateway.timezone: "Beijing" is not a known IANA time zone;'
        ' use a name such as "Asia/Shanghai"'
    ]


def test_time_zone_is_usable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[building]", 'timezone = "Asia/Urumqi"\n\n[building]'))

    assert str(load_config(path).gateway.zone) == "Asia/Urumqi"


def test_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "adress = 2\n")

    assert problems(path) == ['doors.0.adress: not a known key (did you mean "address"?)']


def test_unknown_key_without_a_close_one_lists_the_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[building]", "colour = 1\n\n[building]"))

    assert problems(path) == ["gateway.colour: not a known key (known: id, data_dir, timezone)"]


def test_unknown_section_suggests_the_known_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[[door]]\nname = "back"\n')

    assert problems(path) == ['door: not a known key (did you mean "doors"?)']


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("address = 1", 'address = "1"', 'doors.0.address: must be a whole number, not "1"'),
        ("address = 1", "address = 1.0", "doors.0.address: must be a whole number, not 1.0"),
        ("address = 1", "address = true", "doors.0.address: must be a whole number, not true"),
        (
            "baud = 9600",
            'baud = "9600"',
            'bus.0.baud: must be 9600, 19200, 38400, 57600, 115200 or 230400 (got "9600")',
        ),
        ('name = "main"', "name = 1", "doors.0.name: must be text in quotes, not 1"),
        (
            'port = "loop://"',
            "port = 2024-01-01",
            "bus.0.port: must be text in quotes, not the date/time 2024-01-01",
        ),
        ('data_dir = "data"', "data_dir = 5", "gateway.data_dir: must be a path in quotes, not 5"),
        (
            "address = 1",
            'address = 1\nunlock_seconds = "5"',
            'doors.0.unlock_seconds: must be a number, not "5"',
        ),
        (
            "address = 1",
            "address = 1\npin_required = 1",
            "doors.0.pin_required: must be true or false, not 1",
        ),
        ('"桃源村 42 栋"', "[1]", "building.name: must be text in quotes, not a list"),
    ],
)
def test_wrong_type(tmp_path: Path, line: str, replacement: str, expected: str) -> None:
    path = write(tmp_path, MINIMAL.replace(line, replacement, 1))

    assert problems(path) == [expected]


def test_number_where_a_section_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, "web = 1\n" + MINIMAL)

    assert problems(path) == ["web: must be a table, not 1"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("[gateway]", "gateway: the [gateway] section is required"),
        ("[building]", "building: the [building] section is required"),
        ("[[bus]]", "bus: at least one [[bus]] table is required"),
        ("[[doors]]", "doors: at least one [[doors]] table is required"),
    ],
)
def test_missing_section(tmp_path: Path, section: str, expected: str) -> None:
    blocks = [block for block in MINIMAL.split("\n\n") if not block.startswith(section)]

    assert expected in problems(write(tmp_path, "\n\n".join(blocks)))


def test_missing_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("address = 1\n", ""))

    assert problems(path) == ["doors.0.address: required key is missing"]


def test_table_where_a_list_of_tables_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("[[doors]]", "[doors]"))

    assert problems(path) == ["doors: write [[doors]], not [doors]: this is a list of tables"]


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("address = 1", "address = 127", "doors.0.address: must be between 0 and 126 (got 127)"),
        (
            "address = 1",
            "address = 1\nunlock_seconds = 0.5",
            "doors.0.unlock_seconds: must be between 1 and 30 (got 0.5)",
        ),
        (
            "address = 1",
            "address = 1\nheld_open_seconds = 4000",
            "doors.0.held_open_seconds: must be between 5 and 3600 (got 4000)",
        ),
        (
            "address = 1",
            "address = 1\nrelay_output = -1",
            "doors.0.relay_output: must be at least 0 (got -1)",
        ),
        (
            "baud = 9600",
            "baud = 4800",
            "bus.0.baud: must be 9600, 19200, 38400, 57600, 115200 or 230400 (got 4800)",
        ),
    ],
)
def test_out_of_range(tmp_path: Path, line: str, replacement: str, expected: str) -> None:
    assert problems(write(tmp_path, MINIMAL.replace(line, replacement))) == [expected]


def test_fractional_unlock_time_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "unlock_seconds = 2.5\n")

    assert load_config(path).doors[0].unlock_seconds == 2.5


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "4403-",
            'must be digits in groups joined by single dashes, e.g. "440305001002-0042"'
            ' (got "4403-")',
        ),
        ("", 'must be digits in groups joined by single dashes, e.g. "440305001002-0042" (got "")'),
        ("1" * 41, f'must be at most 40 characters long (got "{"1" * 37}…")'),
    ],
)
def test_bad_building_code(tmp_path: Path, code: str, expected: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"440305001002-0042"', f'"{code}"'))

    assert problems(path) == [f"building.code: {expected}"]


def test_blank_building_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"桃源村 42 栋"', '"  "'))

    assert problems(path) == ["building.name: must not be blank"]


@pytest.mark.parametrize(
    "port", ["/dev/ttyUSB0", "/dev/serial/by-id/usb-FTDI-if00-port0", "loop://", "socket://h:1"]
)
def test_serial_port_accepted(tmp_path: Path, port: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"loop://"', f'"{port}"'))

    assert load_config(path).buses[0].port == port


def test_relative_serial_port_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"loop://"', '"ttyUSB0"'))

    assert problems(path) == [
        'bus.0.port: "ttyUSB0" is not an absolute device path; write e.g. "/dev/ttyUSB0" or'
        ' "/dev/serial/by-id/…", or a pyserial URL such as "loop://"'
    ]


def test_unknown_serial_url_scheme_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('"loop://"', '"tcp://10.0.0.5:4001"'))

    assert problem_keys(path) == ["bus.0.port"]
    assert '"tcp://" is not a pyserial URL' in problems(path)[0]


def test_bad_door_name(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('name = "main"', 'name = "Main Door"'))

    assert problems(path) == [
        'doors.0.name: must be 1 to 32 lowercase letters, digits, "-" or "_", starting with a'
        ' letter or digit, e.g. "main" (got "Main Door")'
    ]
