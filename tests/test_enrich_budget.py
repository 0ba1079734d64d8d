"""What enrichment may spend (tasks/enrich/budget.py): pure functions of limits and usage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.enrich import budget
from tasks.strava.ratelimit import RateLimit, RateLimits

NOON = datetime(2026, 3, 2, 12, 7, tzinfo=UTC)


def limits(window_used: int, daily_used: int, *, window: int = 100, daily: int = 1000) -> RateLimits:
    read = RateLimit(window, window_used, daily, daily_used)
    overall = RateLimit(window * 2, window_used // 2, daily * 2, daily_used // 2)
    return RateLimits(overall=overall, read=read)


def test_usage_is_the_tighter_budget_and_resets_with_its_window_or_day() -> None:
    usage = budget.usage_of(limits(30, 400), NOON, NOON)
    assert (usage.window_left, usage.daily_left) == (70, 600)
    later_window = budget.usage_of(limits(30, 400), NOON, NOON.replace(minute=15))
    assert (later_window.window_left, later_window.daily_left) == (100, 600)
    same_window = budget.usage_of(limits(30, 400), NOON, NOON.replace(minute=14, second=59))
    assert same_window.window_left == 70
    next_day = budget.usage_of(limits(30, 400), NOON, NOON.replace(day=3, hour=0, minute=1))
    assert (next_day.window_left, next_day.daily_left) == (100, 1000)
    unknown = budget.usage_of(None)
    assert (unknown.window_limit, unknown.daily_limit, unknown.window_used) == (100, 1000, 0)


def test_a_run_spends_the_windows_leftover_less_its_reserve_and_never_the_summarys_day_reserve() -> None:
    fresh = budget.Usage(100, 0, 1000, 0)
    assert budget.plan_requests(fresh) == 100 - budget.WINDOW_RESERVE
    assert budget.plan_requests(budget.Usage(100, 95, 1000, 95)) == 0  # the window's reserve is the summary's
    assert budget.plan_requests(budget.Usage(100, 0, 1000, 860)) == 1000 - 860 - budget.DAILY_RESERVE
    assert budget.plan_requests(budget.Usage(100, 0, 1000, 900)) == 0  # the day's reserve stays untouched
    assert budget.plan_requests(budget.Usage(100, 0, 1000, 990)) == 0  # never negative
    assert budget.plan_requests(fresh, cap=12) == 12
    assert budget.plan_requests(fresh, cap=0) == 0


def test_a_round_share_may_wait_for_windows_but_stays_inside_the_day() -> None:
    fresh = budget.Usage(100, 80, 1000, 100)
    assert budget.plan_requests(fresh, cap=400, wait_windows=True) == 400
    assert budget.plan_requests(fresh, cap=None, wait_windows=True) == 1000 - 100 - budget.DAILY_RESERVE
    assert budget.plan_requests(fresh, cap=400) == 100 - 80 - budget.WINDOW_RESERVE


def test_round_share_divides_the_days_leftover_over_the_athletes_to_go_that_need_it() -> None:
    assert budget.round_share(900, [None] * 4) == 160  # (900 - 100) / 5: needs unknown, all share
    assert budget.round_share(900, [1000] * 4) == 160  # every athlete needs more than its part
    assert budget.round_share(900) == 800  # the last athlete: all that is left
    assert budget.round_share(50, [None, None]) == 0  # inside the reserve: nothing
    assert budget.round_share(None, [None, None]) is None
    # Two of five complete (they need nothing): the three that need enrichment divide the 800.
    assert budget.round_share(900, [1000, 0, 0]) == 400  # this athlete and one more: 800 / 2
    assert budget.round_share(900, [0, 1000, 0, 1000]) == 266  # 800 / 3, not 800 / 5 = 160
    # A complete athlete still reads its stats and zones once a day (2): counted at its need.
    assert budget.round_share(900, [2, 2, 1000, 1000]) == 265  # (800 - 4) / 3
    # An athlete needing less than an equal part takes its need, the rest divide what remains.
    assert budget.round_share(900, [100, 1000]) == 350  # (800 - 100) / 2
    assert budget.round_share(900, [300, 300]) == 266  # 300 > 800 / 3: all three need more, equal parts
    assert budget.round_share(900, [200, 500, None]) == 200  # 200 ≤ 800/4: taken; 600 / 3 = 200


def test_round_shares_add_up_to_the_day_and_starve_no_one() -> None:
    """Played through a round: each athlete asks with the needs of those after it, spends min(share, need)."""
    for needs in ([0, 0, 700, 700, 700], [700, 700, 700, 0, 0], [2, 700, 2, 700, 5], [50, 900, 100, 900, 0]):
        day_left, got = 900, []
        for i, need in enumerate(needs):
            share = budget.round_share(day_left, needs[i + 1 :])
            assert share is not None
            got.append(min(share, need))
            day_left -= got[-1]
        assert sum(got) >= 800 - len(needs), (needs, got)  # the day's 800 is spent, but for rounding
        hungry = [g for g, n in zip(got, needs, strict=True) if g < n]  # those the day could not cover
        assert max(hungry) - min(hungry) <= 1, (needs, got)  # got the same part
        assert all(g == n for g, n in zip(got, needs, strict=True) if n <= min(hungry)), (needs, got)


@pytest.mark.parametrize(
    ("activities", "gear", "daily", "reserve", "extra", "days"),
    [
        (1234, 0, 1000, 100, 0, 3),  # 2,468 requests at 900 a day: 2.74 days
        (1234, 5, 1000, 100, 2, 3),  # with 5 gear and a stats + zones snapshot a day
        (1234, 0, 1000, 0, 0, 3),  # 2.47
        (1234, 0, 1000, 300, 0, 4),  # a larger reserve costs a day
        (200, 0, 1000, 100, 0, 1),
        (123, 1, 100, 10, 2, 3),  # the scaled test's figures (tests/test_enrich_flow.py): 247 / 88
    ],
)
def test_days_to_enrich(activities: int, gear: int, daily: int, reserve: int, extra: int, days: int) -> None:
    assert (
        budget.days_to_enrich(activities, gear=gear, daily_limit=daily, daily_reserve=reserve, per_day_extra=extra)
        == days
    )


def test_days_to_enrich_refuses_a_reserve_that_leaves_nothing() -> None:
    with pytest.raises(ValueError, match="nothing is left"):
        budget.days_to_enrich(10, daily_limit=100, daily_reserve=100)
