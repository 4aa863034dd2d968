"""`rental-platform certify`: a certificate phones trust for one gateway's page, into a file
that `rental-platform send … GATEWAY_ID web-certificate FILE` then sends down.

    rental-platform certify --domain rental.city.example --csr gw-440305-0042.csr \\
        --out gw-440305-0042.pem --acme-directory https://acme.example/directory \\
        --acme-account-key /var/lib/rental-platform/acme-account.key \\
        --dns-server 10.0.0.53 --tsig-key /etc/rental-platform/acme-update.key gw-440305-0042

Prints one JSON line: `{"gateway_id", "name", "renewed", "not_after", "fingerprint", "out"}`.
`renewed` is false when the chain already at `--out` fits the request and has more than a
third of its lifetime left: run daily, it orders only when renewal is due.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sqlite3
import sys
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..exits import EXIT_REFUSED, UsageError
from ..store import DatabaseDown, web_request
from ..store.database import Database, redacted
from . import (
    Ca,
    CertifyError,
    Rfc2136,
    certificate_for,
    check_request,
    page_name,
    read_tsig_key,
    renewal_due,
)
from .names import MAX_REQUEST_BYTES


def add_certify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `certify` command's arguments."""
    command = commands.add_parser(
        "certify", help="obtain a certificate phones trust for a gateway's page (ACME, DNS-01)"
    )
    command.add_argument("gateway_id")
    command.add_argument(
        "--domain",
        required=True,
        help="the city domain: the page is certified as GATEWAY_ID.DOMAIN",
    )
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--db",
        metavar="URL",
        help="the platform's database: the request the gateway sent up last (P/web/csr)",
    )
    source.add_argument(
        "--csr", type=Path, help="the page's certificate request, from a file (PEM)"
    )
    command.add_argument(
        "--out", type=Path, required=True, help="the chain's file (PEM, the certificate first)"
    )
    command.add_argument(
        "--force",
        action="store_true",
        help="order even when the chain at --out is not due for renewal",
    )
    ca = command.add_argument_group("the ACME CA")
    ca.add_argument("--acme-directory", required=True, metavar="URL", help="its directory URL")
    ca.add_argument(
        "--acme-account-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the platform's account key there, made (0600) on first use",
    )
    ca.add_argument(
        "--acme-trust",
        type=Path,
        metavar="FILE",
        help="CA certificates for its HTTPS (default: the system's)",
    )
    ca.add_argument("--acme-email", metavar="ADDRESS", help="the account's contact")
    ca.add_argument("--acme-timeout", type=float, default=300.0, metavar="SECONDS")
    dns = command.add_argument_group("the city's DNS, changed by RFC 2136 updates")
    dns.add_argument("--dns-server", required=True, metavar="HOST", help="its primary server")
    dns.add_argument("--dns-port", type=int, default=53)
    dns.add_argument("--dns-zone", help="the zone to update (default: --domain)")
    dns.add_argument(
        "--tsig-key",
        type=Path,
        required=True,
        metavar="FILE",
        help='the update key as tsig-keygen writes it: key "NAME" { … };',
    )
    dns.add_argument("--dns-propagation", type=float, default=0.0, metavar="SECONDS",
                     help="wait between updating the primary and asking the CA to look,"
                          " for secondary servers to catch up")  # fmt: skip


def certify(args: argparse.Namespace) -> int:
    """Run `certify`: 0 with a chain at `--out`, EXIT_REFUSED (and why) without one."""
    csr_pem = _read(args.csr) if args.csr is not None else _sent_up(args.db, args.gateway_id)
    try:
        name = page_name(args.gateway_id, args.domain)
        request = check_request(csr_pem, name)
        renewed = args.force or renewal_due(args.out, request, name, _now())
        if renewed:
            ca = Ca(directory=args.acme_directory, account_key=args.acme_account_key,
                    trust=args.acme_trust, email=args.acme_email,
                    propagation=args.dns_propagation, timeout=args.acme_timeout)  # fmt: skip
            updater = Rfc2136(args.dns_server, port=args.dns_port,
                              zone=args.dns_zone or args.domain,
                              key=read_tsig_key(args.tsig_key))  # fmt: skip
            _write(args.out, certificate_for(ca, csr_pem, name, updater))
    except CertifyError as error:
        print(f"rental-platform: certify {args.gateway_id}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    leaf = x509.load_pem_x509_certificate(args.out.read_bytes())
    print(json.dumps({
        "gateway_id": args.gateway_id, "name": name, "renewed": renewed,
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "fingerprint": leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        "out": str(args.out)}))  # fmt: skip
    return 0


def _sent_up(url: str, gateway_id: str) -> bytes:
    """The request the gateway sent up last, as the platform stored it."""
    try:
        db = Database.open(url)
    except DatabaseDown as exc:
        raise UsageError(str(exc)) from None
    try:
        found = web_request(db, gateway_id)
    except (sqlite3.Error, psycopg.Error) as exc:
        raise UsageError(f"{redacted(url)}: not a platform database ({exc})") from None
    finally:
        db.close()
    if found is None:
        raise UsageError(f"{gateway_id} has sent up no page certificate request (P/web/csr)")
    return found


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _write(path: Path, chain: bytes) -> None:
    """The chain, whole or not at all (a certificate is public: 0644)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(chain)
        temporary.chmod(0o644)
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
