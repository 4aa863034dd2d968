"""Certificates phones trust: a gateway's page request → ACME DNS-01 → a chain the gateway serves.

Against a real ACME CA (pebble) that validates every challenge by asking a real DNS server:
pebble-challtestsrv, set through its management API (the tests' DnsUpdater), and BIND's named,
changed by the platform's own RFC 2136 updates signed with TSIG, through `rental-platform
certify` as an operator runs it. The request is made by the gateway's own code, with a key
the platform never sees.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from gateway.certificates import Names, PageCertificate, load_or_make_key, pem, request
from rental_platform.certify import (
    AcmeFailed,
    Ca,
    DnsUpdateFailed,
    KeyFileRefused,
    RequestUnfit,
    Rfc2136,
    certificate_for,
    load_or_make_account_key,
    page_name,
    read_tsig_key,
    renewal_due,
)
from rental_platform.store import Incoming, StoreConfig, store_batch
from rental_platform.store import Store as PlatformStore
from tests.cloud.pki import Pki, make_pki
from tests.web.served import free_port

from .servers import Challtestsrv, ChalltestsrvUpdater, Named, Pebble

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "rental.city.test"
BUILDING = "440305001002-0042"
KEY_NAME = "rental-acme"
SECRET = base64.b64encode(b"the city's update key, 32 bytes!").decode()


def key_clause(secret: str) -> str:
    """A TSIG key as BIND's tsig-keygen writes it."""
    return f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n'


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("acme")


@pytest.fixture(scope="module")
def pki(folder: Path) -> Pki:
    return make_pki(folder / "pki", identities=())  # the HTTPS of pebble's API


@pytest.fixture(scope="module")
def challtestsrv(folder: Path) -> Iterator[Challtestsrv]:
    with Challtestsrv(folder / "challtestsrv") as server:
        yield server


@pytest.fixture(scope="module")
def pebble(folder: Path, pki: Pki, challtestsrv: Challtestsrv) -> Iterator[Pebble]:
    with Pebble(folder / "pebble", pki, challtestsrv.dns_address) as server:
        yield server


@pytest.fixture(scope="module")
def named(folder: Path) -> Iterator[Named]:
    with Named(folder / "named", zone=DOMAIN, key_clause=key_clause(SECRET),
               key_name=KEY_NAME) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def pebble_on_named(folder: Path, pki: Pki, named: Named) -> Iterator[Pebble]:
    with Pebble(folder / "pebble-named", pki, f"127.0.0.1:{named.port}") as server:
        yield server


def page_key(folder: Path) -> ec.EllipticCurvePrivateKey:
    folder.mkdir(parents=True, exist_ok=True)
    key, _ = load_or_make_key(folder / "web.key")  # as the gateway makes it, 0600
    return key


def page_request(key: ec.EllipticCurvePrivateKey, names: Names) -> bytes:
    return pem(request(key, names))  # the gateway's own request code


def for_name(name: str) -> Names:
    return Names(common_name=name, unit=BUILDING, dns=(name,))


def verified(chain_pem: bytes, root_pem: bytes, name: str) -> x509.Certificate:
    """The chain's first certificate, once it verifies for `name` up to `root_pem` as a
    browser's verifier would (WebPKI rules); raises if it does not."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    store = Store([x509.load_pem_x509_certificate(root_pem)])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, intermediates)
    return leaf


def public(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip


# -- the library, against pebble and challtestsrv ---------------------------------------------


def test_a_gateway_request_gets_a_chain_for_its_name_and_key(
        tmp_path: Path, pki: Pki, pebble: Pebble, challtestsrv: Challtestsrv) -> None:  # fmt: skip
    name = page_name("gw-440305-0042", DOMAIN)
    key = page_key(tmp_path / "keys")
    updater = ChalltestsrvUpdater(challtestsrv)
    ca = Ca(directory=pebble.directory, account_key=tmp_path / "account.key", trust=pki.ca)
    chain = certificate_for(ca, page_request(key, for_name(name)), name, updater)
    leaf = verified(chain, pebble.root(), name)
    assert public(leaf.public_key()) == public(key.public_key())
    assert updater.published == [f"_acme-challenge.{name}"]  # validated through the DNS
    assert challtestsrv.txt(f"_acme-challenge.{name}") == []  # and taken away again
    assert (tmp_path / "account.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("case", ["as provisioned", "another gateway", "one more name",
                                  "another common name", "an address too"])  # fmt: skip
def test_a_request_for_other_names_is_refused_before_any_order(
        tmp_path: Path, challtestsrv: Challtestsrv, case: str) -> None:  # fmt: skip
    gateway_id = "gw-440305-0043"
    name = page_name(gateway_id, DOMAIN)
    names = {
        # What provisioning makes today: for the LAN, which no public CA signs.
        "as provisioned": Names(
            common_name=gateway_id,
            unit=BUILDING,
            dns=(f"{gateway_id}.local",),
            ips=("192.168.1.20",),
        ),
        "another gateway": for_name(page_name("gw-440305-0044", DOMAIN)),
        "one more name": Names(common_name=name, dns=(name, f"www.{DOMAIN}")),
        "another common name": Names(common_name=gateway_id, dns=(name,)),
        "an address too": Names(common_name=name, dns=(name,), ips=("192.168.1.20",)),
    }[case]
    updater = ChalltestsrvUpdater(challtestsrv)
    ca = Ca(directory="https://127.0.0.1:9/never-asked", account_key=tmp_path / "account.key")
    with pytest.raises(RequestUnfit) as refused:
        certificate_for(ca, page_request(page_key(tmp_path), names), name, updater)
    said = str(refused.value)
    assert said.startswith("the request asks for ")
    assert f"names exactly {name}" in said
    assert updater.published == []
    assert not (tmp_path / "account.key").exists()  # no account, no order: nothing began


def _altered(csr_pem: bytes) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    body = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines)
            + "\n-----END CERTIFICATE REQUEST-----\n").encode()  # fmt: skip


def _weak(name: str) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (x509.CertificateSigningRequestBuilder().subject_name(subject)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
             .sign(key, hashes.SHA256()))  # fmt: skip
    return built.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(("case", "said"), [
    ("not PEM", "not a PEM certificate request"),
    ("a certificate", "not a PEM certificate request"),
    ("altered", "signature does not verify"),
    ("a weak key", "not one a CA signs"),
    ("too large", "larger than"),
])  # fmt: skip
def test_a_bad_request_is_refused(tmp_path: Path, pki: Pki, case: str, said: str) -> None:
    name = page_name("gw-440305-0045", DOMAIN)
    good = page_request(page_key(tmp_path), for_name(name))
    csr_pem = {
        "not PEM": "证书请求".encode(),
        "a certificate": pki.server.cert.read_bytes(),
        "altered": _altered(good),
        "a weak key": _weak(name),
        "too large": good + b"\n" * 20_000,
    }[case]
    ca = Ca(directory="https://127.0.0.1:9/never-asked", account_key=tmp_path / "account.key")
    with pytest.raises(RequestUnfit, match=said):
        certificate_for(ca, csr_pem, name, ChalltestsrvUpdater(Challtestsrv(tmp_path / "x")))
    assert not (tmp_path / "account.key").exists()


@pytest.mark.parametrize(("gateway_id", "domain"), [
    ("gw-", DOMAIN), ("GW-1", DOMAIN), ("gw-" + "0" * 61, DOMAIN), ("gw-1", "city"),
    ("gw-1", "city..test"), ("gw-1", "city.test."),
])  # fmt: skip
def test_a_name_that_is_no_dns_name_is_refused(gateway_id: str, domain: str) -> None:
    with pytest.raises(RequestUnfit, match="is not a"):
        page_name(gateway_id, domain)


def test_a_record_the_ca_cannot_see_fails_clearly_and_is_removed(
        tmp_path: Path, pki: Pki, pebble: Pebble) -> None:  # fmt: skip
    """The record goes to a DNS server the CA does not ask (a stale secondary, a wrong
    server): the CA's own words come back, and the record does not stay behind."""
    name = page_name("gw-440305-0046", DOMAIN)
    ca = Ca(directory=pebble.directory, account_key=tmp_path / "account.key", trust=pki.ca,
            timeout=60)  # fmt: skip
    with Challtestsrv(tmp_path / "elsewhere") as elsewhere:
        updater = ChalltestsrvUpdater(elsewhere)
        with pytest.raises(AcmeFailed, match=rf"could not validate {name}: .*TXT"):
            certificate_for(ca, page_request(page_key(tmp_path), for_name(name)), name,
                            updater)  # fmt: skip
        assert updater.published == [f"_acme-challenge.{name}"]
        assert elsewhere.txt(f"_acme-challenge.{name}") == []


def test_a_dns_server_that_does_not_answer_fails_clearly(
        tmp_path: Path, pki: Pki, pebble: Pebble) -> None:  # fmt: skip
    name = page_name("gw-440305-0049", DOMAIN)
    key = tmp_path / "update.key"
    key.write_text(key_clause(SECRET))
    key.chmod(0o600)
    silent = Rfc2136("127.0.0.1", port=free_port(), zone=DOMAIN, key=read_tsig_key(key))
    ca = Ca(directory=pebble.directory, account_key=tmp_path / "account.key", trust=pki.ca)
    with pytest.raises(DnsUpdateFailed, match=rf"_acme-challenge.{name}: no answer from"):
        certificate_for(ca, page_request(page_key(tmp_path), for_name(name)), name, silent)


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "account.key"
    made = load_or_make_account_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public(load_or_make_account_key(path).public_key()) == public(made.public_key())
    path.chmod(0o644)
    with pytest.raises(KeyFileRefused, match="chmod 600"):
        load_or_make_account_key(path)
    path.chmod(0o600)
    path.write_text("not a key")
    with pytest.raises(KeyFileRefused, match="not an EC private key"):
        load_or_make_account_key(path)


# -- `rental-platform certify`, against pebble and BIND ---------------------------------------


def certify(folder: Path, pebble: Pebble, named: Named, *extra: str, gateway_id: str,
            source: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The command, with the request from `web.csr` unless `source` says otherwise."""
    arguments = [
        "certify",
        "--domain",
        DOMAIN,
        *(source or ("--csr", str(folder / "web.csr"))),
        "--out",
        str(folder / "web-city.pem"),
        "--acme-directory",
        pebble.directory,
        "--acme-trust",
        str(pebble.pki.ca),
        "--acme-account-key",
        str(folder / "acme-account.key"),
        "--dns-server",
        "127.0.0.1",
        "--dns-port",
        str(named.port),
        "--tsig-key",
        str(folder / "update.key"),
        *extra,
        gateway_id,
    ]
    return subprocess.run([sys.executable, "-m", "rental_platform", *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def operator_files(folder: Path, name: str, secret: str = SECRET) -> ec.EllipticCurvePrivateKey:
    """The gateway's request and the city's update key, as the operator has them."""
    key = page_key(folder / "keys")
    (folder / "web.csr").write_bytes(page_request(key, for_name(name)))
    (folder / "update.key").write_text(key_clause(secret))
    (folder / "update.key").chmod(0o600)
    return key


def test_certify_obtains_keeps_until_due_and_the_gateway_serves_it(
        tmp_path: Path, pebble_on_named: Pebble, named: Named) -> None:  # fmt: skip
    gateway_id = "gw-440305-0047"
    name = page_name(gateway_id, DOMAIN)
    key = operator_files(tmp_path, name)
    # The request as the platform stored it from the gateway's retained P/web/csr.
    db = str(tmp_path / "platform.db")
    stored = PlatformStore.open(StoreConfig.for_url(db, key_file=tmp_path / "store.key"))
    try:
        none_yet = certify(tmp_path, pebble_on_named, named, gateway_id=gateway_id,
                           source=("--db", db))  # fmt: skip
        assert none_yet.returncode == 2
        assert f"{gateway_id} has sent up no page certificate request" in none_yet.stderr
        sent_up = Incoming(f"rental/v1/{gateway_id}/web/csr", gateway_id, "web/csr",
                           (tmp_path / "web.csr").read_bytes(), time.time(), None)  # fmt: skip
        assert store_batch(stored, [sent_up]).rejected == 0
    finally:
        stored.close()
    first = certify(tmp_path, pebble_on_named, named, gateway_id=gateway_id, source=("--db", db))
    assert first.returncode == 0, first.stderr
    said = json.loads(first.stdout)
    assert (said["name"], said["renewed"]) == (name, True)
    chain = (tmp_path / "web-city.pem").read_bytes()
    leaf = verified(chain, pebble_on_named.root(), name)
    assert named.txt(f"_acme-challenge.{name}") == []

    again = certify(tmp_path, pebble_on_named, named, gateway_id=gateway_id)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"renewed": True} == said  # not due: kept as it is
    assert (tmp_path / "web-city.pem").read_bytes() == chain
    request_ = x509.load_pem_x509_csr((tmp_path / "web.csr").read_bytes())
    near_the_end = leaf.not_valid_after_utc - datetime.timedelta(days=10)
    assert renewal_due(tmp_path / "web-city.pem", request_, name, near_the_end)
    forced = certify(tmp_path, pebble_on_named, named, "--force", gateway_id=gateway_id)
    assert forced.returncode == 0, forced.stderr  # the account made by the first run
    assert json.loads(forced.stdout)["fingerprint"] != said["fingerprint"]

    # What `send … web-certificate` carries down: the gateway checks it against its page's
    # key and serves it (the same check and install as its web.certificate command).
    page = PageCertificate(tmp_path / "data", tmp_path / "keys" / "web.key")
    (tmp_path / "data").mkdir()
    now = datetime.datetime.now(datetime.UTC)
    installed = page.install(page.check((tmp_path / "web-city.pem").read_text(), now))
    assert installed == json.loads(forced.stdout)["fingerprint"]
    assert page.current(now) == page.path
    assert public(key.public_key()) == public(
        x509.load_pem_x509_certificate(page.path.read_bytes()).public_key()
    )


@pytest.mark.parametrize("case", ["wrong secret", "readable by all"])
def test_certify_refuses_when_the_dns_update_fails(
        tmp_path: Path, pebble_on_named: Pebble, named: Named, case: str) -> None:  # fmt: skip
    gateway_id = "gw-440305-0048"
    name = page_name(gateway_id, DOMAIN)
    wrong = base64.b64encode(b"not the city's update key at all").decode()
    operator_files(tmp_path, name, secret=wrong if case == "wrong secret" else SECRET)
    if case == "readable by all":
        (tmp_path / "update.key").chmod(0o644)
    result = certify(tmp_path, pebble_on_named, named, gateway_id=gateway_id)
    assert result.returncode == 1
    expected = {"wrong secret": f"refused the TSIG key {KEY_NAME}",
                "readable by all": "may be read or written by anyone"}[case]  # fmt: skip
    assert expected in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "web-city.pem").exists()
    assert named.txt(f"_acme-challenge.{name}") == []
