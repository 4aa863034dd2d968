"""`rental-platform users add`: a police or district user of the city's pages (SPEC 8).

The same password rules as the gateway's page (`web_security.passwords`). The password comes
from standard input with `--password-stdin`; else it is asked twice on a terminal; else (no
terminal) a one-time password is made and printed, which the user replaces at the first login.

    rental-platform users add --db postgresql://platform@db.city/city --role police wang.li
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from web_security import passwords

from .exits import EXIT_USAGE
from .store import Database, DatabaseDown, SchemaError
from .store.schema import migrate
from .store.users import ROLES, UserError, add_user, check_role, check_username


def add_users(commands: Any) -> None:
    """The `users` command and its `add`."""
    users = commands.add_parser("users", help="manage the users of the city's pages")
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="make a police or district user")
    add.add_argument(
        "--db", required=True, help="postgresql://USER@HOST:PORT/DB, or a SQLite file path"
    )
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line)",
    )
    add.add_argument("name", help="2-64 letters, digits or _.@-")


def users_add(args: argparse.Namespace) -> int:
    """Make the user; 0, or 2 with the reason on a bad name, password or a name taken."""
    try:
        check_username(args.name)
        role = check_role(args.role)
        password, one_time = passwords.read_password(args.password_stdin)
        passwords.check_policy(password, args.name)
        digest = passwords.hash_password(password)
    except (UserError, ValueError) as error:  # WeakPasswordError is a ValueError
        print(f"rental-platform users add: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        db = Database.open(args.db)
    except DatabaseDown as error:
        print(f"rental-platform users add: {error}", file=sys.stderr)
        return 1
    try:
        migrate(db)
        add_user(db, args.name, role, digest, must_change=one_time, now=time.time())
    except UserError as error:
        print(f"rental-platform users add: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SchemaError as error:
        print(f"rental-platform users add: {error}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"user {args.name!r} created with role {role}")
    if one_time:
        print(f"one-time password: {password}  (a new one is chosen at the first login)")
    return 0
