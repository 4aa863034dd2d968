"""Which name a gateway's page is certified for, and whether a request or a chain fits it.

A certificate phones trust names `{gateway_id}.{city domain}` and nothing else: a public CA
signs no `.local` name and no private address, and the CA (Boulder's rules, which pebble
follows) takes the request's common name as one more name to validate. The request is signed
with the page's key, which never leaves the gateway, so the platform cannot change a name in
it: a request that asks for anything else is refused here, before any order, with what it
asks for and what it should.

    name = page_name("gw-440305-0042", "rental.city.example")
    request = check_request(csr_pem, name)     # RequestUnfit if it does not fit
    check_chain(chain_pem, request, name)      # ChainUnfit if the CA's answer does not
    renewal_due(chain_path, request, name, now)
"""

from __future__ import annotations

import datetime
import itertools
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

MAX_REQUEST_BYTES = 16 * 1024
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048


class CertifyError(Exception):
    """Why no certificate was obtained, said so that the operator knows what to change."""


class RequestUnfit(CertifyError):
    """The gateway's request, or the name it should be for, cannot be certified."""


class ChainUnfit(CertifyError):
    """What the CA sent back is not a chain for the request's key and name."""


def page_name(gateway_id: str, domain: str) -> str:
    """`{gateway_id}.{domain}`; RequestUnfit when that is not a DNS name."""
    if not _LABEL.fullmatch(gateway_id):
        raise RequestUnfit(f"gateway id {gateway_id!r} is not a DNS label: a-z, 0-9 and '-',"
                           " at most 63, neither starting nor ending with '-'")  # fmt: skip
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise RequestUnfit(f"domain {domain!r} is not a domain name in lower case, such as"
                           " rental.city.example")  # fmt: skip
    name = f"{gateway_id}.{domain}"
    if len(name) > 253:
        raise RequestUnfit(f"{name} is longer than a DNS name may be (253)")
    return name


def check_request(csr_pem: bytes, name: str) -> x509.CertificateSigningRequest:
    """The request, when it is intact, for a key a CA takes, and for exactly `name`."""
    if len(csr_pem) > MAX_REQUEST_BYTES:
        raise RequestUnfit(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise RequestUnfit("not a PEM certificate request") from None
    try:
        intact = request.is_signature_valid
        key = request.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RequestUnfit(f"the request's key or signature cannot be read ({exc})") from None
    if not intact:
        raise RequestUnfit("the request's signature does not verify: it was damaged or altered")
    _check_key(key)
    asked = _asked(request)
    dns = {value for kind, value in asked if kind == "DNS"}
    if dns != {name} or any(kind not in {"DNS", "CN"} or value != name for kind, value in asked):
        said = ", ".join(f"{value} ({kind})" for kind, value in asked) or "no name"
        raise RequestUnfit(
            f"the request asks for {said}; a certificate phones trust names exactly {name}:"
            f" the gateway must make its page's request with {name} as its only subject"
            f" alternative name, and as its common name or none"
        )
    return request


def check_chain(chain_pem: bytes, request: x509.CertificateSigningRequest, name: str) -> None:
    """ChainUnfit unless the chain's first certificate is for the request's key and exactly
    `name`, and each certificate is signed by the next."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        alternative = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise ChainUnfit(f"the CA's answer is not a certificate chain with names ({exc})") from None
    leaf = chain[0]
    if _public(leaf.public_key()) != _public(request.public_key()):
        raise ChainUnfit("the CA's certificate is for another key than the request's")
    names = alternative.value.get_values_for_type(x509.DNSName)
    if [value.lower() for value in names] != [name]:
        raise ChainUnfit(f"the CA's certificate names {', '.join(names)}, not {name}")
    for certificate, issuer in itertools.pairwise(chain):
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ChainUnfit(
                f"in the CA's chain, {certificate.subject.rfc4514_string()} is"
                f" not signed by {issuer.subject.rfc4514_string()}"
            ) from None


def renewal_due(chain: Path, request: x509.CertificateSigningRequest, name: str,
                now: datetime.datetime) -> bool:  # fmt: skip
    """Whether `chain` needs a new certificate: it is missing or unfit for the request, or
    less than a third of its lifetime is left (30 days of a 90-day certificate)."""
    try:
        check_chain(chain.read_bytes(), request, name)
        leaf = x509.load_pem_x509_certificate(chain.read_bytes())
    except (OSError, ChainUnfit):
        return True
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    return leaf.not_valid_after_utc - now < lifetime / 3


def _check_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES):
        return
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return
    raise RequestUnfit(f"the request's key ({type(key).__name__}) is not one a CA signs:"
                       f" EC P-256 or P-384, or RSA of {MIN_RSA_BITS} bits or more")  # fmt: skip


def _asked(request: x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    """Every name the request asks for, as (kind, value): CN, DNS, IP or another kind."""
    asked = [
        ("CN", str(attribute.value).lower())
        for attribute in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    try:
        alternative = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return asked
    except ValueError as exc:  # a duplicate or malformed extension
        raise RequestUnfit(f"the request's extensions cannot be read ({exc})") from None
    for general in alternative.value:
        if isinstance(general, x509.DNSName):
            asked.append(("DNS", general.value.lower()))
        elif isinstance(general, x509.IPAddress):
            asked.append(("IP", str(general.value)))
        else:
            asked.append((type(general).__name__, str(general.value)))
    return asked


def _public(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
