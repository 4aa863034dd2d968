"""A throwaway certificate authority for MQTT over TLS: CA, broker certificate, client certificates.

The broker is configured with `use_identity_as_username`, so a client certificate's common name
*is* the MQTT identity: a gateway id such as "gw-test-0001", or "platform" for the consumer.

    pki = make_pki(tmp_path / "pki", identities=["gw-test-0001", "platform"])
    pki.ca                       # CA certificate (PEM): the broker's and the clients' cafile
    pki.server.cert, pki.server.key
    pki.client("gw-test-0001")   # CertFiles(cert=..., key=...)
    pki.issue("gw-test-0099")    # one more client certificate, signed by the same CA

Keys are EC P-256: generating RSA keys would dominate the run time of small tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_IDENTITIES = ("gw-test-0001", "gw-test-0002", "platform")


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(slots=True)
class Pki:
    """Paths of every file of one throwaway PKI."""

    folder: Path
    ca: Path
    ca_key: Path
    server: CertFiles
    clients: dict[str, CertFiles] = field(default_factory=dict)

    def client(self, identity: str) -> CertFiles:
        """The certificate files of `identity`, issuing them on first use."""
        return self.clients.get(identity) or self.issue(identity)

    def issue(self, identity: str) -> CertFiles:
        """Issue a client certificate with common name `identity`, signed by this CA."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(identity, ca_cert.subject, key.public_key(), ca=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        files = _write(self.folder, _safe(identity), builder.sign(ca_key, hashes.SHA256()), key)
        self.clients[identity] = files
        return files

    def sign_request(self, csr_pem: bytes, *, server: bool = False) -> bytes:
        """Sign a gateway's certificate request as the city's CA does; the certificate (PEM).

        A client certificate (MQTT), or with `server` one for the page, with the names the
        request asks for."""
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        [name] = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        builder = _builder(str(name.value), ca_cert.subject, public_key, ca=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            builder = builder.add_extension(names, critical=False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path, identities: Iterable[str] = DEFAULT_IDENTITIES) -> Pki:
    """Create a CA, a broker certificate for 127.0.0.1/localhost and one client per identity."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rental test CA")])
    ca_cert = (
        _builder("rental test CA", ca_name, ca_key.public_key(), ca=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_files = _write(folder, "ca", ca_cert, ca_key)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder("localhost", ca_name, server_key.public_key(), ca=False)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_files = _write(folder, "server", server_cert, server_key)
    pki = Pki(folder, ca_files.cert, ca_files.key, server_files)
    for identity in identities:
        pki.issue(identity)
    return pki


def _builder(common_name: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             *, ca: bool) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # a little slack for clock differences
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def _write(folder: Path, stem: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> CertFiles:
    files = CertFiles(folder / f"{stem}.crt", folder / f"{stem}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


def _safe(identity: str) -> str:
    """A file stem for an identity (tests may use odd ones on purpose)."""
    return "client-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
