"""The ``sqltraits`` command line: each command is a few lines that call the library.

Command modules import only ``argparse`` at import time so that ``sqltraits --help`` starts fast;
the library is imported inside each command's ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sqltraits_kit.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
)  # a light module: --help stays fast

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

#: command -> module in ``sqltraits_kit.cli``, each with ``register(subparsers)`` and ``run(args)``.
COMMANDS = {
    "sample": "sample",
    "load": "load",
    "tables": "tables",
    "mapping": "mapping",
    "train": "train",
    "models": "models",
    "score": "score",
    "validate": "validate",
    "sync": "sync",
    "history": "history",
    "rollback": "rollback",
    "outcomes": "outcomes",
    "run": "run",
    "verify": "verify",
    "standin": "standin",
}


def env_settings():  # -> Settings; the import stays inside so `--help` starts fast
    """Settings from the environment; a malformed variable is a usage error (exit 2)."""
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.settings import Settings

    try:
        return Settings.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def required_db_url(args: argparse.Namespace, settings, *, why: str) -> str:
    """``--db`` or ``$SQLTRAITS_DB_URL``: publishing commands never default to the demo sample."""
    from sqltraits_kit.errors import ConfigError

    url = args.db or settings.db_url
    if not url:
        raise ConfigError(f"--db (or $SQLTRAITS_DB_URL) is required: {why}")
    return url


def _redacted(exc: BaseException, args: argparse.Namespace) -> str:
    """The error's message without the credentials of any warehouse URL the command was given."""
    import os

    from sqltraits_kit.warehouse.connection import scrub

    text = str(exc)
    given = [getattr(args, name, None) for name in ("db", "source", "dest")]
    for url in (*given, os.environ.get("SQLTRAITS_DB_URL")):
        if isinstance(url, str) and url:
            text = scrub(text, url)
    return text


def _parser() -> argparse.ArgumentParser:
    from sqltraits_kit import __version__

    parser = argparse.ArgumentParser(
        prog="sqltraits",
        description="Train churn/LTV models on warehouse tables and publish traits to Segment.",
    )
    parser.add_argument("--version", action="version", version=f"sqltraits-kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"sqltraits_kit.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sqltraits_kit.cli.{module}":
                continue  # command not built yet in this checkout
            raise
        cmd = mod.register(sub)
        cmd.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sqltraits_kit.errors import ConfigError, SqlTraitsError

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"sqltraits {args.command}: error: {_redacted(exc, args)}", file=sys.stderr)
        return EXIT_USAGE
    except SqlTraitsError as exc:
        if args.debug:
            raise
        print(f"sqltraits {args.command}: error: {_redacted(exc, args)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"sqltraits {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
