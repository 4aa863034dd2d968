"""Signed downlink commands (SPEC 7): build, sign and check the envelope on `P/cmd`.

The envelope is `{"payload": "<JSON text>", "sig": "<base64 Ed25519 signature>"}`; the
signature covers the payload's exact UTF-8 bytes, so nobody re-serialises JSON before checking.
`open_command` does every check that needs no state; the counter check (above the last
accepted one, persisted before acting) belongs to whoever keeps that state.

    envelope = seal_command(key, gateway_id="gw-1", counter=7, cmd="unlock",
                            args={"door": "main", "seconds": 5})
    command = open_command(envelope, public_key, gateway_id="gw-1", now=datetime.now(UTC))
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .payload import PayloadRefused, parse_object

COMMANDS = frozenset({"unlock", "lockdown", "registry.apply", "web.certificate"})
# A registry.apply carries a whole building's tenants: allow a few MiB, refuse more unread.
MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
# Clocks of gateways without NTP drift; a command "issued" this far ahead is still accepted.
CLOCK_SKEW = timedelta(minutes=5)


class CommandRejected(Exception):
    """A command that must not be executed; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str, counter: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.counter = counter  # when the payload was readable enough to tell


@dataclass(frozen=True, slots=True)
class Command:
    """A command whose signature, addressee, lifetime and shape were checked."""

    gateway_id: str
    counter: int
    issued_at: datetime
    expires_at: datetime
    cmd: str
    args: dict[str, Any] = field(repr=False)  # a registry.apply holds personal data


def seal_command(
    private_key: Ed25519PrivateKey,
    *,
    gateway_id: str,
    counter: int,
    cmd: str,
    args: dict[str, Any],
    issued_at: datetime | None = None,
    lifetime: timedelta = timedelta(minutes=10),
) -> bytes:
    """The signed envelope of one command, as bytes ready to publish on `P/cmd`."""
    issued = (issued_at or datetime.now(UTC)).astimezone(UTC)
    payload = json.dumps(
        {
            "gateway_id": gateway_id,
            "counter": counter,
            "issued_at": _rfc3339(issued),
            "expires_at": _rfc3339(issued + lifetime),
            "cmd": cmd,
            "args": args,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    signature = private_key.sign(payload.encode())
    envelope = {"payload": payload, "sig": base64.b64encode(signature).decode()}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def open_command(
    envelope: bytes, public_key: Ed25519PublicKey, *, gateway_id: str, now: datetime
) -> Command:
    """Check an envelope and return its command; raise CommandRejected saying why not.

    Order matters: nothing in the payload is trusted (not even its counter, for the result)
    before the signature over its bytes is verified.
    """
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise CommandRejected("too_large", f"envelope is over {MAX_ENVELOPE_BYTES} bytes")
    outer = _json_object(envelope, "envelope")
    payload, sig = outer.get("payload"), outer.get("sig")
    if not isinstance(payload, str) or not isinstance(sig, str) or set(outer) != {"payload", "sig"}:
        raise CommandRejected("malformed", 'envelope must be {"payload": text, "sig": base64}')
    try:
        signature = base64.b64decode(sig, validate=True)
        public_key.verify(signature, payload.encode())
    except (binascii.Error, ValueError, InvalidSignature):
        raise CommandRejected("bad_signature", "signature does not verify") from None
    body = _json_object(payload.encode(), "payload")
    counter = body.get("counter")
    if type(counter) is not int or counter < 1:
        raise CommandRejected("malformed", "counter must be a positive integer")
    if body.get("gateway_id") != gateway_id:
        raise CommandRejected("wrong_gateway", "addressed to another gateway", counter)
    issued = _timestamp(body.get("issued_at"), "issued_at", counter)
    expires = _timestamp(body.get("expires_at"), "expires_at", counter)
    if now >= expires:
        raise CommandRejected("expired", f"expired at {body['expires_at']}", counter)
    if issued - CLOCK_SKEW > now:
        raise CommandRejected("not_yet_valid", f"issued in the future ({body['issued_at']})",
                              counter)  # fmt: skip
    cmd, args = body.get("cmd"), body.get("args")
    if cmd not in COMMANDS:
        raise CommandRejected("unknown_command", f"unknown command {cmd!r}", counter)
    if not isinstance(args, dict):
        raise CommandRejected("malformed", "args must be an object", counter)
    return Command(gateway_id, counter, issued, expires, cmd, args)


def load_private_key(raw: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from its 32 raw bytes."""
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes (the config's form)."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw public key, as `[mqtt] command_public_key` wants it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes_raw()).decode()


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    # Bounded: 1,000 nested brackets (1 KB) made json.loads raise RecursionError, which no
    # caller expected, and the command worker thread died of it.
    try:
        return parse_object(data, max_bytes=MAX_ENVELOPE_BYTES)
    except PayloadRefused as refused:
        raise CommandRejected("malformed", f"{what}: {refused.detail}") from None


def _timestamp(value: Any, name: str, counter: int) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CommandRejected("malformed", f"{name} must be RFC 3339 with an offset", counter)
    return moment


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
