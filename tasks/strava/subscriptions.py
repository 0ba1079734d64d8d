"""Strava push subscriptions: create, list and delete the application's one subscription.

Strava's ``/api/v3/push_subscriptions`` authenticates with the application's client id and
secret as form parameters (not an athlete's token). Every call has the application's
deadline; Strava's refusals raise :class:`SubscriptionError` subclasses whose messages say
what to do. The verify token and the client secret never appear in a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from tasks.strava.auth import ApiEndpoint, api_client

__all__ = [
    "ApplicationCredentials",
    "BadApplicationCredentials",
    "CallbackValidationFailed",
    "Subscription",
    "SubscriptionError",
    "SubscriptionExists",
    "create_subscription",
    "delete_subscription",
    "list_subscriptions",
]

PATH = "/push_subscriptions"


class ApplicationCredentials(ApiEndpoint, Protocol):
    """What a subscription call needs: a ``StravaApplication`` (or a single-athlete ``StravaCredentials``)."""

    def oauth_client(self) -> tuple[str, SecretStr]: ...  # noqa: D102


class SubscriptionError(RuntimeError):
    """Strava refused a push subscription call."""


class SubscriptionExists(SubscriptionError):
    """The application already has its one push subscription."""


class CallbackValidationFailed(SubscriptionError):
    """Strava's validation GET to the callback URL did not get the challenge echoed."""


class BadApplicationCredentials(SubscriptionError):
    """Strava rejected the application's client id or secret."""


@dataclass(frozen=True)
class Subscription:
    """One push subscription as Strava lists it."""

    id: int
    callback_url: str
    application_id: str
    created_at: str | None = None

    @classmethod
    def of(cls, item: Any) -> Subscription:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int):
            raise SubscriptionError(f"Strava listed a push subscription without an integer id: {item!r:.200}")
        return cls(
            id=int(item["id"]),
            callback_url=str(item.get("callback_url", "")),
            application_id=str(item.get("application_id", "")),
            created_at=item.get("created_at"),
        )


def _credentials(app: ApplicationCredentials) -> dict[str, str]:
    client_id, client_secret = app.oauth_client()
    return {"client_id": str(client_id), "client_secret": client_secret.get_secret_value()}


def _codes(response: httpx.Response) -> str:
    """Strava's error codes and fields, e.g. ``callback url: GET to callback URL does not return 200``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return str(body)[:200]
    parts = [
        f"{e.get('field') or e.get('resource', '')}: {e.get('code', '')}".strip(": ")
        for e in errors
        if isinstance(e, dict)
    ]
    return "; ".join(parts) or str(body.get("message", ""))


def _raise_for(response: httpx.Response, action: str) -> None:
    """Raise the typed error for a refusal; return for a success."""
    if response.is_success:
        return
    codes = _codes(response)
    status = response.status_code
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        raise BadApplicationCredentials(
            f"Strava rejected the application's credentials when trying to {action} (HTTP {status}: {codes}); "
            "check client_id and client_secret in the application block (strava.com/settings/api)."
        )
    if "already exists" in codes:
        raise SubscriptionExists(
            f"The application already has a push subscription (Strava allows one per application): {codes}. "
            "`strava-elt webhook list` shows it; `strava-elt webhook delete` removes it."
        )
    if "callback" in codes.lower():
        raise CallbackValidationFailed(
            f"Strava could not validate the callback URL ({codes}): it must answer Strava's GET within two "
            "seconds with the hub.challenge echoed and the same verify token. Start `strava-elt webhook serve` "
            "behind the public URL first, with the same verify token."
        )
    raise SubscriptionError(f"Strava refused to {action} (HTTP {status}: {codes}).")


def _client(app: ApplicationCredentials) -> httpx.Client:
    return api_client(app)


def create_subscription(app: ApplicationCredentials, callback_url: str, verify_token: SecretStr) -> int:
    """Create the application's push subscription; Strava validates ``callback_url`` before answering.

    Returns:
        The new subscription's id.

    Raises:
        SubscriptionExists: There is one already.
        CallbackValidationFailed: The callback did not echo the challenge.
        BadApplicationCredentials: Wrong client id or secret.

    """
    form = {**_credentials(app), "callback_url": callback_url, "verify_token": verify_token.get_secret_value()}
    with _client(app) as http:
        response = http.post(PATH, data=form)
    _raise_for(response, "create a push subscription")
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise SubscriptionError(f"Strava created a push subscription but sent no id: {body!r:.200}")
    return int(body["id"])


def list_subscriptions(app: ApplicationCredentials) -> list[Subscription]:
    """The application's push subscriptions (none or one)."""
    with _client(app) as http:
        response = http.get(PATH, params=_credentials(app))
    _raise_for(response, "list push subscriptions")
    body = response.json()
    if not isinstance(body, list):
        raise SubscriptionError(f"Strava listed push subscriptions as {type(body).__name__}, not a list")
    return [Subscription.of(item) for item in body]


def delete_subscription(app: ApplicationCredentials, subscription_id: int) -> None:
    """Delete a push subscription by id (Strava answers 204)."""
    with _client(app) as http:
        response = http.request("DELETE", f"{PATH}/{int(subscription_id)}", params=_credentials(app))
    if response.status_code == HTTPStatus.NOT_FOUND:
        raise SubscriptionError(
            f"No push subscription {subscription_id} for this application; `strava-elt webhook list` shows its id."
        )
    _raise_for(response, f"delete push subscription {subscription_id}")
