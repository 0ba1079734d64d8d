"""The athlete: ``GET /api/v3/athlete``, ``/athlete/zones`` and ``/athletes/{id}/stats``."""

from __future__ import annotations

import re

from emulator.record import stats_totals, zones
from emulator.routes.base import ApiRoute, Call
from emulator.wire import Response, json_response, strava_error

__all__ = ["ROUTES"]


def athlete(call: Call) -> Response:
    """The DetailedAthlete of the token's athlete."""
    return json_response(200, call.athlete.detailed())


def athlete_zones(call: Call) -> Response:
    """The athlete's heart-rate and power zones."""
    generator = call.athlete.generator
    return json_response(200, zones(generator.max_heartrate, generator.ftp))


def athlete_stats(call: Call) -> Response:
    """ActivityStats of the token's athlete; another athlete's id is a 403, as on Strava."""
    st = call.athlete
    if int(call.match.group(1)) != st.athlete_id:
        return json_response(403, strava_error("Forbidden", "Athlete", "id", "forbidden"))
    current = [st.store[i] for i in st.store if i not in st.deleted]
    return json_response(200, stats_totals(current, call.app._now()))


ROUTES = (
    ApiRoute("athlete", "GET", re.compile(r"^/api/v3/athlete$"), athlete),
    ApiRoute("zones", "GET", re.compile(r"^/api/v3/athlete/zones$"), athlete_zones),
    ApiRoute("stats", "GET", re.compile(r"^/api/v3/athletes/(\d+)/stats$"), athlete_stats),
)
