"""Web users: creation rules, login, disabling, hash upgrades."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from gateway.store import Conflict, NotFound, Store, ValidationError


def test_add_and_verify_user(store: Store) -> None:
    user = store.add_user("wang.li", "building_head", "violet-harbour-27")
    assert (user.username, user.role, user.disabled) == ("wang.li", "building_head", False)
    assert store.verify_user("wang.li", "violet-harbour-27") == user
    assert store.verify_user("WANG.LI", "violet-harbour-27") == user  # one login, any case
    assert store.verify_user("wang.li", "violet-harbour-28") is None
    assert store.verify_user("nobody", "violet-harbour-27") is None
    stored = store.reader().execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")


def test_user_rules(store: Store) -> None:
    store.add_user("chen", "police", "violet-harbour-27")
    with pytest.raises(Conflict, match="already exists"):
        store.add_user("Chen", "installer", "violet-harbour-27")
    with pytest.raises(ValidationError) as caught:
        store.add_user("li", "janitor", "violet-harbour-27")
    assert caught.value.field == "role"
    with pytest.raises(ValidationError) as caught:
        store.add_user("li", "police", "password1234")
    assert caught.value.field == "password"
    with pytest.raises(ValidationError) as caught:
        store.add_user("no spaces", "police", "violet-harbour-27")
    assert caught.value.field == "username"
    with pytest.raises(NotFound):
        store.get_user("li")


def test_disabled_user_cannot_log_in_and_password_change_works(store: Store) -> None:
    store.add_user("zhao", "installer", "violet-harbour-27")
    store.set_user_disabled("zhao", True)
    assert store.verify_user("zhao", "violet-harbour-27") is None
    store.set_user_disabled("zhao", False)
    store.set_password("zhao", "amber-lantern-93")
    assert store.verify_user("zhao", "violet-harbour-27") is None
    assert store.verify_user("zhao", "amber-lantern-93") is not None


def test_login_with_an_outdated_hash_stores_a_fresh_one(store: Store) -> None:
    store.add_user("sun", "police", "violet-harbour-27")
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("violet-harbour-27")
    store.transaction(lambda tx: tx.execute("UPDATE users SET password_hash = ?", (old,)))
    assert store.verify_user("sun", "violet-harbour-27") is not None
    stored = store.reader().execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
