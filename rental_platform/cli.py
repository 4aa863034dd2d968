"""`rental-platform`: run the reference consumer, make its signing key, send commands, obtain
the certificates of gateways' pages.

    rental-platform keygen --out platform.key
    rental-platform run --host broker --port 8883 --tls --ca ca.crt --cert p1.crt --key p1.key \\
        --db /var/lib/rental-platform/city.db --group city
    rental-platform send --db city.db --signing-key platform.key gw-440305-0042 unlock --door main
    rental-platform certify --domain rental.city.example --csr gw.csr --out gw.pem … gw-440305-0042
    rental-platform users add --db city.db --role police wang.li
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.envelope import public_key_text
from cloud_sync.transport import TlsFiles

from .certify.command import add_certify, certify
from .commands import CommandNotAccepted
from .exits import EXIT_REFUSED, EXIT_TIMEOUT, EXIT_USAGE, UsageError
from .keys import read_signing_key
from .platform import Platform
from .session import retire_session
from .settings import PlatformSettings
from .store import DatabaseDown, Limits, SchemaError, StoreKeyError
from .store.database import redacted
from .users import add_users, users_add
from .web.options import add_web_options, web_settings
from .web.process import WebProcess
from .web.settings import WebSettings

log = logging.getLogger("rental-platform")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `rental-platform` (also read by the docs test)."""
    parser = argparse.ArgumentParser(
        prog="rental-platform",
        description="The city platform's reference consumer of rental-gateway events.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="make the Ed25519 key that signs commands")
    keygen.add_argument("--out", type=Path, required=True,
                        help="private key file to create (never overwritten)")

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--host", default="127.0.0.1", help="MQTT broker")
    connection.add_argument("--port", type=int, default=None,
                            help="default 1883, or 8883 with --tls")
    connection.add_argument("--tls", action="store_true",
                            help="TLS with a client certificate (--ca, --cert, --key)")
    connection.add_argument("--ca", type=Path, help="CA certificate of the broker (PEM)")
    connection.add_argument("--cert", type=Path, help="this client's certificate (PEM)")
    connection.add_argument("--key", type=Path, help="this client's private key (PEM)")
    connection.add_argument("--prefix", default="rental/v1", help="topic prefix")
    connection.add_argument("--client-id", default=f"rental-platform-{socket.gethostname()}",
                            help="MQTT client id, stable across restarts, one per instance"
                                 " (under TLS the broker uses the certificate's name)")

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--db", required=True,
                          help="postgresql://USER@HOST:PORT/DB, or a SQLite file path")
    database.add_argument("--store-key", type=Path,
                          help="key file sealing personal data (made, mode 0600, if missing;"
                               " default: DB.key beside a SQLite file, else"
                               " /var/lib/rental-platform/store.key)")
    database.add_argument("--snapshot-dir", type=Path,
                          help="folder of the pictures (default: DB.snapshots beside a SQLite"
                               " file, else /var/lib/rental-platform/snapshots)")
    database.add_argument("--retention-days", type=float, default=Limits().retention_days,
                          help="days events are kept (default %(default)s)")
    database.add_argument("--snapshot-retention-days", type=float,
                          default=Limits().snapshot_retention_days,
                          help="days pictures are kept (default %(default)s)")

    run = commands.add_parser("run", parents=[connection, database],
                              help="consume events until SIGTERM or Ctrl-C")
    run.add_argument("--group", default="rental-platform",
                     help="shared subscription group: instances in one group split the load")
    run.add_argument("--stats-interval", type=float, default=10.0,
                     help="seconds between two log lines of counters (0: none)")
    add_web_options(run)

    commands.add_parser(
        "retire", parents=[connection],
        help="end a removed instance's session (its --client-id, or under TLS its"
             " certificate), so that its share of events goes to the others")

    send = commands.add_parser("send", parents=[connection, database],
                               help="sign and send one command, print its result")
    send.add_argument("--signing-key", type=Path, required=True,
                      help="private key file made by keygen")
    send.add_argument("--timeout", type=float, default=30.0,
                      help="seconds to wait for the gateway's result")
    send.add_argument("gateway_id")
    kinds = send.add_subparsers(dest="cmd", required=True)
    unlock = kinds.add_parser("unlock", help="open a door for a few seconds")
    unlock.add_argument("--door", required=True)
    unlock.add_argument("--seconds", type=int, default=5)
    lockdown = kinds.add_parser("lockdown", help="refuse every card (--on) or stop (--off)")
    switch = lockdown.add_mutually_exclusive_group(required=True)
    switch.add_argument("--on", dest="on", action="store_true")
    switch.add_argument("--off", dest="on", action="store_false")
    registry = kinds.add_parser(
        "registry", help='send tenant records: FILE.json = {"version", "base_version",'
                         ' "tenants", "removed"}')
    registry.add_argument("file", type=Path)
    certificate = kinds.add_parser(
        "web-certificate", help="install the local page's certificate: FILE.pem = the"
                                " certificate the city's CA signed, then its chain")  # fmt: skip
    certificate.add_argument("file", type=Path)
    add_certify(commands)
    add_users(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "keygen":
            return _keygen(args.out)
        if args.command == "certify":
            return certify(args)
        if args.command == "users":
            return users_add(args)
        settings = _settings(args)
        if args.command == "run":
            return _run(settings, args.stats_interval, web_settings(args))
        if args.command == "retire":
            retire_session(settings)
            print(f"session {settings.client_id} ended")
            return 0
        return _send(settings, args)
    except UsageError as error:
        print(f"rental-platform: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (DatabaseDown, SchemaError, StoreKeyError) as error:
        print(f"rental-platform: {error}", file=sys.stderr)
        return 1


def _keygen(out: Path) -> int:
    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{out} exists; refusing to overwrite a signing key") from None
    with os.fdopen(fd, "w") as file:
        file.write(base64.b64encode(key.private_bytes_raw()).decode() + "\n")
    print(public_key_text(key))
    print(f"private key written to {out}; put the line above in each gateway's"
          " [mqtt] command_public_key", file=sys.stderr)
    return 0


def _settings(args: argparse.Namespace) -> PlatformSettings:
    tls = None
    if args.tls:
        missing = [name for name in ("ca", "cert", "key") if getattr(args, name) is None]
        if missing:
            raise UsageError("--tls needs " + ", ".join(f"--{m}" for m in missing))
        tls = TlsFiles(str(args.ca), str(args.cert), str(args.key))
    key = read_signing_key(args.signing_key) if getattr(args, "signing_key", None) else None
    limits = Limits()
    if getattr(args, "db", None):
        if args.retention_days <= 0 or args.snapshot_retention_days <= 0:
            raise UsageError("retention must be a positive number of days")
        limits = Limits(retention_days=args.retention_days,
                        snapshot_retention_days=args.snapshot_retention_days)
    return PlatformSettings(
        host=args.host, port=args.port or (8883 if args.tls else 1883),
        db=getattr(args, "db", None) or os.devnull,  # retire stores nothing
        store_key=getattr(args, "store_key", None),
        snapshot_dir=getattr(args, "snapshot_dir", None), limits=limits,
        client_id=args.client_id, group=getattr(args, "group", "rental-platform"),
        prefix=args.prefix, tls=tls, signing_key=key, consume=args.command == "run",
    )


def _run(settings: PlatformSettings, stats_interval: float, web: WebSettings | None) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    platform = Platform(settings).start()  # migrations applied before the web reads
    log.info("consuming %s/+/... from %s:%d into %s", settings.prefix, settings.host,
             settings.port, redacted(str(settings.db)))
    pages = WebProcess(web).start() if web is not None else None
    last_stats = time.monotonic()
    try:
        while not stop.wait(1.0) and platform.running:
            if pages is not None:
                pages.check()
            if stats_interval and time.monotonic() - last_stats >= stats_interval:
                last_stats = time.monotonic()
                s = platform.stats
                log.info("received %d stored %d duplicates %d rejected %d acks %d connected %s",
                         s.received, s.stored, s.duplicates, s.rejected, s.acks_sent,
                         platform.connected)
    finally:
        if pages is not None:
            pages.stop()
        platform.stop()
    if platform.failure is not None:
        log.error("stopped after a failure: %s", platform.failure)
        return 1
    return 0


def _send(settings: PlatformSettings, args: argparse.Namespace) -> int:
    cmd, cmd_args = _command(args)
    with Platform(settings) as platform:
        try:
            platform.wait_connected(args.timeout)
            counter = platform.send_command(args.gateway_id, cmd, cmd_args, args.timeout)
            record = platform.wait_result(args.gateway_id, counter, args.timeout)
        except CommandNotAccepted as error:
            print(f"rental-platform: {error}", file=sys.stderr)
            return EXIT_REFUSED
        except TimeoutError as error:
            print(f"rental-platform: {error}", file=sys.stderr)
            return EXIT_TIMEOUT
    print(json.dumps({"gateway_id": args.gateway_id, "counter": counter, "cmd": cmd,
                      "ok": record.ok, "error": record.error}, ensure_ascii=False))
    return 0 if record.ok else EXIT_REFUSED


def _command(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.cmd == "unlock":
        return "unlock", {"door": args.door, "seconds": args.seconds}
    if args.cmd == "lockdown":
        return "lockdown", {"on": args.on}
    if args.cmd == "web-certificate":
        try:
            return "web.certificate", {"chain": args.file.read_text(encoding="ascii")}
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.file}: {exc}") from None
    try:
        body = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    expected = {"version", "base_version", "tenants", "removed"}
    if not isinstance(body, dict) or set(body) != expected:
        raise UsageError(f"{args.file}: expected an object with exactly {sorted(expected)}")
    if not isinstance(body["tenants"], list) or not isinstance(body["removed"], list):
        raise UsageError(f"{args.file}: tenants and removed must be lists")
    return "registry.apply", body
