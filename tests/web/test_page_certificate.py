"""The page's certificate the city sends down (SPEC 7 `web.certificate`): checked, installed,
and served by nginx without a restart.

The city's CA is a real one (tests/cloud/pki.py) signing the request provisioning makes; the
command goes through the real executor and store; the edge part runs the real nginx, and a
TLS handshake shows which certificate it serves.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import seal_command
from gateway.certificates import (
    INSTALLED_NAME,
    Names,
    PageCertificate,
    load_or_make_key,
    pem,
    request,
    self_signed,
)
from gateway.commands import CommandExecutor
from gateway.config import load_config
from gateway.parts.edge import EdgePart
from gateway.parts.runtime import Runtime
from gateway.store import Store
from tests.cloud.pki import Pki, make_pki
from tests.config.support import MINIMAL, write

from .served import free_port

GW = "gw-test-01"
KEY = Ed25519PrivateKey.generate()
NAMES = Names(common_name=GW, dns=(f"{GW}.local",), ips=("127.0.0.1",))


@dataclass
class Site:
    folder: Path
    keys: Path
    data: Path
    pki: Pki
    store: Store
    counter: int = 0

    def chain(self) -> str:
        """What the city sends: the certificate its CA signed for the page's key, then the CA."""
        key, _ = load_or_make_key(self.keys / "web.key")
        signed = self.pki.sign_request(pem(request(key, NAMES)), server=True)
        return (signed + self.pki.ca.read_bytes()).decode()

    def command(self, args: dict[str, Any], *, now: datetime | None = None,
                page: bool = True) -> dict[str, Any]:  # fmt: skip
        now = now or datetime.now(UTC)
        executor = CommandExecutor(
            gateway_id=GW, public_key=KEY.public_key(), store=self.store, doors={},
            lockdown=None, record=lambda e: self.store.append_event(e).seq,
            stamp=lambda: {"ts": "2026-12-07T20:00:00+08:00", "clock_synced": True},
            now=lambda: now,
            page_certificate=PageCertificate(self.data, self.keys / "web.key") if page else None,
        )  # fmt: skip
        self.counter += 1
        envelope = seal_command(KEY, cmd="web.certificate", args=args, gateway_id=GW,
                                counter=self.counter, issued_at=now)  # fmt: skip
        return executor.execute(envelope)

    def events(self, kind: str) -> list[dict[str, Any]]:
        rows = (
            self.store.reader()
            .execute("SELECT body FROM events WHERE type = ? ORDER BY seq", (kind,))
            .fetchall()
        )
        return [json.loads(row[0]) for row in rows]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    keys = tmp_path / "keys"
    keys.mkdir()
    key, _ = load_or_make_key(keys / "web.key")
    (keys / "web-self-signed.crt").write_bytes(pem(self_signed(key, NAMES)))
    store = Store.open(tmp_path / "data", GW)
    yield Site(tmp_path, keys, tmp_path / "data", make_pki(tmp_path / "pki", identities=()),
               store)  # fmt: skip
    store.close()


def test_the_citys_certificate_is_installed_and_journaled(site: Site) -> None:
    chain = site.chain()
    result = site.command({"chain": chain})
    assert result == {"counter": 1, "ok": True, "error": None}
    installed = site.data / INSTALLED_NAME
    leaf = x509.load_pem_x509_certificate(chain.encode())
    assert x509.load_pem_x509_certificates(installed.read_bytes())[0] == leaf
    [event] = site.events("command.executed")
    assert event["cmd"] == "web.certificate"
    assert event["fingerprint"] == leaf.fingerprint(hashes.SHA256()).hex(":").upper()


@pytest.mark.parametrize(
    ("case", "error"),
    [("another key", "wrong_key"), ("expired", "expired"), ("not PEM", "bad_args"),
     ("no chain", "bad_args"), ("no HTTPS here", "unknown_command")],
)  # fmt: skip
def test_a_certificate_that_cannot_be_served_is_refused(site: Site, case: str,
                                                        error: str) -> None:  # fmt: skip
    args: dict[str, Any] = {"chain": site.chain()}
    now = None
    if case == "another key":
        other = make_pki(site.folder / "other", identities=())
        args["chain"] = other.server.cert.read_text()
    elif case == "expired":
        now = datetime.now(UTC) + timedelta(days=60)  # the test CA signs for 30 days
    elif case == "not PEM":
        args["chain"] = "证书"
    elif case == "no chain":
        args = {}
    result = site.command(args, now=now, page=case != "no HTTPS here")
    assert result == {"counter": 1, "ok": False, "error": error}
    assert not (site.data / INSTALLED_NAME).exists()
    [event] = site.events("command.rejected")
    assert event["reason"] == error


def served_fingerprint(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:  # fmt: skip
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":").upper()


def test_the_edge_serves_the_installed_certificate_without_a_restart(site: Site) -> None:
    port = free_port()
    web = (
        f'\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
        'tls_cert_file = "keys/web-self-signed.crt"\ntls_key_file = "keys/web.key"\n'
    )
    config = load_config(write(site.folder, MINIMAL + web))
    own = x509.load_pem_x509_certificate((site.keys / "web-self-signed.crt").read_bytes())
    part = EdgePart(config, Runtime.for_config(config))
    part.start()
    try:
        assert part.nginx is not None
        pid = part.nginx.pid
        assert served_fingerprint(port) == own.fingerprint(hashes.SHA256()).hex(":").upper()

        assert site.command({"chain": site.chain()})["ok"]
        part._certificate_checked = float("-inf")  # the next tick looks at once
        part.tick()
        installed = x509.load_pem_x509_certificate((site.data / INSTALLED_NAME).read_bytes())
        expected = installed.fingerprint(hashes.SHA256()).hex(":").upper()
        # New workers take over after the reload; a loaded machine may take its time.
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while served_fingerprint(port) != expected and datetime.now(UTC) < deadline:
            time.sleep(0.1)
        assert served_fingerprint(port) == expected
        assert part.nginx.pid == pid  # reloaded, not restarted
        assert part.health()["status"] == "ok"
    finally:
        part.stop()

    # Started again, the edge serves the installed one from the start.
    part = EdgePart(config, Runtime.for_config(config))
    part.start()
    try:
        assert served_fingerprint(port) == expected
    finally:
        part.stop()
