"""Strava credentials: the one place that holds the OAuth secrets and builds authorised clients."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from tasks.errors import RefreshTokenRejected, classify, classify_exception

STRAVA_BASE_URL = "https://www.strava.com"
_EXPIRY_MARGIN_SECONDS = 60

logger = logging.getLogger(__name__)


class StravaCredentials(Block):
    """OAuth credentials of a Strava API application and the athlete who authorised it.

    Strava rotates refresh tokens: whenever it issues a new one, the block saves it back to
    itself before the new access token is used, so the next run can still authenticate.
    """

    _block_type_name = "Strava Credentials"
    _block_type_slug = "strava-credentials"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"
    _description = "OAuth client and rotating refresh token for the Strava API v3."

    client_id: str = Field(description="Client ID of your Strava API application (strava.com/settings/api).")
    client_secret: SecretStr = Field(description="Client secret of your Strava API application.")
    refresh_token: SecretStr = Field(
        description=(
            "Refresh token of the athlete, granted with scope activity:read_all "
            "(`strava-elt auth` obtains it). Rotated by Strava and saved back here."
        )
    )
    base_url: str = Field(
        default=STRAVA_BASE_URL,
        description=(
            "Strava's base URL (the API is under /api/v3, OAuth under /oauth). "
            "Point it at the emulator locally."
        ),
    )
    timeout_seconds: float = Field(default=30.0, description="Timeout of every HTTP request, in seconds.")

    @property
    def api_url(self) -> str:
        """The API v3 root."""
        return self.base_url.rstrip("/") + "/api/v3"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return self.base_url.rstrip("/") + "/oauth/token"

    def get_client(self) -> httpx.Client:
        """Build an httpx client for the API that authenticates, refreshes and persists tokens."""
        return httpx.Client(
            base_url=self.api_url,
            auth=_StravaAuth(self),
            timeout=self.timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": "strava-elt"},
        )

    def exchange_token(self, **grant: str) -> dict:
        """POST to /oauth/token with this application's id and secret; raise a typed error on failure."""
        data = {
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            **grant,
        }
        try:
            with httpx.Client(timeout=self.timeout_seconds) as http:
                response = http.post(self.token_url, data=data)
        except httpx.HTTPError as exc:
            raise classify_exception(exc) from None
        error = classify(response, token_endpoint=True)
        if error is not None:
            raise error
        return response.json()

    def refresh_access_token(self) -> tuple[str, float]:
        """Exchange the refresh token; persist a rotated one before returning the access token."""
        payload = self.exchange_token(
            grant_type="refresh_token", refresh_token=self.refresh_token.get_secret_value()
        )
        try:
            access_token = str(payload["access_token"])
            expires_at = float(payload["expires_at"])
        except (KeyError, TypeError, ValueError):
            raise RefreshTokenRejected(
                "Strava's token endpoint answered without an access token; "
                "run `strava-elt auth` to authorise again."
            ) from None
        new_refresh = payload.get("refresh_token")
        if new_refresh and new_refresh != self.refresh_token.get_secret_value():
            self.refresh_token = SecretStr(str(new_refresh))
            self._persist()
        return access_token, expires_at

    def _persist(self) -> None:
        name = getattr(self, "_block_document_name", None)
        if not name:
            logger.warning(
                "Strava rotated the refresh token but this StravaCredentials block was never "
                "saved; save it (block.save(name)) or the next run cannot authenticate."
            )
            return
        self.save(name, overwrite=True)
        logger.info("Saved the rotated Strava refresh token to block %r", name)


class _StravaAuth(httpx.Auth):
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
                self._access_token, self._expires_at = self._credentials.refresh_access_token()
            return self._access_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            token = self._token(force=True, stale=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
