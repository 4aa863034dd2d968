"""The whole gateway with a camera: a real OSDP reader on a pty, FFmpeg reading a loopback
camera, Mosquitto and the reference platform.

Whatever the camera does (streams, stalls, dies and comes back, never answers), the door
opens without waiting for it, and every access event reaches the city once, in order, with
its snapshot or the reason it has none; a snapshot reaches the city after its event.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text
from gateway.service import Gateway
from gateway.store import JournalEntry
from rental_platform import Platform, PlatformSettings
from tests.camera.servers import mjpeg_camera, silent_listener
from tests.e2e.building import Building, building, free_port

from .broker import Broker
from .mqtt import MqttProbe
from .test_gateway_uplink import wait_until

GW = "gw-test-0001"
P = f"rental/v1/{GW}"


@dataclass
class Site:
    """A building with a camera, wired to the broker and the platform."""

    building: Building
    gateway: Gateway
    platform: Platform
    probe: MqttProbe
    # (monotonic ns when the listener got it, entry): the final entries, in fan-out order.
    published: list[tuple[int, JournalEntry]] = field(default_factory=list)

    def swipe(self, kind: str = "valid") -> tuple[int, int]:
        """Present a card; (ns from the swipe to the relay command, seq of its event)."""
        reader = self.building.readers["main"]
        before = len(self.access())
        started = time.monotonic_ns()
        reader.present_card(self.building.cards[kind])
        output = reader.wait_for_output(timeout=10)
        assert output is not None, "the door did not open"
        assert wait_until(lambda: len(self.access()) > before, 10)
        return output.at_ns - started, self.access()[before][1].seq

    def access(self) -> list[tuple[int, JournalEntry]]:
        return [(ns, e) for ns, e in self.published if e.body["type"].startswith("access.")]

    def body(self, seq: int) -> dict[str, Any]:
        return next(e.body for _, e in self.published if e.seq == seq)

    def city_event(self, seq: int) -> dict[str, Any] | None:
        return next((e.event for e in self.platform.events_for(GW) if e.event["seq"] == seq),
                    None)  # fmt: skip

    def journaled(self, kind: str) -> list[dict[str, Any]]:
        return [e.body for _, e in self.published if e.body["type"] == kind]


@pytest.fixture
def site_for(tmp_path: Path, broker: Broker) -> Iterator[Callable[[str], Site]]:
    """Start a gateway whose [camera] source is the given URL."""
    started: list[Site] = []
    key = Ed25519PrivateKey.generate()
    platform = Platform(PlatformSettings(
        host=broker.host, port=broker.port, db=tmp_path / "platform.db",
        client_id="platform", signing_key=key,
    )).start()  # fmt: skip
    platform.wait_connected()
    probe = MqttProbe.connect(broker)
    probe.subscribe(f"{P}/#")
    (tmp_path / "building").mkdir()

    with building(tmp_path / "building") as b:

        def start(source: str) -> Site:
            with b.config_path.open("a") as config:
                config.write(f"""
[camera]
source = "{source}"
max_frame_age_ms = 1000

[mqtt]
host = "{broker.host}"
port = {broker.port}
tls = false
command_public_key = "{public_key_text(key)}"
keepalive_seconds = 5
""")
            gateway = Gateway(b.config, web=False)
            site = Site(b, gateway, platform, probe)
            gateway.add_listener(lambda e: site.published.append((time.monotonic_ns(), e)))
            gateway.start()
            started.append(site)
            assert wait_until(lambda: all(d.online for d in gateway.doors.values()))
            return site

        try:
            yield start
        finally:
            for site in started:
                site.gateway.stop()
            probe.close()
            platform.stop()


def snapshot_file(site: Site, event_id: str) -> bytes:
    found = list((site.building.data_dir / "snapshots").glob(f"*/{event_id}.jpg"))
    assert len(found) == 1, found
    return found[0].read_bytes()


def test_a_snapshot_is_stored_and_reaches_the_city_after_its_event(site_for: Any) -> None:
    with mjpeg_camera() as camera:
        site: Site = site_for(camera.url)
        assert wait_until(lambda: site.journaled("camera.online") != [])
        _, seq = site.swipe()
        body = site.body(seq)
        snapshot = body["snapshot"]
        assert snapshot is not None, body.get("snapshot_error")
        assert "snapshot_error" not in body
        jpeg = snapshot_file(site, body["event_id"])
        assert snapshot == {"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg)}
        assert jpeg.startswith(b"\xff\xd8")
        # The city stores the event as journaled, then the picture under its event id.
        assert wait_until(lambda: site.city_event(seq) == body)
        assert wait_until(lambda: site.platform.snapshot(GW, body["event_id"]) == jpeg)
        topics = [m.topic for m in site.probe.messages]
        event_at = next(i for i, m in enumerate(site.probe.messages)
                        if m.topic == f"{P}/events" and f'"seq":{seq},'.encode() in m.payload)
        assert topics.index(f"{P}/snapshots/{body['event_id']}") > event_at
        store = site.gateway.store
        assert store is not None
        assert wait_until(lambda: store.snapshot_sent_seq() >= seq)


def test_a_camera_that_dies_mid_run_and_comes_back(site_for: Any) -> None:
    port = free_port()
    with mjpeg_camera(port=port) as camera:
        site: Site = site_for(camera.url)
        assert wait_until(lambda: site.journaled("camera.online") != [])
        _, first = site.swipe()
        assert site.body(first)["snapshot"] is not None
    # The camera is gone: connections are refused. Its last frame is used while it is fresh
    # (it still shows who was at the door), not after.
    assert wait_until(lambda: site.journaled("camera.offline") != [], 30)
    time.sleep(1.2)
    _, second = site.swipe()
    assert site.body(second)["snapshot"] is None
    assert site.body(second)["snapshot_error"] == "camera_offline"
    with mjpeg_camera(port=port):
        # Back after the reconnect back-off (at most 30 s).
        assert wait_until(lambda: len(site.journaled("camera.online")) == 2, 45)
        _, third = site.swipe()
        assert site.body(third)["snapshot"] is not None
        # Offline and online were journaled once each, on the change.
        assert len(site.journaled("camera.offline")) == 1
        for seq in (first, second, third):
            assert wait_until(lambda s=seq: site.city_event(s) == site.body(s))  # type: ignore[misc]


def test_a_stalled_stream_gives_stale_frame_and_then_snapshots_again(site_for: Any) -> None:
    with mjpeg_camera() as camera:
        site: Site = site_for(camera.url)
        assert wait_until(lambda: site.journaled("camera.online") != [])
        camera.stall()
        time.sleep(1.5)  # longer than max_frame_age_ms: the last frame is now too old
        _, stalled = site.swipe()
        assert site.body(stalled)["snapshot"] is None
        assert site.body(stalled)["snapshot_error"] in ("stale_frame", "camera_offline")
        camera.resume()
        source = site.gateway.camera.source if site.gateway.camera else None
        assert source is not None
        assert wait_until(lambda: not hasattr(source.latest(1000), "reason"), 40)
        _, fresh = site.swipe()
        assert site.body(fresh)["snapshot"] is not None
        assert wait_until(lambda: site.city_event(stalled) == site.body(stalled))


def test_a_camera_that_never_answers_does_not_hold_the_door(site_for: Any) -> None:
    with silent_listener() as port:
        # A snapshot URL: fetched when the card is read, and this one never answers.
        site: Site = site_for(f"http://127.0.0.1:{port}/cgi-bin/snapshot.cgi")
        reader = site.building.readers["main"]
        reader.present_card(site.building.cards["valid"])
        output = reader.wait_for_output(timeout=10)
        assert output is not None
        assert wait_until(lambda: len(site.access()) == 1, 10)
        published_ns, entry = site.access()[0]
        # The relay was driven while the capture still waited for the camera: the event was
        # handed on (with its final body) only after the door had opened.
        assert output.at_ns < published_ns
        assert entry.body["snapshot"] is None
        assert entry.body["snapshot_error"] in ("camera_offline", "timeout")
        assert wait_until(lambda: site.city_event(entry.seq) == entry.body)


def test_a_stream_that_never_answers_is_offline_and_the_door_works(site_for: Any) -> None:
    with silent_listener() as port:
        site: Site = site_for(f"http://127.0.0.1:{port}/video.mjpg")
        assert wait_until(lambda: site.journaled("camera.offline") != [], 30)
        _, seq = site.swipe()
        assert site.body(seq)["snapshot_error"] == "camera_offline"
        assert wait_until(lambda: site.city_event(seq) == site.body(seq))


def test_snapshots_taken_while_the_city_is_away_go_up_after_a_restart(
    site_for: Any, broker: Broker
) -> None:
    with mjpeg_camera() as camera:
        site: Site = site_for(camera.url)
        assert wait_until(lambda: site.journaled("camera.online") != [])
        broker.stop()  # the city is unreachable
        seqs = [site.swipe()[1] for _ in range(3)]
        bodies = [site.body(seq) for seq in seqs]
        assert all(body["snapshot"] is not None for body in bodies)
        site.gateway.stop()  # and the gateway restarts before it is back
        broker.start()
        # The city subscribes again first: a message published before that is dropped by the
        # restarted broker and sent again only after the ack timeout (60 s), not this test's.
        site.platform.wait_connected()
        site.gateway = Gateway(site.building.config, web=False)
        site.gateway.start()
        for body in bodies:
            jpeg = snapshot_file(site, body["event_id"])
            assert wait_until(lambda b=body: site.city_event(b["seq"]) == b, 30)  # type: ignore[misc]
            assert wait_until(lambda b=body, j=jpeg: site.platform.snapshot(GW, b["event_id"])
                              == j, 30)  # type: ignore[misc]  # fmt: skip
        store = site.gateway.store
        assert store is not None
        assert wait_until(lambda: store.snapshot_sent_seq() >= seqs[-1])
