"""``GET /api/v3/gear/{id}``: one of the athlete's shoes or bikes."""

from __future__ import annotations

import re

from emulator.routes.base import ApiRoute, Call
from emulator.wire import Response, json_response, not_found

__all__ = ["ROUTES"]


def gear(call: Call) -> Response:
    """The DetailedGear; its distance is that of the athlete's current activities with it. Else 404."""
    detail = call.athlete.gear_detail(call.match.group(1))
    return not_found("Gear", "id") if detail is None else json_response(200, detail)


ROUTES = (ApiRoute("gear", "GET", re.compile(r"^/api/v3/gear/([A-Za-z0-9]+)$"), gear),)
