"""The ``strava-elt`` command line (console script ``strava-elt = "flows.cli:main"``).

One module per command group, each with a ``register(subparsers)``:

========================  =====================================================================
:mod:`~flows.cli.setup`    ``setup local|postgres|aws|slack|application`` (over :mod:`tasks.setup`)
:mod:`~flows.cli.auth`     ``auth`` (Strava OAuth; over :mod:`tasks.setup`)
:mod:`~flows.cli.run`      ``run`` and ``run --all`` (the round: :mod:`~flows.cli.round`)
:mod:`~flows.cli.demo`     ``demo`` and ``emulator``
:mod:`~flows.cli.validate` ``validate``
:mod:`~flows.cli.dashboard` ``dashboard`` and ``dashboard --index``
:mod:`~flows.cli.kudos`    ``predict-kudos``
:mod:`~flows.cli.deploy`   ``deploy-local``
:mod:`~flows.cli.athletes` ``athletes``
:mod:`~flows.cli.webhook`  ``webhook subscribe|list|delete|serve``
========================  =====================================================================

Shared helpers are public in :mod:`~flows.cli.common` (errors, options, output, help) and
:mod:`~flows.cli.console` (Prefect's temporary server, tracebacks, events, live progress);
:mod:`~flows.cli.options` holds the main flow's options for ``python flows/pipeline.py`` too.
Block setup and OAuth live in :mod:`tasks.setup`, for Python callers as well; the names below
stay importable from here for scripts written against earlier versions.
"""

from __future__ import annotations

from flows.cli.app import build_parser, main
from flows.cli.deploy import DEFAULT_POOL
from tasks.setup import (
    setup_application_blocks,
    setup_aws_blocks,
    setup_emulator_application,
    setup_emulator_blocks,
    setup_local_blocks,
    setup_postgres_blocks,
    setup_slack_block,
)

__all__ = [
    "DEFAULT_POOL",
    "build_parser",
    "main",
    "setup_application_blocks",
    "setup_aws_blocks",
    "setup_emulator_application",
    "setup_emulator_blocks",
    "setup_local_blocks",
    "setup_postgres_blocks",
    "setup_slack_block",
]
