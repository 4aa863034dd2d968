"""Certificates phones trust for each gateway's local page, from a public ACME CA by DNS-01.

    name = page_name(gateway_id, "rental.city.example")
    chain_pem = certificate_for(ca, csr_pem, name, Rfc2136(server, zone=..., key=...))

`names` checks the gateway's request and the CA's answer, `order` runs the ACME exchange,
`dns` changes the city's DNS, `keys` holds the platform's secrets for it, `command` is
`rental-platform certify`. docs/platform.md says how it fits together.
"""

from __future__ import annotations

from .dns import DnsUpdateFailed, DnsUpdater, Rfc2136
from .keys import KeyFileRefused, load_or_make_account_key, read_tsig_key
from .names import (
    CertifyError,
    ChainUnfit,
    RequestUnfit,
    check_chain,
    check_request,
    page_name,
    renewal_due,
)
from .order import AcmeFailed, Ca, obtain


def certificate_for(ca: Ca, csr_pem: bytes, name: str, dns: DnsUpdater) -> bytes:
    """The chain for the gateway's request `csr_pem`, which must ask for exactly `name`;
    CertifyError (RequestUnfit before anything is ordered) when there is none."""
    request = check_request(csr_pem, name)
    chain = obtain(ca, csr_pem, dns)
    check_chain(chain, request, name)
    return chain


__all__ = [
    "AcmeFailed",
    "Ca",
    "CertifyError",
    "ChainUnfit",
    "DnsUpdateFailed",
    "DnsUpdater",
    "KeyFileRefused",
    "RequestUnfit",
    "Rfc2136",
    "certificate_for",
    "check_chain",
    "check_request",
    "load_or_make_account_key",
    "page_name",
    "read_tsig_key",
    "renewal_due",
]
