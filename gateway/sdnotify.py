"""The systemd notification protocol (sd_notify), without swallowing errors.

The PyPI `sdnotify` package ignores every failure; a service whose READY or WATCHDOG never reaches
systemd would then be killed without a trace in the log, so failures are reported here.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Send sd_notify datagrams to `$NOTIFY_SOCKET`; does nothing when it is not set."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]  # abstract socket namespace

    @property
    def enabled(self) -> bool:
        """Tell whether a notification socket was given."""
        return bool(self._address)

    def notify(self, message: str) -> bool:
        """Send one notification such as ``READY=1``; return whether it was delivered."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            log.error("sd_notify %r to %r failed: %s", message, self._address, exc)
            return False
        return True

    def watchdog_interval(self) -> float | None:
        """Return half the watchdog period systemd asked for, in seconds, or None."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2_000_000
        except ValueError:
            return None
