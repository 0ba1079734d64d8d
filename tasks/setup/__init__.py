"""Create the Prefect blocks strava-elt reads, and authorise athletes with Strava's OAuth.

The ``strava-elt setup ...`` and ``strava-elt auth`` commands are thin wrappers over these
functions; a notebook, a script or a test calls them the same way::

    from tasks.setup import setup_local_blocks, setup_postgres_blocks

    setup_local_blocks(Path(".strava-elt"))                      # DuckDB file and lake folder
    setup_postgres_blocks("postgresql+psycopg://u:p@host/db")    # or a PostgreSQL warehouse

Each ``setup_*`` function saves (or overwrites) its blocks on the Prefect server the process
talks to and returns ``{block name: what it is}``, secrets never included. Bad input raises
:class:`SetupError` with a message that says what to give instead. Prefect is imported inside
the functions, so importing this package is cheap and reads no Prefect setting.
"""

from __future__ import annotations

from tasks.setup.blocks import (
    LOCAL_BLOCKS,
    SetupError,
    setup_application_block,
    setup_application_blocks,
    setup_aws_blocks,
    setup_emulator_application,
    setup_emulator_blocks,
    setup_local_blocks,
    setup_postgres_blocks,
    setup_slack_block,
)
from tasks.setup.oauth import (
    AthleteAuthorized,
    add_athlete,
    athlete_label,
    authorization_url,
    parse_code,
    retry_hint,
    save_credentials,
)

__all__ = [
    "LOCAL_BLOCKS",
    "AthleteAuthorized",
    "SetupError",
    "add_athlete",
    "athlete_label",
    "authorization_url",
    "parse_code",
    "retry_hint",
    "save_credentials",
    "setup_application_block",
    "setup_application_blocks",
    "setup_aws_blocks",
    "setup_emulator_application",
    "setup_emulator_blocks",
    "setup_local_blocks",
    "setup_postgres_blocks",
    "setup_slack_block",
]
