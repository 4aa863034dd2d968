"""Event time stamps and the systemd notification protocol."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.clock import clock_synchronised, rfc3339
from gateway.sdnotify import Notifier


def test_rfc3339_keeps_offset_and_milliseconds() -> None:
    moment = datetime(2026, 11, 26, 20, 1, 2, 123456, tzinfo=timezone(timedelta(hours=8)))
    assert rfc3339(moment) == "2026-11-26T20:01:02.123+08:00"
    with pytest.raises(ValueError, match="time zone"):
        rfc3339(datetime(2026, 11, 26))


def test_clock_synchronised_answers_a_bool() -> None:
    assert isinstance(clock_synchronised(), bool)


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_delivers_datagrams(tmp_path: Path, abstract: bool) -> None:
    name = f"\0gateway-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(name)
        server.settimeout(2)
        notifier = Notifier("@" + name[1:] if abstract else name)
        assert notifier.enabled
        assert notifier.notify("READY=1")
        assert server.recv(100) == b"READY=1"


def test_notifier_reports_an_unreachable_socket(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "missing"))
    assert notifier.notify("WATCHDOG=1") is False


def test_notifier_without_socket_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().notify("READY=1") is False


def test_watchdog_interval_is_half_the_period(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier("x").watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier("x").watchdog_interval() is None


def test_health_warns_of_an_unsynchronised_clock_and_a_low_disk_without_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections import namedtuple

    from gateway import clock, service
    from gateway.config import load_config
    from tests.e2e.building import write_config

    config = load_config(write_config(tmp_path, "/dev/null", [{"name": "main", "address": 1}],
                                      8080))  # fmt: skip
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(clock, "clock_synchronised", lambda: False)
    monkeypatch.setattr("shutil.disk_usage",
                        lambda _p: usage(10**10, 10**10, 50 << 20))
    gateway = service.Gateway(config, web=False)
    report = gateway.health()
    assert report["disk_free_mb"] == 50
    assert any("clock not synchronised" in w for w in report["warnings"])
    assert any("data disk low: 50 MB free" in w for w in report["warnings"])
    # Warnings are not problems: the watchdog must not restart a gateway for them.
    assert not any("clock" in p or "disk" in p for p in report["problems"])
