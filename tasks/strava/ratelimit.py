"""Strava rate limits: read from the response headers, never guessed.

Strava sends two budget pairs on every API response (15-minute and daily):
``X-RateLimit-Limit``/``X-RateLimit-Usage`` for all requests and
``X-ReadRateLimit-Limit``/``X-ReadRateLimit-Usage`` for reads (GET). The 15-minute window
resets at :00/:15/:30/:45 UTC, the daily one at midnight UTC. :class:`Governor` remembers
the latest values and says, before each request, whether to go, wait for the next window
(or for midnight, when it is that close) or stop for the day. Pacing lives here; retrying
lives in :mod:`tasks.strava.errors`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

import httpx

__all__ = [
    "SAFETY_MARGIN_SECONDS",
    "Decision",
    "Governor",
    "LoggerLike",
    "RateLimit",
    "RateLimits",
    "acquire_shared_slot",
    "shared_limit_exists",
    "seconds_until_midnight",
    "seconds_until_next_window",
]

_LOGGER = logging.getLogger(__name__)

LoggerLike: TypeAlias = logging.Logger | logging.LoggerAdapter[Any]
"""A stdlib logger or an adapter such as Prefect's ``get_run_logger()``."""

SAFETY_MARGIN_SECONDS = 1.0
"""Extra seconds slept past a window boundary, so that Strava's clock has reset too."""

_WINDOW = timedelta(minutes=15)
_DAY = timedelta(days=1)

_OVERALL_HEADERS = ("x-ratelimit-limit", "x-ratelimit-usage")
_READ_HEADERS = ("x-readratelimit-limit", "x-readratelimit-usage")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _window_start(now: datetime) -> datetime:
    now = _as_utc(now)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


def _midnight_after(now: datetime) -> datetime:
    now = _as_utc(now)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + _DAY


def seconds_until_next_window(now: datetime) -> float:
    """Seconds from ``now`` to the next quarter hour (:00/:15/:30/:45 UTC), in (0, 900]."""
    return (_window_start(now) + _WINDOW - _as_utc(now)).total_seconds()


def seconds_until_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next midnight UTC, in (0, 86400]."""
    return (_midnight_after(now) - _as_utc(now)).total_seconds()


@dataclass(frozen=True)
class RateLimit:
    """One budget pair as Strava reports it: 15-minute and daily limit and usage."""

    short_limit: int
    short_usage: int
    long_limit: int
    long_usage: int

    @property
    def short_remaining(self) -> int:
        """Requests left in the current 15-minute window (never negative)."""
        return max(0, self.short_limit - self.short_usage)

    @property
    def long_remaining(self) -> int:
        """Requests left today (never negative)."""
        return max(0, self.long_limit - self.long_usage)


@dataclass(frozen=True)
class RateLimits:
    """The overall and read budgets from one response; either may be unknown."""

    overall: RateLimit | None
    read: RateLimit | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits | None:
        """Parse Strava's rate-limit headers; never raises.

        Args:
            headers: Response headers (any mapping; names are matched case-insensitively).

        Returns:
            The parsed budgets, a pair set to None when its headers are missing or garbled,
            or None when neither pair could be read.

        """
        try:
            lowered = {str(k).lower(): v for k, v in headers.items()}
        except Exception:  # noqa: BLE001 - a header mapping we cannot read is "no headers"
            return None
        overall = _parse_limit(lowered, *_OVERALL_HEADERS)
        read = _parse_limit(lowered, *_READ_HEADERS)
        if overall is None and read is None:
            return None
        return cls(overall=overall, read=read)


def _parse_pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def _parse_limit(headers: Mapping[str, object], limit_name: str, usage_name: str) -> RateLimit | None:
    limit = _parse_pair(headers.get(limit_name))
    usage = _parse_pair(headers.get(usage_name))
    if limit is None or usage is None or limit[0] <= 0 or limit[1] <= 0:
        return None
    return RateLimit(short_limit=limit[0], short_usage=usage[0], long_limit=limit[1], long_usage=usage[1])


@dataclass(frozen=True)
class Decision:
    """What to do before a request: ``go``, ``wait`` ``wait_seconds``, or ``stop`` for the day.

    ``resets_at`` is when the spent budget resets (None on ``go``).
    """

    action: Literal["go", "wait", "stop"]
    wait_seconds: float
    reason: str
    resets_at: datetime | None = None


_GO = Decision(action="go", wait_seconds=0.0, reason="within budget")


def _effective(limit: RateLimit, observed_at: datetime, now: datetime) -> RateLimit:
    """Return ``limit`` as of ``now``: usage counts as reset once its window has passed."""
    short_usage, long_usage = limit.short_usage, limit.long_usage
    if _midnight_after(observed_at) <= now:
        short_usage = long_usage = 0
    elif _window_start(observed_at) + _WINDOW <= now:
        short_usage = 0
    return RateLimit(limit.short_limit, short_usage, limit.long_limit, long_usage)


class Governor:
    """Paces requests by the budgets Strava reported in its latest response headers.

    Thread-safe; every time computation uses the injected ``clock``.

    Args:
        clock: Returns the current time (timezone-aware; naive is taken as UTC).
        sleep: Sleeps the given seconds (injected for tests).
        logger: Where waits are logged; defaults to this module's logger.
        reserve: Requests to leave unused in each budget (for other users of the app).
        max_wait_seconds: Upper bound of any single wait.
        daily_wait_seconds: With the daily budget spent, wait for midnight UTC instead of
            stopping when it is at most this far (default: one window wait). 0: always stop.

    """

    def __init__(
        self,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        logger: LoggerLike | None = None,
        reserve: int = 0,
        max_wait_seconds: float = 900 + SAFETY_MARGIN_SECONDS,
        daily_wait_seconds: float | None = None,
    ) -> None:
        if reserve < 0:
            raise ValueError(f"reserve must be >= 0, got {reserve}")
        if max_wait_seconds <= 0:
            raise ValueError(f"max_wait_seconds must be > 0, got {max_wait_seconds}")
        if daily_wait_seconds is not None and daily_wait_seconds < 0:
            raise ValueError(f"daily_wait_seconds must be >= 0, got {daily_wait_seconds}")
        self._clock = clock
        self._sleep = sleep
        self._logger = logger or _LOGGER
        self.reserve = reserve
        self.max_wait_seconds = max_wait_seconds
        self.daily_wait_seconds = max_wait_seconds if daily_wait_seconds is None else daily_wait_seconds
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[RateLimit, datetime]] = {}

    def now(self) -> datetime:
        """Return the injected clock's time, in UTC."""
        return _as_utc(self._clock())

    def observe(self, headers: Mapping[str, str]) -> RateLimits | None:
        """Parse and remember the budgets in ``headers``.

        A pair missing from ``headers`` keeps its earlier observation.

        Returns:
            The parsed budgets, or None when the headers carry none.

        """
        limits = RateLimits.from_headers(headers)
        if limits is None:
            return None
        now = self.now()
        with self._lock:
            if limits.overall is not None:
                self._seen["overall"] = (limits.overall, now)
            if limits.read is not None:
                self._seen["read"] = (limits.read, now)
        return limits

    def current(self) -> RateLimits | None:
        """Return the remembered budgets as of now (usage reset where a window has passed)."""
        now = self.now()
        with self._lock:
            seen = dict(self._seen)
        if not seen:
            return None
        effective = {kind: _effective(limit, at, now) for kind, (limit, at) in seen.items()}
        return RateLimits(overall=effective.get("overall"), read=effective.get("read"))

    def requests_left(self, method: str = "GET") -> tuple[int, int] | None:
        """Requests a ``method`` may still make in this 15-minute window and today, or None before any headers.

        The tighter of the budgets ``method`` spends (GET: read and overall), less the reserve,
        as of now (a window that has passed counts as reset).
        """
        limits = self.current()
        budgets = _budgets(limits, method) if limits is not None else []
        if not budgets:
            return None
        short = min(limit.short_remaining for _, limit in budgets)
        daily = min(limit.long_remaining for _, limit in budgets)
        return max(0, short - self.reserve), max(0, daily - self.reserve)

    def decide(self, method: str = "GET") -> Decision:
        """Decide, before a ``method`` request, whether to go, wait or stop.

        GET spends the read and the overall budgets, other methods the overall one only.
        """
        now = self.now()
        limits = self.current()
        if limits is None:
            return Decision(action="go", wait_seconds=0.0, reason="no rate limits observed yet")
        budgets = _budgets(limits, method)
        return self._daily_stop(budgets, now) or self._window_wait(budgets, now) or _GO

    def before_request(self, method: str = "GET") -> Decision:
        """Decide, and on ``wait`` log why and sleep; the caller raises on ``stop``."""
        decision = self.decide(method)
        if decision.action == "wait":
            self._logger.warning("Strava rate limit: %s", decision.reason)
            self._sleep(decision.wait_seconds)
        return decision

    def on_429(self, headers: Mapping[str, str], method: str = "GET") -> Decision:
        """Decide after an HTTP 429: stop if the daily budget is spent, else wait for the reset.

        Never returns ``go``: without headers it waits for the next quarter hour.
        """
        self.observe(headers)
        now = self.now()
        limits = self.current()
        budgets = _budgets(limits, method) if limits is not None else []
        wait = self._daily_stop(budgets, now)
        if wait is not None and wait.action == "stop":
            return wait
        wait = wait or self._window_wait(budgets, now, force=True)
        assert wait is not None  # forced
        return Decision(
            action="wait",
            wait_seconds=wait.wait_seconds,
            reason=f"HTTP 429 Rate Limit Exceeded: {wait.reason}",
            resets_at=wait.resets_at,
        )

    def _spent(self, usage: int, limit: int) -> bool:
        return usage + self.reserve >= limit

    def _daily_stop(self, budgets: list[tuple[str, RateLimit]], now: datetime) -> Decision | None:
        """Stop for the day when a daily budget is spent, or wait when midnight UTC is close."""
        for kind, limit in budgets:
            if self._spent(limit.long_usage, limit.long_limit):
                resets_at = _midnight_after(now)
                seconds = seconds_until_midnight(now)
                spent = f"daily {kind} budget spent ({self._usage(limit.long_usage, limit.long_limit)})"
                wait = seconds + SAFETY_MARGIN_SECONDS
                if wait <= self.daily_wait_seconds:
                    # Midnight is no further than a window wait: waiting beats ending the run.
                    return Decision(
                        action="wait",
                        wait_seconds=wait,
                        reason=f"{spent}; waiting {wait:.0f} s until midnight UTC ({resets_at:%Y-%m-%d %H:%M} UTC)",
                        resets_at=resets_at,
                    )
                return Decision(
                    action="stop",
                    wait_seconds=seconds,
                    reason=(f"{spent}; resets at midnight UTC ({resets_at:%Y-%m-%d %H:%M} UTC, in {seconds:.0f} s)"),
                    resets_at=resets_at,
                )
        return None

    def _window_wait(
        self, budgets: list[tuple[str, RateLimit]], now: datetime, *, force: bool = False
    ) -> Decision | None:
        spent = [(kind, limit) for kind, limit in budgets if self._spent(limit.short_usage, limit.short_limit)]
        if not spent and not force:
            return None
        resets_at = _window_start(now) + _WINDOW
        seconds = min(seconds_until_next_window(now) + SAFETY_MARGIN_SECONDS, self.max_wait_seconds)
        if spent:
            kind, limit = spent[0]
            what = f"15-minute {kind} budget spent ({self._usage(limit.short_usage, limit.short_limit)})"
        elif budgets:
            what = (
                "15-minute budget reported as not spent ("
                + ", ".join(f"{kind} {limit.short_usage}/{limit.short_limit}" for kind, limit in budgets)
                + ")"
            )
        else:
            what = "no rate-limit headers"
        return Decision(
            action="wait",
            wait_seconds=seconds,
            reason=f"{what}; waiting {seconds:.0f} s until {resets_at:%H:%M:%S} UTC",
            resets_at=resets_at,
        )

    def _usage(self, usage: int, limit: int) -> str:
        if self.reserve:
            return f"{usage}/{limit}, reserve {self.reserve}"
        return f"{usage}/{limit}"


def _budgets(limits: RateLimits, method: str) -> list[tuple[str, RateLimit]]:
    budgets = [("overall", limits.overall)]
    if method.upper() == "GET":
        budgets.append(("read", limits.read))
    return [(kind, limit) for kind, limit in budgets if limit is not None]


def shared_limit_exists(name: str = "strava-api", *, logger: LoggerLike | None = None) -> bool:
    """Whether the Prefect server has an active global concurrency limit ``name``.

    Asked once per client: taking a slot of a limit that does not exist costs seconds.
    """
    log = logger or _LOGGER
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectException

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        log.debug("No global concurrency limit %r: this run's rate limits are its own", name)
        return False
    except (PrefectException, httpx.HTTPError, OSError, RuntimeError) as exc:
        log.debug("Could not look up global concurrency limit %r: %s", name, exc)
        return False
    return bool(getattr(limit, "active", True))


def acquire_shared_slot(
    name: str = "strava-api",
    *,
    timeout_seconds: float | None = None,
    logger: LoggerLike | None = None,
) -> None:
    """Take one slot of the Prefect global concurrency limit ``name``, if there is one.

    Shares one app budget across concurrent flow runs: create the limit with a slot decay
    (e.g. ``prefect gcl create strava-api --limit 100 --slot-decay-per-second 0.11``).
    Without a Prefect server or without that limit this does nothing (logged at debug).
    """
    log = logger or _LOGGER
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import rate_limit
    from prefect.exceptions import PrefectException

    try:
        rate_limit(name, occupy=1, timeout_seconds=timeout_seconds, strict=False)
    except (
        ConcurrencySlotAcquisitionError,
        PrefectException,
        httpx.HTTPError,
        OSError,  # includes TimeoutError
        RuntimeError,
    ) as exc:
        log.debug("Shared rate limit %r not applied: %s", name, exc)
