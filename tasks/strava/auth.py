"""OAuth against Strava's token endpoint, and the authorised HTTP client of an athlete's block.

The blocks (:mod:`blocks.strava`) hold the configuration: the application's id and secret,
the athlete's refresh token, and writing a rotated token back into the block's document
(:meth:`~blocks.strava.StravaCredentials.store_refresh_token`). Everything that speaks HTTP
lives here, on the Strava transport (:mod:`tasks.strava.transport`) and error tree
(:mod:`tasks.strava.errors`): exchanging a grant, refreshing the access token, authorising an
athlete, and :func:`athlete_http_client`, the ``httpx.Client`` that
:class:`~tasks.strava.client.StravaClient` sends through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from blocks.strava import REQUIRED_SCOPE, STRAVA_BASE_URL, StravaApplication, StravaCredentials
from tasks.strava.errors import AthleteRevoked, ForbiddenError, RefreshTokenRejected, RetryPolicy, send_with_retries
from tasks.strava.transport import deadline_client

_EXPIRY_MARGIN_SECONDS = 60
_TOKEN_RETRIES = RetryPolicy(attempts=3)
_HEADERS = {"Accept": "application/json", "User-Agent": "strava-elt"}

logger = logging.getLogger(__name__)


class ApiEndpoint(Protocol):
    """What an API client needs from a block: the API root and the request deadline."""

    @property
    def api_url(self) -> str: ...  # noqa: D102

    @property
    def deadline_seconds(self) -> float: ...  # noqa: D102


def api_client(endpoint: ApiEndpoint, auth: httpx.Auth | None = None) -> httpx.Client:
    """An httpx client on the API root with the block's deadline (no token unless ``auth`` adds one).

    For application-level calls (push subscriptions) add the application's
    :meth:`~blocks.strava.StravaApplication.client_credentials` to each request.
    """
    return deadline_client(endpoint.deadline_seconds, base_url=endpoint.api_url, auth=auth, headers=_HEADERS)


def athlete_http_client(credentials: StravaCredentials) -> httpx.Client:
    """An httpx client for the API that authenticates, refreshes and persists the athlete's tokens."""
    return api_client(credentials, auth=StravaAuth(credentials))


def _exchange(source: StravaApplication | StravaCredentials, grant: dict[str, str]) -> Any:
    """POST a grant to the token endpoint with the application's id and secret; the JSON body, or None."""
    client_id, client_secret = source.oauth_client()
    data = {"client_id": client_id, "client_secret": client_secret.get_secret_value(), **grant}
    with deadline_client(source.deadline_seconds) as http:
        response = send_with_retries(
            lambda: http.post(source.token_url, data=data),
            policy=_TOKEN_RETRIES,
            logger=logger,
            token_endpoint=True,
            method="POST",
        )
    try:
        return response.json()
    except ValueError:
        return None


def exchange_token(source: StravaApplication | StravaCredentials, **grant: str) -> dict[str, Any]:
    """POST a grant to /oauth/token with the application's id and secret.

    5xx, HTML pages and network trouble are retried (bounded); anything else raises the
    typed error of :func:`tasks.strava.errors.classify` (no secret in its message).
    """
    payload = _exchange(source, grant)
    if not isinstance(payload, dict):
        raise RefreshTokenRejected(
            "Strava's token endpoint answered with something other than a JSON object; "
            "check the base URL, or run `strava-elt auth` to authorise again."
        )
    return payload


def check_scope(granted: str | None) -> None:
    """Raise :class:`ForbiddenError` when ``granted`` (if known) lacks ``activity:read_all``."""
    if granted is None:
        return
    scopes = {part for part in granted.replace(" ", ",").split(",") if part}
    if REQUIRED_SCOPE not in scopes:
        hint = (
            "Private and followers-only activities would be missing: run `strava-elt auth` again "
            "and leave 'View data about your private activities' ticked."
        )
        raise ForbiddenError(
            f"Strava granted the scope {granted!r} without {REQUIRED_SCOPE}. {hint}",
            message=f"granted scope {granted!r}",
            hint=hint,
        )


def _refresh_token_of(payload: dict[str, Any]) -> SecretStr:
    """The refresh token of an authorization-code grant, its scope checked."""
    check_scope(payload.get("scope"))
    refresh_token = payload.get("refresh_token")
    if not refresh_token:
        raise RefreshTokenRejected(
            "Strava's token endpoint answered without a refresh token; run `strava-elt auth` to authorise again."
        )
    return SecretStr(str(refresh_token))


def _athlete_of(payload: dict[str, Any]) -> dict[str, Any]:
    athlete = payload.get("athlete")
    return athlete if isinstance(athlete, dict) else {}


def authorize_athlete(application: StravaApplication, code: str) -> tuple[StravaCredentials, dict[str, Any]]:
    """Exchange an athlete's one-time authorization code for a credentials block referencing ``application``.

    Returns:
        The athlete's credentials (not saved yet; ``athlete_id`` set when Strava sent the
        athlete) and the athlete Strava sent with the tokens (empty when it sent none).

    Raises:
        RefreshTokenRejected: The code or the client secret was rejected.
        ForbiddenError: The response names a scope without ``activity:read_all``.

    """
    payload = exchange_token(application, grant_type="authorization_code", code=code)
    refresh_token = _refresh_token_of(payload)
    athlete = _athlete_of(payload)
    athlete_id = athlete.get("id")
    name = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip()
    credentials = StravaCredentials(
        application=application,
        refresh_token=refresh_token,
        athlete_id=int(athlete_id) if athlete_id is not None else None,
        athlete_name=name or None,
    )
    return credentials, athlete


def from_authorization_code(
    client_id: str,
    client_secret: str,
    code: str,
    *,
    base_url: str = STRAVA_BASE_URL,
    timeout_seconds: float = 30.0,
) -> tuple[StravaCredentials, dict[str, Any]]:
    """Exchange a one-time authorization code for a single credentials block (no application block).

    Returns:
        The credentials holding the new refresh token (not saved yet) and the athlete
        Strava sent with the tokens (empty when it sent none).

    Raises:
        RefreshTokenRejected: The code or the client secret was rejected.
        ForbiddenError: The response names a scope without ``activity:read_all``.

    """
    credentials = StravaCredentials(
        client_id=str(client_id),
        client_secret=SecretStr(client_secret),
        refresh_token=SecretStr(""),
        base_url=base_url,
        timeout_seconds=timeout_seconds,
    )
    payload = exchange_token(credentials, grant_type="authorization_code", code=code)
    credentials.refresh_token = _refresh_token_of(payload)
    return credentials, _athlete_of(payload)


def revoked_error(credentials: StravaCredentials) -> AthleteRevoked:
    """The error of a run for an athlete whose block is marked revoked: what happened, what to do."""
    who = (
        f"athlete {credentials.athlete_id}"
        if credentials.athlete_id is not None
        else f"the athlete of block {credentials.block_name!r}"
    )
    app = credentials.application.block_name if credentials.application is not None else None
    command = f"strava-elt auth --application {app}" if app else "strava-elt auth"
    when = f" on {credentials.revoked_at}" if credentials.revoked_at else ""
    why = f" ({credentials.revoked_reason})" if credentials.revoked_reason else ""
    hint = f"Run `{command}` and have the athlete authorise again; until then runs skip this athlete."
    return AthleteRevoked(
        f"{who}'s authorisation was revoked{when}{why}; run `{command}` to authorise again.",
        athlete_id=credentials.athlete_id,
        block_name=credentials.block_name,
        message=credentials.revoked_reason or "authorisation revoked",
        hint=hint,
    )


def refresh_access_token(credentials: StravaCredentials) -> tuple[str, float]:
    """Exchange the athlete's refresh token; persist a rotated one before returning the access token.

    Returns:
        The access token and when to refresh it, by this machine's clock (from
        ``expires_in``, so a skewed clock does not matter; ``expires_at`` otherwise).

    Raises:
        AthleteRevoked: The block is marked revoked (nothing is sent), or Strava rejected
            the refresh token of an application's athlete (the block is marked and saved first).
        RefreshTokenRejected: Strava rejected the client or the token of a single block.

    """
    if credentials.status == "revoked":
        raise revoked_error(credentials)
    requested_at = time.time()
    try:
        payload = exchange_token(
            credentials, grant_type="refresh_token", refresh_token=credentials.refresh_token.get_secret_value()
        )
    except RefreshTokenRejected as exc:
        if credentials.application is None or exc.blames_client:
            raise  # a single block, or the application's id or secret: no athlete to mark
        credentials.mark_revoked(f"Strava rejected the refresh token: {exc.message}")
        raise revoked_error(credentials) from exc
    try:
        access_token = str(payload["access_token"])
        if payload.get("expires_in") is not None:
            expires_at = requested_at + float(payload["expires_in"])
        else:
            expires_at = float(payload["expires_at"])
    except (KeyError, TypeError, ValueError):
        raise RefreshTokenRejected(
            "Strava's token endpoint answered without an access token; run `strava-elt auth` to authorise again."
        ) from None
    new_refresh = payload.get("refresh_token")
    if new_refresh:
        credentials.store_refresh_token(str(new_refresh))
    return access_token, expires_at


class StravaAuth(httpx.Auth):
    """Bearer auth that refreshes before expiry and once after a 401."""

    def __init__(self, credentials: StravaCredentials) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0

    def _token(self, *, force: bool = False, stale: str | None = None) -> str:
        with self._lock:
            expired = time.time() >= self._expires_at - _EXPIRY_MARGIN_SECONDS
            # Another thread may have refreshed while this one waited for the lock.
            refreshed_meanwhile = stale is not None and self._access_token != stale
            if self._access_token is None or expired or (force and not refreshed_meanwhile):
                self._access_token, self._expires_at = refresh_access_token(self._credentials)
            return self._access_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            token = self._token(force=True, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
