"""Strava credentials: the one place that holds the OAuth secrets and builds authorised clients."""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpcore
import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

from blocks.prefect_compat import block_document_id, call_sync, check_before_saving
from blocks.strava_errors import AthleteRevoked, ForbiddenError, RefreshTokenRejected, RetryPolicy, send_with_retries

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


class _Deadline:
    """Each request's overall deadline: ``seconds`` after it starts, tracked per thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._local = threading.local()

    def start(self) -> None:
        """A request starts on this thread: its deadline is ``seconds`` from now."""
        self._local.at = time.monotonic() + self.seconds

    def remaining(self, timeout: float | None) -> float | None:
        """``timeout`` cut to what is left before the deadline; raise once it has passed."""
        at: float | None = getattr(self._local, "at", None)
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left if timeout is None else min(timeout, left)

    def expired(self) -> httpcore.ReadTimeout:
        """The error of a request past its deadline (httpx maps it to ``httpx.ReadTimeout``)."""
        return httpcore.ReadTimeout(f"no complete response within the request's deadline of {self.seconds:g} s")

    def passed(self) -> bool:
        """Whether the current request's deadline has passed."""
        at: float | None = getattr(self._local, "at", None)
        return at is not None and time.monotonic() >= at


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._stream.read(max_bytes, self._deadline.remaining(timeout))
        except httpcore.TimeoutException as exc:
            raise (self._deadline.expired() if self._deadline.passed() else exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._stream.write(buffer, self._deadline.remaining(timeout))
        except httpcore.TimeoutException as exc:
            raise (self._deadline.expired() if self._deadline.passed() else exc) from exc

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, self._deadline.remaining(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens connections whose streams keep the request's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend, deadline: _Deadline) -> None:
        self._backend = backend
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, self._deadline.remaining(timeout), local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """An httpx transport that bounds each request as a whole: connect, headers and body.

    httpx's timeouts bound each socket operation, so a server that drips a byte every few
    seconds never trips them. Here every operation's timeout is cut to what is left of the
    request's overall deadline; once it has passed, the next read raises ``httpx.ReadTimeout``
    (retried like any timeout). The deadline starts when the request is handed to the
    transport and also covers reading the body afterwards, on the same thread.
    """

    def __init__(self, deadline_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = _Deadline(deadline_seconds)
        # httpx builds its httpcore pool without a network_backend argument: wrap the pool's own.
        pool = self._pool
        if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
            raise TypeError("this httpx/httpcore version does not expose the pool's network backend")
        pool._network_backend = _DeadlineBackend(pool._network_backend, self._deadline)  # type: ignore[union-attr]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._deadline.start()
        return super().handle_request(request)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE``), built once per process.

    Building one reads the CA bundle: about 30 ms, which every client would pay again.
    """
    return httpx.create_ssl_context()


def deadline_client(deadline_seconds: float, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request must complete within ``deadline_seconds``."""
    transport = DeadlineTransport(deadline_seconds, verify=_tls_context())
    return httpx.Client(transport=transport, timeout=deadline_seconds, **kwargs)


def _base_url_field() -> Any:
    return Field(
        default=STRAVA_BASE_URL,
        title="Base URL",
        description=(
            "Strava's base URL, https://www.strava.com (the API is under /api/v3, OAuth under /oauth; "
            "https://www.strava.com/api/v3 is accepted too). Point it at the emulator locally."
        ),
    )


def _timeout_field() -> Any:
    return Field(
        default=30.0,
        gt=0,
        title="Timeout (seconds)",
        description=(
            "Deadline of every HTTP request to Strava (API and token endpoint), in seconds: connecting, "
            "the headers and the whole body must be done by then, or the request fails as a timeout "
            "and is retried."
        ),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _exchange(token_url: str, client_id: str, client_secret: SecretStr, timeout: float, grant: dict[str, str]) -> Any:
    """POST a grant to ``token_url`` with the application's id and secret; the JSON body, or None."""
    data = {"client_id": client_id, "client_secret": client_secret.get_secret_value(), **grant}
    with deadline_client(timeout) as http:
        response = send_with_retries(
            lambda: http.post(token_url, data=data),
            policy=_TOKEN_RETRIES,
            logger=logger,
            token_endpoint=True,
            method="POST",
        )
    try:
        return response.json()
    except ValueError:
        return None


def _payload(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RefreshTokenRejected(
            "Strava's token endpoint answered with something other than a JSON object; "
            "check the base URL, or run `strava-elt auth` to authorise again."
        )
    return payload


def _refresh_token_of(payload: dict[str, Any]) -> SecretStr:
    """The refresh token of an authorization-code grant, its scope checked."""
    check_scope(payload.get("scope"))
    refresh_token = payload.get("refresh_token")
    if not refresh_token:
        raise RefreshTokenRejected(
            "Strava's token endpoint answered without a refresh token; run `strava-elt auth` to authorise again."
        )
    return SecretStr(str(refresh_token))


class StravaApplication(Block):
    """A Strava API application: its client id and secret, shared by the athletes who authorised it.

    Each athlete is a :class:`StravaCredentials` block that references this one (block name
    ``<application block>-athlete-<athlete id>``) and holds only that athlete's refresh token,
    so the secret is kept once. The limits are the application's, shared by all its athletes.
    """

    _block_type_name = "Strava Application"
    _block_type_slug = "strava-application"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"  # type: ignore[assignment]
    _description = "A Strava API application (client id and secret) shared by the athletes who authorised it."

    client_id: str = Field(
        title="Client ID", description="Client ID of your Strava API application (strava.com/settings/api)."
    )
    client_secret: SecretStr = Field(title="Client secret", description="Client secret of your Strava API application.")
    base_url: str = _base_url_field()
    timeout_seconds: float = _timeout_field()
    read_limits: tuple[int, int] = Field(
        default=(100, 1000),
        title="Read limits",
        description=(
            "The application's read (GET) budget: requests per 15 minutes and per day "
            "(strava.com/settings/api shows yours), shared by all its athletes."
        ),
    )
    overall_limits: tuple[int, int] = Field(
        default=(200, 2000),
        title="Overall limits",
        description=(
            "The application's overall budget: requests per 15 minutes and per day, shared by all its athletes."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @field_validator("read_limits", "overall_limits")
    @classmethod
    def _positive_limits(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) <= 0 or value[0] > value[1]:
            raise ValueError(
                f"limits {value} must be (per 15 minutes, per day), both > 0, the first not above the second"
            )
        return value

    @property
    def api_url(self) -> str:
        """The API v3 root."""
        return self.base_url.rstrip("/") + "/api/v3"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return self.base_url.rstrip("/") + "/oauth/token"

    def athlete_block_name(self, athlete_id: int) -> str:
        """The name of the credentials block of ``athlete_id``: ``<this block's name>-athlete-<id>``.

        Raises:
            ValueError: This application block was never saved (it has no name yet).

        """
        if not self.block_name:
            raise ValueError("Save the StravaApplication block (application.save(name)) before adding athletes to it.")
        return athlete_block_name(self.block_name, athlete_id)

    @property
    def block_name(self) -> str | None:
        """The name this block was saved or loaded under (None before the first save)."""
        return getattr(self, "_block_document_name", None) or None

    def client_credentials(self) -> dict[str, str]:
        """``client_id`` and ``client_secret`` as Strava's application-level endpoints take them.

        Push subscriptions authenticate this way; pass the dict as form data or query, never log it.
        """
        return {"client_id": self.client_id, "client_secret": self.client_secret.get_secret_value()}

    def get_http_client(self) -> httpx.Client:
        """An httpx client on the API root with this application's deadline (no athlete's token).

        For application-level calls (push subscriptions): add :meth:`client_credentials` to each request.
        """
        return deadline_client(
            self.timeout_seconds,
            base_url=self.api_url,
            headers={"Accept": "application/json", "User-Agent": "strava-elt"},
        )

    def exchange_token(self, **grant: str) -> dict[str, Any]:
        """POST a grant to /oauth/token with this application's id and secret (see StravaCredentials)."""
        return _payload(_exchange(self.token_url, self.client_id, self.client_secret, self.timeout_seconds, grant))

    def authorize_athlete(self, code: str) -> tuple[StravaCredentials, dict[str, Any]]:
        """Exchange an athlete's one-time authorization code for a credentials block referencing this one.

        Returns:
            The athlete's credentials (not saved yet; ``athlete_id`` set when Strava sent the
            athlete) and the athlete Strava sent with the tokens (empty when it sent none).

        Raises:
            RefreshTokenRejected: The code or the client secret was rejected.
            ForbiddenError: The response names a scope without ``activity:read_all``.

        """
        payload = self.exchange_token(grant_type="authorization_code", code=code)
        refresh_token = _refresh_token_of(payload)
        athlete = payload.get("athlete")
        athlete = athlete if isinstance(athlete, dict) else {}
        athlete_id = athlete.get("id")
        name = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip()
        credentials = StravaCredentials(
            application=self,
            refresh_token=refresh_token,
            athlete_id=int(athlete_id) if athlete_id is not None else None,
            athlete_name=name or None,
        )
        return credentials, athlete


def athlete_block_name(application_block: str, athlete_id: int) -> str:
    """``<application block>-athlete-<athlete id>``: the credentials block of an application's athlete."""
    return f"{application_block}-athlete-{int(athlete_id)}"


def _application_saved_first(block: StravaCredentials) -> None:
    """Refuse to save an athlete's block whose application is unsaved (it would be stored inline, secret and all)."""
    if block.application is not None and block_document_id(block.application) is None:
        raise ValueError(
            "Save the StravaApplication block first (application.save(name)): an athlete's block "
            "references the saved application and never holds a copy of its client secret."
        )


@check_before_saving(_application_saved_first)
class StravaCredentials(Block):
    """OAuth credentials of a Strava API application and the athlete who authorised it.

    Strava rotates refresh tokens: whenever it issues a new one, the block saves it back to
    itself before the new access token is used, so the next run can still authenticate.

    Two setups: a single block holding the client id and secret itself, or one block per
    athlete referencing a saved :class:`StravaApplication` (``application``), which then
    supplies the client id, secret, base URL and timeout. An application's athlete whose
    refresh token Strava rejects is marked ``revoked`` (when, why) and saved, and fails
    at once with :class:`~blocks.strava_errors.AthleteRevoked` until ``strava-elt auth`` renews it.
    """

    _block_type_name = "Strava Credentials"
    _block_type_slug = "strava-credentials"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"  # type: ignore[assignment]
    _description = "OAuth client and rotating refresh token for the Strava API v3."

    client_id: str | None = Field(
        default=None,
        title="Client ID",
        description=(
            "Client ID of your Strava API application (strava.com/settings/api). Leave empty when "
            "the block references an application."
        ),
    )
    client_secret: SecretStr | None = Field(
        default=None,
        title="Client secret",
        description=(
            "Client secret of your Strava API application. Leave empty when the block references an application."
        ),
    )
    refresh_token: SecretStr = Field(
        title="Refresh token",
        description=(
            "Refresh token of the athlete, granted with scope activity:read_all "
            "(`strava-elt auth` obtains it). Rotated by Strava and saved back here."
        ),
    )
    base_url: str = _base_url_field()
    timeout_seconds: float = _timeout_field()
    application: StravaApplication | None = Field(
        default=None,
        title="Application",
        description=(
            "The Strava Application block this athlete authorised: it supplies the client id, secret, "
            "base URL and timeout (the fields above are then unused). Empty for a single-athlete setup."
        ),
    )
    athlete_id: int | None = Field(
        default=None, title="Athlete ID", description="Strava id of the athlete (set by `strava-elt auth`)."
    )
    athlete_name: str | None = Field(
        default=None,
        title="Athlete name",
        description="The athlete's name as Strava sent it at authorisation (shown on the index page).",
    )
    status: Literal["active", "revoked"] = Field(
        default="active",
        title="Status",
        description=(
            "active, or revoked: Strava rejected the refresh token (the athlete withdrew the authorisation); "
            "runs skip the athlete until `strava-elt auth --application A` authorises again."
        ),
    )
    revoked_at: str | None = Field(
        default=None, title="Revoked at", description="When the refresh token was found revoked (ISO 8601, UTC)."
    )
    revoked_reason: str | None = Field(
        default=None, title="Revoked reason", description="Why the athlete was marked revoked (Strava's answer)."
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @model_validator(mode="after")
    def _client_from_one_place(self) -> StravaCredentials:
        if self.application is None and (not self.client_id or self.client_secret is None):
            raise ValueError(
                "a StravaCredentials block needs the client id and client secret of its Strava API "
                "application, or an application (a saved Strava Application block) that holds them"
            )
        if self.application is not None and self.client_secret is not None and self.client_secret.get_secret_value():
            raise ValueError(
                "a StravaCredentials block that references an application holds no client secret of its own: "
                "leave client_secret empty (the application block keeps it)"
            )
        return self

    @property
    def api_url(self) -> str:
        """The API v3 root (the application's, when the block references one)."""
        return self._base().rstrip("/") + "/api/v3"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint (the application's, when the block references one)."""
        return self._base().rstrip("/") + "/oauth/token"

    def _base(self) -> str:
        return self.application.base_url if self.application is not None else self.base_url

    def _timeout(self) -> float:
        return self.application.timeout_seconds if self.application is not None else self.timeout_seconds

    def get_client(self) -> httpx.Client:
        """Build an httpx client for the API that authenticates, refreshes and persists tokens."""
        return deadline_client(
            self._timeout(),
            base_url=self.api_url,
            auth=_StravaAuth(self),
            headers={"Accept": "application/json", "User-Agent": "strava-elt"},
        )

    def exchange_token(self, **grant: str) -> dict[str, Any]:
        """POST a grant to /oauth/token with this application's id and secret.

        5xx, HTML pages and network trouble are retried (bounded); anything else raises the
        typed error of :func:`blocks.strava_errors.classify` (no secret in its message).
        """
        if self.application is not None:
            return self.application.exchange_token(**grant)
        assert self.client_id is not None and self.client_secret is not None  # the model validator checked
        return _payload(_exchange(self.token_url, self.client_id, self.client_secret, self.timeout_seconds, grant))

    @property
    def block_name(self) -> str | None:
        """The name this block was saved or loaded under (None before the first save)."""
        return getattr(self, "_block_document_name", None) or None

    def revoked_error(self) -> AthleteRevoked:
        """The error of a run for this athlete while the block is marked revoked: what happened, what to do."""
        who = (
            f"athlete {self.athlete_id}" if self.athlete_id is not None else f"the athlete of block {self.block_name!r}"
        )
        app = self.application.block_name if self.application is not None else None
        command = f"strava-elt auth --application {app}" if app else "strava-elt auth"
        when = f" on {self.revoked_at}" if self.revoked_at else ""
        why = f" ({self.revoked_reason})" if self.revoked_reason else ""
        hint = f"Run `{command}` and have the athlete authorise again; until then runs skip this athlete."
        return AthleteRevoked(
            f"{who}'s authorisation was revoked{when}{why}; run `{command}` to authorise again.",
            athlete_id=self.athlete_id,
            block_name=self.block_name,
            message=self.revoked_reason or "authorisation revoked",
            hint=hint,
        )

    def mark_revoked(self, reason: str, at: datetime | None = None) -> None:
        """Mark the athlete revoked (when, why) and save the block (only this one: the application is a reference)."""
        self.status = "revoked"
        self.revoked_at = (at or _utcnow()).astimezone(UTC).isoformat()
        self.revoked_reason = reason
        if self.block_name:
            self._save_now(self.block_name)
        logger.warning("Marked the athlete of block %r revoked: %s", self.block_name, reason)

    def reactivate(self, refresh_token: str) -> None:
        """Take a new refresh token, clear the revocation and save the block."""
        self.refresh_token = SecretStr(refresh_token)
        self.status = "active"
        self.revoked_at = None
        self.revoked_reason = None
        if self.block_name:
            self._save_now(self.block_name)

    def refresh_access_token(self) -> tuple[str, float]:
        """Exchange the refresh token; persist a rotated one before returning the access token.

        Returns:
            The access token and when to refresh it, by this machine's clock (from
            ``expires_in``, so a skewed clock does not matter; ``expires_at`` otherwise).

        Raises:
            AthleteRevoked: The block is marked revoked (nothing is sent), or Strava rejected
                the refresh token of an application's athlete (the block is marked and saved first).
            RefreshTokenRejected: Strava rejected the client or the token of a single block.

        """
        if self.status == "revoked":
            raise self.revoked_error()
        requested_at = time.time()
        try:
            payload = self.exchange_token(
                grant_type="refresh_token", refresh_token=self.refresh_token.get_secret_value()
            )
        except RefreshTokenRejected as exc:
            if self.application is None or exc.blames_client:
                raise  # a single block, or the application's id or secret: no athlete to mark
            self.mark_revoked(f"Strava rejected the refresh token: {exc.message}")
            raise self.revoked_error() from exc
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
        name = self.block_name
        if not name:
            logger.warning(
                "Strava rotated the refresh token but this StravaCredentials block was never "
                "saved; save it (block.save(name)) or the next run cannot authenticate."
            )
            return
        if not self._patch_refresh_token():
            self._save_now(name)
        logger.info("Saved the rotated Strava refresh token to block %r", name)

    def _patch_refresh_token(self) -> bool:
        """Write only the new refresh token into the block's saved document: one request.

        A full ``save`` checks the block type and both schemas first (six requests, about a
        third of a second); the document and every other field stay as they are, and nested
        blocks (the application) stay referenced: the update names them again, as the server
        drops a reference it does not repeat. False when the block has no saved document (it was
        built in memory) or the document is gone: then the caller saves the whole block.
        """
        document_id = block_document_id(self)
        if document_id is None:
            return False
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import BlockDocumentUpdate
        from prefect.exceptions import ObjectNotFound

        data: dict[str, Any] = {"refresh_token": self.refresh_token.get_secret_value()}
        for field_name in type(self).model_fields:
            nested = getattr(self, field_name)
            if isinstance(nested, Block):  # the server drops a reference the update does not repeat
                if block_document_id(nested) is None:
                    return False
                data[field_name] = {"$ref": {"block_document_id": str(block_document_id(nested))}}
        update = BlockDocumentUpdate(data=data, merge_existing_data=True)
        try:
            with get_client(sync_client=True) as client:
                client.update_block_document(document_id, update)
        except ObjectNotFound:
            return False
        return True

    def _save_now(self, name: str) -> None:
        """Save synchronously, also when called under an event loop (an async flow, a webhook handler)."""
        call_sync(self.save, name, overwrite=True)

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
        credentials.refresh_token = _refresh_token_of(payload)
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
