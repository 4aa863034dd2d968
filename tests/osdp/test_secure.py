"""The secure channel's MAC against its definition (AES-CBC, last block under S-MAC2)."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.osdp.secure import SCBK_D, SecureSession, pad


def _cbc_last_block(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return (enc.update(data) + enc.finalize())[-16:]


def _reference_mac(session: SecureSession, message: bytes, iv: bytes) -> bytes:
    """OSDP 2.2 annex D as libosdp does it, with one CBC Cipher per key."""
    if len(message) % 16:
        message = pad(message)
    if len(message) > 16:
        iv = _cbc_last_block(session.s_mac1, iv, message[:-16])
    return _cbc_last_block(session.s_mac2, iv, message[-16:])


@given(
    rnd_a=st.binary(min_size=8, max_size=8),
    messages=st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=6),
)
def test_mac_chain_matches_the_definition(rnd_a: bytes, messages: list[bytes]) -> None:
    session = SecureSession(SCBK_D, rnd_a=rnd_a)
    r_mac = bytes(range(16))
    session.r_mac = r_mac
    for message in messages:  # command, then reply, chained as on the bus
        expected = _reference_mac(session, message, session.r_mac)
        assert session.command_mac(message) == expected[:4]
        assert session.c_mac == expected
        reply = message[::-1]
        expected_reply = _reference_mac(session, reply, session.c_mac)
        session.check_reply_mac(reply, expected_reply[:4])
        assert session.r_mac == expected_reply


def test_mac_of_whole_blocks_adds_no_padding_block() -> None:
    session = SecureSession(SCBK_D, rnd_a=bytes(8))
    for size in (16, 32, 48):
        message = bytes(range(size))
        assert session._mac(message, bytes(16)) == _reference_mac(session, message, bytes(16))

