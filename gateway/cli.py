"""The `gateway` command line (SPEC section 1)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__
from gateway.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    default_config_path,
    load_config,
)

ROLES = ("building_head", "police", "installer")
PART_NAMES = ("door", "camera", "uplink", "web", "edge")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every command."""
    parser = argparse.ArgumentParser(
        prog="gateway", description="Door gateway of a rental building."
    )
    parser.add_argument(
        "-c", "--config", default=None, metavar="PATH",
        help=f"configuration file (default $GATEWAY_CONFIG, else {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the service in the foreground")
    run.add_argument("--part", choices=PART_NAMES, default=None,
                     help="run only this part (each systemd unit runs one); default: every"
                          " part, each in a process of its own")
    run.add_argument("--configured", action="store_true",
                     help="with --part: only tell (exit 0 or 1) whether the config uses it")
    commands.add_parser("check-config", help="check the configuration file")

    demo = commands.add_parser("demo", help="a simulated building without hardware")
    demo.add_argument("--broker", metavar="HOST:PORT", help="publish events to this MQTT broker")
    demo.add_argument("--port", type=int, default=8080, help="web port on 127.0.0.1 (0: any free)")

    users = commands.add_parser("users", help="manage web users")
    users_cmd = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = users_cmd.add_parser("add", help="create a web user")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("name", help="user name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input")

    tenants = commands.add_parser("tenants", help="manage the tenant registry")
    tenants_cmd = tenants.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")
    imp = tenants_cmd.add_parser("import", help="bulk import a tenant CSV (all rows or none)")
    imp.add_argument("file", type=Path)

    prov = commands.add_parser(
        "provision", help="set up a building from one row of the installer's spreadsheet")
    prov.add_argument("sheet", type=Path, help="the spreadsheet as CSV")
    prov.add_argument("--gateway", required=True, metavar="ID", help="the row's gateway_id")
    prov.add_argument("--config-dir", type=Path, default=Path("/etc/rental-gateway"))
    prov.add_argument("--data-dir", type=Path, default=Path("/var/lib/rental-gateway"))
    prov.add_argument("--command-public-key", metavar="KEY",
                      help="the city platform's command key (base64)")
    prov.add_argument("--ca-file", type=Path, help="the city's CA certificate (PEM)")
    prov.add_argument("--baud", type=int, default=9600, help="the readers' line speed")
    prov.add_argument("--timezone", default="Asia/Shanghai")
    prov.add_argument("--head", default="lou-zhang", metavar="NAME",
                      help="user name of the first building-head account")
    prov.add_argument("--city-domain", metavar="DOMAIN", type=_domain,
                      help="the city's domain for gateway pages: the page's certificate request"
                           " asks for GATEWAY_ID.DOMAIN, for the city's ACME CA")
    prov.add_argument("--no-self-test", action="store_true",
                      help="skip the live checks (readers, camera, broker)")
    prov.add_argument("--lang", choices=("zh", "en"), default="zh",
                      help="the report's language (default: zh, Chinese)")
    return parser


def _domain(text: str) -> str:
    """A domain name in lower case, as a CA signs it (e.g. rental.city.example)."""
    labels = text.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise argparse.ArgumentTypeError(f"{text!r} is not a domain name in lower case, such as"
                                         " rental.city.example")  # fmt: skip
    return text


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _setup_logging(verbose: bool, quiet: bool = False) -> None:
    # Under systemd, journald adds its own time stamps; the priority prefix lets it file each
    # line at the right level (sd-daemon(3)).
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(name)s: %(message)s"
    if not under_journald:
        fmt = "%(asctime)s %(levelname)s " + fmt
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format=fmt)
    if under_journald:
        priorities = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
        for handler in logging.getLogger().handlers:
            formatter = handler.formatter
            handler.setFormatter(_PriorityFormatter(formatter, priorities))


class _PriorityFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter | None, priorities: dict[str, int]) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()
        self._priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._priorities.get(record.levelname, 6)}>{self._inner.format(record)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    # The demo talks to a person at a terminal: only problems are logged there.
    _setup_logging(args.verbose, quiet=args.command == "demo")
    config_path = Path(args.config) if args.config else default_config_path(os.environ)
    if args.command == "check-config":
        from gateway.config import check_config_main

        return check_config_main(config_path)
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(broker=args.broker, web_port=args.port)
    if args.command == "provision":
        return _provision(args)
    config = _load(config_path)
    if config is None:
        # Under ExecCondition= an exit of 1-254 skips the unit quietly; a config that does
        # not load must fail it instead (255), so the installer sees it.
        return 255 if args.command == "run" and args.configured else 2
    if args.command == "run":
        from gateway.parts.run import run_part, run_supervisor

        if args.part is not None:
            if args.configured:
                from gateway.parts.web import expected_parts

                return 0 if args.part in expected_parts(config) else 1
            return run_part(args.part, config)
        return run_supervisor(config, config_path)
    if args.command == "users":
        return _users_add(config, args.role, args.name, args.password_stdin)
    if args.command == "tenants":
        return _tenants_import(config, args.file)
    raise AssertionError(args.command)


def _provision(args: argparse.Namespace) -> int:
    from gateway.provision import Options, SheetError, find, provision, read_sheet
    from gateway.provision_report import say

    try:
        building = find(read_sheet(args.sheet.read_bytes()), args.gateway)
    except (OSError, SheetError) as exc:
        print(f"gateway provision: {exc}", file=sys.stderr)
        return 2
    report = provision(building, Options(
        config_dir=args.config_dir.absolute(), data_dir=args.data_dir.absolute(),
        command_public_key=args.command_public_key,
        ca_file=args.ca_file.absolute() if args.ca_file else None, baud=args.baud,
        timezone=args.timezone, head_username=args.head, self_test=not args.no_self_test,
        city_domain=args.city_domain,
    ))  # fmt: skip
    print(report.text(args.lang))
    if report.page is not None:
        from gateway.sticker import terminal_qr

        print(say("page_urls", args.lang, urls="  ".join(report.page.urls)))
        print(say("page_fingerprint", args.lang, fingerprint=report.page.fingerprint))
        print(terminal_qr(report.page.qr_url))
    if report.one_time_password is not None:
        print(say("one_time_password", args.lang, user=args.head,
                  password=report.one_time_password))  # fmt: skip
    return 0 if report.ok else 1


def _load(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _users_add(config: Config, role: str, name: str, password_stdin: bool) -> int:
    from gateway.store import Store, StoreError
    from web_security.passwords import read_password

    try:
        password, generated = read_password(password_stdin)
    except ValueError as exc:
        print(f"gateway users add: {exc}", file=sys.stderr)
        return 2
    store = Store.open(config.gateway.data_dir, config.gateway.id)
    try:
        store.add_user(name, role, password)
    except (StoreError, ValueError) as exc:
        print(f"gateway users add: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"user {name!r} created with role {role}")
    if generated:
        print(f"one-time password: {password}")
    return 0


def _tenants_import(config: Config, path: Path) -> int:
    from gateway.store import Store
    from gateway.tenant_csv import CsvImportError, import_tenants

    store = Store.open(config.gateway.data_dir, config.gateway.id)
    try:
        result = import_tenants(store, path, progress=sys.stderr.isatty())
    except CsvImportError as exc:
        print(f"{path}: nothing imported, {len(exc.errors)} problem(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    changed = result.updated - result.unchanged
    print(f"{path}: {result.added} tenant(s) added, {changed} updated, "
          f"{result.unchanged} unchanged, {result.cards} card(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
