"""The budget arithmetic on the emulator's fake clock: a history enriched within the days docs/enrichment.md says.

Scaled by 1/10 so that it runs in a minute: the emulator's read limits are 10 per 15 minutes
and 100 a day (a new application's are 100 and 1,000), the reserves 1 a window and 10 a day
(100 and 10 by default), the history 123 activities (1,234). The arithmetic is the same:
246 requests for the activities, a few for gear, 2 a day for stats and zones, 90 a day to spend
-> 3 days. The ``enrich`` deployment's schedule is played on the fake clock: a run 5 minutes
into every 15-minute window while the day has budget left for enrichment; the rest of the day's
runs send nothing (checked once a day), so the clock jumps to the next day's first window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.enrich import enrich_activities
from tasks.enrich import budget as enrich_budget
from tests.conftest import Env, make_env
from tests.strava_support import FakeClock, use_clock

SCALE = 10
ACTIVITIES = 1234 // SCALE  # 123
WINDOW, DAILY = 100 // SCALE, 1000 // SCALE
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Sunday's weekly run (the emulator's clock)


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
        weekly = env.run()  # the weekly run at 00:00: the summary first (2 requests)
        assert weekly["inserted"] == ACTIVITIES and weekly["requests"] == 2

        per_day: dict[str, int] = {}
        runs = 0
        clock.set(START + timedelta(minutes=5))
        while True:
            before = api_requests(env)
            result = enrich_activities(**env.params())
            spent = api_requests(env) - before
            assert spent == result.requests  # the run says what it sent
            day = clock().date().isoformat()
            per_day[day] = per_day.get(day, 0) + spent
            runs += 1
            assert runs < 60, per_day
            assert result.partial_reason is None  # the plan never runs into the daily limit
            if result.enriched == result.total:
                break
            if result.skipped and "no budget" in result.skipped:
                # The day's enrichment budget is spent: the day's further runs send nothing.
                clock.set(clock().replace(hour=0, minute=5) + timedelta(days=1))
            else:
                clock.set(clock() + timedelta(minutes=15))
        finished = clock()
        assert finished - START < timedelta(days=days), (finished, per_day)
        assert len(per_day) == days
        # Every day but the last spends what the summary leaves, and never its reserve.
        assert all(spent <= DAILY - DAILY // SCALE for spent in per_day.values()), per_day
        first_day = per_day[START.date().isoformat()]
        assert first_day + weekly["requests"] <= DAILY - DAILY // SCALE
        routes = env.emu.route_counts()
        assert sum(per_day.values()) == 2 * ACTIVITIES + gear + 2 * days + routes.get("athlete", 1) - 1
        # Exactly 2 requests an activity across the days (a manual activity's streams: one 404), 1 a gear.
        assert (routes["activity"], routes["streams"], routes["gear"]) == (ACTIVITIES, ACTIVITIES, gear)
        assert (routes["stats"], routes["zones"]) == (days, days)


def api_requests(env: Env) -> int:
    """Requests to the API (the token endpoint is not rate limited, and not counted by the client)."""
    return sum(count for route, count in env.emu.route_counts().items() if route != "token")
