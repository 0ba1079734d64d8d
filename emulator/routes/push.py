"""``/api/v3/push_subscriptions``: the Webhook Events API's subscription endpoints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emulator.app import EmulatorApp
from emulator.push import validate_callback
from emulator.state import Subscription
from emulator.wire import Response, form_params, iso_utc, json_response, strava_error

__all__ = ["PUSH_ITEM_PATH", "PUSH_PATH", "push", "subscription_json"]

PUSH_PATH = "/api/v3/push_subscriptions"
PUSH_ITEM_PATH = re.compile(r"^/api/v3/push_subscriptions/(\d+)$")


def push(
    app: EmulatorApp, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
) -> Response:
    """``/api/v3/push_subscriptions``: create (POST), list (GET), delete (DELETE /{id})."""
    params = form_params(query, headers, body)
    if params is None:
        return json_response(400, strava_error("Bad Request", "PushSubscription", "body", "invalid"))
    if params.get("client_id") != app.client_id or params.get("client_secret") != app.client_secret:
        field_name = "client_id" if params.get("client_id") != app.client_id else "client_secret"
        return json_response(401, strava_error("Authorization Error", "Application", field_name, "invalid"))
    item = PUSH_ITEM_PATH.match(path)
    if item is not None:
        if method != "DELETE":
            return json_response(404, strava_error("Record Not Found", "resource", "path", "invalid"))
        with app._lock:
            if app._subscription is None or app._subscription.id != int(item.group(1)):
                return json_response(404, strava_error("Record Not Found", "PushSubscription", "id", "invalid"))
            app._subscription = None
        return Response(204, b"")
    if method == "GET":
        with app._lock:
            subscription = app._subscription
            return json_response(200, [] if subscription is None else [subscription_json(app, subscription)])
    if method != "POST":
        return json_response(404, strava_error("Record Not Found", "resource", "path", "invalid"))
    for name in ("callback_url", "verify_token"):
        if not params.get(name):
            return json_response(400, strava_error("Bad Request", "PushSubscription", name, "missing"))
    already = strava_error("Bad Request", "PushSubscription", "", "already exists")
    with app._lock:
        if app._subscription is not None:
            return json_response(400, already)
        app._subscription_counter += 1
        challenge = app._new_token("challenge")[:20]
    refusal = validate_callback(
        params["callback_url"], params["verify_token"], challenge, app.push_timeout_seconds
    )  # no lock held: the callback may call the emulator
    if refusal is not None:
        return json_response(400, strava_error("Bad Request", "PushSubscription", "callback url", refusal))
    with app._lock:
        if app._subscription is not None:
            return json_response(400, already)
        subscription_id = 100_000 + app.seed % 1_000 * 100 + app._subscription_counter
        app._subscription = Subscription(subscription_id, params["callback_url"], app._now())
    return json_response(201, {"id": subscription_id})


def subscription_json(app: EmulatorApp, subscription: Subscription) -> dict[str, Any]:
    """The subscription as Strava lists it."""
    created = iso_utc(subscription.created_at)
    return {
        "id": subscription.id,
        "resource_state": 2,
        "application_id": int(app.client_id) if app.client_id.isdigit() else app.client_id,
        "callback_url": subscription.callback_url,
        "created_at": created,
        "updated_at": created,
    }
