"""The round shares the enrichment budget fairly: 5 athletes, a day's budget that covers 2, all complete in 3 days.

And the share divides by the athletes that still need enrichment: with 2 of 5 already complete,
the other 3 split the day (docs/enrichment.md, "Fairness in rounds").

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
from prefect.variables import Variable

from tasks import enrich as enrich_tasks
from tasks.enrich import budget as enrich_budget
from tasks.state import budget
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


def rounds_until_enriched(app: App, activities: int, most: int) -> list[dict[int, int]]:
    """A round with enrichment a day until every athlete's ``activities`` are enriched (at most ``most``).

    Returns each day's progress (activities enriched per athlete, after that day's round).
    """
    seen: list[dict[int, int]] = []
    for _day in range(most):
        result = app.round(enrich=True)
        assert {a["outcome"] for a in result["athletes"]} == {"complete"}, result
        seen.append(progress(app))
        if all(n == activities for n in seen[-1].values()):
            break
        app.next_day()
    return seen


def test_five_athletes_a_budget_for_two_a_day_all_complete_in_the_days_the_arithmetic_says(app: App) -> None:
    needs = {a: _need(app, a) for a in app.emu.athlete_ids}
    per_day = RESERVE + 2 * ATHLETES + 2 * max(needs.values())  # the fixture's daily limit
    enrichment_per_day = per_day - RESERVE - 2 * ATHLETES
    days = math.ceil(sum(needs.values()) / enrichment_per_day)
    assert days == 3  # 5 athletes, 2 a day

    seen = rounds_until_enriched(app, ACTIVITIES, days + 1)
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


COMPLETE, NEEDING_ACTIVITIES = 2, 12


@pytest.fixture
def app_two_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, int]]:
    """5 athletes of 12 activities, a day sized so that the 3 still to enrich need 2 days when they split it.

    The last 2 in the round's order (ties: the smallest id first) are enriched beforehand, with
    the limits raised; yields the app and the day's enrichment budget.
    """
    monkeypatch.setattr(enrich_budget, "DAILY_RESERVE", RESERVE)
    for probe in make_app(tmp_path / "probe", [NEEDING_ACTIVITIES] * ATHLETES):
        need = max(_need(probe, a) for a in probe.emu.athlete_ids)
    needing = ATHLETES - COMPLETE
    # Half of the 3 athletes' needs a day, and room for rounding (an activity is paid 2 at once)
    # and for the complete athletes' stats and zones, should a UTC midnight pass during the test.
    enrichment = math.ceil(needing * need / 2) + 2 * COMPLETE + 2 * needing
    daily = RESERVE + 2 * ATHLETES + enrichment
    for app in make_app(tmp_path, [NEEDING_ACTIVITIES] * ATHLETES):
        big = (10**5, 10**5)
        app.emu.set_limits(read=big, overall=big)
        app.round()  # every summary
        from flows.enrich import enrich_activities

        blocks = dict(zip(app.emu.athlete_ids, app.athlete_blocks, strict=True))
        for athlete in sorted(blocks)[-COMPLETE:]:
            done = enrich_activities(
                blocks[athlete], app.lake_block, app.warehouse_block, max_requests=10**4, wait_windows=True
            )
            assert done.enriched == done.total == NEEDING_ACTIVITIES
        app.emu.set_limits(read=(daily, daily), overall=(daily, daily))
        app.emu.reset_counts()
        app.next_day()
        Variable.unset(budget.variable_name(app.emu.client_id))  # the usage seen under the raised limits
        yield app, enrichment


def test_athletes_already_complete_hold_no_share_the_others_split_the_day(app_two_complete: tuple[App, int]) -> None:
    app, enrichment = app_two_complete
    ids = sorted(app.emu.athlete_ids)  # the round's order (all loaded once, in this order): complete ones last
    needing, complete = ids[: ATHLETES - COMPLETE], ids[ATHLETES - COMPLETE :]
    needs = {a: _need(app, a) for a in needing}
    days = math.ceil(sum(needs.values()) / (enrichment - 2 * COMPLETE - 2 * len(needing)))
    assert days == 2  # shared by 5 athletes (the complete ones holding theirs unspent), it takes 3 or more

    seen = rounds_until_enriched(app, NEEDING_ACTIVITIES, days + 2)
    assert len(seen) == days, seen
    # Day 1: the 3 split the day (within an activity or two of each other), half of each one's need.
    first = {a: seen[0][a] for a in needing}
    assert max(first.values()) - min(first.values()) <= 2, first
    assert all(NEEDING_ACTIVITIES // 3 <= n < NEEDING_ACTIVITIES for n in first.values()), first
    # The complete athletes asked for no detail or streams again; every activity's were asked once.
    for athlete in complete:
        assert app.emu.request_count(athlete_id=athlete, route="activity") == 0
        assert app.emu.request_count(athlete_id=athlete, route="streams") == 0
    routes = app.emu.route_counts()
    assert routes["activity"] == routes["streams"] == len(needing) * NEEDING_ACTIVITIES
    app.assert_each_activity_once()


def test_the_round_reads_each_athletes_need_from_the_warehouse(app_two_complete: tuple[App, int]) -> None:
    from blocks.warehouse import Warehouse
    from flows.round import enrichment_needs
    from tasks.strava.roster import list_roster

    app, _ = app_two_complete
    roster = sorted(list_roster(app.application_block), key=lambda e: e.athlete_id or 0)
    needs = enrichment_needs(roster, app.warehouse_block)
    ids = sorted(app.emu.athlete_ids)
    with Warehouse.load(app.warehouse_block).engine() as engine, engine.connect() as conn:
        progress_of = {a: enrich_tasks.progress(conn, a) for a in ids}
    for athlete in ids[: ATHLETES - COMPLETE]:  # never enriched: 2 an activity, its gear, stats and zones
        assert needs[str(athlete)] == _need(app, athlete), (athlete, needs)
        assert progress_of[athlete].enriched == 0
    for athlete in ids[ATHLETES - COMPLETE :]:  # complete, stats and zones read today: nothing
        assert needs[str(athlete)] == 0, needs
        assert progress_of[athlete].complete
