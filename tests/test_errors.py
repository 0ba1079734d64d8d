from __future__ import annotations

import logging
import pickle
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest

from tasks.strava import errors
from tasks.strava.errors import (
    AuthError,
    BadRequestError,
    DailyLimitReached,
    FatalError,
    ForbiddenError,
    NotFoundError,
    RateLimitExceeded,
    RefreshTokenRejected,
    RetriableError,
    RetryPolicy,
    StravaError,
    classify,
    classify_exception,
    redact,
    send_with_retries,
)
from tasks.strava.ratelimit import Governor, RateLimit
from tests.strava_support import FakeClock

API = "https://www.strava.com/api/v3"
LIST_URL = f"{API}/athlete/activities?after=1714000000&per_page=200&page=3"
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # Strava tokens are 40 hex digits
SECRET = "s3cr3t-client-secret-value"

AUTH_ERROR = {
    "message": "Authorization Error",
    "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}],
}
RATE_ERROR = {
    "message": "Rate Limit Exceeded",
    "errors": [{"resource": "Application", "field": "rate limit", "code": "exceeded"}],
}
HTML_502 = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def limit_headers(usage: str = "31,512", read_usage: str = "17,311") -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "200,2000",
        "X-RateLimit-Usage": usage,
        "X-ReadRateLimit-Limit": "100,1000",
        "X-ReadRateLimit-Usage": read_usage,
    }


def response(
    status: int,
    body: object = None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    url: str = LIST_URL,
) -> httpx.Response:
    request = httpx.Request(method, url, headers={"Authorization": f"Bearer {TOKEN}"})
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body if body is not None else [], headers=headers, request=request)


Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def scripted_client(steps: Sequence[Step]) -> tuple[httpx.Client, list[httpx.Request]]:
    """Return an httpx client whose transport plays ``steps`` in order."""
    seen: list[httpx.Request] = []
    script: Iterator[Step] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(script)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content, request=request)
        return step(request)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def ok(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=[{"id": 1}], headers=headers or limit_headers())


def err(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body or {"message": "x"}, headers=headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 5, 14, 10, 44, 50, tzinfo=UTC))


@pytest.fixture
def governor(clock: FakeClock) -> Governor:
    return Governor(clock=clock, sleep=clock.sleep)


# --- classify ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_success_is_none(status: int) -> None:
    assert classify(response(status)) is None


def test_401_is_auth_error_with_body_message_hint_and_no_query() -> None:
    error = classify(response(401, AUTH_ERROR))
    assert type(error) is AuthError
    assert isinstance(error, FatalError)
    assert error.status == 401
    assert error.message == "Authorization Error (Athlete.access_token invalid)"
    assert "strava-elt auth --client-id" in error.hint
    assert str(error) == (
        "Strava API 401 on GET /api/v3/athlete/activities: "
        "Authorization Error (Athlete.access_token invalid). " + error.hint
    )
    assert "?" not in str(error) and "per_page" not in str(error)
    assert TOKEN not in str(error)


def test_401_for_a_missing_scope_names_the_scope_but_masks_tokens() -> None:
    body = {
        "message": f"Authorization Error for {TOKEN}",
        "errors": [
            {"resource": "AccessToken", "field": "activity:read_permission", "code": "missing"},
            {"resource": "Athlete", "field": f"Bearer {TOKEN}", "code": "invalid"},
        ],
    }
    error = classify(response(401, body))
    assert type(error) is AuthError
    assert "(AccessToken.activity:read_permission missing; Athlete.Bearer *** invalid)" in str(error)
    assert TOKEN not in str(error)


@pytest.mark.parametrize(
    ("status", "cls", "hint_words"),
    [
        (403, ForbiddenError, "activity:read_all"),
        (404, NotFoundError, "does not exist"),
        (400, BadRequestError, "malformed"),
        (422, BadRequestError, "malformed"),
        (301, BadRequestError, "Unexpected HTTP status 301"),
    ],
)
def test_fatal_statuses(status: int, cls: type[StravaError], hint_words: str) -> None:
    error = classify(response(status, {"message": "Resource Not Found", "errors": []}))
    assert type(error) is cls
    assert isinstance(error, FatalError)
    assert hint_words in error.hint
    assert f"Strava API {status} on GET /api/v3/athlete/activities: Resource Not Found." in str(error)


def test_429_is_rate_limit_exceeded_with_limits() -> None:
    error = classify(response(429, RATE_ERROR, headers=limit_headers("201,900", "101,500")))
    assert type(error) is RateLimitExceeded
    assert isinstance(error, RetriableError)
    assert error.limits is not None
    assert error.limits.read == RateLimit(100, 101, 1000, 500)
    assert "Rate Limit Exceeded" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retriable(status: int) -> None:
    error = classify(response(status, {"message": "Internal Server Error"}))
    assert type(error) is RetriableError
    assert error.status == status


def test_html_502_is_retriable_non_json() -> None:
    error = classify(response(502, text=HTML_502, headers={"Content-Type": "text/html"}))
    assert type(error) is RetriableError
    assert error.message == "non-JSON error body (HTML page)"
    assert "Bad Gateway" not in str(error)


def test_html_body_on_4xx_is_retriable_too() -> None:
    error = classify(response(404, text="<html><body>Not here</body></html>"))
    assert type(error) is RetriableError
    assert "non-JSON error body (HTML page)" in str(error)


def test_plain_text_and_empty_bodies() -> None:
    error = classify(response(500, text=f"upstream failed for access_token={TOKEN}"))
    assert error is not None
    assert error.message == "non-JSON error body: upstream failed for access_token=***"
    empty = classify(response(503, text=""))
    assert empty is not None and empty.message == "empty error body"


def test_response_without_request() -> None:
    error = classify(httpx.Response(404, json={"message": "Record Not Found"}))
    assert type(error) is NotFoundError
    assert "Strava API 404 on ? ?: Record Not Found." in str(error)


def test_token_endpoint_refresh_token_rejected() -> None:
    body = {
        "message": "Bad Request",
        "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}],
    }
    error = classify(
        response(400, body, method="POST", url="https://www.strava.com/oauth/token"),
        token_endpoint=True,
    )
    assert type(error) is RefreshTokenRejected
    assert isinstance(error, AuthError)
    assert "refresh token" in error.hint and "strava-elt auth" in error.hint
    assert str(error).startswith("Strava API 400 on POST /oauth/token: Bad Request")


def test_token_endpoint_client_secret_rejected() -> None:
    body = {
        "message": "Authorization Error",
        "errors": [{"resource": "Application", "field": "client_secret", "code": "invalid"}],
    }
    error = classify(
        response(401, body, method="POST", url="https://www.strava.com/oauth/token"),
        token_endpoint=True,
    )
    assert type(error) is RefreshTokenRejected
    assert "client secret" in error.hint
    assert "refresh token" not in error.hint


def test_token_endpoint_without_field_has_generic_hint() -> None:
    error = classify(response(400, {"message": "Bad Request"}, method="POST"), token_endpoint=True)
    assert type(error) is RefreshTokenRejected
    assert error.hint == RefreshTokenRejected.default_hint


def test_token_endpoint_5xx_stays_retriable() -> None:
    error = classify(response(503, {"message": "busy"}, method="POST"), token_endpoint=True)
    assert type(error) is RetriableError


# --- redaction -----------------------------------------------------------------------------


def test_redact_json_keys() -> None:
    text = (
        f'{{"token_type": "Bearer", "access_token": "{TOKEN}", "refresh_token":"r-123",'
        f' "client_secret": "{SECRET}", "code": 123456, "expires_at": 1715700000}}'
    )
    redacted = redact(text)
    for secret in (TOKEN, "r-123", SECRET, "123456"):
        assert secret not in redacted
    assert '"expires_at": 1715700000' in redacted
    assert '"access_token": "***"' in redacted


def test_redact_pairs_bearer_and_urls() -> None:
    text = (
        f"POST /oauth/token client_id=42&client_secret={SECRET}&code=abc&grant_type=x "
        f"Authorization: Bearer {TOKEN} id_token: eyJhbGciOi.x-y "
        "see https://www.strava.com/api/v3/athlete?access_token=zzz&x=1 now"
    )
    redacted = redact(text)
    for secret in (SECRET, "code=abc", TOKEN, "eyJhbGciOi", "zzz"):
        assert secret not in redacted
    assert "client_id=42" in redacted
    assert "Bearer ***" in redacted
    assert "https://www.strava.com/api/v3/athlete now" in redacted


def test_redact_leaves_plain_text_alone() -> None:
    text = "Record Not Found (Activity.id invalid)"
    assert redact(text) == text


def test_body_echoing_secrets_never_leaks() -> None:
    body = {
        "message": f"Bad token Bearer {TOKEN} with client_secret={SECRET}",
        "errors": [{"resource": "Application", "field": "client_secret", "code": "invalid"}],
        "echo": {"refresh_token": "r-secret"},
    }
    error = classify(
        response(401, body, method="POST", url="https://www.strava.com/oauth/token?code=xyz"),
        token_endpoint=True,
    )
    assert error is not None
    rendered = f"{error} {error.message} {error.hint} {pickle.loads(pickle.dumps(error))}"
    for secret in (TOKEN, SECRET, "r-secret", "xyz"):
        assert secret not in rendered
    assert "Bad token Bearer ***" in error.message


# --- classify_exception --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc_type", "words"),
    [
        (httpx.ReadTimeout, "timed out"),
        (httpx.ConnectTimeout, "timed out"),
        (httpx.ConnectError, "could not connect"),
        (httpx.RemoteProtocolError, "connection dropped"),
        (httpx.ReadError, "connection broken while reading"),
        (httpx.WriteError, "connection broken while writing"),
        (httpx.CloseError, "network error"),
    ],
)
def test_network_errors_are_retriable(exc_type: type[httpx.TransportError], words: str) -> None:
    request = httpx.Request("GET", f"{LIST_URL}&access_token={TOKEN}")
    error = classify_exception(exc_type(f"failed on {request.url}", request=request))
    assert type(error) is RetriableError
    assert error.status is None
    assert words in str(error)
    assert "Strava API request failed on GET /api/v3/athlete/activities" in str(error)
    assert TOKEN not in str(error) and "per_page" not in str(error)


def test_invalid_url_is_fatal() -> None:
    error = classify_exception(httpx.UnsupportedProtocol("Request URL is missing a protocol"))
    assert type(error) is FatalError
    assert "on ? ?" in str(error)


def test_http_status_error_is_classified_by_response() -> None:
    resp = response(404, {"message": "Record Not Found"})
    exc = httpx.HTTPStatusError(f"404 for {LIST_URL}", request=resp.request, response=resp)
    assert type(classify_exception(exc)) is NotFoundError


def test_errors_pickle_with_their_attributes() -> None:
    error = classify(response(429, RATE_ERROR, headers=limit_headers("201,900", "101,500")))
    assert isinstance(error, RateLimitExceeded)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.status, copy.hint, copy.limits) == (
        RateLimitExceeded,
        str(error),
        429,
        error.hint,
        error.limits,
    )
    daily = DailyLimitReached("spent", resets_at=datetime(2025, 5, 15, tzinfo=UTC))
    assert pickle.loads(pickle.dumps(daily)).resets_at == daily.resets_at


# --- RetryPolicy ---------------------------------------------------------------------------


def test_delay_jitter_bounds_and_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 12):
        nominal = min(2 ** (attempt - 1), 60.0)
        for _ in range(200):
            assert nominal * 0.5 <= policy.delay(attempt, rng) <= nominal * 1.5


def test_delay_without_jitter_is_exact() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=10.0, jitter=0.0)
    assert [policy.delay(n, random.Random()) for n in range(1, 6)] == [2, 4, 8, 10, 10]


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"jitter": 1.5}, {"jitter": -0.1}, {"base_delay": -1}])
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- send_with_retries ---------------------------------------------------------------------

NO_JITTER = RetryPolicy(attempts=5, base_delay=1.0, max_delay=60.0, jitter=0.0)


def test_success_first_time_no_sleep(clock: FakeClock, governor: Governor) -> None:
    client, seen = scripted_client([ok()])
    resp = send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert resp.status_code == 200
    assert len(seen) == 1 and clock.slept == []
    assert governor.current() is not None


def test_429_storm_waits_per_headers_not_fixed_sleeps(
    clock: FakeClock, governor: Governor, caplog: pytest.LogCaptureFixture
) -> None:
    client, seen = scripted_client(
        [
            err(429, RATE_ERROR, limit_headers("150,900", "101,500")),  # at 10:44:50
            err(429, RATE_ERROR, limit_headers("120,960", "100,560")),  # at 10:45:01
            err(429, RATE_ERROR),  # no headers, at 11:00:01
            ok(limit_headers("1,961", "1,561")),
        ]
    )
    with caplog.at_level(logging.WARNING):
        resp = send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert resp.status_code == 200
    assert len(seen) == 4
    assert clock.slept == [pytest.approx(11), pytest.approx(900), pytest.approx(900)]
    assert clock.now == datetime(2025, 5, 14, 11, 15, 1, tzinfo=UTC)
    assert "15-minute read budget spent (101/100)" in caplog.text
    assert "retrying in 11.0 s (attempt 2/5)" in caplog.text
    assert TOKEN not in caplog.text


def test_429_with_daily_spent_raises_daily_limit(clock: FakeClock, governor: Governor) -> None:
    clock.now = datetime(2025, 5, 14, 23, 29, 30, tzinfo=UTC)
    client, seen = scripted_client([err(429, RATE_ERROR, limit_headers("40,1300", "20,1000"))])
    with pytest.raises(DailyLimitReached) as info:
        send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert info.value.resets_at == datetime(2025, 5, 15, tzinfo=UTC)
    assert info.value.status == 429
    assert "daily read budget spent (1000/1000)" in str(info.value)
    assert "resumes on the next run" in str(info.value)
    assert clock.slept == [] and len(seen) == 1


def test_daily_spent_stops_before_sending(clock: FakeClock, governor: Governor) -> None:
    governor.observe(limit_headers("80,2000", "20,700"))
    client, seen = scripted_client([ok()])
    with pytest.raises(DailyLimitReached):
        send_with_retries(lambda: client.get(LIST_URL), governor=governor, sleep=clock.sleep)
    assert seen == []


def test_window_spent_waits_before_sending(clock: FakeClock, governor: Governor) -> None:
    governor.observe(limit_headers("80,900", "100,700"))
    client, seen = scripted_client([ok()])
    send_with_retries(lambda: client.get(LIST_URL), governor=governor, sleep=clock.sleep)
    assert clock.slept == [pytest.approx(11)]
    assert len(seen) == 1


def test_post_429_ignores_read_budget(clock: FakeClock, governor: Governor) -> None:
    client, seen = scripted_client([err(429, RATE_ERROR, limit_headers("200,1500", "3,1000")), ok()])
    send_with_retries(
        lambda: client.post(f"{API}/oauth/token"),
        policy=NO_JITTER,
        governor=governor,
        sleep=clock.sleep,
        method="POST",
    )
    assert clock.slept == [pytest.approx(11)]  # waited for the window, no daily stop
    assert len(seen) == 2


def test_429_storm_is_bounded(clock: FakeClock, governor: Governor) -> None:
    policy = RetryPolicy(attempts=3, jitter=0.0)
    client, seen = scripted_client([err(429, RATE_ERROR, limit_headers("10,10", "100,100"))] * 3)
    with pytest.raises(RateLimitExceeded, match="gave up after 3 rate-limited attempts"):
        send_with_retries(lambda: client.get(LIST_URL), policy=policy, governor=governor, sleep=clock.sleep)
    assert len(seen) == 3 and len(clock.slept) == 2


def test_5xx_html_502_and_timeout_then_success(
    clock: FakeClock, governor: Governor, caplog: pytest.LogCaptureFixture
) -> None:
    client, seen = scripted_client(
        [
            err(503, {"message": "Service Unavailable"}),
            httpx.Response(502, text=HTML_502, headers={"Content-Type": "text/html"}),
            httpx.ReadTimeout("The read operation timed out"),
            ok(),
        ]
    )
    with caplog.at_level(logging.WARNING):
        resp = send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert resp.status_code == 200
    assert len(seen) == 4
    assert clock.slept == [1.0, 2.0, 4.0]
    assert "non-JSON error body (HTML page)" in caplog.text
    assert "timed out" in caplog.text
    assert "retrying in 4.0 s (attempt 4/5)" in caplog.text


def test_retry_after_is_honoured_within_max_delay(clock: FakeClock, governor: Governor) -> None:
    client, _ = scripted_client(
        [
            err(503, {"message": "busy"}, {"Retry-After": "7"}),
            err(503, {"message": "busy"}, {"Retry-After": "600"}),
            ok(),
        ]
    )
    send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert clock.slept == [7.0, 60.0]


def test_jittered_backoff_stays_in_bounds(clock: FakeClock, governor: Governor) -> None:
    client, _ = scripted_client([err(500)] * 4 + [ok()])
    send_with_retries(
        lambda: client.get(LIST_URL),
        policy=RetryPolicy(jitter=0.5),
        governor=governor,
        sleep=clock.sleep,
        rng=random.Random(1),
    )
    for n, slept in enumerate(clock.slept, start=1):
        assert 2 ** (n - 1) * 0.5 <= slept <= 2 ** (n - 1) * 1.5


def test_attempts_exhausted_raises_last_error(clock: FakeClock, governor: Governor) -> None:
    client, seen = scripted_client([err(500, {"message": "Internal Error"})] * 5)
    with pytest.raises(RetriableError, match="gave up after 5 attempts") as info:
        send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert info.value.status == 500
    assert "Internal Error" in str(info.value)
    assert len(seen) == 5 and len(clock.slept) == 4


def test_connection_errors_exhausted_keep_cause(clock: FakeClock) -> None:
    client, _ = scripted_client([httpx.ConnectError("[Errno 111] Connection refused")] * 2)
    with pytest.raises(RetriableError, match="gave up after 2 attempts") as info:
        send_with_retries(
            lambda: client.get(LIST_URL),
            policy=RetryPolicy(attempts=2, jitter=0.0),
            governor=None,
            sleep=clock.sleep,
        )
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "could not connect" in str(info.value)
    assert clock.slept == [1.0]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (403, ForbiddenError), (404, NotFoundError), (400, BadRequestError)],
)
def test_fatal_errors_raise_at_once(clock: FakeClock, governor: Governor, status: int, cls: type[StravaError]) -> None:
    client, seen = scripted_client([err(status, AUTH_ERROR), ok()])
    with pytest.raises(cls) as info:
        send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert type(info.value) is cls
    assert len(seen) == 1 and clock.slept == []


def test_token_endpoint_rejection_is_fatal(clock: FakeClock) -> None:
    body = {
        "message": "Bad Request",
        "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}],
    }
    client, _ = scripted_client([err(400, body)])
    with pytest.raises(RefreshTokenRejected, match="refresh token"):
        send_with_retries(
            lambda: client.post("https://www.strava.com/oauth/token", data={"client_secret": SECRET}),
            sleep=clock.sleep,
            token_endpoint=True,
            method="POST",
        )


def test_governor_observes_every_response(clock: FakeClock, governor: Governor) -> None:
    client, _ = scripted_client([err(500, headers=limit_headers("60,700", "50,400")), ok()])
    send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    limits = governor.current()
    assert limits is not None and limits.read == RateLimit(100, 17, 1000, 311)


def test_default_logger_is_module_logger(
    clock: FakeClock, governor: Governor, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = scripted_client([err(500), ok()])
    with caplog.at_level(logging.WARNING, logger=errors.__name__):
        send_with_retries(lambda: client.get(LIST_URL), policy=NO_JITTER, governor=governor, sleep=clock.sleep)
    assert [r.name for r in caplog.records] == [errors.__name__]


def test_logs_through_a_logger_adapter(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Prefect's get_run_logger() returns a LoggerAdapter; both the governor and the loop take it."""
    adapter = logging.LoggerAdapter(logging.getLogger("strava-run"), {"flow_run_id": "x"})
    gov = Governor(clock=clock, sleep=clock.sleep, logger=adapter)
    gov.observe(limit_headers("80,900", "100,700"))
    client, _ = scripted_client([err(502), ok()])
    with caplog.at_level(logging.WARNING, logger="strava-run"):
        send_with_retries(
            lambda: client.get(LIST_URL), policy=NO_JITTER, governor=gov, sleep=clock.sleep, logger=adapter
        )
    assert [r.name for r in caplog.records] == ["strava-run", "strava-run"]
    assert clock.slept == [pytest.approx(11), 1.0]
