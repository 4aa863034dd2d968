"""The platform's own secrets for certificates: its ACME account key and the TSIG key that
lets it change `_acme-challenge` records in the city's DNS.

Both are files only the platform's user reads: one that others may read is refused, as ssh
refuses a private key anyone can read, rather than used.

    key = load_or_make_account_key(Path("/var/lib/rental-platform/acme-account.key"))
    tsig = read_tsig_key(Path("/etc/rental-platform/acme-update.key"))   # BIND's key file
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import dns.name
import dns.tsig
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .names import CertifyError

# What `tsig-keygen NAME` prints, and what the city's DNS administrator hands over.
_BIND_KEY = re.compile(
    r'key\s+"?(?P<name>[A-Za-z0-9._-]+)"?\s*\{\s*algorithm\s+"?(?P<algorithm>[a-z0-9-]+)"?\s*;'
    r'\s*secret\s+"(?P<secret>[A-Za-z0-9+/=]+)"\s*;\s*\}\s*;', re.ASCII)  # fmt: skip
_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512")


class KeyFileRefused(CertifyError):
    """A key file that is unreadable, readable by others, or not the kind expected."""


def load_or_make_account_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ACME account's EC P-256 key at `path`, made (0600) on first use.

    The account at the CA belongs to this key: a file that is there but is not such a key is
    refused, never replaced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = serialization.load_pem_private_key(_private(path), password=None)
        except (ValueError, TypeError):  # not PEM, or locked with a password
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFileRefused(f"{path} is not an EC private key") from None
        return key
    except OSError as exc:
        raise KeyFileRefused(f"{path}: cannot make the account key ({exc.strerror})") from None
    key = ec.generate_private_key(ec.SECP256R1())
    with os.fdopen(fd, "wb") as file:
        file.write(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))  # fmt: skip
    return key


def read_tsig_key(path: Path) -> dns.tsig.Key:
    """The TSIG key in `path`, written as BIND's `tsig-keygen` writes it:

    key "rental-acme" { algorithm hmac-sha256; secret "base64…"; };
    """
    found = _BIND_KEY.search(_private(path).decode("ascii", "replace"))
    if found is None:
        raise KeyFileRefused(f'{path}: no key "NAME" {{ algorithm …; secret "…"; }}; in it')
    if found["algorithm"] not in _ALGORITHMS:
        raise KeyFileRefused(f"{path}: algorithm {found['algorithm']} is not one of"
                             f" {', '.join(_ALGORITHMS)}")  # fmt: skip
    return dns.tsig.Key(dns.name.from_text(found["name"]), found["secret"],
                        dns.name.from_text(found["algorithm"]))  # fmt: skip


def _private(path: Path) -> bytes:
    """The bytes of a secret file; KeyFileRefused when others than its owner's group may
    read it, or it cannot be read."""
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise KeyFileRefused(f"{path} may be read or written by anyone"
                                     f" (mode {stat.S_IMODE(mode):04o}): chmod 600 it")  # fmt: skip
            return file.read(64 * 1024)
    except OSError as exc:
        raise KeyFileRefused(f"{path}: {exc.strerror}") from None
