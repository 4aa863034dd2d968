"""`python -m gateway.config`: check a config file, print the JSON Schema, or refresh the docs.

python -m gateway.config /etc/rental-gateway/gateway.toml
python -m gateway.config --schema > configs/gateway.schema.json
python -m gateway.config --docs docs/config.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config.loader import check_config_main
from gateway.config.reference import schema_text, with_reference


def main(argv: list[str] | None = None) -> int:
    """Run the command line above; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.config", description=__doc__.split("\n")[0]
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("config", nargs="?", type=Path, help="config file to check")
    action.add_argument("--schema", action="store_true", help="print the config's JSON Schema")
    action.add_argument(
        "--docs", type=Path, metavar="FILE", help="regenerate the reference in FILE"
    )
    args = parser.parse_args(argv)
    if args.schema:
        sys.stdout.write(schema_text())
        return 0
    if args.docs is not None:
        args.docs.write_text(
            with_reference(args.docs.read_text(encoding="utf-8")), encoding="utf-8"
        )
        return 0
    return check_config_main(args.config)


if __name__ == "__main__":
    raise SystemExit(main())
