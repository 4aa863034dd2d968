"""Entry snapshots: capture time, frame age, the door path with the camera on and off, and the
gateway's CPU and memory with a 720p 10 fps stream against none.

The camera is `gateway.camera.synthetic` (a generated scene, MJPEG over HTTP) in a process of
its own, read by the gateway through FFmpeg exactly as a real camera's stream. The reader is a
libosdp PD on a pty.

1. In one process, blocks of swipes alternate between a gateway without a camera and one with
   it (restarted between blocks on the same reader), so both see the same machine noise:
   card-to-relay latency for each, their ratio, and for the camera blocks the time from the
   event's commit to its JPEG fsynced on disk and the age of the frame used.
2. `gateway run` as a subprocess, without then with the camera, each for `--seconds`: CPU
   (user + system, % of one core) and resident memory, swipes included.

    .venv/bin/python -m bench.camera --swipes 300 --seconds 60
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench._common import machine, percentiles, save
from bench.door_latency import card_to_relay_ms
from bench.gateway_rss import status_kib
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import load_config
from gateway.service import Gateway
from gateway.store import Store
from gateway.store.bulk import SeedResult, seed_synthetic_registry
from tests.e2e.building import free_port, write_config

WIDTH, HEIGHT, FPS = 1280, 720, 10.0


@contextmanager
def synthetic_camera(width: int, height: int, fps: float) -> Iterator[str]:
    """The synthetic camera in its own process; yields its stream URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.camera.synthetic", "--width", str(width),
         "--height", str(height), "--fps", str(fps), "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the synthetic camera did not start")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def config_with_camera(folder: Path, bus_port: str, camera_url: str | None) -> Path:
    path = write_config(folder, bus_port, [{"name": "main", "address": 1, "unlock_seconds": 1}],
                        free_port())  # fmt: skip
    if camera_url is not None:
        with path.open("a") as config:
            config.write(f'\n[camera]\nsource = "{camera_url}"\nmin_free_mb = 100\n')
    return path


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def swipe_block(reader: SimulatedReader, seeded: SeedResult, rng: random.Random,
                count: int) -> list[float]:  # fmt: skip
    latencies = []
    for _ in range(count):
        latencies.append(card_to_relay_ms(reader, rng.randint(seeded.first_card, seeded.last_card)))
        time.sleep(0.25 + rng.random() * 0.05)
    return latencies


def door_and_capture(swipes: int, cards: int, camera_url: str) -> dict[str, Any]:
    """Alternating blocks, camera off and on, in this process."""
    with tempfile.TemporaryDirectory(prefix="bench-camera-") as tmp, SimulatedBus() as bus:
        folder = Path(tmp)
        paths = {}
        for name, url in (("off", None), ("on", camera_url)):
            (folder / name).mkdir()
            paths[name] = config_with_camera(folder / name, bus.port, url)
        seeded = None
        for path in paths.values():
            config = load_config(path)
            with Store.open(config.gateway.data_dir, config.gateway.id) as store:
                seeded = seed_synthetic_registry(store, tenants=max(cards // 2, 1),
                                                 cards_per_tenant=2)  # fmt: skip
        assert seeded is not None
        reader = SimulatedReader(bus, 1).start()
        rng = random.Random(3)
        latency: dict[str, list[float]] = {"off": [], "on": []}
        on_disk: list[float] = []
        frame_age: list[float] = []
        jpeg_bytes: list[int] = []
        outcomes: dict[str, int] = {}
        block = 25
        try:
            for n in range(2 * max(1, swipes // block)):
                mode = ("off", "on")[n % 2]
                gateway = Gateway(load_config(paths[mode]), web=False)
                gateway.start()
                try:
                    wait_for(lambda g=gateway: g.doors["main"].online)
                    camera = gateway.camera
                    if camera is not None:
                        wait_for(lambda c=camera: c.unavailable() is None
                                 and c.health()["online"] is True)  # fmt: skip
                        time.sleep(0.5)
                    latency[mode] += swipe_block(reader, seeded, rng, block)
                    if camera is not None:
                        wait_for(lambda g=gateway: g.store is not None
                                 and g.store.captures_running() == 0)  # fmt: skip
                        for timing in camera.timings:
                            on_disk.append(timing.on_disk_ms)
                            frame_age.append(timing.frame_age_ms)
                            jpeg_bytes.append(timing.jpeg_bytes)
                        for key, value in camera.outcomes.items():
                            outcomes[key] = outcomes.get(key, 0) + value
                finally:
                    gateway.stop()
        finally:
            reader.stop()
    off, on = percentiles(latency["off"]), percentiles(latency["on"])
    return {
        "registry_cards": seeded.last_card - seeded.first_card + 1,
        "door_ms_camera_off": off,
        "door_ms_camera_on": on,
        "door_ratio_on_off": {k: round(on[k] / off[k], 3) for k in ("p50", "p95", "p99")},
        "commit_to_jpeg_on_disk_ms": percentiles(on_disk),
        "frame_age_at_capture_ms": percentiles(frame_age),
        "jpeg_bytes_mean": round(sum(jpeg_bytes) / max(1, len(jpeg_bytes))),
        "capture_outcomes": outcomes,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(seconds: float, cards: int, camera_url: str | None) -> dict[str, Any]:
    """`gateway run` for `seconds` with a swipe every 2 s: CPU and memory."""
    with tempfile.TemporaryDirectory(prefix="bench-camera-load-") as tmp, SimulatedBus() as bus:
        folder = Path(tmp)
        path = config_with_camera(folder, bus.port, camera_url)
        config = load_config(path)
        with Store.open(config.gateway.data_dir, config.gateway.id) as store:
            seeded = seed_synthetic_registry(store, tenants=max(cards // 2, 1),
                                             cards_per_tenant=2)  # fmt: skip
        reader = SimulatedReader(bus, 1).start()
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "-c", str(path), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{config.web.port}/healthz"
        try:
            def ready() -> bool:
                try:
                    health = httpx.get(url, timeout=1).json()
                except httpx.HTTPError:
                    return False
                camera_ok = camera_url is None or (health["camera"] or {}).get("online") is True
                door = health.get("doors", {}).get("main", {})  # {} while starting
                return bool(door.get("reader_online") and camera_ok)

            wait_for(ready, 60)
            time.sleep(2)
            rng = random.Random(4)
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            opened = 0
            while time.monotonic() - wall0 < seconds:
                reader.present_card(rng.randint(seeded.first_card, seeded.last_card))
                opened += reader.wait_for_output(5) is not None
                time.sleep(2.0)
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            memory = status_kib(proc.pid)
            health = httpx.get(url, timeout=5).json()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
            reader.stop()
    return {
        "camera": None if camera_url is None else f"{WIDTH}x{HEIGHT} {FPS:g} fps MJPEG",
        "seconds": round(wall1 - wall0, 1),
        "doors_opened": opened,
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "rss_mib": round(memory["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "captures": None if health.get("camera") is None else health["camera"]["captures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swipes", type=int, default=300, help="per mode, camera off and on")
    parser.add_argument("--seconds", type=float, default=60.0, help="per load run")
    parser.add_argument("--cards", type=int, default=2000)
    args = parser.parse_args()
    with synthetic_camera(WIDTH, HEIGHT, FPS) as url:
        door = door_and_capture(args.swipes, args.cards, url)
        load_off = run_load(args.seconds, args.cards, None)
        load_on = run_load(args.seconds, args.cards, url)
    save("camera", {
        "machine": machine(),
        "stream": f"{WIDTH}x{HEIGHT} {FPS:g} fps MJPEG over HTTP (gateway.camera.synthetic)",
        **door,
        "load_camera_off": load_off,
        "load_camera_on": load_on,
    })  # fmt: skip


if __name__ == "__main__":
    main()
