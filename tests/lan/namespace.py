"""A second host on a LAN of its own: a network namespace joined to this one by a veth pair.

Made and removed by the test (root only): private addresses on that pair and nowhere else,
no route beyond it. What runs in the namespace (`run_in`) sees the gateway as a phone on the
building's Wi-Fi would: one address, reachable only through that link.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Lan:
    namespace: str
    interface: str  # the gateway's end of the pair
    gateway_ip: str
    phone_ip: str

    def run_in(self, module: str, request: dict[str, Any], timeout: float = 180) -> Any:
        """Run `python -m module` in the namespace with `request` (JSON) on its stdin; its
        last line of output, read as JSON."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-m", module],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def phone_lan() -> Iterator[Lan]:
    """A namespace `phone-PID` and a veth pair 10.213.N.1/30 (here) - 10.213.N.2/30 (there)."""
    n = os.getpid() % 250
    name, here, there = f"phone-{os.getpid()}", f"gwlan{n}", f"phone{n}"
    lan = Lan(name, here, f"10.213.{n}.1", f"10.213.{n}.2")
    _ip("netns", "add", name)
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", name)
        _ip("addr", "add", f"{lan.gateway_ip}/30", "dev", here)
        _ip("link", "set", here, "up", "multicast", "on")
        _ip("-n", name, "addr", "add", f"{lan.phone_ip}/30", "dev", there)
        _ip("-n", name, "link", "set", there, "up", "multicast", "on")
        _ip("-n", name, "link", "set", "lo", "up")
        yield lan
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)
