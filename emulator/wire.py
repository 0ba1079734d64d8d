"""The emulator's wire format: responses, Strava's error JSON, request parsing (no state)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "Response",
    "activity_json",
    "aware",
    "bearer_token",
    "copy_activity",
    "form_params",
    "html_response",
    "iso_utc",
    "json_response",
    "not_found",
    "page_of",
    "pair",
    "start_of",
    "strava_error",
    "utcnow",
]


@dataclass
class Response:
    """One HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def strava_error(message: str, resource: str, field_name: str, code: str) -> dict[str, Any]:
    """Strava's error JSON: a message and one error."""
    return {
        "message": message,
        "errors": [{"resource": resource, "field": field_name, "code": code}],
    }


def json_response(status: int, payload: Any) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def html_response(status: int, text: str) -> Response:
    """An HTML answer (what a proxy in front of Strava sends)."""
    return Response(status, text.encode("utf-8"), "text/html")


def utcnow() -> datetime:
    """The real clock, aware UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with a time zone; a naive one is taken to be UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def copy_activity(activity: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of an activity (its values are JSON: dicts, lists and scalars)."""
    out = dict(activity)
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = dict(value)
        elif isinstance(value, list):
            out[key] = list(value)
    return out


def pair(values: tuple[int, int] | list[int]) -> tuple[int, int]:
    """Two ints."""
    first, second = values
    return int(first), int(second)


def start_of(entry: tuple[int, int]) -> int:
    """The start epoch of a ``(start, id)`` entry."""
    return entry[0]


def page_of(query: Mapping[str, str]) -> int:
    """The ``page`` parameter, 1 when missing or not a number."""
    try:
        return max(1, int(query.get("page", "1")))
    except ValueError:
        return 1


def bearer_token(headers: Mapping[str, str]) -> str:
    """The Bearer token of ``headers``, or ""."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def iso_utc(epoch: int) -> str:
    """Epoch seconds as Strava's ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def form_params(query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> dict[str, str] | None:
    """Parameters from the query string and a form or JSON body; None for a body that is not an object."""
    params = dict(query)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "").lower()
    text = body.decode("utf-8", "replace")
    if "json" in content_type and text.strip():
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return None
        params.update({k: str(v) for k, v in payload.items()})
    elif text:
        params.update(parse_qsl(text, keep_blank_values=True))
    return params


def activity_json(activity: dict[str, Any], raw: Mapping[str, str] | None) -> str:
    """An activity's JSON text, with the raw text of :meth:`StravaEmulator.set_raw_fields` spliced in."""
    if not raw:
        return json.dumps(activity, ensure_ascii=False)
    kept = {k: v for k, v in activity.items() if k not in raw}
    spliced = [json.dumps(kept, ensure_ascii=False)[1:-1], *(f"{json.dumps(k)}:{v}" for k, v in raw.items())]
    return "{" + ",".join(part for part in spliced if part) + "}"


def not_found(resource: str = "resource", field_name: str = "path") -> Response:
    """Strava's 404: ``Record Not Found`` (``resource``/``field``/``invalid``)."""
    return json_response(404, strava_error("Record Not Found", resource, field_name, "invalid"))
