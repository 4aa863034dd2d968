"""Password hashing parameters and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from web_security import passwords


def test_argon2id_parameters_are_in_the_hash() -> None:
    hashed = passwords.hash_password("violet-harbour-27")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(hashed, "violet-harbour-27") == passwords.Verification(ok=True)
    assert not passwords.verify_password(hashed, "violet-harbour-28").ok
    assert not passwords.verify_password("not a hash", "violet-harbour-27").ok
    assert passwords.DUMMY_HASH.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_weaker_old_hash_is_upgraded_on_login() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("violet-harbour-27")
    outcome = passwords.verify_password(old, "violet-harbour-27")
    assert outcome.ok
    assert outcome.new_hash is not None
    assert outcome.new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "at least 10"),
        ("short-pw", "at least 10"),
        ("aaaaaaaaaaaa", "too few different"),
        ("1234567890", "sequence"),
        ("abcdefghijk", "sequence"),
        ("qwertyuiop", "sequence"),
        ("Password123!", "common word"),
        ("admin-2026!!", "common word"),
        ("x" * 300, "at most 256"),
    ],
)
def test_trivial_passwords_are_refused(password: str, reason: str) -> None:
    with pytest.raises(passwords.WeakPasswordError, match=reason):
        passwords.check_policy(password)


def test_password_containing_the_username_is_refused() -> None:
    with pytest.raises(passwords.WeakPasswordError, match="username"):
        passwords.check_policy("zhangwei-2026-x", "zhangwei")
