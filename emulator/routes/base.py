"""What a route is: a method, a path pattern and a handler over the application's state."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emulator.app import EmulatorApp
from emulator.state import READ, READ_ALL, AthleteState, scopes_of
from emulator.wire import Response, json_response, strava_error

__all__ = ["ApiRoute", "Call", "Handler", "missing_read_permission"]


@dataclass(frozen=True)
class Call:
    """One authorised API request, as a handler sees it (the application's lock is held)."""

    app: EmulatorApp
    athlete: AthleteState
    match: re.Match[str]
    query: Mapping[str, str]
    scope: str

    @property
    def read_all(self) -> bool:
        """Whether the token may see private activities."""
        return READ_ALL in scopes_of(self.scope)


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class ApiRoute:
    """One athlete-authenticated ``/api/v3`` route (counted against the rate budget)."""

    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def missing_read_permission(call: Call) -> Response | None:
    """Strava's 401 for an activity route without ``activity:read`` (or ``read_all``), else None."""
    if scopes_of(call.scope) & {READ, READ_ALL}:
        return None
    return json_response(401, strava_error("Authorization Error", "AccessToken", "activity:read_permission", "missing"))
