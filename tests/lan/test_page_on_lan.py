"""The page as a phone in the building meets it: another host on the LAN, Chromium, HTTPS.

A network namespace joined by a veth pair is the phone (tests/lan/namespace.py). The gateway
is provisioned from a sheet that names its end of the pair, runs as a building runs it
(`gateway run`: every part a process), and the phone finds it by IP and by its `.local` name
(mDNS), checks the self-signed certificate's fingerprint against the report, logs in as the
building head with the one-time password, chooses a new one and registers a tenant; then the
city's certificate is installed and a phone that trusts the city's CA does the same by name.
From the phone, nothing but the HTTPS page and the redirect answers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from tests.cloud.pki import make_pki
from tests.e2e.building import stop_gateway
from tests.store.factories import id_number

from .namespace import Lan, phone_lan

GW = "gw-440305-0042"
HEADER = "building_code,building_name,gateway_id,serial_port,readers,camera,broker,web_interface\n"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="a network namespace needs root and iproute2")  # fmt: skip


def provision(sheet: Path, etc: Path, data: Path, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "provision", str(sheet), "--gateway", GW,
         "--config-dir", str(etc), "--data-dir", str(data), "--baud", "115200", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def gateway_run(config: Path, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-c", str(config), "run"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _healthy():
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert _healthy(), log.read_text()[-3000:]
        yield
    finally:
        stop_gateway(proc)


def _healthy() -> bool:
    """The page answers /healthz on the box itself (plain HTTP, loopback only)."""
    try:
        report = httpx.get("http://127.0.0.1/healthz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return bool(report["status"] == "ok" and report["doors"]["main"]["reader_online"])


def test_a_phone_on_the_lan_opens_the_page_by_ip_and_by_name(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    etc, data = tmp_path / "etc", tmp_path / "data"
    with phone_lan() as lan, SimulatedBus() as bus:
        reader = SimulatedReader(bus, 1, install_mode=True).start()
        try:
            before = set(lan.run_in("tests.lan.phone", {"do": "scan", "host": lan.gateway_ip}))
            sheet = tmp_path / "buildings.csv"
            sheet.write_text(HEADER + f"440305001002-0042,桃源村 42 栋,{GW},{bus.port},main:1,,,"
                             f"{lan.interface}\n", encoding="utf-8")  # fmt: skip
            report = provision(sheet, etc, data)
            password = re.search(r"lou-zhang 的一次性密码.*：(\S+)", report)
            fingerprint = re.search(r"SHA-256 指纹：(\S+)", report)
            assert password, report
            assert fingerprint, report
            assert f"网页地址：https://{lan.gateway_ip}/  https://{GW}.local/" in report

            ask = {"do": "mdns", "name": f"{GW}.local", "interface_ip": lan.phone_ip}
            assert lan.run_in("tests.lan.phone", ask) == []  # nobody answers for it yet
            with gateway_run(etc / "gateway.toml", tmp_path / "gateway.log"):
                found = lan.run_in("tests.lan.phone", ask)
                assert found == [lan.gateway_ip]
                by_ip = visit(lan, shots, "by-ip", f"https://{lan.gateway_ip}/",
                              trust="fingerprint", fingerprint=fingerprint.group(1),
                              password=password.group(1), new_password="门禁-新密码-2026",
                              tenant=("赵敏", 42, "702"))  # fmt: skip
                assert by_ip["fingerprint"] == fingerprint.group(1)
                assert by_ip["redirect"] == [301, f"https://{lan.gateway_ip}/tenants?x=1"]
                by_name = visit(lan, shots, "by-name", f"https://{GW}.local/",
                                trust="fingerprint", fingerprint=fingerprint.group(1),
                                resolve=(f"{GW}.local", found[0]), password="门禁-新密码-2026",
                                tenant=("钱伟", 43, "703"))  # fmt: skip
                assert str(by_name["url"]).startswith(f"https://{GW}.local/tenants/")
                after = set(lan.run_in("tests.lan.phone", {"do": "scan",
                                                           "host": lan.gateway_ip}))  # fmt: skip
                assert after - before == {80, 443}

            # The city signs the request; provisioning again serves its certificate, which a
            # phone that trusts the city's CA accepts by name with no fingerprint to compare.
            pki = make_pki(tmp_path / "pki", identities=())
            keys = etc / "keys"
            (keys / "web.crt").write_bytes(pki.sign_request((keys / "web.csr").read_bytes(),
                                                            server=True))  # fmt: skip
            provision(sheet, etc, data)
            with gateway_run(etc / "gateway.toml", tmp_path / "gateway.log"):
                city = visit(lan, shots, "city-ca", f"https://{GW}.local/", trust="ca",
                             ca=str(pki.ca), resolve=(f"{GW}.local", lan.gateway_ip),
                             password="门禁-新密码-2026", tenant=("孙丽", 44, "704"))  # fmt: skip
                assert city["fingerprint"] != fingerprint.group(1)
        finally:
            reader.stop()


def visit(lan: Lan, shots: Path, name: str, url: str, *, trust: str,
          tenant: tuple[str, int, str], password: str, new_password: str | None = None,
          fingerprint: str | None = None, ca: str | None = None,
          resolve: tuple[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    who, n, room = tenant
    answer = lan.run_in("tests.lan.phone", {
        "do": "visit", "name": name, "url": url, "gateway_ip": lan.gateway_ip, "trust": trust,
        "fingerprint": fingerprint, "ca": ca, "resolve": resolve, "shots": str(shots),
        "username": "lou-zhang", "password": password, "new_password": new_password,
        "tenant": {"name": who, "id_number": id_number(n), "phone": f"139000000{n}",
                   "room": room},
    })  # fmt: skip
    assert isinstance(answer, dict)
    assert answer["saved"], answer
    assert answer["console_errors"] == [], answer
    return answer
