"""``GET /api/v3/athlete``: the authenticated athlete."""

from __future__ import annotations

import re
from collections.abc import Mapping

from emulator.app import EmulatorApp
from emulator.routes.base import ApiRoute
from emulator.state import AthleteState
from emulator.wire import Response, json_response

__all__ = ["ROUTES"]


def athlete(app: EmulatorApp, st: AthleteState, match: re.Match[str], query: Mapping[str, str]) -> Response:
    """The DetailedAthlete of the token's athlete."""
    return json_response(200, st.detailed())


ROUTES = (ApiRoute("GET", re.compile(r"^/api/v3/athlete$"), athlete),)
