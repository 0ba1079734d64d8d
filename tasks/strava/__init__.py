"""The Strava API client.

The authorised client with its rate-limit governor and retries, pages of activities
(:class:`ActivityPages`), and the thin Prefect tasks around them: one task per page
(:func:`~tasks.strava.pages.fetch_page`: fetch and land) and the extract's tally.
:mod:`~tasks.strava.roster` lists an application's athletes, :mod:`~tasks.strava.subscriptions`
manages its push subscription. Errors and limits live in
:mod:`blocks.strava_errors` and :mod:`blocks.strava_ratelimit` (the credentials block builds clients).
"""

from __future__ import annotations

from tasks.strava import roster
from tasks.strava.client import (
    PER_PAGE,
    ActivityPages,
    PaginationLoopError,
    Paginator,
    StravaClient,
    fetch_athlete,
    fetch_next_page,
    open_client,
)
from tasks.strava.pages import ExtractTally, PageRows, fetch_page, log_findings

__all__ = [
    "PER_PAGE",
    "ActivityPages",
    "PaginationLoopError",
    "Paginator",
    "StravaClient",
    "fetch_next_page",
    "fetch_athlete",
    "ExtractTally",
    "PageRows",
    "fetch_page",
    "log_findings",
    "open_client",
    "roster",
]
