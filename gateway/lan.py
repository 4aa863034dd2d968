"""The gateway's addresses on the building's network (IPv4, from `ifaddr`, zeroconf's own).

interface_addresses()        # {"eth0": "192.168.1.20", "lo": "127.0.0.1"}
page_addresses("0.0.0.0")    # ["192.168.1.20"]: where a phone finds the page
"""

from __future__ import annotations

import ipaddress

import ifaddr

EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the page is meant for the building's LAN


def interface_addresses() -> dict[str, str]:
    """Each network interface's first IPv4 address, loopback included."""
    found: dict[str, str] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):  # IPv6 addresses are tuples
                found.setdefault(adapter.nice_name, ip.ip)
    return found


def page_addresses(host: str) -> list[str]:
    """The LAN addresses a page listening on `host` answers on, lowest first; none on loopback."""
    addresses = [host] if host != EVERY_INTERFACE else list(interface_addresses().values())
    lan = {ip for ip in addresses if _is_ipv4(ip) and not ipaddress.ip_address(ip).is_loopback}
    return sorted(lan, key=ipaddress.ip_address)


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False
