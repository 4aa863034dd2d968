"""`gateway provision` puts the page on the building's LAN: HTTPS with a certificate from day one.

The real command, run as the installer does: the page's key, a self-signed certificate for
the gateway's names and a request for the city, the config serving the page on port 443 of
every interface (or the one the sheet names) with port 80 redirecting, the report with the
addresses, the fingerprint and a QR code, and a sticker whose QR code a camera reads back.
"""

from __future__ import annotations

import hashlib
import ipaddress
import stat
import tomllib
from pathlib import Path

import cv2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.certificates import page_request
from gateway.config import load_config
from gateway.lan import interface_addresses
from tests.cloud.pki import make_pki

from .test_provision import HEADER, provision

GW = "gw-440305-0042"
ROW = f"440305001002-0042,桃源村 42 栋,{GW},/dev/ttyUSB9,main:1,,"


def lan_ips() -> list[str]:
    ips = {ip for ip in interface_addresses().values() if not ipaddress.ip_address(ip).is_loopback}
    return sorted(ips, key=ipaddress.ip_address)


def sheet(folder: Path, extra_column: str = "", value: str = "") -> Path:
    path = folder / "buildings.csv"
    header = HEADER.rstrip("\n") + (f",{extra_column}" if extra_column else "") + "\n"
    path.write_text(header + ROW + (f",{value}" if extra_column else "") + "\n", encoding="utf-8")
    return path


def names_of(certificate: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return {str(name.value) for name in alternative.value}


def test_the_page_is_served_on_the_lan_with_a_certificate_and_a_sticker(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    first = provision(sheet(tmp_path), etc, tmp_path / "data", "--no-self-test")
    assert first.returncode == 0, first.stdout + first.stderr
    keys = etc / "keys"
    assert stat.S_IMODE((keys / "web.key").stat().st_mode) == 0o600

    web = tomllib.loads((etc / "gateway.toml").read_text())["web"]
    assert web == {"host": "0.0.0.0", "port": 443, "redirect_port": 80,
                   "tls_cert_file": "credential:web-self-signed.crt",
                   "tls_key_file": "credential:web.key"}  # fmt: skip

    own = x509.load_pem_x509_certificate((keys / "web-self-signed.crt").read_bytes())
    expected = {f"{GW}.local", *lan_ips()}
    assert names_of(own) == expected
    # Nothing about a person: the gateway's id and the building's code only.
    assert own.subject.rfc4514_string() == f"OU=440305001002-0042,CN={GW}"
    request = x509.load_pem_x509_csr((keys / "web.csr").read_bytes())
    assert names_of(request) == expected
    assert request.public_key() == own.public_key()
    config = load_config(etc / "gateway.toml")  # what the uplink publishes for the city (P/web/csr)
    assert page_request(config.web) == (keys / "web.csr").read_bytes()

    digest = hashlib.sha256(own.public_bytes(Encoding.DER)).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    out = first.stdout
    assert f"证书的 SHA-256 指纹：{fingerprint}" in out
    urls = [*(f"https://{ip}/" for ip in lan_ips()), f"https://{GW}.local/"]
    assert "网页地址：" + "  ".join(urls) in out
    assert "▀" in out or "▄" in out  # the QR code, drawn in the terminal

    sticker = cv2.imread(str(etc / "page-sticker.png"))
    assert sticker is not None
    read, _, _ = cv2.QRCodeDetector().detectAndDecode(sticker)
    assert read == urls[0]

    again = provision(sheet(tmp_path), etc, tmp_path / "data", "--no-self-test")
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": created" not in again.stdout
    assert ": updated" not in again.stdout
    assert f"证书的 SHA-256 指纹：{fingerprint}" in again.stdout


def test_the_certificate_the_city_signs_is_served_once_it_is_there(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    pki = make_pki(tmp_path / "pki", identities=())
    assert provision(sheet(tmp_path), etc, tmp_path / "data", "--no-self-test").returncode == 0
    keys = etc / "keys"
    signed = pki.sign_request((keys / "web.csr").read_bytes(), server=True)
    (keys / "web.crt").write_bytes(signed)

    result = provision(sheet(tmp_path), etc, tmp_path / "data", "--no-self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    web = tomllib.loads((etc / "gateway.toml").read_text())["web"]
    assert web["tls_cert_file"] == "credential:web.crt"
    city = x509.load_pem_x509_certificate(signed)
    digest = city.fingerprint(hashes.SHA256()).hex(":").upper()
    assert f"证书的 SHA-256 指纹：{digest}" in result.stdout

    # A certificate for another key is refused, and the page keeps what worked.
    other = make_pki(tmp_path / "other", identities=())
    (keys / "web.crt").write_bytes(other.server.cert.read_bytes())
    wrong = provision(sheet(tmp_path), etc, tmp_path / "data", "--no-self-test")
    assert wrong.returncode == 1
    assert "[FAIL] 市平台签发的网页证书：失败" in wrong.stdout
    assert tomllib.loads((etc / "gateway.toml").read_text())["web"]["tls_cert_file"] == (
        "credential:web-self-signed.crt"
    )


def test_a_named_interface_without_an_address_keeps_the_page_on_loopback(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    result = provision(sheet(tmp_path, "web_interface", "eth9"), etc, tmp_path / "data",
                       "--no-self-test", "--lang", "en")  # fmt: skip
    assert result.returncode == 1
    assert "[FAIL] page address: fail - interface eth9 has no IPv4 address" in result.stdout
    assert "FAIL: see the lines marked FAIL" in result.stdout
    web = tomllib.loads((etc / "gateway.toml").read_text())["web"]
    assert web == {"host": "127.0.0.1", "port": 8080}


def test_a_named_interface_is_the_only_one_served(tmp_path: Path) -> None:
    addresses = {name: ip for name, ip in interface_addresses().items()
                 if not ipaddress.ip_address(ip).is_loopback}  # fmt: skip
    if not addresses:  # pragma: no cover - every test machine here has one
        raise AssertionError("this machine has no LAN interface to name")
    name, ip = sorted(addresses.items())[0]
    etc = tmp_path / "etc"
    result = provision(sheet(tmp_path, "web_interface", name), etc, tmp_path / "data",
                       "--no-self-test")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert tomllib.loads((etc / "gateway.toml").read_text())["web"]["host"] == ip
    own = x509.load_pem_x509_certificate((etc / "keys" / "web-self-signed.crt").read_bytes())
    assert names_of(own) == {f"{GW}.local", ip}
    assert [a.value for a in own.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [GW]
