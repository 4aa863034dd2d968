"""The key file's creation and refusal rules, and what the keys do."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest

from gateway.store import KeyFileError, Store, StoreError
from gateway.store.crypto import Keys, _derive, load_or_create_key


def test_key_file_is_created_0600_with_32_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary left behind


def test_store_open_creates_private_data_dir_and_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    Store.open(data_dir, "gw-test-0001").close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "gateway.db").stat().st_mode) == 0o600


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match=r"mode 0644.*chmod 600"):
        load_or_create_key(path)
    with pytest.raises(KeyFileError):
        Store.open(tmp_path / "data", "gw-test-0001", key_file=path)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_key_of_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "secret.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(KeyFileError, match="expected exactly 32"):
        load_or_create_key(path)


def test_sealed_value_opens_only_in_its_own_context() -> None:
    keys = Keys(b"\x01" * 32)
    sealed = keys.seal(b"11010519491231002X", b"tenants.id_number\0a")
    assert keys.open(sealed, b"tenants.id_number\0a") == b"11010519491231002X"
    assert keys.seal(b"same", b"c") != keys.seal(b"same", b"c")  # random nonce
    with pytest.raises(StoreError, match="does not verify"):
        keys.open(sealed, b"tenants.id_number\0b")  # copied to another row
    with pytest.raises(StoreError, match="does not verify"):
        Keys(b"\x02" * 32).open(sealed, b"tenants.id_number\0a")  # another key


def test_lookup_hash_is_keyed_and_separated_by_purpose() -> None:
    keys = Keys(b"\x01" * 32)
    assert keys.lookup_hash("phone", "13800138000") == keys.lookup_hash("phone", "13800138000")
    assert keys.lookup_hash("phone", "13800138000") != keys.lookup_hash("pin", "13800138000")
    assert keys.lookup_hash("phone", "1") != Keys(b"\x02" * 32).lookup_hash("phone", "1")


def test_lookup_hash_is_hmac_sha256_with_the_derived_key() -> None:
    # Stored hashes find tenants, cards' PINs and visitor codes: the value must never change.
    master = bytes(range(32))
    mac_key = _derive(master, b"hmac-sha256-lookup")
    keys = Keys(master)
    for purpose, value in [("id_number", "11010519491231002X"), ("pin", "12:1234"), ("p", "")]:
        expected = hmac.new(mac_key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        assert keys.lookup_hash(purpose, value) == expected
