"""Strava credentials: the one place that holds the OAuth secrets and builds authorised clients."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from tasks.errors import ForbiddenError, RefreshTokenRejected, RetryPolicy, send_with_retries

STRAVA_BASE_URL = "https://www.strava.com"
DEFAULT_REDIRECT_URI = "http://localhost/exchange_token"
"""Strava allows any redirect to ``localhost``: the browser shows the code in the address bar."""
DEFAULT_SCOPE = "read,activity:read_all"
REQUIRED_SCOPE = "activity:read_all"
"""Without it, activities visible only to the athlete (or followers) are missing."""
_EXPIRY_MARGIN_SECONDS = 60
_TOKEN_RETRIES = RetryPolicy(attempts=3)

logger = logging.getLogger(__name__)


def normalise_base_url(value: str) -> str:
    """Strava's root: a trailing slash or ``/api/v3`` (the API root people copy) is dropped."""
    base = value.strip().rstrip("/").removesuffix("/api/v3").rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise ValueError(f"base URL {value!r} is not an http(s) URL; Strava's is {STRAVA_BASE_URL}")
    return base


class StravaCredentials(Block):
    """OAuth credentials of a Strava API application and the athlete who authorised it.

    Strava rotates refresh tokens: whenever it issues a new one, the block saves it back to
    itself before the new access token is used, so the next run can still authenticate.
    """

    _block_type_name = "Strava Credentials"
    _block_type_slug = "strava-credentials"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"  # type: ignore[assignment]
    _description = "OAuth client and rotating refresh token for the Strava API v3."

    client_id: str = Field(
        title="Client ID", description="Client ID of your Strava API application (strava.com/settings/api)."
    )
    client_secret: SecretStr = Field(title="Client secret", description="Client secret of your Strava API application.")
    refresh_token: SecretStr = Field(
        title="Refresh token",
        description=(
            "Refresh token of the athlete, granted with scope activity:read_all "
            "(`strava-elt auth` obtains it). Rotated by Strava and saved back here."
        ),
    )
    base_url: str = Field(
        default=STRAVA_BASE_URL,
        title="Base URL",
        description=(
            "Strava's base URL, https://www.strava.com (the API is under /api/v3, OAuth under /oauth; "
            "https://www.strava.com/api/v3 is accepted too). Point it at the emulator locally."
        ),
    )
    timeout_seconds: float = Field(
        default=30.0, title="Timeout (seconds)", description="Timeout of every HTTP request, in seconds."
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return normalise_base_url(value)

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

    def exchange_token(self, **grant: str) -> dict[str, Any]:
        """POST a grant to /oauth/token with this application's id and secret.

        5xx, HTML pages and network trouble are retried (bounded); anything else raises the
        typed error of :func:`tasks.errors.classify` (no secret in its message).
        """
        data = {
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            **grant,
        }
        with httpx.Client(timeout=self.timeout_seconds) as http:
            response = send_with_retries(
                lambda: http.post(self.token_url, data=data),
                policy=_TOKEN_RETRIES,
                logger=logger,
                token_endpoint=True,
                method="POST",
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise RefreshTokenRejected(
                "Strava's token endpoint answered with something other than a JSON object; "
                "check the base URL, or run `strava-elt auth` to authorise again."
            )
        return payload

    def refresh_access_token(self) -> tuple[str, float]:
        """Exchange the refresh token; persist a rotated one before returning the access token.

        Returns:
            The access token and when to refresh it, by this machine's clock (from
            ``expires_in``, so a skewed clock does not matter; ``expires_at`` otherwise).

        """
        requested_at = time.time()
        payload = self.exchange_token(grant_type="refresh_token", refresh_token=self.refresh_token.get_secret_value())
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

    @classmethod
    def from_authorization_code(
        cls,
        client_id: str,
        client_secret: str,
        code: str,
        *,
        base_url: str = STRAVA_BASE_URL,
        timeout_seconds: float = 30.0,
    ) -> tuple[StravaCredentials, dict[str, Any]]:
        """Exchange a one-time authorization code (``grant_type=authorization_code``).

        Returns:
            The credentials holding the new refresh token (not saved yet) and the athlete
            Strava sent with the tokens (empty when it sent none).

        Raises:
            RefreshTokenRejected: The code or the client secret was rejected.
            ForbiddenError: The response names a scope without ``activity:read_all``.

        """
        credentials = cls(
            client_id=str(client_id),
            client_secret=SecretStr(client_secret),
            refresh_token=SecretStr(""),
            base_url=base_url,
            timeout_seconds=timeout_seconds,
        )
        payload = credentials.exchange_token(grant_type="authorization_code", code=code)
        check_scope(payload.get("scope"))
        refresh_token = payload.get("refresh_token")
        if not refresh_token:
            raise RefreshTokenRejected(
                "Strava's token endpoint answered without a refresh token; run `strava-elt auth` to authorise again."
            )
        credentials.refresh_token = SecretStr(str(refresh_token))
        athlete = payload.get("athlete")
        return credentials, athlete if isinstance(athlete, dict) else {}


def authorize_url(
    client_id: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scope: str = DEFAULT_SCOPE,
    base_url: str = STRAVA_BASE_URL,
) -> str:
    """The page where the athlete authorises the application (``approval_prompt=force``)."""
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "approval_prompt": "force",
            "scope": scope,
        },
        safe=":/,",
    )
    return f"{normalise_base_url(base_url)}/oauth/authorize?{query}"


def parse_authorization_response(text: str) -> tuple[str, str | None]:
    """The code, and the granted scope when known, from the code itself or the redirect URL.

    Raises:
        ValueError: Nothing pasted, no ``code`` in the URL, or Strava's ``error=access_denied``.

    """
    text = text.strip()
    if not text:
        raise ValueError("No authorization code given.")
    if "=" not in text:
        return text, None
    query = parse_qs(urlsplit(text).query if "?" in text else text)
    if "error" in query:
        raise ValueError(
            f"Strava redirected with error={query['error'][0]!r}: the authorisation was not "
            "granted. Open the URL again and click Authorize."
        )
    codes = query.get("code")
    if not codes or not codes[0].strip():
        raise ValueError("The pasted URL has no code=...; paste the whole address Strava redirected to.")
    scopes = query.get("scope")
    return codes[0].strip(), scopes[0] if scopes else None


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
