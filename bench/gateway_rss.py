"""Resident memory of `gateway run` with a large registry, after start-up and after swipes.

    .venv/bin/python -m bench.gateway_rss --cards 1000000 --swipes 200
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import machine, save
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import load_config
from gateway.store import Store
from gateway.store.bulk import seed_synthetic_registry
from tests.e2e.building import free_port, write_config


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--swipes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp, SimulatedBus() as bus:
        folder = Path(tmp)
        port = free_port()
        path = write_config(folder, bus.port, [{"name": "main", "address": 1}], port)
        config = load_config(path)
        with Store.open(config.gateway.data_dir, config.gateway.id) as store:
            seeded = seed_synthetic_registry(store, tenants=args.cards // 2, cards_per_tenant=2)
        db_bytes = sum(f.stat().st_size for f in config.gateway.data_dir.iterdir())
        reader = SimulatedReader(bus, 1).start()
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "-c", str(path), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                    if health["doors"]["main"]["reader_online"]:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            time.sleep(1)
            idle = status_kib(proc.pid)
            rng = random.Random(2)
            opened = 0
            for _ in range(args.swipes):
                reader.present_card(rng.randint(seeded.first_card, seeded.last_card))
                if reader.wait_for_output(5) is not None:
                    opened += 1
                time.sleep(0.1)
            for _ in range(20):  # the web page and health checks are part of a normal day
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            busy = status_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
            reader.stop()
    save("gateway_rss", {
        "machine": machine(),
        "registry_cards": seeded.last_card - seeded.first_card + 1,
        "database_mib": round(db_bytes / 2**20, 1),
        "swipes": args.swipes,
        "doors_opened": opened,
        "rss_idle_mib": round(idle["VmRSS"] / 1024, 1),
        "rss_after_swipes_mib": round(busy["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(busy["VmHWM"] / 1024, 1),
    })


if __name__ == "__main__":
    main()
