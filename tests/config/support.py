"""Helpers for the config tests: a minimal valid file and a way to list its problems."""

from __future__ import annotations

from pathlib import Path

from gateway.config import ConfigError, load_config

MINIMAL = """\
[gateway]
id = "gw-test-01"
data_dir = "data"

[building]
code = "440305001002-0042"
name = "桃源村 42 栋"

[[bus]]
name = "rs485-1"
port = "loop://"
baud = 9600

[[doors]]
name = "main"
bus = "rs485-1"
address = 1
"""

PUBLIC_KEY = "Icc8ml9oVUfowzsaciPTbkT1glG6UF3ERfq6rYqEUFY="
SCBK_HEX = "c2ee9c7fa5a2b25fbe7da0aae2a2b128"


def write(folder: Path, text: str, name: str = "gateway.toml") -> Path:
    """Write `text` to `folder/name` and return the path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """Return the problems `load_config` reports for `path` as `key: message` lines."""
    try:
        load_config(path)
    except ConfigError as error:
        return [f"{problem.key}: {problem.message}" for problem in error.problems]
    raise AssertionError(f"{path} loaded without problems")


def problem_keys(path: Path) -> list[str]:
    """Return the dotted keys of the problems `load_config` reports for `path`."""
    return [line.split(": ", 1)[0] for line in problems(path)]
