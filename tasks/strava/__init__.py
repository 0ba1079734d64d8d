"""The Strava API client.

The authorised client with its rate-limit governor and retries, pages
of activities, and the thin Prefect tasks around them; :mod:`~tasks.strava.roster` lists an
application's athletes. Errors and limits live in
:mod:`blocks.strava_errors` and :mod:`blocks.strava_ratelimit` (the credentials block builds clients).
"""

from __future__ import annotations

from tasks.strava import roster
from tasks.strava.client import (
    PER_PAGE,
    PaginationLoopError,
    Paginator,
    StravaClient,
    fetch_activities_page,
    fetch_athlete,
    open_client,
)

__all__ = [
    "PER_PAGE",
    "PaginationLoopError",
    "Paginator",
    "StravaClient",
    "fetch_activities_page",
    "fetch_athlete",
    "open_client",
    "roster",
]
