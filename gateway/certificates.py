"""The gateway's own keys and certificates: the MQTT client's and the page's.

Each is an EC P-256 key made on the gateway (it never leaves it, 0600) and a certificate
request the city's CA signs. The page also gets a self-signed certificate at once, so a phone
in the building can open it on the first day: its SHA-256 fingerprint, printed on the
installer's report and the sticker, is what a building head or an officer compares.

    key, created = load_or_make_key(keys / "web.key")
    names = Names(common_name="gw-440305-0042", dns=("gw-440305-0042.local",),
                  ips=("192.168.1.20",))
    certificate = self_signed(key, names)
    fingerprint(certificate)      # "3A:1F:…" as browsers show it
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config.web import WebConfig

# A self-signed certificate is trusted by its fingerprint, printed on a sticker: it lasts as
# long as the box, and is made again only when the gateway's names change.
SELF_SIGNED_DAYS = 10 * 365


@dataclass(frozen=True, slots=True)
class Names:
    """Who a certificate speaks for: no person, only the gateway and its addresses."""

    common_name: str
    unit: str = ""  # the building code, for the city's records
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    def subject(self) -> x509.Name:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)]
        if self.unit:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.unit))
        return x509.Name(attributes)

    def alternative(self) -> x509.SubjectAlternativeName | None:
        general: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns]
        general += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.ips]
        return x509.SubjectAlternativeName(general) if general else None


def load_or_make_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The EC key at `path`, made (0600) when there is none; (key, created).

    ValueError when the file is there but is not a PEM EC private key: it is never replaced
    silently, since a certificate the city signed may belong to it.
    """
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC key")
        return key, False
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    return key, True


def same_key(public: object, key: ec.EllipticCurvePrivateKey) -> bool:
    """Whether `public` (a certificate's or a request's key) is `key`'s public half."""
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    return _der(public) == _der(key.public_key())


def request(key: ec.EllipticCurvePrivateKey, names: Names) -> x509.CertificateSigningRequest:
    """A certificate request for `names`, signed with `key`."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(names.subject())
    alternative = names.alternative()
    if alternative is not None:
        builder = builder.add_extension(alternative, critical=False)
    return builder.sign(key, hashes.SHA256())


def request_is_current(path: Path, key: ec.EllipticCurvePrivateKey, names: Names) -> bool:
    """Whether the request at `path` is for `key` and exactly `names` (a damaged one is not)."""
    try:
        existing = x509.load_pem_x509_csr(path.read_bytes())
    except (OSError, ValueError):
        return False
    return same_key(existing.public_key(), key) and _names_of(existing) == _wanted(names)


def self_signed(key: ec.EllipticCurvePrivateKey, names: Names) -> x509.Certificate:
    """A server certificate for `names`, signed by `key` itself."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(names.subject())
        .issuer_name(names.subject())
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    alternative = names.alternative()
    if alternative is not None:
        builder = builder.add_extension(alternative, critical=False)
    return builder.sign(key, hashes.SHA256())


def certificate_is_current(path: Path, key: ec.EllipticCurvePrivateKey, names: Names) -> bool:
    """Whether the certificate at `path` is `key`'s, valid for a month more, for `names`."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    month = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    return (same_key(certificate.public_key(), key)
            and certificate.not_valid_after_utc > month
            and _names_of(certificate) == _wanted(names))  # fmt: skip


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as browsers show it: 32 hex pairs joined by colons."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def pem(item: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return item.public_bytes(serialization.Encoding.PEM)


def _der(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip


def _wanted(names: Names) -> tuple[str, frozenset[str], frozenset[str]]:
    return (names.common_name, frozenset(names.dns),
            frozenset(str(ipaddress.ip_address(ip)) for ip in names.ips))  # fmt: skip


def _names_of(
    item: x509.Certificate | x509.CertificateSigningRequest,
) -> tuple[str, frozenset[str], frozenset[str]]:
    common = item.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        alternative = item.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (str(common[0].value) if common else "", frozenset(), frozenset())
    ips = alternative.get_values_for_type(x509.IPAddress)
    return (str(common[0].value) if common else "",
            frozenset(alternative.get_values_for_type(x509.DNSName)),
            frozenset(str(ip) for ip in ips))  # fmt: skip


# ----------------------------------------------------------------- the city's, sent down

INSTALLED_NAME = "web-certificate.pem"  # in the data folder: the page's certificate from the city
MAX_CHAIN_BYTES = 64 * 1024


class CertificateRefused(ValueError):
    """A certificate the city sent cannot be served; `error` is the command result's word."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


class PageCertificate:
    """The page's certificate as the city sends it down (SPEC 7 `web.certificate`).

    The uplink part checks and installs it (`check`, then `install`, with the command's
    counter spent in between); the edge part serves it (`current`) in place of the config's
    `tls_cert_file` for as long as it fits the page's key and has not expired, and reloads
    nginx when it changes, so no part restarts.
    """

    def __init__(self, data_dir: Path, key_file: Path) -> None:
        self.path = data_dir / INSTALLED_NAME
        self._key_file = key_file

    def check(self, chain: object, now: datetime.datetime) -> bytes:
        """The chain as PEM, its first certificate the page's own; CertificateRefused if not."""
        if not isinstance(chain, str) or not chain.strip():
            raise CertificateRefused("bad_args", '"chain" must be PEM text')
        if len(chain) > MAX_CHAIN_BYTES:
            raise CertificateRefused("bad_args", f"chain larger than {MAX_CHAIN_BYTES} bytes")
        try:
            certificates = x509.load_pem_x509_certificates(chain.encode("ascii"))
        except (UnicodeEncodeError, ValueError):
            raise CertificateRefused("bad_args", '"chain" holds no PEM certificate') from None
        leaf = certificates[0]
        if not same_key(leaf.public_key(), self._key()):
            raise CertificateRefused("wrong_key", "the certificate is not for the page's key")
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise CertificateRefused("expired", f"valid from {leaf.not_valid_before_utc:%Y-%m-%d}"
                                     f" until {leaf.not_valid_after_utc:%Y-%m-%d}")  # fmt: skip
        return b"".join(pem(certificate) for certificate in certificates)

    def install(self, chain_pem: bytes) -> str:
        """Write the checked chain (atomically, readable by the edge); its fingerprint."""
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_bytes(chain_pem)
        temporary.chmod(0o644)
        os.replace(temporary, self.path)
        return fingerprint(x509.load_pem_x509_certificate(chain_pem))

    def current(self, now: datetime.datetime) -> Path | None:
        """The installed chain's path while it still fits the key and is valid, else None."""
        try:
            self.check(self.path.read_text(encoding="ascii"), now)
        except (OSError, UnicodeDecodeError, CertificateRefused):
            return None
        return self.path

    def _key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self._key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateRefused("wrong_key", "the page's key is not an EC key")
        return key


def page_request(web: WebConfig) -> bytes | None:
    """The page's certificate request, beside its key with the same name (`web.csr` beside
    `web.key`, as provisioning writes them); None when there is no key or no request."""
    if web.tls_key_file is None:
        return None
    path = Path(web.tls_key_file).with_suffix(".csr")
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(b"-----BEGIN CERTIFICATE REQUEST-----") else None


def page_certificate(data_dir: Path, web: WebConfig) -> PageCertificate | None:
    """Where the city's certificate for this page goes; None when the page has no HTTPS."""
    if web.tls_key_file is None:
        return None
    return PageCertificate(data_dir, Path(web.tls_key_file))
