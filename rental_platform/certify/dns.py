"""Putting the `_acme-challenge` TXT record where the CA looks, and taking it away again.

`DnsUpdater` is what the ACME exchange needs; `Rfc2136` is the city's DNS, changed by dynamic
updates (RFC 2136) signed with a TSIG key (RFC 8945), as BIND, Knot, PowerDNS and Windows DNS
accept them. The key should be allowed to change TXT records under the city domain and nothing
else (BIND: `update-policy { grant rental-acme subdomain rental.city.example. TXT; };`).

    updater = Rfc2136("10.0.0.53", zone="rental.city.example", key=read_tsig_key(path))
    updater.publish("_acme-challenge.gw-440305-0042.rental.city.example", "Zm9v…")
    updater.remove("_acme-challenge.gw-440305-0042.rental.city.example", "Zm9v…")
"""

from __future__ import annotations

from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from .names import CertifyError

CHALLENGE_TTL = 60  # seconds: the record lives for minutes, no resolver should keep it longer


class DnsUpdateFailed(CertifyError):
    """The DNS did not take a change. `refused`: the server said no, so nothing changed;
    else no answer came, and the change may have been made all the same."""

    def __init__(self, message: str, *, refused: bool = True) -> None:
        super().__init__(message)
        self.refused = refused


class DnsUpdater(Protocol):
    """Publishes and removes TXT records; `name` is a full DNS name without the final dot."""

    def publish(self, name: str, value: str) -> None:
        """Add the TXT record `name` = `value` (beside any others); DnsUpdateFailed if not."""

    def remove(self, name: str, value: str) -> None:
        """Remove that one TXT record (none there is no error); DnsUpdateFailed if the DNS
        refuses."""


class Rfc2136:
    """Dynamic updates, over TCP, signed with `key`, to the primary server of `zone`."""

    def __init__(self, server: str, *, zone: str, key: dns.tsig.Key, port: int = 53,
                 timeout: float = 10.0) -> None:  # fmt: skip
        self.server = server
        self.port = port
        try:
            self.zone = dns.name.from_text(zone)
        except dns.exception.DNSException:
            raise DnsUpdateFailed(f"zone {zone!r} is not a DNS name") from None
        self.key = key
        self.timeout = timeout

    def publish(self, name: str, value: str) -> None:
        update = self._update(name)
        update.add(self._relative(name), CHALLENGE_TTL, dns.rdatatype.TXT, _quoted(value))
        self._send(update, f"adding the TXT record {name}")

    def remove(self, name: str, value: str) -> None:
        update = self._update(name)
        update.delete(self._relative(name), dns.rdatatype.TXT, _quoted(value))
        self._send(update, f"removing the TXT record {name}")

    def _update(self, name: str) -> dns.update.UpdateMessage:
        if not dns.name.from_text(name).is_subdomain(self.zone):
            raise DnsUpdateFailed(f"{name} is not in the zone {self.zone} the update goes to")
        return dns.update.UpdateMessage(self.zone, keyring=self.key)

    def _relative(self, name: str) -> dns.name.Name:
        return dns.name.from_text(name).relativize(self.zone)

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        where = f"{self.server} port {self.port}"
        try:
            answer = dns.query.tcp(update, self.server, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerError as exc:  # BADKEY, BADSIG, BADTIME: the server's words
            raise DnsUpdateFailed(f"{what}: {where} refused the TSIG key"
                                  f" {self.key.name.to_text(omit_final_dot=True)}"
                                  f" ({type(exc).__name__})") from None  # fmt: skip
        except (OSError, dns.exception.DNSException) as exc:
            sent = not isinstance(exc, ConnectionRefusedError)  # and perhaps carried out
            raise DnsUpdateFailed(f"{what}: no answer from {where} ({exc})",
                                  refused=not sent) from None  # fmt: skip
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsUpdateFailed(f"{what}: {where} answered {dns.rcode.to_text(rcode)}"
                                  " (is the key allowed to change TXT records there?)")  # fmt: skip


def _quoted(value: str) -> str:
    """A TXT string as zone files write it; a key authorization's digest is base64url, which
    has no quote or backslash to escape."""
    return f'"{value}"'
