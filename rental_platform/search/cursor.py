"""The opaque cursor of a search: where its last page ended, bound to its filters.

    token = encode(sealer, entry_filter.fingerprint(), Position(ts_epoch, gateway_id, seq))
    decode(sealer, entry_filter.fingerprint(), token)    # the Position, or None

Pages are read by keyset, newest first: `(ts_epoch, gateway_id, seq)` strictly below the last
row sent, so a page never repeats nor skips a row however many arrive meanwhile. The token is
the position and a keyed MAC (the store's lookup key, which every instance holds) over the
position and the search's filters: a cursor edited, or brought to a search with other filters,
does not verify and is refused, rather than read as a page of some other search.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from typing import NamedTuple

from ..store.sealing import Sealer

VERSION = 1
_HEAD = struct.Struct(">BdqB")  # version, ts_epoch, seq, length of gateway_id
_MAC_BYTES = 16


class Position(NamedTuple):
    """The sort key of the last row of a page."""

    ts_epoch: float
    gateway_id: str
    seq: int


def _mac(sealer: Sealer, fingerprint: str, body: bytes) -> bytes:
    return sealer.mac("entries-cursor", fingerprint.encode() + b"\0" + body)[:_MAC_BYTES]


def encode(sealer: Sealer, fingerprint: str, position: Position) -> str:
    """The token for the page after `position` of the search with this fingerprint."""
    gateway = position.gateway_id.encode()
    body = _HEAD.pack(VERSION, position.ts_epoch, position.seq, len(gateway)) + gateway
    return base64.urlsafe_b64encode(body + _mac(sealer, fingerprint, body)).decode().rstrip("=")


def decode(sealer: Sealer, fingerprint: str, token: str) -> Position | None:
    """The position in `token` if this search made it, else None."""
    if len(token) > 200 or not token.isascii():
        return None
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    body, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    if len(body) < _HEAD.size or not hmac.compare_digest(mac, _mac(sealer, fingerprint, body)):
        return None
    version, ts_epoch, seq, length = _HEAD.unpack_from(body)
    gateway = body[_HEAD.size :]
    if version != VERSION or len(gateway) != length:
        return None
    return Position(ts_epoch, gateway.decode(), seq)
