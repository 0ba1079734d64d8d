"""The dispatch table: every athlete-authenticated route, and the route names requests are counted by."""

from __future__ import annotations

from collections.abc import Mapping

from emulator.app import EmulatorApp
from emulator.routes import activities, athlete, gear
from emulator.routes.base import ApiRoute, Call
from emulator.routes.oauth import TOKEN_PATHS
from emulator.routes.push import PUSH_ITEM_PATH, PUSH_PATH
from emulator.state import AthleteState
from emulator.wire import Response, not_found

__all__ = ["API_ROUTES", "ApiRoute", "route_api", "route_name"]

API_ROUTES: tuple[ApiRoute, ...] = (*athlete.ROUTES, *activities.ROUTES, *gear.ROUTES)
"""Every athlete-authenticated route, in the order they are tried."""


def route_name(method: str, path: str) -> str | None:
    """The name of the route that serves ``path`` (``token``, ``push``, ``activity``...), or None."""
    if path in TOKEN_PATHS:
        return "token"
    if path == PUSH_PATH or PUSH_ITEM_PATH.match(path):
        return "push"
    return next((r.name for r in API_ROUTES if r.method == method and r.pattern.match(path)), None)


def route_api(
    app: EmulatorApp, st: AthleteState, scope: str, method: str, path: str, query: Mapping[str, str]
) -> Response:
    """Answer an authorised API request with the first route that matches, else Strava's 404."""
    for route in API_ROUTES:
        if route.method != method:
            continue
        match = route.pattern.match(path)
        if match is not None:
            return route.handler(Call(app, st, match, query, scope))
    return not_found()
