"""What a route is: a method, a path pattern and a handler over the application's state."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emulator.app import EmulatorApp
from emulator.state import AthleteState
from emulator.wire import Response

__all__ = ["ApiRoute", "Handler"]

Handler = Callable[[EmulatorApp, AthleteState, "re.Match[str]", Mapping[str, str]], Response]
"""``handler(app, athlete, match, query)``, called with the application's lock held."""


@dataclass(frozen=True)
class ApiRoute:
    """One athlete-authenticated ``/api/v3`` route (counted against the rate budget)."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
