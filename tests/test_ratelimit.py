from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tasks.strava import ratelimit
from tasks.strava.ratelimit import (
    SAFETY_MARGIN_SECONDS,
    Governor,
    RateLimit,
    RateLimits,
    acquire_shared_slot,
    seconds_until_midnight,
    seconds_until_next_window,
)
from tests.strava_support import FakeClock


def at(hh: int, mm: int, ss: int = 0, day: int = 14) -> datetime:
    return datetime(2025, 5, day, hh, mm, ss, tzinfo=UTC)


def headers(
    usage: str = "31,512",
    read_usage: str = "17,311",
    limit: str = "200,2000",
    read_limit: str = "100,1000",
) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": limit,
        "X-RateLimit-Usage": usage,
        "X-ReadRateLimit-Limit": read_limit,
        "X-ReadRateLimit-Usage": read_usage,
    }


def governor(start: datetime, **kwargs: object) -> tuple[Governor, FakeClock]:
    clock = FakeClock(start)
    return Governor(clock=clock, sleep=clock.sleep, **kwargs), clock  # type: ignore[arg-type]


# --- parsing -------------------------------------------------------------------------------


def test_parses_the_four_headers() -> None:
    limits = RateLimits.from_headers(headers())
    assert limits == RateLimits(
        overall=RateLimit(short_limit=200, short_usage=31, long_limit=2000, long_usage=512),
        read=RateLimit(short_limit=100, short_usage=17, long_limit=1000, long_usage=311),
    )
    assert limits.overall is not None and limits.read is not None
    assert (limits.overall.short_remaining, limits.overall.long_remaining) == (169, 1488)
    assert (limits.read.short_remaining, limits.read.long_remaining) == (83, 689)


def test_parsing_is_case_insensitive_and_reads_httpx_headers() -> None:
    lower = {k.lower(): v for k, v in headers().items()}
    assert RateLimits.from_headers(lower) == RateLimits.from_headers(headers())
    parsed = RateLimits.from_headers(httpx.Headers(headers(usage=" 5 , 6 ")))
    assert parsed is not None
    assert parsed.overall == RateLimit(200, 5, 2000, 6)


def test_remaining_never_negative() -> None:
    assert RateLimit(100, 103, 1000, 1001).short_remaining == 0
    assert RateLimit(100, 103, 1000, 1001).long_remaining == 0


@pytest.mark.parametrize(
    "garbled",
    ["", "abc", "100", "100,", "100,1000,5", "-1,5", "1.5,2", "0,1000", None, b"\xff\xfe"],
)
def test_garbled_read_pair_is_none_overall_kept(garbled: object) -> None:
    raw: dict[str, object] = dict(headers())
    raw["X-ReadRateLimit-Limit"] = garbled
    limits = RateLimits.from_headers(raw)  # type: ignore[arg-type]
    assert limits is not None
    assert limits.read is None
    assert limits.overall == RateLimit(200, 31, 2000, 512)


def test_missing_headers_give_none() -> None:
    assert RateLimits.from_headers({}) is None
    assert RateLimits.from_headers({"Content-Type": "application/json"}) is None
    only_read = {"X-ReadRateLimit-Limit": "100,1000", "X-ReadRateLimit-Usage": "1,2"}
    assert RateLimits.from_headers(only_read) == RateLimits(overall=None, read=RateLimit(100, 1, 1000, 2))


def test_unreadable_mapping_never_raises() -> None:
    class Broken(dict[str, str]):
        def items(self):  # type: ignore[override]
            raise RuntimeError("boom")

    assert RateLimits.from_headers(Broken()) is None


# --- clock arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(10, 44, 50), 10),
        (at(10, 45, 0), 900),
        (at(10, 59, 59), 1),
        (at(23, 50, 0), 600),
        (datetime(2025, 5, 14, 10, 44, 50, 500_000, tzinfo=UTC), 9.5),
    ],
)
def test_seconds_until_next_window(now: datetime, expected: float) -> None:
    assert seconds_until_next_window(now) == pytest.approx(expected)


def test_seconds_until_midnight_handles_other_timezones_and_naive() -> None:
    assert seconds_until_midnight(at(23, 59, 30)) == 30
    plus_two = at(23, 59, 30).astimezone(timezone(timedelta(hours=2)))  # 01:59:30 local
    assert plus_two.hour == 1
    assert seconds_until_midnight(plus_two) == 30
    assert seconds_until_midnight(datetime(2025, 5, 14, 23, 59, 30)) == 30
    assert seconds_until_midnight(at(0, 0, 0)) == 86400


# --- decisions -----------------------------------------------------------------------------


def test_nothing_observed_goes() -> None:
    gov, clock = governor(at(10, 0))
    assert gov.decide().action == "go"
    assert gov.before_request().action == "go"
    assert clock.slept == []


def test_within_budget_goes_without_sleeping() -> None:
    gov, clock = governor(at(10, 44, 50))
    gov.observe(headers(usage="199,1999", read_usage="99,999"))
    decision = gov.before_request("GET")
    assert decision.action == "go"
    assert decision.wait_seconds == 0
    assert clock.slept == []


def test_read_window_spent_waits_until_quarter_hour(caplog: pytest.LogCaptureFixture) -> None:
    gov, clock = governor(at(10, 44, 50))
    gov.observe(headers(usage="150,900", read_usage="100,420"))

    decision = gov.decide("GET")
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(10 + SAFETY_MARGIN_SECONDS)
    assert decision.resets_at == at(10, 45)
    assert decision.reason == "15-minute read budget spent (100/100); waiting 11 s until 10:45:00 UTC"

    with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
        assert gov.before_request("GET").action == "wait"
    assert clock.slept == [pytest.approx(11)]
    assert "15-minute read budget spent (100/100)" in caplog.text
    # After the boundary the remembered usage counts as reset.
    assert gov.decide("GET").action == "go"
    assert gov.current() == RateLimits(RateLimit(200, 0, 2000, 900), RateLimit(100, 0, 1000, 420))


def test_usage_resets_after_the_boundary_but_not_within_the_window() -> None:
    gov, clock = governor(at(10, 30, 5))
    gov.observe(headers(read_usage="100,420"))
    clock.now = at(10, 44, 59)
    assert gov.decide().action == "wait"
    clock.now = at(10, 45, 0)
    assert gov.decide().action == "go"


def test_overall_window_spent_waits_for_any_method() -> None:
    gov, _ = governor(at(10, 5))
    gov.observe(headers(usage="200,700", read_usage="40,300"))
    for method in ("GET", "POST", "put"):
        decision = gov.decide(method)
        assert decision.action == "wait"
        assert decision.wait_seconds == pytest.approx(600 + SAFETY_MARGIN_SECONDS)
        assert "15-minute overall budget spent (200/200)" in decision.reason


def test_non_get_ignores_read_budget() -> None:
    gov, _ = governor(at(10, 5))
    gov.observe(headers(usage="120,1500", read_usage="100,1000"))
    assert gov.decide("POST").action == "go"
    assert gov.decide("PUT").action == "go"
    assert gov.decide("GET").action == "stop"
    assert gov.decide("get").action == "stop"


def test_daily_read_spent_stops_with_seconds_until_midnight() -> None:
    gov, clock = governor(at(23, 29, 30))
    gov.observe(headers(usage="80,1200", read_usage="40,1000"))
    decision = gov.before_request("GET")
    assert decision.action == "stop"
    assert decision.wait_seconds == pytest.approx(1830)
    assert decision.resets_at == at(0, 0, day=15)
    assert "daily read budget spent (1000/1000)" in decision.reason
    assert "midnight UTC" in decision.reason
    assert clock.slept == []  # stop is the caller's call, never a sleep


def test_daily_spent_close_to_midnight_waits_for_the_reset(caplog: pytest.LogCaptureFixture) -> None:
    gov, clock = governor(at(23, 59, 30))
    gov.observe(headers(usage="80,1200", read_usage="40,1000"))
    with caplog.at_level(logging.WARNING):
        decision = gov.before_request("GET")
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(30 + SAFETY_MARGIN_SECONDS)
    assert decision.resets_at == at(0, 0, day=15)
    assert clock.slept == [pytest.approx(31)]
    assert "daily read budget spent (1000/1000); waiting 31 s until midnight UTC" in caplog.text
    assert gov.decide("GET").action == "go"  # the new day's budget


def test_daily_wait_threshold_is_configurable() -> None:
    for daily_wait, action in ((0, "stop"), (3600, "wait")):
        gov, _ = governor(at(23, 30), daily_wait_seconds=daily_wait)
        gov.observe(headers(read_usage="40,1000"))
        assert gov.decide().action == action
    with pytest.raises(ValueError):
        Governor(daily_wait_seconds=-1)


def test_daily_usage_resets_after_midnight() -> None:
    gov, clock = governor(at(23, 29, 30))
    gov.observe(headers(usage="200,2000", read_usage="100,1000"))
    assert gov.decide().action == "stop"
    clock.now = at(0, 0, 1, day=15)
    assert gov.decide().action == "go"
    assert gov.current() == RateLimits(RateLimit(200, 0, 2000, 0), RateLimit(100, 0, 1000, 0))


def test_daily_wins_over_window() -> None:
    gov, _ = governor(at(12, 0))
    gov.observe(headers(usage="200,2000", read_usage="100,800"))
    assert gov.decide("GET").action == "stop"


def test_reserve_respected() -> None:
    gov, _ = governor(at(9, 1), reserve=5)
    gov.observe(headers(usage="60,700", read_usage="94,500"))
    assert gov.decide().action == "go"
    gov.observe(headers(usage="61,701", read_usage="95,501"))
    decision = gov.decide()
    assert decision.action == "wait"
    assert "(95/100, reserve 5)" in decision.reason
    gov.observe(headers(usage="61,1995", read_usage="5,501"))
    assert gov.decide().action == "stop"


def test_max_wait_caps_the_wait() -> None:
    gov, _ = governor(at(10, 0, 1), max_wait_seconds=60)
    gov.observe(headers(read_usage="100,500"))
    assert gov.decide().wait_seconds == 60


def test_missing_pair_keeps_earlier_observation() -> None:
    gov, _ = governor(at(10, 40))
    gov.observe(headers(read_usage="100,500"))
    assert gov.observe({"X-RateLimit-Limit": "200,2000", "X-RateLimit-Usage": "5,6"}) is not None
    assert gov.decide("GET").action == "wait"  # the read budget is still known spent
    assert gov.observe({}) is None
    assert gov.decide("GET").action == "wait"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Governor(reserve=-1)
    with pytest.raises(ValueError):
        Governor(max_wait_seconds=0)


# --- 429 -----------------------------------------------------------------------------------


def test_429_with_window_spent_waits_until_quarter_hour() -> None:
    gov, clock = governor(at(10, 44, 50))
    decision = gov.on_429(headers(usage="101,900", read_usage="101,500"))
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(11)
    assert decision.reason.startswith("HTTP 429 Rate Limit Exceeded: 15-minute read")
    assert clock.slept == []  # on_429 decides; the caller sleeps


def test_429_with_daily_spent_stops() -> None:
    gov, _ = governor(at(23, 29, 30))
    decision = gov.on_429(headers(usage="50,1300", read_usage="30,1001"))
    assert decision.action == "stop"
    assert decision.wait_seconds == pytest.approx(1830)


def test_429_with_daily_spent_just_before_midnight_waits() -> None:
    gov, _ = governor(at(23, 59, 30))
    decision = gov.on_429(headers(usage="50,1300", read_usage="30,1001"))
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(31)
    assert decision.reason.startswith("HTTP 429 Rate Limit Exceeded: daily read budget spent")


def test_429_without_headers_waits_until_quarter_hour() -> None:
    gov, _ = governor(at(7, 2, 30))
    decision = gov.on_429({})
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(12 * 60 + 30 + SAFETY_MARGIN_SECONDS)
    assert "no rate-limit headers" in decision.reason


def test_429_while_headers_show_budget_left_still_waits() -> None:
    gov, _ = governor(at(7, 14, 0))
    decision = gov.on_429(headers(usage="10,100", read_usage="10,100"))
    assert decision.action == "wait"
    assert decision.wait_seconds == pytest.approx(61)
    assert "not spent" in decision.reason


def test_429_without_headers_uses_earlier_daily_observation() -> None:
    gov, _ = governor(at(20, 0))
    gov.observe(headers(usage="10,2000"))
    assert gov.on_429({}).action == "stop"


# --- shared Prefect slot -------------------------------------------------------------------


def test_acquire_shared_slot_calls_prefect_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.concurrency.sync as prefect_sync

    calls: list[tuple[object, ...]] = []

    def fake_rate_limit(names: object, occupy: int, timeout_seconds: object, strict: bool) -> None:
        calls.append((names, occupy, timeout_seconds, strict))

    monkeypatch.setattr(prefect_sync, "rate_limit", fake_rate_limit)
    acquire_shared_slot()
    acquire_shared_slot("other", timeout_seconds=5)
    assert calls == [("strava-api", 1, None, False), ("other", 1, 5, False)]


@pytest.mark.parametrize("error", [RuntimeError("no server"), TimeoutError(), OSError()])
def test_acquire_shared_slot_swallows_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    import prefect.concurrency.sync as prefect_sync

    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(prefect_sync, "rate_limit", failing)
    with caplog.at_level(logging.DEBUG, logger=ratelimit.__name__):
        acquire_shared_slot()
    assert "not applied" in caplog.text


def test_acquire_shared_slot_with_unreachable_server_does_nothing() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Another limit name: Prefect keeps one slot service per name, bound to the API URL it
    # started with, and this one must not stay bound to the unreachable server for later tests.
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        acquire_shared_slot("strava-api-unreachable", timeout_seconds=5)


def test_requests_left_is_the_tighter_budget_less_the_reserve_as_of_now() -> None:
    gov, clock = governor(at(10, 5))
    assert gov.requests_left() is None  # no headers yet
    gov.observe(headers(usage="31,1950", read_usage="17,311"))
    # GET: read 83 this window, 689 today; overall 169 and 50: the tighter of each
    assert gov.requests_left("GET") == (83, 50)
    assert gov.requests_left("POST") == (169, 50)  # a write spends the overall budget only
    reserved, _ = governor(at(10, 5), reserve=5)
    reserved.observe(headers(usage="31,512", read_usage="98,311"))
    assert reserved.requests_left() == (0, 684)  # never negative; 689 read today less 5
    clock.now = at(10, 15)  # the next 15-minute window: that usage counts as reset
    assert gov.requests_left() == (100, 50)
