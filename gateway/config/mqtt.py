"""[mqtt]: the uplink to the city's broker, and the key that signs its commands."""

from __future__ import annotations

import base64
import binascii
from typing import Self

from pydantic import Field, field_validator, model_validator

from gateway.config.base import Section
from gateway.config.errors import invalid
from gateway.config.files import ReadableFile

# Marks of a value not filled in; base64 itself never holds "<" or ".".
_PLACEHOLDER_MARKS = (
    "change",
    "replace",
    "your",
    "todo",
    "example",
    "placeholder",
    "xxx",
    "...",
    "<",
)


class MqttConfig(Section):
    """The uplink to the city's broker; without this section events stay in the local journal."""

    host: str = Field(min_length=1, title="Broker host", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, title="Broker port", description="Broker port.")
    tls: bool = Field(
        default=False,
        title="TLS",
        description="Connect with TLS and a client certificate; needs ca_file, cert_file and"
        " key_file.",
    )
    ca_file: ReadableFile | None = Field(
        default=None,
        title="CA certificate",
        description="PEM file of the CA that signed the broker's certificate.",
    )
    cert_file: ReadableFile | None = Field(
        default=None, title="Client certificate", description="PEM client certificate."
    )
    key_file: ReadableFile | None = Field(
        default=None, title="Client key", description="PEM private key of the client certificate."
    )
    topic_prefix: str = Field(
        default="rental/v1",
        title="Topic prefix",
        description="Topics are PREFIX/GATEWAY_ID/…; no wildcards, no leading or trailing slash.",
    )
    command_public_key: str = Field(
        title="Command public key",
        description="Base64 of the central platform's raw 32-byte Ed25519 public key; commands"
        " on P/cmd must be signed by it.",
    )
    keepalive_seconds: int = Field(
        default=30,
        ge=5,
        le=1200,
        title="Keepalive",
        description="Seconds between MQTT pings; a dead link is noticed after 1.5 times this.",
    )
    session_expiry_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        le=0xFFFFFFFF,
        title="Session expiry",
        description="How long the broker keeps the session (and commands queued for the gateway)"
        " while the gateway is offline.",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if not value:
            raise invalid('must not be empty; the default is "rental/v1"')
        if "+" in value or "#" in value:
            raise invalid('must not contain the MQTT wildcards "+" or "#"')
        if value.startswith("/") or value.endswith("/"):
            raise invalid('must not start or end with "/"; the gateway adds "/" before its id')
        if "//" in value:
            raise invalid('must not contain an empty level ("//")')
        if value.startswith("$"):
            raise invalid('must not start with "$"; brokers reserve those topics')
        return value

    @field_validator("command_public_key")
    @classmethod
    def _ed25519_key(cls, value: str) -> str:
        wanted = (
            "paste the central platform's command public key: base64 of its raw 32-byte"
            ' Ed25519 public key, 44 characters ending in "="'
        )
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        # Only text that is not a usable key is searched for placeholder words: random
        # base64 contains "xxx" or "your" often enough that a real key could be refused.
        if len(key) == 32 and len(set(key)) > 1 and len(set(value.rstrip("="))) > 1:
            return value
        if len(key) == 32 or _looks_like_placeholder(value):
            raise invalid(f"is a placeholder; {wanted}")
        if not key:
            raise invalid(f"is not valid base64; {wanted}")
        raise invalid(f"decodes to {len(key)} bytes, not 32; {wanted}")

    @model_validator(mode="after")
    def _tls_files_with_tls(self) -> Self:
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        if self.tls:
            missing = [name for name, path in files.items() if path is None]
            if missing:
                raise invalid(f"tls = true also needs {_and(missing)}", key="tls")
        else:
            given = [name for name, path in files.items() if path is not None]
            if given:
                raise invalid(
                    f"{_and(given)} set but tls = false, so they would not be used;"
                    " set tls = true or remove them",
                    key="tls",
                )
        return self

    @property
    def command_key_bytes(self) -> bytes:
        """The 32 raw bytes of `command_public_key`."""
        return base64.b64decode(self.command_public_key)


def _looks_like_placeholder(text: str) -> bool:
    lowered = text.strip().lower()
    return (
        "…" in lowered
        or any(word in lowered for word in _PLACEHOLDER_MARKS)
        or len(set(lowered.rstrip("="))) <= 1
    )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
