"""The systemd units, checked as CI must: `systemd-analyze verify` says nothing at all (it
exits 0 on unknown keys and bad values, so any output fails), and each part's exposure
from `systemd-analyze security --offline=true` is at most 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "rental-gateway@.service"
TARGET = ROOT / "systemd" / "rental-gateway.target"
PARTS = ("door", "camera", "uplink", "web", "edge")
SYSUSERS = ROOT / "systemd" / "rental-gateway.sysusers"
INSTALLED_EXEC = "/opt/rental-gateway/venv/bin/gateway"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="scripts/setup --test installs systemd")  # fmt: skip


def checkable_copy(tmp_path: Path, part: str) -> Path:
    """Part `part`'s unit (the template as that instance, with its drop-in beside it) with
    ExecStart pointing at this checkout's gateway: verify checks that the program exists,
    and the installed path exists only on an installed Pi."""
    text = UNIT.read_text()
    assert INSTALLED_EXEC in text
    here = Path(sys.executable).parent / "gateway"
    copy = tmp_path / f"rental-gateway@{part}.service"
    copy.write_text(text.replace(INSTALLED_EXEC, str(here)))
    shutil.copytree(ROOT / "systemd" / f"{copy.name}.d", tmp_path / f"{copy.name}.d")
    shutil.copy(TARGET, tmp_path / TARGET.name)
    return copy


@pytest.mark.parametrize("part", PARTS)
def test_verify_says_nothing(tmp_path: Path, part: str) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(checkable_copy(tmp_path, part))],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


@pytest.mark.parametrize("part", PARTS)
def test_exposure_is_at_most_two(tmp_path: Path, part: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(checkable_copy(tmp_path, part))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


def test_every_part_has_its_own_limits() -> None:
    for part in PARTS:
        text = (ROOT / "systemd" / f"rental-gateway@{part}.service.d" / "part.conf").read_text()
        for key in ("MemoryMax=", "LimitNOFILE=", "TasksMax="):
            assert key in text, (part, key)
    door = (ROOT / "systemd" / "rental-gateway@door.service.d" / "part.conf").read_text()
    # Nothing on the network can reach the door's process: it has no network.
    assert "PrivateNetwork=yes" in door
    assert "RestrictAddressFamilies=AF_UNIX" in door
    assert all(f"rental-gateway@{part}.service" in TARGET.read_text() for part in PARTS)
    # The page on 443 and 80: the edge may bind a low port, and gets nothing else of root's.
    edge = (ROOT / "systemd" / "rental-gateway@edge.service.d" / "part.conf").read_text()
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in edge
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in edge


def test_the_unit_keeps_the_promises_the_docs_make() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "StartLimitIntervalSec=0",
                 "User=rental-gateway", "ProtectSystem=strict", "StateDirectory=rental-gateway",
                 "DevicePolicy=closed", "RuntimeDirectoryPreserve=yes",
                 "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
                 "LoadCredential=keys:/etc/rental-gateway/keys"):  # fmt: skip
        assert line in text, line


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_the_system_user_is_created_with_its_device_groups(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "group").write_text("dialout:x:20:\nvideo:x:44:\n")
    (etc / "passwd").write_text("")
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"^rental-gateway:x:\d+:\d+:.*:/var/lib/rental-gateway:/usr/sbin/nologin$",
                     (etc / "passwd").read_text(), re.M)  # fmt: skip
    groups = (etc / "group").read_text()
    assert re.search(r"^dialout:x:20:rental-gateway$", groups, re.M)
    assert re.search(r"^video:x:44:rental-gateway$", groups, re.M)
