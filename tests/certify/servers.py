"""A real ACME CA and real DNS on loopback: pebble, pebble-challtestsrv and BIND's named.

    with Challtestsrv(folder) as dns, Pebble(folder, pki, dns.dns_address) as ca:
        ca.directory                 # https://127.0.0.1:PORT/dir, its HTTPS signed by pki.ca
        ca.root()                    # the root this pebble signs with (PEM), from its API
        ChalltestsrvUpdater(dns)     # the tests' DnsUpdater: challtestsrv's management API
        dns.txt("_acme-challenge.gw-x.city.test")   # what a resolver gets: [] when removed
    with Named(folder, zone="city.test", key=TSIG) as named: ...   # RFC 2136 with TSIG

Each is a process started on free loopback ports and stopped (terminated, then killed) when
the block ends, with its log kept in `folder` for a failing test to show.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.message
import dns.query
import dns.rdatatype

from tests.cloud.pki import Pki
from tests.web.served import free_port

START_TIMEOUT = 20.0


class _Server:
    """A process with a log, ready once `ready()` holds, stopped when the block ends."""

    name = ""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log_file = folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                            env=self.environment())  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Challtestsrv(_Server):
    """pebble-challtestsrv: a DNS server whose records are set over HTTP."""

    name = "challtestsrv"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.dns_port = free_port()
        self.management_port = free_port()

    @property
    def dns_address(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def command(self) -> list[str]:
        return ["pebble-challtestsrv", "-dns01", self.dns_address,
                "-management", f"127.0.0.1:{self.management_port}",
                "-http01", "", "-https01", "", "-tlsalpn01", ""]  # fmt: skip

    def ready(self) -> bool:
        return _listening(self.management_port) and _listening(self.dns_port)

    def post(self, path: str, body: dict[str, str]) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.management_port}{path}",
                                         data=json.dumps(body).encode(), method="POST")  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def txt(self, name: str) -> list[str]:
        return txt_records(name, self.dns_port)


def txt_records(name: str, port: int) -> list[str]:
    """The TXT strings the DNS server on `port` answers for `name`."""
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    answer = dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
    return sorted(b"".join(rdata.strings).decode()
                  for rrset in answer.answer for rdata in rrset)  # fmt: skip


class ChalltestsrvUpdater:
    """The tests' DnsUpdater: records set through challtestsrv's management API."""

    def __init__(self, server: Challtestsrv) -> None:
        self.server = server
        self.published: list[str] = []

    def publish(self, name: str, value: str) -> None:
        self.server.post("/set-txt", {"host": f"{name}.", "value": value})
        self.published.append(name)

    def remove(self, name: str, value: str) -> None:
        self.server.post("/clear-txt", {"host": f"{name}."})


class Pebble(_Server):
    """pebble, validating DNS-01 against the DNS server at `resolver`."""

    name = "pebble"

    def __init__(self, folder: Path, pki: Pki, resolver: str) -> None:
        super().__init__(folder)
        self.pki = pki
        self.resolver = resolver
        self.port = free_port()
        self.management_port = free_port()
        self.config = folder / "pebble-config.json"
        self.config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(pki.server.cert), "privateKey": str(pki.server.key),
            "httpPort": free_port(), "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))  # fmt: skip

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def command(self) -> list[str]:
        return ["pebble", "-config", str(self.config), "-dnsserver", self.resolver]

    def environment(self) -> dict[str, str]:
        # No random sleeps before validating, no nonces refused on purpose, no authorization
        # of an earlier test reused: every order in a test validates its own record.
        return {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                "PEBBLE_AUTHZREUSE": "0", "PATH": "/usr/bin:/bin"}  # fmt: skip

    def ready(self) -> bool:
        try:
            self._get(self.directory)
        except (OSError, urllib.error.URLError):
            return False
        return True

    def root(self) -> bytes:
        """The root certificate this run of pebble issues under (PEM)."""
        return self._get(f"https://127.0.0.1:{self.management_port}/roots/0")

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        with urllib.request.urlopen(url, timeout=5, context=context) as answer:
            return bytes(answer.read())


class Named(_Server):
    """BIND's named, primary for `zone`, taking TXT updates under it signed with `key`
    (BIND's key clause, as tsig-keygen writes it)."""

    name = "named"

    def __init__(self, folder: Path, *, zone: str, key_clause: str, key_name: str) -> None:
        super().__init__(folder)
        self.port = free_port()
        self.zone = zone
        zone_file = folder / f"{zone}.zone"
        zone_file.write_text(f"$TTL 60\n@ IN SOA ns.{zone}. admin.{zone}. 1 60 60 600 60\n"
                             f"@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n")  # fmt: skip
        self.config = folder / "named.conf"
        self.config.write_text(f"""
options {{
    directory "{folder}";
    pid-file "{folder}/named.pid";
    session-keyfile "{folder}/session.key";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
}};
controls {{ }};
{key_clause}
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    update-policy {{ grant {key_name} subdomain {zone}. TXT; }};
}};
""")

    def command(self) -> list[str]:
        return ["/usr/sbin/named", "-g", "-4", "-c", str(self.config)]

    def ready(self) -> bool:
        try:
            query = dns.message.make_query(self.zone, dns.rdatatype.SOA)
            return bool(dns.query.tcp(query, "127.0.0.1", port=self.port, timeout=1).answer)
        except (OSError, dns.exception.DNSException):
            return False

    def txt(self, name: str) -> list[str]:
        return txt_records(name, self.port)
