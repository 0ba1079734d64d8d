"""The emulator's routes by area, and the table the server dispatches API requests with.

Token (:mod:`.oauth`) and push-subscription (:mod:`.push`) requests authenticate the
application; every other ``/api/v3`` route is an :class:`ApiRoute` that authenticates an
athlete and counts against the rate budget.
"""

from __future__ import annotations

from collections.abc import Mapping

from emulator.app import EmulatorApp
from emulator.routes import activities, athlete
from emulator.routes.base import ApiRoute
from emulator.state import AthleteState
from emulator.wire import Response, not_found

__all__ = ["API_ROUTES", "ApiRoute", "route_api"]

API_ROUTES: tuple[ApiRoute, ...] = (*athlete.ROUTES, *activities.ROUTES)
"""Every athlete-authenticated route, in the order they are tried."""


def route_api(app: EmulatorApp, st: AthleteState, method: str, path: str, query: Mapping[str, str]) -> Response:
    """Answer an authorised API request with the first route that matches, else Strava's 404."""
    for route in API_ROUTES:
        if route.method != method:
            continue
        match = route.pattern.match(path)
        if match is not None:
            return route.handler(app, st, match, query)
    return not_found()
