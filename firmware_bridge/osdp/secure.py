"""OSDP secure channel (AES-128): session keys, cryptograms, MACs and data encryption.

Follows OSDP 2.2 annex D as implemented by libosdp, which is the conformance peer:

* ``S-ENC = AES(SCBK, 01 82 ‖ RND.A[0:6] ‖ 00×8)``; S-MAC1 uses ``01 01``, S-MAC2 ``01 02``.
* The PD proves the key with the client cryptogram ``AES(S-ENC, RND.A ‖ RND.B)``; the CP
  answers with the server cryptogram ``AES(S-ENC, RND.B ‖ RND.A)``; the PD's initial R-MAC is
  ``AES(S-MAC2, AES(S-MAC1, server cryptogram))``.
* Every later message carries a MAC over SOM..data: AES-CBC with S-MAC1 over all blocks but the
  last, S-MAC2 for the last, chained from the previous MAC of the other side. Input that is not
  a multiple of 16 bytes is padded ``80 00..`` (libosdp adds no block when it already is).
* Data in SCS_17/18 messages is AES-CBC under S-ENC, IV = NOT(last R-MAC) for commands and
  NOT(last C-MAC) for replies, always padded ``80 00..``. SCS_15/16 carry data in clear.
"""

from __future__ import annotations

import hmac
import os

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from .codec import (
    SCS_15,
    SCS_16,
    SCS_17,
    SCS_18,
    Frame,
    OsdpError,
    encode_frame,
    encode_header,
    frame_length,
)

BLOCK = 16
#: The install-mode key every PD accepts while it has no key of its own.
SCBK_D = bytes(range(0x30, 0x40))


class SecureChannelError(OsdpError):
    """The secure channel cannot go on: bad cryptogram, bad MAC or bad encrypted data."""

    kind = "secure_channel"


class BadMac(SecureChannelError):
    """A reply's MAC did not verify."""

    kind = "bad_mac"


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    return _block_encryptor(key).update(block)


def _block_encryptor(key: bytes) -> CipherContext:
    """Return an AES-128 context that encrypts 16-byte blocks one by one (never finalized)."""
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - single blocks


def _aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def _invert(block: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in block)


def pad(data: bytes) -> bytes:
    """Return `data` + ``80 00..`` up to the next multiple of 16 (always adds at least 1 byte)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Strip ``80 00..`` padding; raise SecureChannelError when it is missing."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise SecureChannelError("encrypted data lacks its 80 00.. padding")
    return stripped[:-1]


def session_keys(scbk: bytes, rnd_a: bytes) -> tuple[bytes, bytes, bytes]:
    """Return (S-ENC, S-MAC1, S-MAC2) for a key and the CP's random number."""
    if len(scbk) != BLOCK or len(rnd_a) != 8:
        raise ValueError("SCBK must be 16 bytes and RND.A 8 bytes")
    tail = rnd_a[:6] + bytes(8)
    return (
        _aes_ecb(scbk, b"\x01\x82" + tail),
        _aes_ecb(scbk, b"\x01\x01" + tail),
        _aes_ecb(scbk, b"\x01\x02" + tail),
    )


class SecureSession:
    """One secure channel with one PD, from CHLNG through every later message.

    >>> s = SecureSession(SCBK_D, rnd_a=bytes(8))
    >>> len(s.server_cryptogram(rnd_b=bytes(8)))
    16
    """

    def __init__(self, scbk: bytes, rnd_a: bytes | None = None) -> None:
        self.rnd_a = rnd_a if rnd_a is not None else os.urandom(8)
        self.s_enc, self.s_mac1, self.s_mac2 = session_keys(scbk, self.rnd_a)
        # Every message's MAC runs through these two: kept for the session, as building a
        # Cipher costs several times more than encrypting the one or two blocks of a POLL.
        self._mac1 = _block_encryptor(self.s_mac1)
        self._mac2 = _block_encryptor(self.s_mac2)
        self.rnd_b = b""
        self.c_mac = bytes(BLOCK)
        self.r_mac = bytes(BLOCK)
        self.established = False

    def check_client_cryptogram(self, rnd_b: bytes, cryptogram: bytes) -> None:
        """Verify the PD's CCRYPT cryptogram; raise SecureChannelError when the keys differ."""
        expected = _aes_ecb(self.s_enc, self.rnd_a + rnd_b)
        if not hmac.compare_digest(expected, cryptogram):
            raise SecureChannelError("PD cryptogram does not match: the reader has another key")
        self.rnd_b = rnd_b

    def server_cryptogram(self, rnd_b: bytes | None = None) -> bytes:
        """Return the SCRYPT cryptogram proving our key to the PD."""
        return _aes_ecb(self.s_enc, (rnd_b if rnd_b is not None else self.rnd_b) + self.rnd_a)

    def accept_initial_rmac(self, rmac_i: bytes) -> None:
        """Check RMAC_I and start the MAC chain; raise SecureChannelError if it is wrong."""
        expected = _aes_ecb(self.s_mac2, _aes_ecb(self.s_mac1, self.server_cryptogram()))
        if not hmac.compare_digest(expected, rmac_i):
            raise SecureChannelError("initial R-MAC does not match")
        self.r_mac = rmac_i
        self.established = True

    def _mac(self, message: bytes, iv: bytes) -> bytes:
        """CBC-MAC: every block but the last under S-MAC1, the last under S-MAC2."""
        if len(message) % BLOCK:
            message = pad(message)
        last = len(message) - BLOCK
        chain = int.from_bytes(iv, "big")
        for start in range(0, last, BLOCK):  # CBC by hand: XOR in the block, encrypt
            block = chain ^ int.from_bytes(message[start : start + BLOCK], "big")
            chain = int.from_bytes(self._mac1.update(block.to_bytes(BLOCK, "big")), "big")
        block = chain ^ int.from_bytes(message[last:], "big")
        return self._mac2.update(block.to_bytes(BLOCK, "big"))

    def command_mac(self, message: bytes) -> bytes:
        """Return the 4-byte MAC for an outgoing command (SOM..data) and advance the chain."""
        self.c_mac = self._mac(message, self.r_mac)
        return self.c_mac[:4]

    def check_reply_mac(self, message: bytes, mac: bytes) -> None:
        """Verify a reply's 4-byte MAC over SOM..data and advance the chain; raise BadMac."""
        full = self._mac(message, self.c_mac)
        if not hmac.compare_digest(full[:4], mac):
            raise BadMac("reply MAC does not verify")
        self.r_mac = full

    def encrypt_command_data(self, data: bytes) -> bytes:
        """Encrypt command data under S-ENC (IV = NOT last R-MAC), padded."""
        return _aes_cbc_encrypt(self.s_enc, _invert(self.r_mac), pad(data))

    def decrypt_reply_data(self, data: bytes) -> bytes:
        """Decrypt reply data (IV = NOT last C-MAC) and strip its padding."""
        if not data or len(data) % BLOCK:
            raise SecureChannelError(f"encrypted data of {len(data)} byte(s) is not whole blocks")
        return unpad(_aes_cbc_decrypt(self.s_enc, _invert(self.c_mac), data))


def seal_command(
    session: SecureSession, address: int, sequence: int, code: int, data: bytes, *, mark: bool
) -> bytes:
    """Return a secure command frame with MAC; any data is encrypted (SCS_17), else SCS_15."""
    if data:
        block = bytes([2, SCS_17])
        payload = session.encrypt_command_data(data)
    else:
        block = bytes([2, SCS_15])
        payload = b""
    body = block + bytes([code]) + payload
    head = encode_header(address, sequence, frame_length(len(body), with_mac=True), security=True)
    mac = session.command_mac(head + body)
    return encode_frame(address, sequence, code, payload, security_block=block, mac=mac, mark=mark)


def open_reply(session: SecureSession, frame: Frame) -> bytes:
    """Verify a secure reply's MAC and return its plain data; raise SecureChannelError."""
    if frame.mac is None or frame.security_type not in (SCS_16, SCS_18):
        raise SecureChannelError("reply is not secured inside the secure channel")
    session.check_reply_mac(frame.mac_input, frame.mac)
    if frame.security_type == SCS_18:
        return session.decrypt_reply_data(frame.data)
    return frame.data  # SCS_16: authenticated, not encrypted (libosdp sends its NAKs so)
