"""Strava API errors, classified in one place, and the retry loop that uses them.

:func:`classify` turns a response into one error of a small tree: retriable (429, 5xx,
HTML error pages, network trouble) or fatal (auth, forbidden, not found, bad request).
Every error keeps Strava's message and says what to do; none carries a token or secret.
:func:`send_with_retries` retries only retriable errors, waits on 429s as the
:class:`~tasks.strava.ratelimit.Governor` says, and stops for the day when the daily budget is spent.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

import httpx

from tasks.strava.ratelimit import Decision, Governor, LoggerLike, RateLimits

__all__ = [
    "AthleteRevoked",
    "AuthError",
    "BadRequestError",
    "DailyLimitReached",
    "FatalError",
    "ForbiddenError",
    "NotFoundError",
    "RateLimitExceeded",
    "RefreshTokenRejected",
    "RetriableError",
    "RetryPolicy",
    "StravaError",
    "classify",
    "classify_exception",
    "redact",
    "send_with_retries",
]

_LOGGER = logging.getLogger(__name__)

_AUTH_COMMAND = "strava-elt auth --client-id ..."


def _restore(cls: type[StravaError], args: tuple[Any, ...], state: dict[str, Any]) -> StravaError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class StravaError(Exception):
    """Base of all Strava errors.

    Attributes:
        status: HTTP status, or None when no response arrived.
        message: Strava's message from the body (redacted), or what went wrong.
        hint: What to do about it.

    """

    default_hint = ""

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.message = text if message is None else message
        self.hint = self.default_hint if hint is None else hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (Prefect persists task exceptions).
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class RetriableError(StravaError):
    """Transient: 429, 5xx, timeouts, connection errors, HTML error pages."""

    default_hint = "This is usually transient; it is retried with backoff."


class RateLimitExceeded(RetriableError):
    """HTTP 429: a rate-limit budget is spent; waits until the window resets."""

    default_hint = "Waiting for the 15-minute window to reset."

    def __init__(self, text: str, *, limits: RateLimits | None = None, **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.limits = limits


class DailyLimitReached(StravaError):
    """The daily budget is spent: end the run as partial; the next run resumes."""

    default_hint = "The run ends partial and resumes on the next run after the daily reset."

    def __init__(self, text: str, *, resets_at: datetime, **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.resets_at = resets_at


class FatalError(StravaError):
    """Not worth retrying: fix the cause and run again."""


class AuthError(FatalError):
    """HTTP 401 (after the caller's one token refresh)."""

    default_hint = f"The access token is revoked or lacks scope: run `{_AUTH_COMMAND}` to authorise again."


class RefreshTokenRejected(AuthError):
    """HTTP 400/401 from ``/oauth/token``: bad client secret, client id or refresh token.

    Attributes:
        fields: The ``errors[].field`` values Strava named (e.g. ``refresh_token`` or
            ``client_secret``), empty when it named none.

    """

    default_hint = (
        "The client secret or refresh token was rejected: check the client secret in the "
        f"StravaCredentials block, or run `{_AUTH_COMMAND}` to get a new refresh token."
    )

    def __init__(self, text: str, *, fields: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.fields = fields

    @property
    def blames_client(self) -> bool:
        """Strava rejected the application's client id or secret (not the athlete's token)."""
        return bool({"client_id", "client_secret"} & set(self.fields))


class AthleteRevoked(RefreshTokenRejected):
    """An application's athlete whose authorisation is revoked: the block is marked, runs skip it.

    Attributes:
        athlete_id: The athlete's Strava id, when the block knows it.
        block_name: The athlete's StravaCredentials block.

    """

    default_hint = "Run `strava-elt auth --application A` and have the athlete authorise again."

    def __init__(
        self, text: str, *, athlete_id: int | None = None, block_name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(text, **kwargs)
        self.athlete_id = athlete_id
        self.block_name = block_name


class ForbiddenError(FatalError):
    """HTTP 403: application inactive or missing the ``activity:read_all`` scope."""

    default_hint = (
        "The application may be inactive (see https://www.strava.com/settings/api) or the "
        f"token lacks the activity:read_all scope: run `{_AUTH_COMMAND}` to authorise again."
    )


class NotFoundError(FatalError):
    """HTTP 404."""

    default_hint = "The resource does not exist or is not visible to this athlete; check the id and the base URL."


class BadRequestError(FatalError):
    """Any other 4xx (and unexpected 1xx/3xx)."""

    default_hint = "The request was rejected as malformed; check its parameters."


# --- redaction ---------------------------------------------------------------------------

_SECRET_KEY = r"[\w.-]*(?:token|secret|password)[\w.-]*|code"
_JSON_SECRET = re.compile(
    rf"""(?P<key>(?P<q>["'])(?:{_SECRET_KEY})(?P=q)\s*:\s*)"""
    r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,}\]]+)""",
    re.IGNORECASE,
)
_PAIR_SECRET = re.compile(rf"""(?P<key>(?<![\w.-])(?:{_SECRET_KEY})\s*[=:]\s*)[^\s&"',;]+""", re.IGNORECASE)
_BEARER = re.compile(r"\b(Bearer)\s+[\w.~+/-]+=*", re.IGNORECASE)
_HEX_TOKEN = re.compile(r"\b[0-9a-f]{40}\b", re.IGNORECASE)  # Strava's token format
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]*)\?[^\s#'\"]*")


def _redact_tokens(text: str) -> str:
    """Mask ``Bearer`` credentials and bare 40-hex-digit tokens only."""
    return _HEX_TOKEN.sub("***", _BEARER.sub(r"\1 ***", text))


def redact(text: str) -> str:
    """Mask secrets in ``text``: token/secret/code values, ``Bearer`` credentials, URL queries.

    Covers JSON keys (``"access_token": "..."``), ``key=value`` pairs, ``Bearer xxx`` and
    bare 40-hex-digit tokens; query strings are dropped from URLs.
    """
    text = _URL_QUERY.sub(r"\1", text)
    text = _JSON_SECRET.sub(r'\g<key>"***"', text)
    text = _PAIR_SECRET.sub(r"\g<key>***", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _HEX_TOKEN.sub("***", text)


# --- classification ----------------------------------------------------------------------

_MAX_BODY_CHARS = 300

_TOKEN_FIELD_HINTS = {
    "client_secret": "Strava rejected the client secret: check it in the StravaCredentials block",
    "client_id": "Strava rejected the client id: check it in the StravaCredentials block",
    "refresh_token": "Strava rejected the refresh token (revoked, or an older one: tokens rotate)",
    "code": "Strava rejected the authorisation code (expired or already used)",
}


def _request_line(request: httpx.Request | None) -> tuple[str, str]:
    if request is None:
        return "?", "?"
    return request.method, request.url.path or "/"


def _response_request(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a Response built without a request
        return None


def _exception_request(exc: httpx.HTTPError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:
        return None


def _is_html(response: httpx.Response, text: str) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    head = text.lstrip()[:15].lower()
    return "html" in content_type or head.startswith(("<!doctype html", "<html"))


def _body(response: httpx.Response) -> tuple[str, list[str], bool]:
    """Return (message, errors[].field values, is_html) of an error body, redacted."""
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - undecodable or unread body
        return "unreadable error body", [], False
    if _is_html(response, text):
        return "non-JSON error body (HTML page)", [], True
    try:
        payload = json.loads(text)
    except ValueError:
        snippet = redact(" ".join(text.split()))[:_MAX_BODY_CHARS]
        return (f"non-JSON error body: {snippet}" if snippet else "empty error body"), [], False
    if not isinstance(payload, dict):
        return f"unexpected error body: {redact(text)[:_MAX_BODY_CHARS]}", [], False
    message = str(payload.get("message") or "no message")
    fields: list[str] = []
    details: list[str] = []
    errors = payload.get("errors")
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        field = str(item.get("field") or "")
        fields.append(field)
        parts = [f"{item.get('resource') or '?'}.{field or '?'}"]
        if item.get("code"):
            parts.append(str(item["code"]))
        details.append(" ".join(parts))
    message = redact(message)
    if details:
        # Resource/field/code are Strava's names (e.g. AccessToken.activity:read_permission
        # missing), not values: only token-shaped text is masked, so the hint stays readable.
        message = f"{message} ({_redact_tokens('; '.join(details))[:_MAX_BODY_CHARS]})"
    return message, fields, False


def _compose(status: int, method: str, path: str, message: str, hint: str) -> str:
    return f"Strava API {status} on {method} {path}: {message.rstrip('.')}." + (f" {hint}" if hint else "")


def classify(response: httpx.Response, *, token_endpoint: bool = False) -> StravaError | None:
    """Turn a response into the matching error, or None for 2xx.

    Args:
        response: The response (with its request attached, for the method and path).
        token_endpoint: True for ``/oauth/token``, where 400/401 mean a rejected
            client secret or refresh token.

    Returns:
        None on success, else the error to raise (message and hint redacted).

    """
    status = response.status_code
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return None
    method, path = _request_line(_response_request(response))
    message, fields, is_html = _body(response)

    def build(cls: type[StravaError], hint: str | None = None, **extra: Any) -> StravaError:
        hint = cls.default_hint if hint is None else hint
        text = _compose(status, method, path, message, hint)
        return cls(text, status=status, message=message, hint=hint, **extra)

    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return build(RateLimitExceeded, limits=RateLimits.from_headers(response.headers))
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
        return build(RetriableError, "Strava is having trouble; retried with backoff.")
    if is_html:
        return build(
            RetriableError,
            "An HTML page instead of Strava's JSON (a proxy or maintenance page?); retried.",
        )
    if token_endpoint and status in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED):
        known = [_TOKEN_FIELD_HINTS[f] for f in fields if f in _TOKEN_FIELD_HINTS]
        hint = None
        if known:
            hint = f"{'; '.join(known)}. Run `{_AUTH_COMMAND}` to authorise again."
        return build(RefreshTokenRejected, hint, fields=tuple(fields))
    if status == HTTPStatus.UNAUTHORIZED:
        return build(AuthError)
    if status == HTTPStatus.FORBIDDEN:
        return build(ForbiddenError)
    if status == HTTPStatus.NOT_FOUND:
        return build(NotFoundError)
    if HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR:
        return build(BadRequestError)
    return build(BadRequestError, f"Unexpected HTTP status {status}; check the base URL.")


def classify_exception(exc: httpx.HTTPError) -> StravaError:
    """Turn an httpx exception into a Strava error (network trouble is retriable).

    ``HTTPStatusError`` is classified by its response; invalid URLs, unsupported protocols
    and redirect loops are fatal; every other transport error is retriable.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        return classify(exc.response) or BadRequestError(redact(str(exc)))
    method, path = _request_line(_exception_request(exc))
    kinds: list[tuple[type[httpx.HTTPError], str]] = [
        (httpx.TimeoutException, "timed out"),
        (httpx.ConnectError, "could not connect"),
        (httpx.RemoteProtocolError, "connection dropped by the server"),
        (httpx.ReadError, "connection broken while reading"),
        (httpx.WriteError, "connection broken while writing"),
        (httpx.NetworkError, "network error"),
        (httpx.ProxyError, "proxy error"),
    ]
    fatal = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.TooManyRedirects)
    kind = next((label for cls, label in kinds if isinstance(exc, cls)), "HTTP error")
    detail = redact(str(exc)) or type(exc).__name__
    message = f"{kind} ({type(exc).__name__}: {detail})"
    if isinstance(exc, fatal):
        hint = "Check the base URL."
        error_cls: type[StravaError] = FatalError
    else:
        hint = "Network trouble is usually transient; retried with backoff."
        error_cls = RetriableError
    text = f"Strava API request failed on {method} {path}: {message}. {hint}"
    return error_cls(text, message=message, hint=hint)


# --- retrying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for retriable errors (429s are paced separately).

    Attributes:
        attempts: Total tries, the first one included.
        base_delay: Delay before the second try, in seconds.
        max_delay: Cap of the delay before jitter.
        jitter: Fraction: each delay is multiplied by uniform(1 - jitter, 1 + jitter).

    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the delay after failed try number ``attempt`` (1-based)."""
        capped = min(self.base_delay * 2 ** max(attempt - 1, 0), self.max_delay)
        return capped * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after", "") if response is not None else ""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _daily_limit(decision: Decision, status: int | None) -> DailyLimitReached:
    hint = DailyLimitReached.default_hint
    resets_at = decision.resets_at
    assert resets_at is not None  # a "stop" decision always says when
    return DailyLimitReached(
        f"Strava daily rate limit reached: {decision.reason}. {hint}",
        resets_at=resets_at,
        status=status,
        message=decision.reason,
        hint=hint,
    )


def send_with_retries(
    send: Callable[[], httpx.Response],
    *,
    policy: RetryPolicy | None = None,
    governor: Governor | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    logger: LoggerLike | None = None,
    token_endpoint: bool = False,
    method: str = "GET",
) -> httpx.Response:
    """Send a request, pacing by the governor and retrying retriable errors.

    Args:
        send: Sends the request once and returns the response.
        policy: Backoff for retriable errors; its ``attempts`` also bounds 429 waits.
        governor: Paces by the rate-limit headers; a private one is used when None.
        sleep: Sleeps between tries (the governor sleeps with its own).
        rng: Source of jitter.
        logger: Where retries are logged.
        token_endpoint: The request goes to ``/oauth/token`` (see :func:`classify`).
        method: HTTP method, for the governor's budgets before the first response.

    Returns:
        The first 2xx response.

    Raises:
        DailyLimitReached: The daily budget is spent.
        FatalError: At once, for 4xx other than 429 (401 included: the caller refreshes).
        RetriableError: When ``policy.attempts`` tries (or 429 waits) are used up.

    """
    policy = policy or RetryPolicy()
    governor = governor or Governor(sleep=sleep, logger=logger)
    log = logger or _LOGGER
    rng = rng or random.Random()
    failures = 0
    rate_limit_waits = 0
    while True:
        decision = governor.before_request(method)
        if decision.action == "stop":
            raise _daily_limit(decision, status=None)
        response: httpx.Response | None = None
        try:
            response = send()
        except httpx.HTTPError as exc:
            error = classify_exception(exc)
            error.__cause__ = exc
        else:
            governor.observe(response.headers)
            classified = classify(response, token_endpoint=token_endpoint)
            if classified is None:
                return response
            error = classified
            request = _response_request(response)
            method = request.method if request is not None else method

        if isinstance(error, RateLimitExceeded):
            assert response is not None
            decision = governor.on_429(response.headers, method)
            if decision.action == "stop":
                raise _daily_limit(decision, status=error.status) from error
            rate_limit_waits += 1
            if rate_limit_waits >= policy.attempts:
                error.args = (f"gave up after {rate_limit_waits} rate-limited attempts: {error}",)
                raise error
            log.warning(
                "Strava rate limited (%s): %s; retrying in %.1f s (attempt %d/%d)",
                error.message,
                decision.reason,
                decision.wait_seconds,
                rate_limit_waits + 1,
                policy.attempts,
            )
            sleep(decision.wait_seconds)
        elif isinstance(error, RetriableError):
            failures += 1
            if failures >= policy.attempts:
                error.args = (f"gave up after {failures} attempts: {error}",)
                raise error
            delay = policy.delay(failures, rng)
            retry_after = _retry_after(response)
            if retry_after is not None:
                delay = min(max(delay, retry_after), policy.max_delay)
            log.warning(
                "Strava request failed: %s; retrying in %.1f s (attempt %d/%d)",
                error,
                delay,
                failures + 1,
                policy.attempts,
            )
            sleep(delay)
        else:
            raise error
