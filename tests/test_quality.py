"""The code stays clean: ruff and mypy --strict over the whole project, as configured."""

from __future__ import annotations

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


def test_libraries_never_import_the_gateway() -> None:
    """firmware_bridge and cloud_sync stay usable on their own (docs/architecture.md)."""
    for package in ("firmware_bridge", "cloud_sync"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "import gateway" not in text, path
            assert "from gateway" not in text, path
    for path in (ROOT / "firmware_bridge").rglob("*.py"):
        assert "cloud_sync" not in path.read_text(), path
