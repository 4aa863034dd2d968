"""The platform's signing key as `rental-platform keygen` writes it: base64 of the 32 raw bytes
of an Ed25519 key. It signs commands (SPEC 7) and the audit's anchored heads."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import load_private_key

from .exits import UsageError


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    """The key in `path`; UsageError when it is not one keygen made."""
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        return load_private_key(raw)
    except (OSError, binascii.Error, ValueError) as exc:
        raise UsageError(f"{path}: not a signing key made by keygen ({exc})") from None
