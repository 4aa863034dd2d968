"""The edge part: nginx in front of the web part, where the LAN meets the gateway.

It listens where `[web]` says (TLS when a certificate is set) and hands requests to the web
part's Unix socket, bounded first: timeouts, body sizes, connections per client
(`gateway/web/edge.py`, docs/web.md "The edge"). This process renders the configuration into
the runtime folder, runs nginx as its child, answers for `{gateway_id}.local` over mDNS when
the page is on the LAN (`gateway/web/mdns.py`) and reports its health like every part. The
certificate the city sends down (`web.certificate`, installed by the uplink part in the data
folder) is served in place of the config's as long as it fits the page's key and is valid;
nginx reloads when it changes, and nothing restarts.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.certificates import page_certificate
from gateway.config import Config
from gateway.lan import page_addresses
from gateway.parts.findings import Finding, finding, health_report, said
from gateway.parts.runtime import Runtime
from gateway.web.edge import EdgeError, Nginx, render_config, write_config
from gateway.web.mdns import PageAnnouncer

log = logging.getLogger(__name__)

# How often the LAN addresses are looked at again (DHCP may change them).
ADDRESS_CHECK_SECONDS = 30.0
# How often the city's certificate file is looked at (a stat; read only when it changed).
CERTIFICATE_CHECK_SECONDS = 2.0


class EdgePart:
    """nginx for the page."""

    name = "edge"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.nginx: Nginx | None = None
        self.mdns: PageAnnouncer | None = None
        self._addresses_checked = float("-inf")
        self._mdns_problem: Finding | None = None
        self.certificates = page_certificate(config.gateway.data_dir, config.web)
        self.served_certificate: Path | None = None  # the city's, when it is the one served
        self._certificate_seen: tuple[int, int] | None = None
        self._certificate_checked = float("-inf")

    @property
    def url(self) -> str:
        """Where a browser finds the page."""
        web = self.config.web
        host = f"[{web.host}]" if ":" in web.host else web.host
        return f"{'https' if web.tls else 'http'}://{host}:{web.port}"

    def start(self) -> None:
        self._certificate_seen = self._certificate_stamp()
        self.served_certificate = self._city_certificate()
        self.nginx = Nginx(self._write_config())
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

    def _write_config(self) -> Path:
        web = self.config.web
        if self.served_certificate is not None:
            web = web.model_copy(update={"tls_cert_file": self.served_certificate})
        # Started as root (a container, the tests), nginx's workers would become "nobody",
        # who may not use the app's socket; under systemd it starts as the gateway's user.
        user = "root" if os.geteuid() == 0 else None
        run = self.runtime.path
        text = render_config(web, upstream=self.runtime.web_socket, runtime_dir=run, user=user)
        return write_config(text, run)

    def _city_certificate(self) -> Path | None:
        if self.certificates is None:
            return None
        return self.certificates.current(datetime.now(UTC))

    def _certificate_stamp(self) -> tuple[int, int] | None:
        if self.certificates is None:
            return None
        try:
            found = self.certificates.path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    def _follow_certificate(self) -> None:
        """Serve the city's certificate once it is installed (or again when replaced)."""
        stamp = self._certificate_stamp()
        if stamp == self._certificate_seen or self.nginx is None:
            return
        self._certificate_seen = stamp
        served = self._city_certificate()
        if served is None and self.served_certificate is None:
            log.warning("the page's certificate from the city does not fit its key or has"
                        " expired: still serving the one in the config")  # fmt: skip
            return
        self.served_certificate = served
        self._write_config()
        try:
            self.nginx.reload()
        except EdgeError as error:
            log.error("nginx refused the new certificate: %s", error)
            return
        log.info("serving %s", served or "the config's certificate")

    def tick(self) -> None:
        """Follow the city's certificate and the LAN addresses; nginx keeps its own timers."""
        now = time.monotonic()
        if now - self._certificate_checked >= CERTIFICATE_CHECK_SECONDS:
            self._certificate_checked = now
            self._follow_certificate()
        if self.mdns is None or now - self._addresses_checked < ADDRESS_CHECK_SECONDS:
            return
        self._addresses_checked = now
        try:
            self.mdns.update(page_addresses(self.config.web.host))
            self._mdns_problem = None
        except OSError as error:  # the page works by IP meanwhile: a warning, not a restart
            self._mdns_problem = finding("mdns_failed", host=self.mdns.host, error=str(error))
            log.warning("%s", said(self._mdns_problem, "en"))

    def health(self) -> dict[str, Any]:
        alive = self.nginx is not None and self.nginx.alive()
        problems = [] if alive else [finding("nginx_stopped")]
        return health_report(problems, [self._mdns_problem] if self._mdns_problem else [])
