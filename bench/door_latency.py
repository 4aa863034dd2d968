"""Card-to-relay latency through a real OSDP reader (libosdp PD on a pty), end to end.

For each swipe: the time from the card being handed to the reader (`submit_event`) to the OUT
command arriving at the reader's application, at a given line speed; the gateway's own share
(card frame read to OUT frame written) without the journal commit; and the journal commit.
The registry holds `--cards` cards (default 1,000,000).

    .venv/bin/python -m bench.door_latency --baud 115200 --swipes 300
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

from bench._common import machine, percentiles, save
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.config import load_config
from gateway.service import Gateway
from gateway.store import Store
from gateway.store.bulk import seed_synthetic_registry
from tests.e2e.building import write_config

OUT_CODE = 0x68


def card_to_relay_ms(reader: SimulatedReader, number: int) -> float:
    """Present registered card `number`; milliseconds until the OUT command reaches the reader."""
    presented = time.monotonic_ns()
    reader.present_card(number, 34 if number >= 1 << 24 else 26)
    command = reader.wait_for_output(timeout=5)
    if command is None:
        raise RuntimeError(f"card {number} did not open the door")
    return (command.at_ns - presented) / 1e6


def run(baud: int, swipes: int, cards: int, secure: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-door-") as tmp, SimulatedBus(baud=baud) as bus:
        folder = Path(tmp)
        key = bytes(range(0x40, 0x50)) if secure else None
        door: dict[str, object] = {"name": "main", "address": 1, "unlock_seconds": 1}
        if key:
            (folder / "main.scbk").write_text(key.hex())
            door["scbk_file"] = "main.scbk"
        config = load_config(write_config(folder, bus.port, [door], 8080, baud=baud))
        started = time.monotonic()
        with Store.open(config.gateway.data_dir, config.gateway.id) as store:
            seeded = seed_synthetic_registry(store, tenants=max(cards // 2, 1),
                                             cards_per_tenant=2 if cards > 1 else 1)
        seed_seconds = time.monotonic() - started
        reader = SimulatedReader(bus, 1, scbk=key).start()
        out_written: list[int] = []
        written_lock = threading.Lock()

        def on_written(address: int, code: int, ns: int) -> None:
            if code == OUT_CODE:
                with written_lock:
                    out_written.append(ns)

        gateway = Gateway(config, web=False, on_frame_written=on_written)
        gateway.start()
        try:
            deadline = time.monotonic() + 20
            while not gateway.doors["main"].online and time.monotonic() < deadline:
                time.sleep(0.05)
            rng = random.Random(1)
            end_to_end: list[float] = []
            for _ in range(swipes):
                number = rng.randint(seeded.first_card, seeded.last_card)
                end_to_end.append(card_to_relay_ms(reader, number))
                # Let LED and buzzer go out, then wait a random part of a poll cycle so
                # swipes do not line up with the reader's 20 ms service loop.
                time.sleep(0.15 + rng.random() * 0.05)
            timings = [t for t in gateway.doors["main"].timings if t.granted]
        finally:
            gateway.stop()
            reader.stop()
    own, commit = [], []
    for timing, written in zip(timings, out_written, strict=False):
        commit_ms = (timing.commit_done_ns - timing.commit_started_ns) / 1e6
        commit.append(commit_ms)
        own.append((written - timing.frame_received_ns) / 1e6 - commit_ms)
    return {
        "baud": baud,
        "secure_channel": secure,
        "registry_cards": seeded.last_card - seeded.first_card + 1,
        "registry_seed_seconds": round(seed_seconds, 1),
        "end_to_end_ms": percentiles(end_to_end),
        "gateway_share_without_commit_ms": percentiles(own),
        "journal_commit_ms": percentiles(commit),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baud", type=int, nargs="+", default=[9600, 115200])
    parser.add_argument("--swipes", type=int, default=300)
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--secure", action="store_true", help="use the OSDP secure channel")
    args = parser.parse_args()
    runs = [run(baud, args.swipes, args.cards, args.secure) for baud in args.baud]
    save("door_latency" + ("_secure" if args.secure else ""),
         {"machine": machine(), "runs": runs})


if __name__ == "__main__":
    main()
