"""The edge part: nginx in front of the web part, where the LAN meets the gateway.

It listens where `[web]` says (TLS when a certificate is set) and hands requests to the web
part's Unix socket, bounded first: timeouts, body sizes, connections per client
(`gateway/web/edge.py`, docs/web.md "The edge"). This process renders the configuration into
the runtime folder, runs nginx as its child and reports its health like every part.
"""

from __future__ import annotations

import os
from typing import Any

from gateway.config import Config
from gateway.parts.runtime import Runtime
from gateway.web.edge import Nginx, render_config, write_config


class EdgePart:
    """nginx for the page."""

    name = "edge"

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.nginx: Nginx | None = None

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

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None

    def tick(self) -> None:
        """Nothing to time here: nginx keeps its own timers."""

    def health(self) -> dict[str, Any]:
        problems = [] if self.nginx is not None and self.nginx.alive() else ["nginx stopped"]
        return {"status": "ok" if not problems else "failing", "problems": problems,
                "warnings": []}  # fmt: skip
