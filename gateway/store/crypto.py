"""The store's secret key file and what is derived from it: sealing (AES-256-GCM) and keyed hashes.

One 32-byte random master key lives in `secret.key`. HKDF-SHA256 derives independent keys
from it, so the cipher key and the lookup-hash key never coincide even though one file holds
both.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyFileError, StoreError

KEY_BYTES = 32
_NONCE_BYTES = 12
# First byte of every sealed value, so a later key rotation can tell old values from new ones.
_SEAL_VERSION = b"\x01"


def load_or_create_key(path: Path) -> bytes:
    """Read the master key at `path`, creating it (mode 0600) on first use."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        _create_key(path)
    return _read_key(path)


def _create_key(path: Path) -> None:
    # Written under a temporary name and published with link(): another process opening the
    # store at the same moment sees either no key or a complete one, never a half-written file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race; its key is the one everybody uses
    finally:
        tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"{path} has mode {mode:04o}; the key must be readable by its owner only "
                f"(chmod 600 {path})"
            )
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise KeyFileError(
            f"{path} holds {len(data)}{'+' if len(data) > KEY_BYTES else ''} bytes, "
            f"expected exactly {KEY_BYTES}: damaged or not a key file"
        )
    return data


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"rental-gateway/v1/" + purpose
    ).derive(master)


class Keys:
    """Seal and open values with AES-256-GCM, and compute keyed lookup hashes (HMAC-SHA256)."""

    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise KeyFileError(f"master key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(_derive(master, b"aes-256-gcm"))
        # Keyed once; each hash copies it (a third cheaper than hmac.new: bulk imports and
        # synthetic registries compute two per tenant).
        self._mac = hmac.new(_derive(master, b"hmac-sha256-lookup"), digestmod=hashlib.sha256)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt `plaintext` bound to `context` (e.g. b"tenants.id_number\\0<id>").

        The context is GCM associated data: a sealed value copied to another row or column
        fails to open instead of silently decrypting under the wrong identity.
        """
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, _SEAL_VERSION + context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Decrypt a value made by `seal` with the same context."""
        if sealed[:1] != _SEAL_VERSION:
            raise StoreError("sealed value has an unknown format version")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, _SEAL_VERSION + context)
        except InvalidTag:
            raise StoreError(
                "sealed value does not verify: wrong secret.key, or the row was altered"
            ) from None

    def lookup_hash(self, purpose: str, value: str) -> bytes:
        """Keyed hash of `value` for exact-match lookups; `purpose` separates the domains.

        Without the key, the 10^10-ish space of ID numbers or the 10^4 of PINs cannot be
        brute-forced from a copied database.
        """
        mac = self._mac.copy()
        mac.update(purpose.encode() + b"\0" + value.encode())
        return mac.digest()

    @staticmethod
    def same(a: bytes, b: bytes) -> bool:
        """Constant-time comparison of two hashes."""
        return hmac.compare_digest(a, b)


__all__ = ["KEY_BYTES", "Keys", "load_or_create_key"]
