"""TLS with a client certificate, for the gateway's uplink and the platform alike."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for TLS with a client certificate; its common name is the MQTT identity."""

    ca_file: str
    cert_file: str
    key_file: str

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker against `ca_file` and presents our cert."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def tls_pending(sock: Any) -> bool:
    """Whether TLS has decrypted bytes buffered that select() cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
