"""Activities: the listing, one activity's detail and its streams.

``GET /api/v3/athlete/activities``, ``GET /api/v3/activities/{id}`` (DetailedActivity, with
``include_all_efforts``) and ``GET /api/v3/activities/{id}/streams`` (a StreamSet). Private
activities need ``activity:read_all``: without it the listing leaves them out and their detail
and streams are a 404, as for a deleted activity or another athlete's.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

from emulator.record import RESOLUTIONS, STREAM_KEYS, activity_streams, detailed_activity, has_streams, stream_set
from emulator.routes.base import ApiRoute, Call, missing_read_permission
from emulator.wire import Response, activity_json, json_response, not_found, start_of, strava_error

__all__ = ["ROUTES"]

_MAX_PER_PAGE = 200
_DEFAULT_PER_PAGE = 30


def list_activities(call: Call) -> Response:
    """The athlete's activities: ``before``, ``after``, ``page``, ``per_page`` as Strava reads them."""
    refused = missing_read_permission(call)
    if refused is not None:
        return refused
    st, query = call.athlete, call.query
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
    if not call.read_all:
        order = [entry for entry in order if not st.store[entry[1]].get("private")]
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


def _visible(call: Call) -> int | Response:
    """The activity id of the path if the token may see it, else the answer to send."""
    refused = missing_read_permission(call)
    if refused is not None:
        return refused
    activity_id = int(call.match.group(1))
    if not call.athlete.visible(activity_id, call.scope):  # deleted, another athlete's, or private
        return not_found("Activity", "id")
    return activity_id


def activity(call: Call) -> Response:
    """The DetailedActivity: the summary's values plus description, gear, laps, splits and efforts."""
    found = _visible(call)
    if isinstance(found, Response):
        return found
    st = call.athlete
    summary = st.store[found]
    gear_id = summary.get("gear_id")
    gear = st.gear_summary(str(gear_id)) if gear_id else None
    all_efforts = call.query.get("include_all_efforts", "false").lower() in ("true", "1")
    detail = detailed_activity(st.seed, summary, gear, st.detail_overrides.get(found), all_efforts)
    return json_response(200, detail)


def streams(call: Call) -> Response:
    """The activity's streams, a StreamSet.

    Parameters: ``keys`` (comma-separated; every channel when missing), ``key_by_type``,
    ``resolution`` (low, medium, high), ``series_type`` (distance, time).
    """
    found = _visible(call)
    if isinstance(found, Response):
        return found
    st, query = call.athlete, call.query
    summary = st.store[found]
    if not has_streams(summary):
        return not_found("Activity", "streams")
    resolution = query.get("resolution") or None
    series_type = query.get("series_type") or "distance"
    if resolution is not None and resolution not in RESOLUTIONS:
        return json_response(400, strava_error("Bad Request", "Stream", "resolution", "invalid"))
    if series_type not in ("distance", "time"):
        return json_response(400, strava_error("Bad Request", "Stream", "series_type", "invalid"))
    raw_keys = query.get("keys")
    keys = None if raw_keys is None else [k.strip() for k in raw_keys.split(",") if k.strip() in STREAM_KEYS]
    channels = activity_streams(st.seed, summary)
    streamset = stream_set(channels, keys, resolution, series_type, st.stream_overrides.get(found))
    if query.get("key_by_type", "false").lower() in ("true", "1"):
        return json_response(200, streamset)
    return json_response(200, [{"type": key, **value} for key, value in streamset.items()])


ROUTES = (
    ApiRoute("activities", "GET", re.compile(r"^/api/v3/athlete/activities$"), list_activities),
    ApiRoute("activity", "GET", re.compile(r"^/api/v3/activities/(\d+)$"), activity),
    ApiRoute("streams", "GET", re.compile(r"^/api/v3/activities/(\d+)/streams$"), streams),
)
