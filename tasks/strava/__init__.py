"""The Strava API package: everything that speaks HTTP to Strava.

- :mod:`~tasks.strava.transport` the httpx transport with one deadline per request
- :mod:`~tasks.strava.errors` the error tree, classified in one place, and the retry loop
- :mod:`~tasks.strava.ratelimit` the rate-limit governor (``X-RateLimit-*`` headers) and the shared slot
- :mod:`~tasks.strava.auth` OAuth: token exchange and refresh (the rotated token written back
  through the block), authorising an athlete, the authorised ``httpx.Client`` of a block
- :mod:`~tasks.strava.client` :class:`StravaClient` (one request path), the paginator, pages of activities
- :mod:`~tasks.strava.pages` one task per page (fetch and land) and the extract's tally
- :mod:`~tasks.strava.subscriptions` the application's push subscription
- :mod:`~tasks.strava.roster` an application's athletes

The blocks (:mod:`blocks.strava`) hold configuration only; this package builds clients from
them (:func:`open_client`, :func:`~tasks.strava.auth.athlete_http_client`).
"""

from __future__ import annotations

from tasks.strava import auth, errors, ratelimit, roster
from tasks.strava.client import (
    PER_PAGE,
    ActivityPages,
    PaginationLoopError,
    Paginator,
    StravaClient,
    fetch_athlete,
    open_client,
)
from tasks.strava.pages import ExtractTally, PageRows, fetch_page, log_findings

__all__ = [
    "PER_PAGE",
    "ActivityPages",
    "PaginationLoopError",
    "Paginator",
    "StravaClient",
    "fetch_athlete",
    "ExtractTally",
    "PageRows",
    "fetch_page",
    "log_findings",
    "open_client",
    "auth",
    "errors",
    "ratelimit",
    "roster",
]
