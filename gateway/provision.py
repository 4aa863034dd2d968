"""`gateway provision`: one row of the installer's spreadsheet becomes a building in service.

    gateway provision buildings.csv --gateway gw-440305-0042 --command-public-key KEY \\
        --ca-file city-ca.pem

The spreadsheet (CSV, UTF-8 or GB18030 as Excel saves it) has the columns
`building_code,building_name,gateway_id,serial_port,readers,camera,broker` and may have
`web_interface`; `readers` is `door:address` pairs separated by `;` (`main:1;back:2`),
`camera` a source or empty, `broker` `host:port` or empty, `web_interface` the network
interface the page is served on (`eth0`) or empty for all of them. Every step is idempotent:
what is already right is left alone, so a rerun after fixing one thing changes only that
thing. The steps:

1. a secure-channel key per reader (`keys/DOOR.scbk`), kept once made;
2. the MQTT client key and a certificate request for the city's CA (`keys/mqtt-client.*`);
3. the page's key, a self-signed certificate for the gateway's names (`{id}.local`, its LAN
   addresses) and a request for the city's CA (`keys/web.*`); the city's certificate
   (`keys/web.crt`) is served instead once it is there;
4. the config file, rewritten only when it would change; `[mqtt]` once the certificate the
   city signed (`keys/mqtt-client.crt`) is there, so the building works locally until then;
   `[web]` on HTTPS port 443 with plain HTTP on port 80 redirecting to it;
5. `check-config`;
6. the first building-head account, with a one-time password printed once;
7. the live self-test: each reader answers on the secure channel (a reader in install mode is
   given its key first, with KEYSET), a camera frame arrives, the broker answers with TLS;
8. the page's addresses, its certificate's fingerprint and a QR code that opens it, printed
   and drawn on `page-sticker.png` beside the config, for the gateway's box.

The gateway service must be stopped while this runs: both would drive the same serial line.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_bridge.osdp import ControlPanel, ReaderSpec
from firmware_bridge.osdp.secure import SecureChannelError
from gateway.certificates import (
    Names,
    certificate_is_current,
    fingerprint,
    load_or_make_key,
    pem,
    request,
    request_is_current,
    same_key,
    self_signed,
)
from gateway.config import ConfigError, load_config
from gateway.config.base import (
    BUILDING_CODE_PATTERN,
    GATEWAY_ID_PATTERN,
    NAME_PATTERN,
    PATTERN_HINTS,
)
from gateway.lan import EVERY_INTERFACE, interface_addresses
from gateway.provision_report import Report, Step, Words
from gateway.sticker import sticker_png
from gateway.store import Store
from gateway.tenant_csv import CsvImportError, decode

COLUMNS = ("building_code", "building_name", "gateway_id", "serial_port", "readers", "camera",
           "broker")  # fmt: skip
OPTIONAL_COLUMNS = ("web_interface",)
HTTPS_PORT, HTTP_PORT = 443, 80
STEP_TIMEOUT = 10.0


class SheetError(ValueError):
    """The spreadsheet row cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Building:
    """One row of the spreadsheet."""

    line: int
    code: str
    name: str
    gateway_id: str
    serial_port: str
    readers: tuple[tuple[str, int], ...]  # (door name, OSDP address)
    camera: str | None
    broker: tuple[str, int] | None
    web_interface: str | None = None  # None: every interface


# ----------------------------------------------------------------------------- the sheet


def read_sheet(data: bytes) -> list[Building]:
    """Every row of the spreadsheet; SheetError naming the line of the first bad one."""
    try:
        text = decode(data)
    except CsvImportError as exc:
        raise SheetError(str(exc)) from None
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise SheetError(f"line 1: the header lacks {', '.join(missing)}"
                         f" (needs {','.join(COLUMNS)})")
    buildings = []
    for line, values in enumerate(rows, start=2):
        if not any(v.strip() for v in values):
            continue
        record = dict(zip(header, (v.strip() for v in values), strict=False))
        buildings.append(_building(line, record))
    return buildings


def find(buildings: list[Building], gateway_id: str) -> Building:
    matches = [b for b in buildings if b.gateway_id == gateway_id]
    if len(matches) != 1:
        raise SheetError(f"{len(matches)} rows have gateway_id {gateway_id!r}; exactly one must")
    return matches[0]


def _building(line: int, record: dict[str, str]) -> Building:
    def need(column: str) -> str:
        value = record.get(column, "")
        if not value:
            raise SheetError(f"line {line}: {column} is empty")
        return value

    for column, pattern in (("gateway_id", GATEWAY_ID_PATTERN),
                            ("building_code", BUILDING_CODE_PATTERN)):  # fmt: skip
        if not re.match(pattern, need(column)):
            raise SheetError(f"line {line}: {column}: {record[column]!r} {PATTERN_HINTS[pattern]}")
    readers = []
    for part in need("readers").split(";"):
        door, _, address = part.strip().partition(":")
        if not door or not re.fullmatch(r"[0-9]+", address.strip()):  # isdigit() takes "²"
            raise SheetError(f"line {line}: readers: {part!r} is not door:address, e.g. main:1")
        # The door name becomes a key file's name: only what the config allows for a name.
        if not re.match(NAME_PATTERN, door.strip()):
            raise SheetError(f"line {line}: readers: door {door.strip()!r}"
                             f" {PATTERN_HINTS[NAME_PATTERN]}")
        readers.append((door.strip(), int(address)))
    broker = None
    if record.get("broker"):
        host, _, port = record["broker"].rpartition(":")
        if not host or not re.fullmatch(r"[0-9]+", port):
            raise SheetError(f"line {line}: broker: {record['broker']!r} is not host:port")
        broker = (host, int(port))
    interface = record.get("web_interface") or None
    if interface is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", interface):
        raise SheetError(f"line {line}: web_interface: {interface!r} is not an interface name,"
                         " e.g. eth0 (or leave it empty for every interface)")  # fmt: skip
    return Building(line, need("building_code"), need("building_name"), need("gateway_id"),
                    need("serial_port"), tuple(readers), record.get("camera") or None, broker,
                    interface)  # fmt: skip


# ----------------------------------------------------------------------------- the steps


@dataclass(frozen=True, slots=True)
class Options:
    """What the spreadsheet does not say."""

    config_dir: Path
    data_dir: Path
    command_public_key: str | None = None
    ca_file: Path | None = None
    baud: int = 9600
    timezone: str = "Asia/Shanghai"
    head_username: str = "lou-zhang"
    self_test: bool = True
    city_domain: str | None = None  # the page's request asks for {gateway_id}.{city_domain}
    lan_addresses: Callable[[], dict[str, str]] = field(default=lambda: interface_addresses())


def provision(building: Building, options: Options) -> Report:
    """Run every step for one building; the report says what was done and what failed."""
    report = Report()
    keys = options.config_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    reader_keys = {door: _reader_key(report, keys / f"{door}.scbk") for door, _ in building.readers}
    _mqtt_key(report, keys, building.gateway_id, building.code)
    report.page = _page(report, keys, building, options.lan_addresses, options.city_domain)
    if options.ca_file is not None:
        _copy(report, "city_ca", options.ca_file, keys / "city-ca.pem")
    config_path = options.config_dir / "gateway.toml"
    uplink = _uplink_ready(report, building, options, keys)
    # Checked before it replaces the config in place: a bad row never costs a working file.
    candidate = config_path.with_name(f".{config_path.name}.new")
    candidate.write_text(render(building, options, uplink, report.page), encoding="utf-8")
    try:
        config = load_config(candidate)
    except ConfigError as error:
        candidate.unlink()
        report.add("check_config", "fail", "config_problems",
                   problems="; ".join(str(p) for p in error.problems))
        return report
    _write(report, "config_file", config_path, candidate.read_text(encoding="utf-8"), 0o640)
    candidate.unlink()  # same folder: its paths are the installed file's paths
    report.add("check_config", "pass")
    with Store.open(config.gateway.data_dir, config.gateway.id) as store:
        if store.has_users():
            report.add("head_account", "unchanged", "accounts_exist")
        else:
            password = "-".join(secrets.token_hex(3) for _ in range(4))
            store.add_user(options.head_username, "building_head", password, must_change=True)
            report.one_time_password = password
            report.add("head_account", "created", "account_created", user=options.head_username)
    if options.self_test:
        for step in self_test(building, options, reader_keys, uplink, keys):
            report.steps.append(step)
    if report.page is not None:
        page = report.page
        png = sticker_png(page.qr_url, [*page.urls[1:], "SHA-256", *_halves(page.fingerprint)])
        _write_bytes(report, "sticker", options.config_dir / "page-sticker.png", png, 0o644)
    return report


def _halves(fingerprint: str) -> list[str]:
    """The fingerprint in two lines of 16 pairs each, as long as a sticker is wide."""
    middle = len(fingerprint) // 2 + 1
    return [fingerprint[: middle - 1], fingerprint[middle:]]


def _reader_key(report: Report, path: Path) -> bytes:
    if path.exists():
        with path.open("rb") as file:
            data = file.read(256)  # a key file is 33 bytes; never a whole file of anything else
        try:
            key = bytes.fromhex(data.decode("ascii").strip())
        except ValueError:  # not ASCII (UnicodeDecodeError is one) or not hex
            key = b""
        if len(key) == 16:
            report.add("reader_key", "unchanged", file=path.name)
            return key
        report.add("reader_key", "fail", "reader_key_bad", file=path.name)
        return b"\0" * 16
    key = secrets.token_bytes(16)
    _write_secret(path, key.hex() + "\n")
    report.add("reader_key", "created", file=path.name)
    return key


def _mqtt_key(report: Report, keys: Path, gateway_id: str, building_code: str) -> None:
    key_path, csr_path = keys / "mqtt-client.key", keys / "mqtt-client.csr"
    key = _key(report, "mqtt_key", key_path)
    if key is None:
        return
    names = Names(common_name=gateway_id, unit=building_code)
    _request(report, "mqtt_request", key, names, csr_path, keys / "mqtt-client.crt")


def _key(report: Report, name: str, path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key, created = load_or_make_key(path)
    except ValueError:
        report.add(name, "fail", "key_bad", path=path)
        return None
    report.add(name, "created" if created else "unchanged")
    return key


def _request(report: Report, name: str, key: ec.EllipticCurvePrivateKey, names: Names,
             path: Path, signed: Path) -> None:  # fmt: skip
    if request_is_current(path, key, names):
        report.add(name, "unchanged", "path", path=path)
        return
    path.write_bytes(pem(request(key, names)))
    report.add(name, "created", "send_request", path=path, signed=signed)


@dataclass(frozen=True, slots=True)
class Page:
    """Where the page is found and how a visitor knows it is the real one."""

    host: str  # where it listens: every interface, or the named interface's address
    certificate: str  # the file of the keys folder it serves
    urls: tuple[str, ...]  # by IP first, then by name
    fingerprint: str

    @property
    def qr_url(self) -> str:
        """The address in the QR code: by IP, which every phone resolves (not all resolve
        .local names), else by name."""
        return self.urls[0]


def _page(
    report: Report,
    keys: Path,
    building: Building,
    lan_addresses: Callable[[], dict[str, str]],
    city_domain: str | None,
) -> Page | None:
    """The page's key, certificates and addresses; None (after a FAIL line) when the page
    cannot be served on the LAN yet.

    The self-signed certificate names the LAN addresses and the `.local` name. The request for
    the city names `{gateway_id}.{city_domain}` alone when the city has a domain for its
    gateways, as an ACME CA signs no private address or `.local` name (docs/platform.md,
    "Certificates phones trust"); without one, the same names as the self-signed one, for the
    city's own CA."""
    addresses = {name: ip for name, ip in lan_addresses().items()
                 if not ipaddress.ip_address(ip).is_loopback}  # fmt: skip
    if building.web_interface is not None:
        if building.web_interface not in addresses:
            report.add("page_address", "fail", "no_interface_address",
                       interface=building.web_interface)
            return None
        addresses = {building.web_interface: addresses[building.web_interface]}
    key = _key(report, "page_key", keys / "web.key")
    if key is None:
        return None
    ips = tuple(sorted(set(addresses.values()), key=ipaddress.ip_address))
    dns = f"{building.gateway_id}.local"
    names = Names(common_name=building.gateway_id, unit=building.code, dns=(dns,), ips=ips)
    public = None if city_domain is None else f"{building.gateway_id}.{city_domain}"
    asked = names if public is None else Names(common_name=public, dns=(public,))
    _request(report, "page_request", key, asked, keys / "web.csr", keys / "web.crt")
    own = keys / "web-self-signed.crt"
    if certificate_is_current(own, key, names):
        report.add("page_self_signed", "unchanged", "path", path=own)
    else:
        existed = own.exists()
        own.write_bytes(pem(self_signed(key, names)))
        report.add("page_self_signed", "updated" if existed else "created",
                   "new_fingerprint" if existed else "path", path=own)
    served = own
    city = keys / "web.crt"
    if city.exists():
        try:
            signed = x509.load_pem_x509_certificate(city.read_bytes())
        except ValueError:
            signed = None
        if signed is None or not same_key(signed.public_key(), key):
            report.add("page_city_certificate", "fail", "city_certificate_wrong", path=city,
                       key=keys / "web.key")
        else:
            served = city
            report.add("page_city_certificate", "unchanged", "path", path=city)
    certificate = x509.load_pem_x509_certificate(served.read_bytes())
    host = EVERY_INTERFACE if building.web_interface is None else ips[0]
    urls = (*(f"https://{ip}/" for ip in ips), f"https://{dns}/")
    if public is not None:
        urls += (f"https://{public}/",)
    return Page(host, served.name, urls, fingerprint(certificate))


def _uplink_ready(report: Report, building: Building, options: Options, keys: Path) -> bool:
    if building.broker is None:
        report.add("uplink", "unchanged", "no_broker")
        return False
    wanting = Words(name for name, ok in (
        ("want_mqtt_certificate", (keys / "mqtt-client.crt").exists()),
        ("want_city_ca", (keys / "city-ca.pem").exists()),
        ("want_command_key", bool(options.command_public_key)),
    ) if not ok)  # fmt: skip
    if wanting:
        report.add("uplink", "pending", "waiting", wanting=wanting)
        return False
    return True


def render(building: Building, options: Options, uplink: bool, page: Page | None) -> str:
    """The config file for this building (`[mqtt]` only when `uplink`; the page on loopback
    only without `page`)."""
    q = _toml_string
    lines = [
        "# Written by `gateway provision` from the installer's spreadsheet (line"
        f" {building.line}).",
        "# Rerunning it rewrites this file; change the spreadsheet, not the file.",
        "", "[gateway]", f"id = {q(building.gateway_id)}", f"data_dir = {q(str(options.data_dir))}",
        f"timezone = {q(options.timezone)}",
        "", "[building]", f"code = {q(building.code)}", f"name = {q(building.name)}",
        "", "[[bus]]", 'name = "rs485-1"', f"port = {q(building.serial_port)}",
        f"baud = {options.baud}", 'protocol = "osdp"',
    ]  # fmt: skip
    for door, address in building.readers:
        lines += ["", "[[doors]]", f"name = {q(door)}", 'bus = "rs485-1"', f"address = {address}",
                  f"scbk_file = {q('credential:' + door + '.scbk')}"]  # fmt: skip
    if uplink and building.broker is not None:
        host, port = building.broker
        lines += ["", "[mqtt]", f"host = {q(host)}", f"port = {port}", "tls = true",
                  'ca_file = "credential:city-ca.pem"',
                  'cert_file = "credential:mqtt-client.crt"',
                  'key_file = "credential:mqtt-client.key"',
                  f"command_public_key = {q(options.command_public_key or '')}"]  # fmt: skip
    if building.camera:
        lines += ["", "[camera]", f"source = {q(building.camera)}"]
    if page is None:
        lines += ["", "[web]", 'host = "127.0.0.1"', "port = 8080", ""]
    else:
        lines += ["", "[web]", f"host = {q(page.host)}", f"port = {HTTPS_PORT}",
                  f"redirect_port = {HTTP_PORT}",
                  f"tls_cert_file = {q('credential:' + page.certificate)}",
                  'tls_key_file = "credential:web.key"', ""]  # fmt: skip
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write(report: Report, name: str, path: Path, text: str, mode: int) -> None:
    _write_bytes(report, name, path, text.encode("utf-8"), mode)


def _write_bytes(report: Report, name: str, path: Path, data: bytes, mode: int) -> None:
    if path.exists() and path.read_bytes() == data:
        report.add(name, "unchanged", "path", path=path)
        return
    existed = path.exists()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)
    report.add(name, "updated" if existed else "created", "path", path=path)


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _copy(report: Report, name: str, source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        report.add(name, "unchanged", "path", path=target)
        return
    target.write_bytes(data)
    report.add(name, "created", "path", path=target)


# ------------------------------------------------------------------------- self-test


def self_test(building: Building, options: Options, reader_keys: dict[str, bytes],
              uplink: bool, keys: Path) -> Iterator[Step]:  # fmt: skip
    """The live checks: readers on the secure channel, a camera frame, the broker."""
    yield from _readers(building, options.baud, reader_keys)
    if building.camera:
        yield _camera(building.camera)
    if uplink and building.broker is not None:
        yield _broker(building.broker, keys)


def _readers(building: Building, baud: int, reader_keys: dict[str, bytes]) -> Iterator[Step]:
    doors = {address: door for door, address in building.readers}
    specs = [ReaderSpec(address, reader_keys[door]) for door, address in building.readers]
    secure = _bus_attempt(building.serial_port, baud, specs)
    for address, door in doors.items():
        if address in secure:
            yield Step("reader", "pass", "reader_secure", {"door": door, "address": address})
    missing = [a for a in doors if a not in secure]
    if not missing:
        return
    # Not with our key: a reader in install mode answers in plain and takes its key (KEYSET).
    panel = ControlPanel(building.serial_port, baud, [ReaderSpec(a) for a in missing])
    panel.start()
    try:
        for address in missing:
            door = doors[address]
            which = {"door": door, "address": address}
            if not _wait(partial(_online, panel, address)):
                yield Step("reader", "fail", "reader_silent", which)
                continue
            try:
                panel.set_reader_key(address, reader_keys[door]).result(timeout=STEP_TIMEOUT)
            except (TimeoutError, ConnectionError, SecureChannelError) as error:
                yield Step("reader", "fail", "reader_refused_key", {**which, "error": error})
                continue
            yield Step("reader", "pass", "reader_keyed", which)
    finally:
        panel.stop()


def _online(panel: ControlPanel, address: int) -> bool:
    return panel.status(address).online


def _bus_attempt(port: str, baud: int, specs: list[ReaderSpec]) -> set[int]:
    """The addresses that come up on the secure channel with their keys."""
    panel = ControlPanel(port, baud, specs)
    panel.start()
    try:
        _wait(lambda: all(panel.status(s.address).secure for s in specs), STEP_TIMEOUT / 2)
        return {s.address for s in specs if panel.status(s.address).secure}
    finally:
        panel.stop()


def _camera(source: str) -> Step:
    from gateway.camera.source import Frame, open_source

    camera = open_source(source)
    camera.start()
    try:
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            result = camera.latest(2000)
            if isinstance(result, Frame):
                height, width = result.image.shape[:2]
                return Step("camera", "pass", "frame", {"width": width, "height": height})
            if time.monotonic() > deadline:
                return Step("camera", "fail", "no_frame",
                            {"seconds": f"{STEP_TIMEOUT:.0f}", "reason": result.reason})
            time.sleep(0.2)
    finally:
        camera.stop()


def _broker(broker: tuple[str, int], keys: Path) -> Step:
    host, port = broker
    context = ssl.create_default_context(cafile=str(keys / "city-ca.pem"))
    try:
        context.load_cert_chain(str(keys / "mqtt-client.crt"), str(keys / "mqtt-client.key"))
        with socket.create_connection((host, port), timeout=STEP_TIMEOUT) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:  # fmt: skip
            version = tls.version()
    except (OSError, ssl.SSLError) as error:
        return Step("broker", "fail", "broker_failed", {"host": host, "port": port, "error": error})
    return Step("broker", "pass", "broker_ok", {"host": host, "port": port, "version": version})


def _wait(condition: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
