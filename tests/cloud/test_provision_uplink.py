"""Provisioning against the city's side: the certificate request signed by the CA, a TLS broker
with identity ACLs, a camera. The first run waits for the certificate, the second adds the
uplink and its self-test reaches the broker; the provisioned gateway then connects."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text
from firmware_bridge.osdp.simulator import SimulatedBus, SimulatedReader
from gateway.camera.synthetic import SyntheticCamera
from gateway.config import load_config
from gateway.provision import Options, find, provision, read_sheet
from gateway.service import Gateway

from .broker import Broker
from .pki import Pki

HEADER = "building_code,building_name,gateway_id,serial_port,readers,camera,broker\n"
GW = "gw-test-0002"


def test_the_uplink_is_added_once_the_city_signed_the_request(tmp_path: Path, pki: Pki) -> None:
    etc = tmp_path / "etc"
    key = public_key_text(Ed25519PrivateKey.generate())
    with Broker(tmp_path / "broker", pki=pki) as broker, SimulatedBus() as bus, \
            SyntheticCamera(width=320, height=240, fps=5) as camera:  # fmt: skip
        reader = SimulatedReader(bus, 1, install_mode=True).start()
        try:
            sheet = (HEADER + f"440305001002-0002,测试楼,{GW},{bus.port},main:1,{camera.url},"
                     f"{broker.host}:{broker.port}\n").encode()  # fmt: skip
            building = find(read_sheet(sheet), GW)
            options = Options(config_dir=etc, data_dir=tmp_path / "data", baud=115200,
                              command_public_key=key, ca_file=broker.ca_file)  # fmt: skip
            first = provision(building, options)
            statuses = {s.line("en").split(":")[0]: s.status for s in first.steps}
            assert statuses["[WAIT] uplink"] == "pending", first.text()
            assert statuses["[PASS] camera"] == "pass", first.text()
            assert statuses["[PASS] reader main (address 1)"] == "pass", first.text()
            assert first.ok

            # The city signs the request; the installer puts the certificate in place.
            csr = (etc / "keys" / "mqtt-client.csr").read_bytes()
            (etc / "keys" / "mqtt-client.crt").write_bytes(pki.sign_request(csr))
            second = provision(building, options)
            statuses = {s.name: s.status for s in second.steps}
            assert statuses["config_file"] == "updated", second.text()
            assert statuses["broker"] == "pass", second.text()
            assert statuses["reader_key"] == "unchanged"
            assert second.ok

            gateway = Gateway(load_config(etc / "gateway.toml"), web=False)
            gateway.start()
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not (
                    gateway.uplink is not None and gateway.uplink.health()["connected"]
                ):
                    time.sleep(0.1)
                assert gateway.uplink is not None
                assert gateway.uplink.health()["connected"], broker.log()[-2000:]
            finally:
                gateway.stop()
        finally:
            reader.stop()
