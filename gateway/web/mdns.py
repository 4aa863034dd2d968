"""`{gateway_id}.local` on the building's LAN: the page's name answered over mDNS.

python-zeroconf, not avahi: avahi publishes the machine's host name, and a second name for
the same machine needs `avahi-publish` running beside it or a static hosts file that misses
an address change; zeroconf answers for the gateway's own name from the edge part itself, with
the addresses the page listens on, follows them when DHCP changes them, and runs the same in
the tests' network namespace as on a Pi (where it shares port 5353 with avahi-daemon). It also
announces the page as an `_https._tcp` service, which network tools list.

    announcer = PageAnnouncer("gw-440305-0042", port=443)
    announcer.update(["192.168.1.20"])    # at start, and whenever the addresses change
    announcer.close()
"""

from __future__ import annotations

import logging

from zeroconf import IPVersion, ServiceInfo, Zeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_https._tcp.local."


class PageAnnouncer:
    """Answers for `{name}.local` with the page's addresses, and announces the page."""

    def __init__(self, name: str, port: int) -> None:
        self.host = f"{name}.local"
        self._name = name
        self._port = port
        self._zeroconf: Zeroconf | None = None
        self._info: ServiceInfo | None = None
        self.addresses: list[str] = []

    def update(self, addresses: list[str]) -> None:
        """Answer with `addresses` from now on (none: stop answering)."""
        if addresses == self.addresses:
            return
        self.close()
        self.addresses = list(addresses)
        if not addresses:
            return
        # Only the interfaces the page is on: a second network (a modem) never hears the name.
        self._zeroconf = Zeroconf(interfaces=list(addresses), ip_version=IPVersion.V4Only)
        self._info = ServiceInfo(SERVICE_TYPE, f"{self._name}.{SERVICE_TYPE}", port=self._port,
                                 server=f"{self.host}.", parsed_addresses=list(addresses),
                                 properties={"path": "/"})  # fmt: skip
        self._zeroconf.register_service(self._info)
        log.info("answering for %s over mDNS: %s", self.host, ", ".join(addresses))

    def close(self) -> None:
        """Say goodbye on the network and stop answering."""
        if self._zeroconf is not None:
            if self._info is not None:
                self._zeroconf.unregister_service(self._info)
            self._zeroconf.close()
        self._zeroconf, self._info, self.addresses = None, None, []
