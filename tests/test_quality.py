"""The code stays clean: ruff and mypy --strict over the whole project, as configured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff", "mypy"],
)
def test_linters_pass(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


LIBRARIES = ("firmware_bridge", "cloud_sync", "web_security")
APPLICATIONS = ("gateway", "rental_platform")


def _imports(package: str, name: str) -> list[Path]:
    """The files of `package` that import `name`."""
    return [
        path
        for path in (ROOT / package).rglob("*.py")
        if re.search(rf"^\s*(from|import) {name}\b", path.read_text(), re.MULTILINE)
    ]


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_never_import_applications(library: str) -> None:
    """The libraries stay usable on their own (docs/architecture.md)."""
    for application in APPLICATIONS:
        assert _imports(library, application) == []
    assert _imports("firmware_bridge", "cloud_sync") == []


@pytest.mark.parametrize(("one", "other"), [APPLICATIONS, APPLICATIONS[::-1]])
def test_applications_never_import_each_other(one: str, other: str) -> None:
    """The gateway and the city platform share libraries, never code of each other's: the
    demo runs `rental-platform` as a process of its own."""
    assert _imports(one, other) == []
