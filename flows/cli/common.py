"""What every ``strava-elt`` command shares: errors, options from the environment, output, help.

Nothing here imports Prefect: ``demo`` points Prefect at its own home folder before Prefect
reads its settings, so the commands import it inside their functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_HOME",
    "CliError",
    "Handler",
    "add_command",
    "env",
    "need",
    "print_created",
    "print_json",
    "prompt_secret",
]

DEFAULT_HOME = Path(".strava-elt")

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user-facing error: one line on stderr without a traceback, exit code 1."""


def env(name: str) -> str | None:
    """The environment variable ``name``, or None when unset or empty."""
    return os.environ.get(name) or None


def need(value: str | None, flag: str, env_name: str) -> str:
    """``value``, or a :class:`CliError` naming the flag and the variable that give it."""
    if not value:
        raise CliError(f"{flag} is required (or set {env_name})")
    return value


def prompt_secret(value: str | None, env_name: str) -> str | None:
    """``value``, else ``$env_name``, else typed at a hidden prompt."""
    secret = value or env(env_name)
    if not secret:
        import getpass

        secret = getpass.getpass("Client secret (input hidden): ")
    return secret


def print_created(created: dict[str, str]) -> None:
    """One line per saved block: ``block 'name': what it is``."""
    for name, what in created.items():
        print(f"block {name!r}: {what}")


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (dates and paths as strings): what ``--json`` prints."""
    print(json.dumps(value, indent=2, default=str))


def add_command(
    sub: Any, name: str, *, help: str, description: str, examples: list[str], func: Handler | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows a description and examples."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 100),
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (live progress is shown only there)."""
    return sys.stderr.isatty()
