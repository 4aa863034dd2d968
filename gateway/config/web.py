"""[web]: where the local page listens, and the rule that keeps passwords off plain HTTP."""

from __future__ import annotations

import ipaddress
from typing import Self

from pydantic import Field, model_validator

from gateway.config.base import Section
from gateway.config.errors import invalid
from gateway.config.files import ReadableFile


class WebConfig(Section):
    """The local web page for the building head, police and installers."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        title="Listen address",
        description="Address to listen on; anything but loopback requires TLS.",
    )
    port: int = Field(default=8080, ge=1, le=65535, title="Listen port", description="TCP port.")
    tls_cert_file: ReadableFile | None = Field(
        default=None,
        title="TLS certificate",
        description="PEM certificate (chain) for HTTPS; set together with tls_key_file.",
    )
    tls_key_file: ReadableFile | None = Field(
        default=None,
        title="TLS key",
        description="PEM private key for HTTPS; set together with tls_cert_file.",
    )
    redirect_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        title="HTTP redirect port",
        description="Plain HTTP port that only sends a browser on to the HTTPS page (80 on a"
        " provisioned gateway); needs TLS. On loopback it also answers /healthz and /metrics.",
    )

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            raise invalid("set tls_cert_file and tls_key_file together", key=missing)
        if not self.tls and not is_loopback(self.host):
            raise invalid(
                f'"{self.host}" is reachable from the network, where passwords must not travel'
                ' as plain HTTP; set tls_cert_file and tls_key_file, or use host = "127.0.0.1"',
                key="host",
            )
        if self.redirect_port is not None and not self.tls:
            raise invalid("a redirect to HTTPS needs tls_cert_file and tls_key_file",
                          key="redirect_port")  # fmt: skip
        if self.redirect_port == self.port:
            raise invalid(f"must differ from port ({self.port})", key="redirect_port")
        return self

    @property
    def tls(self) -> bool:
        """Whether the page is served over HTTPS."""
        return self.tls_cert_file is not None


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or `localhost` (a name may be any interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
