"""The platform's store key: personal data sealed (AES-256-GCM) and looked up by keyed hash.

`tenant.changed` events carry a tenant's ID number and phone (SPEC 6). The platform keeps

- `id_hash = HMAC-SHA256(k_lookup, "id_number" 0 ID)`, so police search matches an ID number
  without the number being stored (`id_number_hash`);
- the whole event sealed with AES-256-GCM under `k_seal`, bound to where it is stored (the
  associated data names the table and row), so a sealed value copied elsewhere does not open;
- rejected messages (which may be such an event, or anything) sealed the same way.

Both keys are derived with HKDF-SHA256 from one 32-byte master key in the store key file (mode
0600, refused if group or others may read it). Every instance on one database must use the same
file: the database keeps a fingerprint of the key (`key_fingerprint`) and an instance with
another key refuses to start rather than write hashes nobody could match.
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

from .files import publish

MASTER_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"\x01"  # first byte of a sealed value: a later key rotation can tell old from new


class StoreKeyError(Exception):
    """The store key file is missing, unsafe, damaged, or not the database's key."""


def create_key_file(path: Path) -> bool:
    """Make a new key file (mode 0600) unless one exists; True if this call made it.

    Two instances starting at once both end up with the one key that was linked first.
    """
    return publish(path, secrets.token_bytes(MASTER_BYTES), 0o600, replace=False)


def read_key_file(path: Path) -> bytes:
    """The master key in `path`; StoreKeyError saying what is wrong with the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise StoreKeyError(
            f"{path}: no store key (see docs/platform.md, 'The store key')"
        ) from None
    except OSError as exc:
        raise StoreKeyError(f"{path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreKeyError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise StoreKeyError(
                f"{path}: mode {stat.S_IMODE(info.st_mode):04o}; the store key"
                f" must be its owner's alone (chmod 600 {path})"
            )
        data = os.read(fd, MASTER_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != MASTER_BYTES:
        raise StoreKeyError(f"{path}: not a store key ({len(data)} bytes, expected {MASTER_BYTES})")
    return data


class Sealer:
    """Seal and open values, hash values for lookup; from the master key."""

    def __init__(self, master: bytes) -> None:
        def derive(purpose: bytes) -> bytes:
            return HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"rental-platform/v1/" + purpose,
            ).derive(master)

        self._aead = AESGCM(derive(b"seal"))
        self._lookup = hmac.new(derive(b"lookup"), digestmod=hashlib.sha256)
        self.fingerprint = hmac.new(
            derive(b"fingerprint"), b"rental-platform store key", hashlib.sha256
        ).hexdigest()[:32]

    @classmethod
    def from_file(cls, path: Path, *, create: bool) -> Sealer:
        """The key in `path`; made first (mode 0600) if missing and `create` is true."""
        if create and not path.exists():
            create_key_file(path)
        return cls(read_key_file(path))

    def seal(self, plaintext: bytes, where: str) -> bytes:
        """AES-256-GCM of `plaintext`, bound to `where` (e.g. "events\\0gw-1\\042")."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return FORMAT + nonce + self._aead.encrypt(nonce, plaintext, FORMAT + where.encode())

    def open(self, sealed: bytes, where: str) -> bytes:
        """The plaintext of a value sealed for `where`; StoreKeyError if it does not verify."""
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            if sealed[:1] != FORMAT:
                raise InvalidTag
            return self._aead.decrypt(nonce, body, FORMAT + where.encode())
        except InvalidTag:
            raise StoreKeyError(
                f"a value sealed for {where!r} does not open: another store"
                " key, or the row was altered"
            ) from None

    def mac(self, purpose: str, value: str | bytes) -> bytes:
        """HMAC-SHA256 of `value` in the domain `purpose`, for exact-match lookups."""
        mac = self._lookup.copy()
        mac.update(
            purpose.encode() + b"\0" + (value if isinstance(value, bytes) else value.encode())
        )
        return mac.digest()

    def id_number_hash(self, id_number: str) -> bytes:
        """The lookup hash of an ID number, as stored in `events.id_hash` and searched by.

        Normalised as the gateway normalises it (spaces dropped, a final x upper case), so
        "11010519491231002x" typed by an officer matches the gateway's "11010519491231002X".
        """
        return self.mac("id_number", "".join(id_number.split()).upper())
