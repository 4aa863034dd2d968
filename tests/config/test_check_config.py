"""`check_config_main`, behind `gateway check-config`: one line per problem, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import check_config_main
from tests.config.support import MINIMAL, write

BROKEN = MINIMAL.replace("address = 1", "address = 1\naddres = 2") + (
    '\n[[doors]]\nname = "back"\nbus = "rs485-1"\naddress = 1\n\n[web]\nhost = "0.0.0.0"\n'
)


def expected_lines(path: Path) -> list[str]:
    """The report for BROKEN written at `path`."""
    return [
        f'{path}:doors.0.addres: not a known key (did you mean "address"?)',
        f'{path}:doors.1.address: address 1 on bus "rs485-1" is already taken by door "main"'
        " (doors.0); each reader on a bus needs an address of its own",
        f'{path}:web.host: "0.0.0.0" is reachable from the network, where passwords must not'
        ' travel as plain HTTP; set tls_cert_file and tls_key_file, or use host = "127.0.0.1"',
    ]


def test_broken_file_prints_one_line_per_problem_and_returns_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BROKEN)

    assert check_config_main(path) == 2

    out, err = capsys.readouterr()
    assert out.splitlines() == expected_lines(path)
    assert err == ""


def test_valid_file_prints_a_summary_and_returns_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config_main(write(tmp_path, MINIMAL)) == 0

    assert capsys.readouterr().out == (
        "OK: gateway gw-test-01 (building 440305001002-0042 桃源村 42 栋): 1 door on 1 bus,"
        " no MQTT uplink, no camera, web page on http://127.0.0.1:8080\n"
    )


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(tmp_path / "gateway.toml") == 2

    assert capsys.readouterr().out == f"{tmp_path}/gateway.toml:(file): file not found\n"


def test_module_command_checks_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)

    result = subprocess.run(
        [sys.executable, "-m", "gateway.config", str(path)],
        capture_output=True,
        encoding="utf-8",
        check=False,
    )

    assert result.returncode == 2
    assert result.stdout.splitlines() == expected_lines(path)
