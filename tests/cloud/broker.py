"""A real Mosquitto for tests: its own config, port, persistence and ACL in a temporary folder.

    with Broker(tmp_path / "broker") as broker:            # plain: no TLS, anonymous allowed
        client.connect(broker.host, broker.port)
        broker.kill()                                      # SIGKILL: loses what it did not save
        broker.restart()                                   # same port, same persistence file

    with Broker(tmp_path / "broker", pki=make_pki(tmp_path / "pki")) as broker:
        files = broker.credentials("gw-test-0001")         # client cert whose CN is the identity
        client.tls_set(ca_certs=str(broker.ca_file), certfile=str(files.cert),
                       keyfile=str(files.key))

With a PKI the broker requires a client certificate, takes its common name as the username and
the client id (`use_identity_as_username`, `use_username_as_clientid`) and enforces
`acl_text()`: each gateway on its own topics, the platform identities on every gateway's.
Mosquitto only saves what it acknowledged every `autosave_interval` seconds, so a `kill()`
between two saves really forgets messages; `stop()` (SIGTERM) saves first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .pki import CertFiles, Pki

MOSQUITTO = "/usr/sbin/mosquitto"
PREFIX = "rental/v1"
PLATFORM = "platform"


def acl_text(prefix: str = PREFIX, platforms: Sequence[str] = (PLATFORM,)) -> str:
    """The ACL file: gateways write their uplink leaves and read their downlink ones.

    configs/mosquitto/acl ships exactly `acl_text()` (a test keeps them equal).

    Mosquitto 2.0's file ACL allows every SUBSCRIBE (shared ones included) and checks `read`
    against each message's topic when it delivers it, so `$share/{group}/...` needs no rule of
    its own: the platform's `topic read {prefix}/+/#` covers what a shared subscription gets.
    `pattern` lines apply to every user, the platform too: no gateway may be named like a
    platform identity. Each consumer instance needs an identity (certificate) of its own: with
    `use_username_as_clientid` two processes sharing one would keep taking the session over.
    """
    lines = [
        "# Gateways: %u is the certificate's common name, i.e. the gateway id. A gateway",
        "# writes only its own up topics and reads only its own ack and cmd.",
        f"pattern write {prefix}/%u/status",
        f"pattern write {prefix}/%u/events",
        f"pattern write {prefix}/%u/snapshots/+",
        f"pattern write {prefix}/%u/cmd/result",
        f"pattern write {prefix}/%u/web/csr",
        f"pattern read {prefix}/%u/ack",
        f"pattern read {prefix}/%u/cmd",
    ]
    lines += ["", "# The central platform, one user per consumer instance: everything up, acks",
              "# and commands down. Nobody else may write P/ack or P/cmd: a gateway forgets",
              "# events on the strength of an ack, so a gateway (or anyone) able to ack would",
              "# make events vanish that the city never stored."]
    for platform in platforms:
        lines += [
            f"user {platform}",
            f"topic read {prefix}/+/#",
            f"topic write {prefix}/+/ack",
            f"topic write {prefix}/+/cmd",
            "",
        ]
    return "\n".join(lines)


class Broker:
    """One Mosquitto process on a free loopback port; see the module docstring."""

    host = "127.0.0.1"

    def __init__(
        self,
        folder: Path,
        *,
        pki: Pki | None = None,
        autosave_interval: int = 1800,
        max_queued_messages: int = 100_000,
        max_inflight_messages: int = 1000,
        prefix: str = PREFIX,
        platforms: Sequence[str] = (PLATFORM,),
        extra_config: str = "",
    ) -> None:
        self.folder = folder
        self.pki = pki
        self.autosave_interval = autosave_interval
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.prefix = prefix
        self.platforms = tuple(platforms)
        self.extra_config = extra_config
        self.port = 0  # chosen by the first start(), kept by restart()
        self.process: subprocess.Popen[bytes] | None = None

    # -- paths -----------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether clients must connect with TLS and a client certificate."""
        return self.pki is not None

    @property
    def config_file(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def persistence_dir(self) -> Path:
        return self.folder / "persistence"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust (TLS only)."""
        return self._pki().ca

    def credentials(self, identity: str) -> CertFiles:
        """Client certificate files for `identity` (TLS only), issued on first use."""
        return self._pki().client(identity)

    def log(self) -> str:
        """Everything the broker logged so far (handy in assertion messages)."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Broker:
        """Write the config, start Mosquitto and return once it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("broker already running")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.persistence_dir.mkdir(exist_ok=True)
        if not self.port:
            self.port = _free_port()
        self.config_file.write_text(self.config_text())
        if self.tls:
            self.acl_file.write_text(acl_text(self.prefix, self.platforms))
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_accepting(timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: whatever was acknowledged since the last autosave is lost."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM and wait: Mosquitto saves its state before it exits."""
        self._signal(signal.SIGTERM)

    def restart(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop (or kill) and start again on the same port with the same persistence file."""
        self.kill() if kill else self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- config ----------------------------------------------------------------------------

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"autosave_interval {self.autosave_interval}",
            "autosave_on_changes false",
            # 1000 by default, after which messages for an offline or slow client are dropped
            # silently: a consumer that was down for a minute would lose events.
            f"max_queued_messages {self.max_queued_messages}",
            # QoS 1 messages in flight to one client (20 by default): a consumer that commits
            # in batches before it acknowledges needs a window wider than one batch.
            f"max_inflight_messages {self.max_inflight_messages}",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else Mosquitto drops to a `mosquitto` user it may lack
        if self.pki is not None:
            lines += [
                f"cafile {self.pki.ca}",
                f"certfile {self.pki.server.cert}",
                f"keyfile {self.pki.server.key}",
                "require_certificate true",
                "use_identity_as_username true",
                "use_username_as_clientid true",
                "allow_anonymous false",
                f"acl_file {self.acl_file}",
            ]
        else:
            lines.append("allow_anonymous true")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines)

    # -- internals -------------------------------------------------------------------------

    def _pki(self) -> Pki:
        if self.pki is None:
            raise RuntimeError("this broker runs without TLS")
        return self.pki

    def _signal(self, signum: int) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}:\n"
                                   + self.log())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(f"mosquitto not accepting on {self.port}:\n"
                                       + self.log()) from None
                time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
