"""What the web process is told (picklable: it crosses into the process that serves it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

# A gateway publishes its status every 30 minutes (docs/uplink.md); two missed in a row and it
# is flagged silent.
SILENT_AFTER_SECONDS = 3600.0
# The city's zone: times typed without an offset, and the platform's own records (the audit
# log). Times of events are shown in their building's own offset.
CITY_ZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Where to listen and what to read; see docs/platform.md, "The web"."""

    host: str
    port: int
    db: str  # the primary: sessions, users, the lockout, the audit
    search_db: str | None = None  # a hot standby for police search and the fleet
    store_key: Path | None = None
    snapshot_dir: Path | None = None
    cert: Path | None = None  # served over TLS by uvicorn itself
    key: Path | None = None
    # Load balancers that terminate TLS in front: trusted for X-Forwarded-For and -Proto.
    proxies: tuple[str, ...] = ()
    silent_after: float = SILENT_AFTER_SECONDS
    zone: str = CITY_ZONE
    # The audit's head, signed with the command key, appended to a file on another host.
    audit_anchors: Path | None = None
    signing_key: Path | None = None

    @property
    def https(self) -> bool:
        """Whether people reach the pages over HTTPS (here or at the load balancer)."""
        return self.cert is not None or bool(self.proxies)

    def problems(self) -> list[str]:
        """What is wrong with these settings, as the command line says it."""
        found = []
        if (self.cert is None) != (self.key is None):
            found.append("--web-cert and --web-key go together")
        if (self.audit_anchors is None) != (self.signing_key is None):
            found.append("--audit-anchors and --signing-key go together")
        if not self.https and not _loopback(self.host):
            found.append(
                f"--web {self.host}: plain HTTP only on loopback; give --web-cert and --web-key,"
                " or --web-proxy with the address of the load balancer that terminates TLS"
            )
        return found


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
