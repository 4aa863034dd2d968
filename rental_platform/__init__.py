"""The city platform's reference consumer: stores gateway events durably, then acknowledges them.

See platform.py for the in-process API, cli.py for `rental-platform`, docs/platform.md for the
ack rule and the broker's ACL.
"""

from cloud_sync.transport import TlsFiles

from .commands import CommandNotAccepted
from .platform import Platform
from .settings import PlatformSettings, PlatformStats
from .store import CommandRecord, StoredEvent

__all__ = [
    "CommandNotAccepted",
    "CommandRecord",
    "Platform",
    "PlatformSettings",
    "PlatformStats",
    "StoredEvent",
    "TlsFiles",
]
