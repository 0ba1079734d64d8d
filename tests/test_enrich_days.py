"""The budget arithmetic on the emulator's fake clock: a history enriched within the days docs/enrichment.md says.

Scaled by 1/10 so that it runs in a minute: the emulator's read limits are 10 per 15 minutes
and 100 a day (a new application's are 100 and 1,000), the reserves 1 a window and 10 a day
(10 and 100 by default), the history 123 activities (1,234). The arithmetic is the same:
246 requests for the activities, a few for gear, 2 a day for stats and zones, 90 a day to spend
-> 3 days. The shipped schedules are played on the fake clock (tests/enrich_days_support.py, shared with
bench/enrich_days.py, which plays the full scale): the ``weekly`` run at Sunday 00:00, then a run
of ``enrich`` at each of its ticks while the day has budget left for enrichment; the rest of the
day's ticks would send nothing, so the play jumps to the next day's first tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.enrich import budget as enrich_budget
from tests.conftest import make_env
from tests.enrich_days_support import play, weekly_start
from tests.strava_support import FakeClock, use_clock

SCALE = 10
ACTIVITIES = 1234 // SCALE  # 123
WINDOW, DAILY = 100 // SCALE, 1000 // SCALE
START = weekly_start(datetime(2026, 11, 1, tzinfo=UTC))  # the weekly deployment's Sunday 00:00 run


def test_a_history_is_enriched_within_the_days_the_arithmetic_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    use_clock(monkeypatch, clock)
    monkeypatch.setattr(enrich_budget, "DAILY_RESERVE", enrich_budget.DAILY_RESERVE // SCALE)
    monkeypatch.setattr(enrich_budget, "WINDOW_RESERVE", enrich_budget.WINDOW_RESERVE // SCALE)
    for env in make_env(tmp_path, activities=ACTIVITIES, clock=clock, read_limits=(WINDOW, DAILY)):
        gear = len({a.get("gear_id") for a in env.emu.activities if a.get("gear_id")})
        days = enrich_budget.days_to_enrich(
            ACTIVITIES, gear=gear, daily_limit=DAILY, daily_reserve=DAILY // SCALE, per_day_extra=2
        )
        assert days == 3  # 246 + gear + 2 a day, 90 a day to spend

        played = play(env, clock, START, limits=(WINDOW, DAILY), max_days=days + 1)
        weekly, per_day = played.weekly, played.per_day
        assert weekly["inserted"] == ACTIVITIES and weekly["requests"] == 2  # the summary first, at 00:00
        assert played.finished is not None, per_day
        assert played.finished - START < timedelta(days=days), (played.finished, per_day)
        assert played.days == days
        assert played.limit_hits == []  # no 429, no wait for a window, no run stopped by the daily limit
        # Every day but the last spends what the summary leaves, and never its reserve.
        assert all(spent <= DAILY - DAILY // SCALE for spent in per_day.values()), per_day
        first_day = per_day[START.date().isoformat()]
        assert first_day + weekly["requests"] <= DAILY - DAILY // SCALE
        routes = env.emu.route_counts()
        assert sum(per_day.values()) == 2 * ACTIVITIES + gear + 2 * days + routes.get("athlete", 1) - 1
        # Exactly 2 requests an activity across the days (a manual activity's streams: one 404), 1 a gear.
        assert (routes["activity"], routes["streams"], routes["gear"]) == (ACTIVITIES, ACTIVITIES, gear)
        assert (routes["stats"], routes["zones"]) == (days, days)
