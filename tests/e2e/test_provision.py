"""`gateway provision` end to end: libosdp readers in install mode on a pty, the real command.

The first run makes the keys, sets them on the readers (KEYSET), writes the config and the
first account and passes its self-test; a rerun changes nothing; then the gateway runs with
that config, the readers come up on the secure channel and a card opens the door.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import load_config
from gateway.service import Gateway
from gateway.store import Store, TenantCreate
from rental_platform.certify.names import RequestUnfit, check_request, page_name
from tests.store.factories import id_number

GATEWAY = [sys.executable, "-m", "gateway.cli"]
HEADER = "building_code,building_name,gateway_id,serial_port,readers,camera,broker\n"


def provision(sheet: Path, etc: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, "provision", str(sheet), "--gateway", "gw-440305-0042", "--config-dir",
         str(etc), "--data-dir", str(data), "--baud", "115200", *extra],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_provision_keys_the_readers_and_the_building_opens_its_door(tmp_path: Path) -> None:
    etc, data = tmp_path / "etc", tmp_path / "data"
    with SimulatedBus() as bus:
        readers = {
            "main": SimulatedReader(bus, 1, install_mode=True).start(),
            "back": SimulatedReader(bus, 2, install_mode=True).start(),
        }
        try:
            sheet = tmp_path / "buildings.csv"
            sheet.write_text(
                HEADER
                + f"440305001002-0041,桃源村 41 栋,gw-440305-0041,{bus.port},main:1,,\n"
                + f"440305001002-0042,桃源村 42 栋,gw-440305-0042,{bus.port},main:1;back:2,,\n",
                encoding="utf-8-sig",
            )
            first = provision(sheet, etc, data)
            assert first.returncode == 0, first.stdout + first.stderr
            out = first.stdout
            # The report is in Chinese; its marks are the same in every language.
            assert "[PASS] 读卡器 main（地址 1）：通过 — 原处于安装模式；已设密钥（KEYSET）" in out
            assert "[PASS] 读卡器 back（地址 2）：通过 — 原处于安装模式；已设密钥（KEYSET）" in out
            assert "通过：可以验收签字" in out
            assert "lou-zhang 的一次性密码" in out
            for name in ("main.scbk", "back.scbk", "mqtt-client.key"):
                mode = stat.S_IMODE((etc / "keys" / name).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
            for door in ("main", "back"):
                keyset = readers[door].wait_for("keyset", timeout=5)
                assert keyset is not None
                key = bytes.fromhex((etc / "keys" / f"{door}.scbk").read_text())
                assert keyset.fields["data"] == key
            config_text = (etc / "gateway.toml").read_text()

            again = provision(sheet, etc, data)
            assert again.returncode == 0, again.stdout + again.stderr
            assert "：已创建" not in again.stdout  # a rerun changes nothing that is right
            assert ": updated" not in again.stdout
            assert "读卡器 main（地址 1）：通过 — 已用自己的密钥建立安全通道" in again.stdout
            assert "One-time password" not in again.stdout
            assert (etc / "gateway.toml").read_text() == config_text

            config = load_config(etc / "gateway.toml")
            assert [d.name for d in config.doors] == ["main", "back"]
            with Store.open(config.gateway.data_dir, config.gateway.id) as store:
                store.add_tenant(TenantCreate(
                    name="黄磊", id_number=id_number(61), phone="13900000061", room="101",
                    valid_from=date.today() - timedelta(days=1),
                    valid_until=date.today() + timedelta(days=300), cards=(5_550_001,),
                ))  # fmt: skip
            gateway = Gateway(config, web=False)
            gateway.start()
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not all(
                        d.online for d in gateway.doors.values()):  # fmt: skip
                    time.sleep(0.05)
                assert gateway.health()["doors"]["main"]["secure_channel"]
                readers["main"].present_card(5_550_001)
                assert readers["main"].wait_for_output(timeout=10) is not None
            finally:
                gateway.stop()
        finally:
            for reader in readers.values():
                reader.stop()


def test_a_bad_row_is_named_by_its_line(tmp_path: Path) -> None:
    sheet = tmp_path / "buildings.csv"
    sheet.write_text(HEADER + "440305001002-0042,桃源村 42 栋,gw-440305-0042,/dev/ttyUSB0,"
                     "main=1,,\n")  # fmt: skip
    result = provision(sheet, tmp_path / "etc", tmp_path / "data")
    assert result.returncode == 2
    assert "line 2: readers: 'main=1' is not door:address" in result.stderr
    assert not (tmp_path / "etc").exists()


def test_the_uplink_waits_for_the_citys_certificate(tmp_path: Path) -> None:
    sheet = tmp_path / "buildings.csv"
    sheet.write_text(HEADER + "440305001002-0042,桃源村 42 栋,gw-440305-0042,/dev/ttyUSB9,"
                     "main:1,,mqtt.example.gov.cn:8883\n")  # fmt: skip
    result = provision(sheet, tmp_path / "etc", tmp_path / "data", "--no-self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WAIT] 上传：等待 — 等待市平台签发的证书 keys/mqtt-client.crt" in result.stdout
    assert "[mqtt]" not in (tmp_path / "etc" / "gateway.toml").read_text()
    csr = (tmp_path / "etc" / "keys" / "mqtt-client.csr").read_text()
    assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")


def test_with_the_city_domain_the_page_request_is_one_the_citys_acme_ca_signs(
    tmp_path: Path,
) -> None:
    """The request names GATEWAY_ID.DOMAIN alone (a public CA signs no LAN address), and the
    platform's `certify` takes it; the self-signed certificate keeps the LAN names."""
    sheet = tmp_path / "buildings.csv"
    sheet.write_text(HEADER + "440305001002-0042,桃源村 42 栋,gw-440305-0042,/dev/ttyUSB9,"
                     "main:1,,\n")  # fmt: skip
    etc = tmp_path / "etc"
    plain = provision(sheet, etc, tmp_path / "data", "--no-self-test")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    name = page_name("gw-440305-0042", "rental.city.example")
    with pytest.raises(RequestUnfit):
        check_request((etc / "keys" / "web.csr").read_bytes(), name)
    result = provision(sheet, etc, tmp_path / "data", "--no-self-test",
                       "--city-domain", "rental.city.example")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"https://{name}/" in result.stdout
    check_request((etc / "keys" / "web.csr").read_bytes(), name)
    own = x509.load_pem_x509_certificate((etc / "keys" / "web-self-signed.crt").read_bytes())
    alternative = own.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alternative.get_values_for_type(x509.DNSName) == ["gw-440305-0042.local"]
    refused = provision(sheet, etc, tmp_path / "data", "--no-self-test", "--city-domain", "City")
    assert refused.returncode == 2
    assert "not a domain name" in refused.stderr


def test_a_door_name_cannot_reach_outside_the_keys_folder(tmp_path: Path) -> None:
    sheet = tmp_path / "buildings.csv"
    sheet.write_text(HEADER + "440305001002-0042,桃源村 42 栋,gw-440305-0042,/dev/ttyUSB0,"
                     "../../evil:1,,\n")  # fmt: skip
    result = provision(sheet, tmp_path / "etc", tmp_path / "data")
    assert result.returncode == 2
    assert "door '../../evil' must be 1 to 32 lowercase letters" in result.stderr
    assert list(tmp_path.rglob("evil*")) == []
