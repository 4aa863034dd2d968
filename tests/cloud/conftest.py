"""Fixtures: a throwaway PKI, a real Mosquitto (plain or TLS with ACLs), a fault proxy.

    def test_x(broker: Broker) -> None: ...          # plain, anonymous, persistence on
    def test_y(tls_broker: Broker) -> None: ...      # client certs + ACLs, see broker.acl_text
    def test_z(broker: Broker, proxy: FaultProxy) -> None: ...   # proxy in front of `broker`
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker import Broker
from .pki import Pki, make_pki
from .proxy import FaultProxy


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """CA, broker certificate and client certificates for gw-test-0001/0002 and platform."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A plain Mosquitto (no TLS, anonymous) on a free loopback port."""
    with Broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    """A Mosquitto requiring client certificates, identity as username and client id, ACLs on."""
    with Broker(tmp_path / "tls-broker", pki=pki) as running:
        yield running


@pytest.fixture
def proxy(broker: Broker) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the plain `broker`."""
    with FaultProxy(broker.host, broker.port) as running:
        yield running
