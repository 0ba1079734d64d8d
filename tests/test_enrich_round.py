"""The round shares the enrichment budget fairly: 5 athletes, a day's budget that covers 2, all complete in 3 days.

Real parts: the emulator's application with 5 athletes over HTTP, their blocks, a DuckDB
warehouse, the round inline. A "day" is the round's day: the emulator's usage reset and the
recorded budget moved to yesterday (``App.next_day``, as tests/test_round.py does). The
reserve is scaled to 10 (100 by default); the 15-minute window is as large as the day, so
no run waits on the real clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tasks.enrich import budget as enrich_budget
from tests.test_round import App, make_app

ATHLETES, ACTIVITIES, RESERVE = 5, 6, 10


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setattr(enrich_budget, "DAILY_RESERVE", RESERVE)
    # Probe the athletes' needs with a first emulator, then size the day for 2 of them.
    for probe in make_app(tmp_path / "probe", [ACTIVITIES] * ATHLETES):
        needs = [_need(probe, a) for a in probe.emu.athlete_ids]
    summary = 2 * ATHLETES  # /athlete and one page each, every round
    daily = RESERVE + summary + 2 * max(needs)
    yield from make_app(tmp_path, [ACTIVITIES] * ATHLETES, read_limits=(daily, daily), overall_limits=(daily, daily))


def _need(app: App, athlete_id: int) -> int:
    """An athlete's enrichment: 2 requests an activity, 1 a gear, stats and zones once."""
    view = app.emu.for_athlete(athlete_id)
    gear = {a.get("gear_id") for a in view.activities if a.get("gear_id")}
    return 2 * len(view.activities) + len(gear) + 2


def progress(app: App) -> dict[int, int]:
    """Activities enriched (detail and streams) per athlete."""
    with duckdb.connect(str(app.home / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "SELECT athlete_id, COUNT(*) FROM strava_enrichment_state "
            "WHERE detail_at IS NOT NULL AND streams_at IS NOT NULL GROUP BY athlete_id"
        ).fetchall()
    found = {int(a): int(n) for a, n in rows}
    return {a: found.get(a, 0) for a in app.emu.athlete_ids}


def test_five_athletes_a_budget_for_two_a_day_all_complete_in_the_days_the_arithmetic_says(app: App) -> None:
    needs = {a: _need(app, a) for a in app.emu.athlete_ids}
    per_day = RESERVE + 2 * ATHLETES + 2 * max(needs.values())  # the fixture's daily limit
    enrichment_per_day = per_day - RESERVE - 2 * ATHLETES
    days = math.ceil(sum(needs.values()) / enrichment_per_day)
    assert days == 3  # 5 athletes, 2 a day

    seen: list[dict[int, int]] = []
    for _day in range(1, days + 2):
        result = app.round(enrich=True)
        assert {a["outcome"] for a in result["athletes"]} == {"complete"}, result
        seen.append(progress(app))
        if all(n == ACTIVITIES for n in seen[-1].values()):
            break
        app.next_day()
    assert len(seen) <= days, seen
    # Fair: on the first day every athlete got some, none was done while another had nothing.
    first = seen[0]
    assert all(n > 0 for n in first.values()), first
    assert max(first.values()) - min(first.values()) <= 2, first
    app.assert_each_activity_once()
    # Each activity's detail and streams were requested once, whatever day it came.
    routes = app.emu.route_counts()
    assert routes["activity"] == routes["streams"] == ATHLETES * ACTIVITIES


def test_a_childs_message_counts_its_enrichment_requests_for_the_rounds_ledger() -> None:
    from tasks.state import rounds

    summary = {"status": "complete", "requests": 2, "athlete_rows": 6, "enrichment": {"requests": 14}}
    assert rounds.parse_outcome(rounds.outcome_message(summary), completed=True).requests == 16
    assert rounds.parse_outcome(rounds.outcome_message({"requests": 2}), completed=True).requests == 2
