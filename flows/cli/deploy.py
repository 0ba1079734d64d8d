"""``strava-elt deploy-local``: print, in order, the commands that deploy strava-elt on a local Prefect server.

The wording of every step is in :func:`deploy_local_steps`, one place to edit.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from flows.cli.common import DEFAULT_HOME, add_command, env

__all__ = ["DEFAULT_POOL", "deploy_local_steps", "project_root", "register"]

DEFAULT_POOL = "strava-elt-pool"  # prefect.yaml's work pool (`prefect deploy --all` ignores --pool)


def project_root() -> Path:
    """The checkout holding prefect.yaml (with ``pip install -e .``, the one this package is in)."""
    return Path(__file__).resolve().parents[2]


def deploy_local_steps(*, port: int = 4200, home: Path = DEFAULT_HOME, emulator: bool = False) -> list[tuple[str, str]]:
    """The commands that deploy strava-elt on a local Prefect server: (what it does, command) pairs.

    ``PREFECT_API_URL`` is exported first, in every terminal, the server's too: the server hands
    its UI the API address from that variable, so a server on another port than 4200 started
    without it sends the browser to port 4200 ("Can't connect to Server API").
    """
    root = shlex.quote(str(project_root()))
    home_arg = shlex.quote(str(home.expanduser().resolve()))
    api = f"http://127.0.0.1:{port}/api"
    steps: list[tuple[str, str]] = []
    if sys.prefix != sys.base_prefix:
        steps.append(("In each terminal: this virtualenv", f"source {shlex.quote(sys.prefix)}/bin/activate"))
    steps += [
        (
            "In each terminal, the server's first: the server's address, for the UI and every command",
            f"export PREFECT_API_URL={api}",
        ),
        (
            f"Terminal 1: the Prefect server, UI at http://127.0.0.1:{port} (leave it running)",
            f"prefect server start --host 127.0.0.1 --port {port}",
        ),
        ("Terminal 2: register the block types, once per server", "prefect block register -m blocks"),
    ]
    if emulator:
        steps.append(("Another terminal: the Strava emulator, instead of Strava", "strava-elt emulator --port 8765"))
        strava = (
            "--strava-base-url http://127.0.0.1:8765 --client-id 12345 "
            "--client-secret emulator-secret --refresh-token emulator-refresh-token"
        )
    else:
        strava = "--client-id ID --client-secret SECRET --refresh-token TOKEN"
    steps += [
        (
            "The blocks the deployments name: DuckDB warehouse and lake folder under --home, Strava credentials",
            f"strava-elt setup local --home {home_arg} {strava}",
        ),
        ("The process work pool", f"prefect work-pool create --type process {DEFAULT_POOL}"),
        (
            "The seven deployments in prefect.yaml: weekly (Sunday 00:00 UTC), enrich (every 15 minutes: "
            "detail and streams with what the weekly runs leave of the budget), backfill (by hand), "
            "retrain-kudos-model and react (on events), athlete and weekly-all (several athletes: "
            "weekly-all's schedule is off until you switch it, docs/deploy.md)",
            f"cd {root} && prefect --no-prompt deploy --all",
        ),
        (
            "Another terminal (PREFECT_API_URL exported): a worker for the scheduled, triggered and manual runs",
            f"prefect worker start --pool {DEFAULT_POOL}",
        ),
        (
            "Run the weekly deployment once, now (or in the UI: Deployments > weekly > Run > Quick run)",
            "prefect deployment run 'strava-elt/weekly'",
        ),
    ]
    return steps


def cmd_deploy_local(args: argparse.Namespace) -> int:
    """Print the commands that deploy strava-elt on a local Prefect server; start nothing."""
    steps = deploy_local_steps(port=args.port, home=Path(args.home), emulator=args.emulator)
    print("strava-elt deploy-local: nothing has been started. Run these, in order (docs/deploy.md explains them):")
    current = env("PREFECT_API_URL")
    if current:
        print(f"(PREFECT_API_URL is already {current}: with that server, skip the server and export steps.)")
    for number, (what, command) in enumerate(steps, start=1):
        print(f"\n# {number}. {what}\n{command}")
    return 0


def register(sub: Any) -> None:
    """Add ``deploy-local`` to the parser."""
    deploy = add_command(
        sub,
        "deploy-local",
        help="print the commands that deploy the flows on a local Prefect server (runs nothing)",
        description="Print, in order, the commands that start a local Prefect server, save the blocks, create "
        "the work pool, deploy prefect.yaml and start a worker. Runs nothing.",
        examples=["strava-elt deploy-local", "strava-elt deploy-local --port 4300 --emulator"],
        func=cmd_deploy_local,
    )
    deploy.add_argument("--port", type=int, default=4200, help="port of the Prefect server (default 4200)")
    deploy.add_argument(
        "--home", default=str(DEFAULT_HOME), help="folder for the DuckDB file and the lake (default ./.strava-elt)"
    )
    deploy.add_argument("--emulator", action="store_true", help="use the Strava emulator instead of real credentials")
