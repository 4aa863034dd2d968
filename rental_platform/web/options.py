"""`rental-platform run`'s web options, and the WebSettings they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exits import UsageError
from .settings import SILENT_AFTER_SECONDS, WebSettings


def add_web_options(run: argparse.ArgumentParser) -> None:
    web = run.add_argument_group("the city's pages and API (docs/platform.md, 'The web')")
    web.add_argument(
        "--web",
        metavar="HOST:PORT",
        help="serve the pages and the JSON API here, in a process of its own",
    )
    web.add_argument(
        "--search-db",
        metavar="URL",
        help="read police search and the fleet from this database (a PostgreSQL"
        " hot standby); ingest, sessions and the audit stay on --db",
    )
    web.add_argument("--web-cert", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    web.add_argument("--web-key", type=Path, help="the private key of --web-cert (PEM)")
    web.add_argument(
        "--web-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a load balancer that terminates TLS in front (repeatable): trusted"
        " for X-Forwarded-For/-Proto; cookies are Secure",
    )
    web.add_argument(
        "--audit-anchors",
        type=Path,
        metavar="FILE",
        help="append the police audit's head, signed, to this file every minute (a file on"
        " another host, which the database's administrators cannot write; needs --signing-key)",
    )
    web.add_argument(
        "--signing-key",
        type=Path,
        metavar="FILE",
        help="the command key made by keygen, which signs the audit's heads",
    )
    web.add_argument(
        "--silent-after",
        type=float,
        default=SILENT_AFTER_SECONDS,
        metavar="SECONDS",
        help="flag a gateway not heard from for longer than this (default"
        " %(default)s: two of its 30-minute statuses missed)",
    )


def web_settings(args: argparse.Namespace) -> WebSettings | None:
    """The web's settings, or None without --web; UsageError for a bad combination."""
    if not args.web:
        if any((args.search_db, args.web_cert, args.web_key, args.web_proxy, args.audit_anchors)):
            raise UsageError(
                "--search-db, --web-cert, --web-key, --web-proxy and --audit-anchors need --web"
            )
        return None
    host, _, port = args.web.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--web {args.web}: expected HOST:PORT, such as 127.0.0.1:8443")
    if args.silent_after <= 0:
        raise UsageError("--silent-after must be a positive number of seconds")
    settings = WebSettings(
        host=host,
        port=int(port),
        db=str(args.db),
        search_db=args.search_db,
        store_key=args.store_key,
        snapshot_dir=args.snapshot_dir,
        cert=args.web_cert,
        key=args.web_key,
        proxies=tuple(args.web_proxy),
        silent_after=args.silent_after,
        audit_anchors=args.audit_anchors,
        signing_key=args.signing_key,
    )
    problems = settings.problems()
    if problems:
        raise UsageError("; ".join(problems))
    return settings
