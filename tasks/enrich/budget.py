"""What one run may spend on enrichment: what the summary loads leave of the application's budget.

Pure functions: given the limits and the usage Strava last reported (the governor's view, or the
budget Variable a run recorded: :mod:`tasks.state.budget`), they say how many requests the
enrichment may send now. The summary is never starved: :data:`DAILY_RESERVE` requests of every
UTC day and :data:`WINDOW_RESERVE` of every 15-minute window stay unspent by enrichment, for
the weekly runs, the round's summary reads and the webhook reactions. In a round,
:func:`round_share` divides the day's leftover among the athletes still to go that still need
enrichment, so no athlete starves another. docs/enrichment.md has the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tasks.strava.ratelimit import RateLimit, RateLimits

__all__ = [
    "DAILY_RESERVE",
    "DEFAULT_LIMITS",
    "REQUESTS_PER_ACTIVITY",
    "WINDOW_RESERVE",
    "Usage",
    "days_to_enrich",
    "plan_requests",
    "round_share",
    "usage_of",
]

DAILY_RESERVE = 100
"""Requests of each UTC day enrichment leaves to the summary: a weekly incremental run needs 2
(``/athlete`` and one page), a round 2 per athlete, a webhook reaction at most 60 per athlete
(:data:`tasks.webhooks.reactions.DEFAULT_DAILY_REQUESTS`). 100 of the default 1,000 keeps an
incremental run, a small round and a busy reaction possible on a day enrichment works through
a backlog."""

WINDOW_RESERVE = 10
"""Requests of each 15-minute window enrichment leaves unspent, so that a run or a reaction
starting in the same window is not made to wait for the next."""

REQUESTS_PER_ACTIVITY = 2
"""Detail and streams: one request each (an activity whose detail is due again costs 1)."""

DEFAULT_LIMITS = RateLimit(short_limit=100, short_usage=0, long_limit=1000, long_usage=0)
"""A new Strava application's read limits: 100 per 15 minutes, 1,000 a day."""

_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Usage:
    """The tighter of the application's read and overall budgets, as of one moment."""

    window_limit: int
    window_used: int
    daily_limit: int
    daily_used: int

    @property
    def window_left(self) -> int:
        return max(0, self.window_limit - self.window_used)

    @property
    def daily_left(self) -> int:
        return max(0, self.daily_limit - self.daily_used)


def usage_of(limits: RateLimits | None, observed_at: datetime | None = None, now: datetime | None = None) -> Usage:
    """The usage that bounds a GET (the tighter of read and overall), as of ``now``.

    A window (or a day) that has passed since ``observed_at`` counts as reset. Nothing known
    (``limits`` None: no run has recorded a budget yet): a new application's limits, unused.
    """
    pairs = [limit for limit in (limits.read, limits.overall) if limit is not None] if limits else []
    if not pairs:
        pairs = [DEFAULT_LIMITS]
    usage = Usage(
        window_limit=min(p.short_limit for p in pairs),
        window_used=max(p.short_usage for p in pairs),
        daily_limit=min(p.long_limit for p in pairs),
        daily_used=max(p.long_usage for p in pairs),
    )
    if observed_at is None or now is None:
        return usage
    seen, now = observed_at.astimezone(UTC), now.astimezone(UTC)
    if seen.date() != now.date():
        return Usage(usage.window_limit, 0, usage.daily_limit, 0)
    window_start = seen.replace(minute=seen.minute - seen.minute % 15, second=0, microsecond=0)
    if now >= window_start + _WINDOW:
        return Usage(usage.window_limit, 0, usage.daily_limit, usage.daily_used)
    return usage


def plan_requests(
    usage: Usage,
    *,
    cap: int | None = None,
    wait_windows: bool = False,
    daily_reserve: int | None = None,
    window_reserve: int | None = None,
) -> int:
    """Requests the enrichment may send now: never into the summary's reserve, never over ``cap``.

    Without ``wait_windows`` the run spends only what is left of the current 15-minute window
    (less :data:`WINDOW_RESERVE`): it never waits (the enrichment deployment runs every 15
    minutes and takes each window's leftover). With ``wait_windows`` (a round's share) it may
    spend more than one window holds: the governor waits for the next window as usual.
    The day's leftover less :data:`DAILY_RESERVE` bounds both. The reserves default to the
    module's values as they are at the call (a test scales them with the limits).
    """
    daily_reserve = DAILY_RESERVE if daily_reserve is None else daily_reserve
    window_reserve = WINDOW_RESERVE if window_reserve is None else window_reserve
    day = usage.daily_left - daily_reserve
    allowed = day if wait_windows else min(day, usage.window_left - window_reserve)
    if cap is not None:
        allowed = min(allowed, cap)
    return max(0, allowed)


def round_share(
    day_left: int | None, others: Sequence[int | None] = (), *, daily_reserve: int | None = None
) -> int | None:
    """One athlete's enrichment share in a round: its max-min fair part of the day's leftover (less the reserve).

    ``others``: the enrichment needs, in requests, of the athletes after this one in the round's
    order (None: not known, counted as needing everything). An athlete that needs less than an
    equal part (a fully enriched one needs nothing, or its stats and zones) is counted at its
    need; the athletes that still need more divide the rest equally, this athlete among them.
    So no share is held for an athlete that will not spend it, and none starves another: on a
    day that cannot cover everyone, each athlete that needs more gets the same part. What an
    athlete does not spend stays in the budget for the next (the round asks again before each).
    None when the day's leftover is unknown (no run has recorded it).
    """
    if day_left is None:
        return None
    daily_reserve = DAILY_RESERVE if daily_reserve is None else daily_reserve
    left = max(0, day_left - daily_reserve)
    known = sorted(max(0, n) for n in others if n is not None)
    sharing = 1 + sum(1 for n in others if n is None) + len(known)  # this athlete's need: as much as it gets
    for need in known:  # smallest first: those under the equal part take their need, the rest divide again
        if need * sharing > left:
            break
        left, sharing = left - need, sharing - 1
    return left // sharing


def days_to_enrich(
    activities: int,
    *,
    gear: int = 0,
    daily_limit: int = DEFAULT_LIMITS.long_limit,
    daily_reserve: int = DAILY_RESERVE,
    per_day_extra: int = 0,
) -> int:
    """Whole UTC days to enrich ``activities`` (2 requests each) and ``gear`` (1 each) at ``daily_limit``.

    ``per_day_extra``: requests each day spends on other things (the stats and zones snapshot,
    2; the summary reads come out of the reserve). The first day counts whole.
    """
    need = REQUESTS_PER_ACTIVITY * activities + gear
    per_day = daily_limit - daily_reserve - per_day_extra
    if per_day <= 0:
        raise ValueError(f"nothing is left for enrichment: {daily_limit} a day, reserve {daily_reserve}")
    return max(1, math.ceil(need / per_day))
