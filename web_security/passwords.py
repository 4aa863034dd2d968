"""Password hashing for web users: argon2id sized for a Raspberry Pi 4, plus a minimal policy.

Both applications hash with these parameters, so a password rule or a hash means the same on
the gateway and on the city's platform. They are OWASP's minimum for argon2id (19 MiB,
2 passes, 1 lane): on the Pi 4, the smallest machine that checks passwords, a login stays well
under a quarter second while each guess against a stolen hash costs 19 MiB of memory;
measured figures are in docs/store.md. Hashes made with other parameters
still verify and are upgraded on the next successful login (`Verification.new_hash`).

Hashing runs on `HASH_WORKERS` threads of its own, with at most `HASH_QUEUE` more waiting;
past that `HashingBusy` is raised at once. So a burst of logins costs at most
HASH_WORKERS x 19 MiB of argon2 memory, and only those threads' malloc arenas ever hold it:
hashed on every web worker thread, 100 parallel logins took the process from 103 to 1,082 MiB,
770 MiB of it still held afterwards (docs/benchmarks.md, "Logins under a burst").
"""

from __future__ import annotations

import getpass
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1
MIN_LENGTH = 10
# argon2 accepts anything, but a megabyte "password" is a denial-of-service attempt.
MAX_LENGTH = 256
# Two hashes at once: half a Pi 4's cores and 38 MiB; a login waits at most about
# (HASH_QUEUE / HASH_WORKERS + 1) hashes, under half a second on a Pi 4.
HASH_WORKERS = 2
HASH_QUEUE = 8

T = TypeVar("T")

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


# What a refused password is told, by key: the English of the API, the CLI and logs. An
# application's pages say it in their own words under the same key.
WEAK = {
    "password_short": "must be at least {min} characters",
    "password_long": "must be at most {max} characters",
    "password_few_characters": "uses too few different characters",
    "password_sequence": "is a keyboard or alphabet sequence",
    "password_common": "is a common word or contains the username",
}


class WeakPasswordError(ValueError):
    """The password breaks the policy; the message says how, `code` and `params` by key."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(WEAK[code].format(**params))
        self.code = code
        self.params = params


class HashingBusy(Exception):
    """Too many password hashes are running or waiting: try again in a moment."""


class HashingThreads:
    """Runs argon2 on `workers` threads of its own, admitting at most `queue` more to wait.

        HASHING.run(lambda: _hasher.hash(password))   # the hash, or HashingBusy at once

    The caller's thread waits for the result. The threads start on first use.
    """

    def __init__(self, workers: int = HASH_WORKERS, queue: int = HASH_QUEUE) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._limit = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()

    def run(self, work: Callable[[], T]) -> T:
        with self._lock:
            if self._admitted >= self._limit:
                raise HashingBusy
            self._admitted += 1
        try:
            return self._pool.submit(work).result()
        finally:
            with self._lock:
                self._admitted -= 1

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        with self._lock:
            return self._admitted


HASHING = HashingThreads()


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of `verify_password`: `new_hash` is set when the stored hash should be replaced."""

    ok: bool
    new_hash: str | None = field(default=None, repr=False)


def check_policy(password: str, username: str | None = None) -> None:
    """Refuse passwords that are too short, too long or trivially guessable."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError("password_short", min=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError("password_long", max=MAX_LENGTH)
    lowered = password.lower()
    if len(set(lowered)) < 4:
        raise WeakPasswordError("password_few_characters")
    if any(lowered in run or lowered in run[::-1] for run in _SEQUENCES):
        raise WeakPasswordError("password_sequence")
    stripped = lowered.strip("0123456789!@#$%^&*.-_ ")
    if stripped in _WORDS or (username and username.lower() in lowered):
        raise WeakPasswordError("password_common")


def hash_password(password: str) -> str:
    """Hash a password that passed `check_policy` (an argon2id PHC string); HashingBusy when
    too many hashes are running or waiting."""
    return HASHING.run(lambda: _hasher.hash(password))


def verify_password(stored_hash: str, password: str) -> Verification:
    """Check `password` against `stored_hash`; on success, say whether to store a fresh hash.

    HashingBusy when too many hashes are running or waiting.
    """
    if len(password) > MAX_LENGTH:
        return Verification(ok=False)
    return HASHING.run(lambda: _verify(stored_hash, password))


def _verify(stored_hash: str, password: str) -> Verification:
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


def read_password(from_stdin: bool) -> tuple[str, bool]:
    """A new user's password on a command line: (password, one-time).

    With `from_stdin`, one line of standard input; else asked twice on a terminal (ValueError
    when the two differ); else, with no terminal, a one-time password is made, which its user
    replaces at the first login.
    """
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise ValueError("the two passwords differ")
        return first, False
    return secrets.token_urlsafe(12), True
