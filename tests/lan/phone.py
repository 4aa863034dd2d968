"""What a phone on the building's LAN does, run inside the test's network namespace.

Reads one JSON request on stdin and prints one JSON answer:

- `{"do": "scan", "host": IP}`: every TCP port of `host` that accepts a connection;
- `{"do": "mdns", "name": "gw-….local"}`: the addresses mDNS answers for the name;
- `{"do": "visit", ...}`: what the certificate's fingerprint is, where plain HTTP sends a
  browser, then Chromium (zh-CN, 390×844) opening the page by `url`, trusting either the
  city's CA (`ca`, put in the profile's NSS database, as a phone that has the city's CA
  installed) or the certificate whose fingerprint the person compared (`fingerprint`),
  logging in with a one-time password, choosing a new one and registering a tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

CHROMIUM = "/usr/bin/chromium"


def scan(host: str) -> list[int]:
    """The TCP ports of `host` that accept a connection, tried a thousand at a time."""
    open_ports = []
    for start in range(1, 65536, 1000):
        selector = selectors.DefaultSelector()
        for port in range(start, min(start + 1000, 65536)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            selector.register(sock, selectors.EVENT_WRITE, port)
        pending = len(selector.get_map())
        while pending:
            events = selector.select(timeout=5)
            if not events:
                break  # filtered: no answer at all counts as closed
            for key, _ in events:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                if conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    open_ports.append(key.data)
                selector.unregister(conn)
                conn.close()
                pending -= 1
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return sorted(open_ports)


def mdns(name: str, interface_ip: str) -> list[str]:
    """The IPv4 addresses answered for `name`: an mDNS query for its A record sent from a
    port other than 5353 (RFC 6762 6.7), as a phone's resolver without an mDNS stack does,
    so the answer comes back to us alone. Written out here, not with zeroconf, so the test
    does not ask the library it checks."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    query = struct.pack("!6H", 0x4D44, 0, 1, 0, 0, 0) + question + b"\0" + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((interface_ip, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_ip))
        sock.settimeout(1.0)
        for _ in range(5):
            sock.sendto(query, ("224.0.0.251", 5353))
            try:
                reply, _ = sock.recvfrom(9000)
            except TimeoutError:
                continue
            found = _a_records(reply, name)
            if found:
                return found
    return []


def _a_records(message: bytes, name: str) -> list[str]:
    _, _, questions, answers, _, _ = struct.unpack_from("!6H", message)
    at = 12
    for _ in range(questions):
        _, at = _read_name(message, at)
        at += 4
    found = []
    for _ in range(answers):
        owner, at = _read_name(message, at)
        kind, _, _, length = struct.unpack_from("!2HIH", message, at)
        at += 10
        if kind == 1 and owner.lower() == name.lower():
            found.append(socket.inet_ntoa(message[at : at + 4]))
        at += length
    return found


def _read_name(message: bytes, at: int) -> tuple[str, int]:
    labels, end = [], None
    while message[at]:
        if message[at] & 0xC0 == 0xC0:  # a pointer to a name earlier in the message
            end = at + 2 if end is None else end
            at = struct.unpack_from("!H", message, at)[0] & 0x3FFF
            continue
        labels.append(message[at + 1 : at + 1 + message[at]].decode())
        at += 1 + message[at]
    return ".".join(labels), (at + 1 if end is None else end)


def served_certificate(host: str) -> x509.Certificate:
    """The certificate the page presents, taken without trusting it (to be compared)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, 443), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:  # fmt: skip
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def redirect(host: str, path: str) -> tuple[int, str]:
    with socket.create_connection((host, 80), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers.get("location", "")


def visit(request: dict[str, Any]) -> dict[str, Any]:
    from playwright import sync_api

    host = request["gateway_ip"]
    certificate = served_certificate(host)
    answer: dict[str, Any] = {
        "fingerprint": certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        "redirect": redirect(host, "/tenants?x=1"),
    }
    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
    home = tempfile.mkdtemp(prefix="phone-home-")
    env: dict[str, str | float | bool] = {**os.environ, "HOME": home}
    if request["trust"] == "ca":
        nssdb = Path(home) / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
        subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "city-ca",
                        "-i", request["ca"]], check=True)  # fmt: skip
    else:
        # The person compared the fingerprint with the sticker; the browser is told to accept
        # that certificate's key, and only it.
        assert answer["fingerprint"] == request["fingerprint"], "not the gateway's certificate"
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        args.append(f"--ignore-certificate-errors-spki-list={pin}")
    if request.get("resolve"):
        name, ip = request["resolve"]
        args.append(f"--host-resolver-rules=MAP {name} {ip}")
    base = request["url"].rstrip("/")
    shots = Path(request["shots"])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, env=env)
        context = browser.new_context(viewport={"width": 390, "height": 844},
                                      device_scale_factor=2, locale="zh-CN",
                                      timezone_id="Asia/Shanghai")  # fmt: skip
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/login")
        page.screenshot(path=str(shots / f"{request['name']}-1-login.png"))
        page.fill("input[name=username]", request["username"])
        page.fill("input[name=password]", request["password"])
        page.click("main button[type=submit]")
        if request.get("new_password"):
            page.wait_for_url(f"{base}/password")
            page.fill("input[name=current]", request["password"])
            page.fill("input[name=new]", request["new_password"])
            page.fill("input[name=repeat]", request["new_password"])
            page.click("main button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/tenants/new")
        tenant = request["tenant"]
        for field in ("name", "id_number", "phone", "room"):
            page.fill(f"input[name={field}]", tenant[field])
        page.screenshot(path=str(shots / f"{request['name']}-2-register.png"))
        page.click("main button[type=submit]")
        page.wait_for_url("**/tenants/*?saved=1")
        page.screenshot(path=str(shots / f"{request['name']}-3-saved.png"))
        answer["saved"] = tenant["name"] in page.content()
        answer["url"] = page.url
        browser.close()
    answer["console_errors"] = errors
    return answer


def main() -> None:
    request = json.loads(sys.stdin.read())
    if request["do"] == "scan":
        result: Any = scan(request["host"])
    elif request["do"] == "mdns":
        result = mdns(request["name"], request["interface_ip"])
    else:
        result = visit(request)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
