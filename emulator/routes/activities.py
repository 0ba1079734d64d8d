"""``/api/v3/athlete/activities`` (the listing) and ``/api/v3/activities/{id}`` (one activity)."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping

from emulator.app import EmulatorApp
from emulator.routes.base import ApiRoute
from emulator.state import AthleteState
from emulator.wire import Response, activity_json, copy_activity, json_response, not_found, start_of, strava_error

__all__ = ["ROUTES"]

_MAX_PER_PAGE = 200
_DEFAULT_PER_PAGE = 30


def list_activities(app: EmulatorApp, st: AthleteState, match: re.Match[str], query: Mapping[str, str]) -> Response:
    """The athlete's activities: ``before``, ``after``, ``page``, ``per_page`` as Strava reads them."""
    numbers: dict[str, int | None] = {}
    for name in ("before", "after", "page", "per_page"):
        raw = query.get(name)
        if raw is None:
            numbers[name] = None
            continue
        try:
            numbers[name] = int(raw)
        except ValueError:
            return json_response(400, strava_error("Bad Request", "Application", name, "invalid"))
    before, after = numbers["before"], numbers["after"]
    page = max(1, numbers["page"] or 1)
    per_page = numbers["per_page"] or _DEFAULT_PER_PAGE
    per_page = _DEFAULT_PER_PAGE if per_page < 1 else min(per_page, _MAX_PER_PAGE)
    order = st.sorted()
    lo = 0 if after is None else bisect_right(order, after, key=start_of)
    hi = len(order) if before is None else bisect_left(order, before, key=start_of)
    start = (page - 1) * per_page
    if after is not None and before is None:  # oldest first, as Strava does
        ids = [i for _, i in order[lo + start : min(hi, lo + start + per_page)]]
    else:
        top = hi - start
        ids = [i for _, i in reversed(order[max(lo, top - per_page) : max(lo, top)])]
    items = [activity_json(st.store[i], st.raw_fields.get(i)) for i in ids]
    for number, position, raw in st.raw_items:
        if number == page:
            items.insert(min(position, len(items)), raw)
    return Response(200, ("[" + ",".join(items) + "]").encode("utf-8"))


def activity(app: EmulatorApp, st: AthleteState, match: re.Match[str], query: Mapping[str, str]) -> Response:
    """One of the athlete's activities; a deleted one or another athlete's is a 404."""
    activity_id = int(match.group(1))
    if activity_id not in st.store or activity_id in st.deleted:  # another athlete's too
        return not_found("Activity", "id")
    detailed = copy_activity(st.store[activity_id])
    detailed.update({"resource_state": 3, "description": None})
    return json_response(200, detailed)


ROUTES = (
    ApiRoute("GET", re.compile(r"^/api/v3/athlete/activities$"), list_activities),
    ApiRoute("GET", re.compile(r"^/api/v3/activities/(\d+)$"), activity),
)
