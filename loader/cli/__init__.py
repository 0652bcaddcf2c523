"""`python -m loader`: the one front door. Imports stay lazy so --help starts no JVM.

Each module of this package registers the commands of one area; a handler takes the resolved
:class:`~loader.config.Settings` (flag, else config file, else default) and nothing else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loader import __version__
from loader.cli import admin, alerts, rules, sources, stream, tables
from loader.cli.options import finish
from loader.config import resolve
from loader.errors import TsaError

AREAS = (admin, tables, sources, rules, stream, alerts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loader",
        description="SQL-first security analytics for AWS CloudTrail logs on Apache Spark.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for area in AREAS:
        area.register(commands)
    finish(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("handler", "command", "config")}
    debug = bool(args.debug)
    try:
        settings = resolve(args.config, flags)
        debug = settings.debug
        return int(args.handler(settings))
    except TsaError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
