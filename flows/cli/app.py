"""The ``strava-elt`` parser and entry point: one module per command group registers its commands.

Prefect is imported inside the commands, after the environment is set, so that ``demo`` can
point Prefect at its own home folder before Prefect reads its settings.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from flows.cli import athletes, auth, console, dashboard, demo, deploy, kudos, run, setup, validate, webhook
from flows.cli.common import CliError, Handler

__all__ = ["build_parser", "main", "version"]

# The order of the commands in ``strava-elt --help``.
GROUPS = (setup, auth, run, demo, validate, dashboard, kudos, deploy, athletes, webhook)


def version() -> str:
    """The installed strava-elt's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("strava-elt")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="strava-elt",
        description="Keep your Strava activities in a warehouse with Prefect: extract, validate, merge. "
        "`strava-elt COMMAND --help` describes each command, with examples.",
        epilog="examples:\n  strava-elt demo\n  strava-elt setup local && strava-elt auth --client-id 12345\n"
        "  strava-elt run\n\nEvery command prints one line on stderr when it fails; add --debug for the traceback.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"strava-elt {version()}")
    parser.add_argument(
        "--debug", action="store_true", help="on failure, print the traceback too (anywhere on the line)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def describe_error(exc: BaseException) -> str:
    """The error as one line: the fix when :func:`console.explain` knows it, else the message (and its type)."""
    from tasks.setup import SetupError

    hint = console.explain(exc)
    if hint:
        return hint
    if isinstance(exc, CliError | SetupError):
        return _one_line(str(exc))
    return _one_line(f"{type(exc).__name__}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``strava-elt`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    arguments = [a for a in arguments if a != "--debug"]
    args = build_parser().parse_args(arguments)
    console.prepare_environment(debug=debug)
    func: Handler = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line on stderr
        if debug:
            traceback.print_exc()
        print(f"strava-elt {args.command}: {describe_error(exc)}", file=sys.stderr)
        return 1
    finally:
        console.flush_events()
