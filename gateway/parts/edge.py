"""The edge part: nginx in front of the web part, where the LAN meets the gateway.

It listens where `[web]` says (TLS when a certificate is set) and hands requests to the web
part's Unix socket, bounded first: timeouts, body sizes, connections per client
(`gateway/web/edge.py`, docs/web.md "The edge"). This process renders the configuration into
the runtime folder, runs nginx as its child, answers for `{gateway_id}.local` over mDNS when
the page is on the LAN (`gateway/web/mdns.py`) and reports its health like every part.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from gateway.config import Config
from gateway.lan import page_addresses
from gateway.parts.runtime import Runtime
from gateway.web.edge import Nginx, render_config, write_config
from gateway.web.mdns import PageAnnouncer

log = logging.getLogger(__name__)

# How often the LAN addresses are looked at again (DHCP may change them).
ADDRESS_CHECK_SECONDS = 30.0


class EdgePart:
    """nginx for the page."""

    name = "edge"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.nginx: Nginx | None = None
        self.mdns: PageAnnouncer | None = None
        self._addresses_checked = float("-inf")
        self._mdns_problem: str | None = None

    @property
    def url(self) -> str:
        """Where a browser finds the page."""
        web = self.config.web
        host = f"[{web.host}]" if ":" in web.host else web.host
        return f"{'https' if web.tls else 'http'}://{host}:{web.port}"

    def start(self) -> None:
        run = self.runtime.path
        # Started as root (a container, the tests), nginx's workers would become "nobody",
        # who may not use the app's socket; under systemd it starts as the gateway's user.
        user = "root" if os.geteuid() == 0 else None
        text = render_config(self.config.web, upstream=self.runtime.web_socket, runtime_dir=run,
                             user=user)  # fmt: skip
        self.nginx = Nginx(write_config(text, run))
        self.nginx.start()
        if page_addresses(self.config.web.host):  # on the LAN, not on loopback
            self.mdns = PageAnnouncer(self.config.gateway.id, self.config.web.port)
            self.tick()

    def stop(self) -> None:
        if self.mdns is not None:
            self.mdns.close()
            self.mdns = None
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None

    def tick(self) -> None:
        """Follow the LAN addresses for mDNS; nginx keeps its own timers."""
        now = time.monotonic()
        if self.mdns is None or now - self._addresses_checked < ADDRESS_CHECK_SECONDS:
            return
        self._addresses_checked = now
        try:
            self.mdns.update(page_addresses(self.config.web.host))
            self._mdns_problem = None
        except OSError as error:  # the page works by IP meanwhile: a warning, not a restart
            self._mdns_problem = f"{self.mdns.host} not answered over mDNS: {error}"
            log.warning("%s", self._mdns_problem)

    def health(self) -> dict[str, Any]:
        problems = [] if self.nginx is not None and self.nginx.alive() else ["nginx stopped"]
        warnings = [self._mdns_problem] if self._mdns_problem else []
        return {"status": "ok" if not problems else "failing", "problems": problems,
                "warnings": warnings}  # fmt: skip
