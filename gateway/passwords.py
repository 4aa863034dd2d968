"""Password hashing for web users: argon2id sized for a Raspberry Pi 4, plus a minimal policy.

Parameters are OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane). On the Pi 4 this
keeps a login well under a quarter second while making each guess against a stolen hash cost
19 MiB of memory; measured figures are in docs/store.md. Hashes made with other parameters
still verify and are upgraded on the next successful login (`Verification.new_hash`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1
MIN_LENGTH = 10
# argon2 accepts anything, but a megabyte "password" is a denial-of-service attempt.
MAX_LENGTH = 256

_hasher = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)

# Keyboard walks and words that pass a length rule yet are the first ones any attacker tries.
_SEQUENCES = (
    "0123456789012345678901234567890",
    "9876543210987654321098765432109",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn",
    "1q2w3e4r5t6y7u8i9o0p",
    "qazwsxedcrfvtgbyhnujmikolp",
)
_WORDS = ("password", "passw0rd", "admin", "gateway", "welcome", "iloveyou", "letmein", "woaini")


class WeakPasswordError(ValueError):
    """The password breaks the policy; the message says how."""


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of `verify_password`: `new_hash` is set when the stored hash should be replaced."""

    ok: bool
    new_hash: str | None = field(default=None, repr=False)


def check_policy(password: str, username: str | None = None) -> None:
    """Refuse passwords that are too short, too long or trivially guessable."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if len(set(lowered)) < 4:
        raise WeakPasswordError("uses too few different characters")
    if any(lowered in run or lowered in run[::-1] for run in _SEQUENCES):
        raise WeakPasswordError("is a keyboard or alphabet sequence")
    stripped = lowered.strip("0123456789!@#$%^&*.-_ ")
    if stripped in _WORDS or (username and username.lower() in lowered):
        raise WeakPasswordError("is a common word or contains the username")


def hash_password(password: str) -> str:
    """Hash a password that passed `check_policy` (an argon2id PHC string)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> Verification:
    """Check `password` against `stored_hash`; on success, say whether to store a fresh hash."""
    if len(password) > MAX_LENGTH:
        return Verification(ok=False)
    try:
        _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verification(ok=False)
    if _hasher.check_needs_rehash(stored_hash):
        return Verification(ok=True, new_hash=_hasher.hash(password))
    return Verification(ok=True)


# The hash of a random secret nobody kept, with the current parameters: verifying an unknown
# user against it costs as much as a real check, so response time does not reveal which
# usernames exist. A constant, so importing this module does not spend 50 ms hashing.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$pOfO8bo05irCFeiqNn8+Mg$"
    "dBC8DaUKYa9kCPu+tEjJ8AO0rfwGN/pbe0tJ+aOqKgE"
)
