"""scripts/install staged into a folder (ROOT=...): install, upgrade keeping config and data,
remove keeping them, purge."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install"


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, "ROOT": str(root)},
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_install_upgrade_remove_and_purge(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\nvideo:x:44:\n")

    first = install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    gateway = root / "opt" / "rental-gateway" / "venv" / "bin" / "gateway"
    version = subprocess.run([str(gateway), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("gateway ")
    units = root / "etc" / "systemd" / "system"
    assert (units / "rental-gateway@.service").is_file()
    assert (units / "rental-gateway.target").is_file()
    for part in ("door", "camera", "uplink", "web", "edge"):
        assert (units / f"rental-gateway@{part}.service.d" / "part.conf").is_file()
    assert "rental-gateway:x:" in (root / "etc" / "passwd").read_text()
    assert stat.S_IMODE((root / "etc" / "rental-gateway" / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "var" / "lib" / "rental-gateway").stat().st_mode) == 0o700

    config = root / "etc" / "rental-gateway" / "gateway.toml"
    config.write_text("# the installer's\n")
    journal = root / "var" / "lib" / "rental-gateway" / "gateway.db"
    journal.write_bytes(b"tenants and events")
    upgrade = install(root)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert config.read_text() == "# the installer's\n"
    assert journal.read_bytes() == b"tenants and events"
    assert subprocess.run([str(gateway), "--version"], capture_output=True).returncode == 0

    removed = install(root, "--remove")
    assert removed.returncode == 0, removed.stderr
    assert not (root / "opt" / "rental-gateway").exists()
    assert list(units.glob("rental-gateway*")) == []
    assert config.exists()
    assert journal.exists()

    purged = install(root, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc" / "rental-gateway").exists()
    assert not (root / "var" / "lib" / "rental-gateway").exists()
