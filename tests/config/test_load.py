"""Reading the file: TOML and file errors, path resolution, defaults, problems gathered at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    Problem,
    default_config_path,
    load_config,
)
from tests.config.support import MINIMAL, problems, write

EXAMPLES = Path(__file__).parents[2] / "configs"


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    assert config.gateway.id == "gw-test-01"
    assert config.gateway.timezone == "Asia/Shanghai"
    assert config.buses[0].protocol == "osdp"
    door = config.door("main")
    assert (door.relay_output, door.contact_input, door.unlock_seconds) == (0, None, 5)
    assert (door.held_open_seconds, door.pin_required, door.pin_timeout_seconds) == (60, False, 10)
    assert door.scbk_file is None
    assert door.scbk is None
    assert config.mqtt is None
    assert config.camera is None
    assert (config.web.host, config.web.port, config.web.tls) == ("127.0.0.1", 8080, False)


@pytest.mark.parametrize("name", ["one-door.toml", "two-door.toml"])
def test_example_configs_load(name: str) -> None:
    config = load_config(EXAMPLES / name)

    for door in config.doors:
        assert door.scbk is not None
        assert len(door.scbk) == 16
        assert door.scbk_file is not None
        assert door.scbk_file.is_relative_to(EXAMPLES / "keys")


def test_relative_paths_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    write(folder, MINIMAL.replace('data_dir = "data"', 'data_dir = "../var/lib/gw"'))
    monkeypatch.chdir(tmp_path)

    config = load_config("etc/gateway.toml")

    assert config.gateway.data_dir == tmp_path / "var" / "lib" / "gw"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    text = MINIMAL.replace('data_dir = "data"', 'data_dir = "/var/lib/rental-gateway"')

    assert load_config(write(tmp_path, text)).gateway.data_dir == Path("/var/lib/rental-gateway")


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nid = "gw-test-01"\ndata_dir = /var/lib\n')

    assert problems(path) == [
        "(toml): not valid TOML: Invalid value (at line 3, column 12)",
    ]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "absent.toml") == ["(file): file not found"]


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert problems(tmp_path) == ["(file): is a folder; give the path of the config file"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(MINIMAL.encode("gb18030"))

    assert problems(path) == [
        "(toml): line 7 is not UTF-8 text; save the file as UTF-8, not GBK or GB18030"
    ]


def test_byte_order_mark_from_windows_editors_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(MINIMAL.encode("utf-8-sig"))

    assert load_config(path).building.name == "桃源村 42 栋"


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    text = MINIMAL.replace('id = "gw-test-01"', 'id = "GW 1"') + (
        '\n[[doors]]\nname = "back"\nbus = "rs485-1"\naddress = 1\nunlock_seconds = 40\n'
        '\n[[doors]]\nname = "side"\nbus = "rs485-9"\naddress = "2"\n'
        '\n[web]\nport = 0\nhots = "0.0.0.0"\n'
    )

    assert problems(write(tmp_path, text)) == [
        "gateway.id: must be 3 to 64 lowercase letters, digits or dashes, starting with a letter"
        ' or digit, e.g. "gw-440305-0042" (got "GW 1")',
        "doors.1.unlock_seconds: must be between 1 and 30 (got 40)",
        'doors.1.address: address 1 on bus "rs485-1" is already taken by door "main" (doors.0);'
        " each reader on a bus needs an address of its own",
        'doors.2.address: must be a whole number, not "2"',
        'doors.2.bus: no [[bus]] is named "rs485-9" (did you mean "rs485-1"?)',
        "web.port: must be between 1 and 65535 (got 0)",
        'web.hots: not a known key (did you mean "host"?)',
    ]


def test_problem_prints_as_path_key_message() -> None:
    problem = Problem(
        "/etc/rental-gateway/gateway.toml", "doors.1.address", "must be between 0 and 126"
    )

    assert (
        str(problem)
        == "/etc/rental-gateway/gateway.toml:doors.1.address: must be between 0 and 126"
    )
    assert str(ConfigError([problem, problem])) == f"{problem}\n{problem}"


def test_problems_carry_the_path_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("address = 1", "address = -1"))

    with pytest.raises(ConfigError) as caught:
        load_config(str(path))

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:doors.0.address: must be between 0 and 126 (got -1)"
    ]


def test_config_built_in_code_is_cross_checked(tmp_path: Path) -> None:
    data = load_config(write(tmp_path, MINIMAL)).model_dump(by_alias=True)
    data["doors"] += ({"name": "back", "bus": "rs485-1", "address": 1},)

    with pytest.raises(ValidationError, match="already taken by door"):
        Config.model_validate(data)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    with pytest.raises(ValidationError):
        config.gateway.id = "gw-other"


def test_default_config_path() -> None:
    assert default_config_path({}) == DEFAULT_CONFIG_PATH
    assert default_config_path({"GATEWAY_CONFIG": "/tmp/gw.toml"}) == Path("/tmp/gw.toml")
