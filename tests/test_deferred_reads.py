"""The weekly run pays what webhook reactions deferred: the emulator over HTTP, DuckDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import WAREHOUSES
from test_round import App, make_app, outcomes

from flows.cli.round import format_round
from flows.react import strava_elt_react
from tasks import warehouse as wh
from tasks.state import deferred
from tasks.state.budget import record_budget
from tasks.state.variables import read_variable
from tasks.strava.ratelimit import RateLimit, RateLimits
from tests.conftest import Env
from tests.test_webhooks_react import hint, oldest_id, react


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def flood(env: Env, renamed: int, deleted: int) -> dict[str, Any]:
    """2,000 forged updates of unknown ids, with a real rename and a real deletion among them: over the cap."""
    athlete = env.emu.athlete["id"]
    forged = [{"object_type": "activity", "object_id": 100 + i, "aspect_type": "update"} for i in range(2000)]
    real = [
        hint(athlete, renamed, "update", {"title": "Renamed for real"}, t=5000),
        hint(athlete, deleted, "delete", t=5001),
    ]
    return react(env, *forged, *real, max_activity_requests=20, daily_requests=60)


def olds(env: Env) -> tuple[int, int]:
    """The two oldest activities: outside any incremental read's window."""
    first, second = sorted(env.emu.activities, key=lambda a: a["start_date"])[:2]
    return first["id"], second["id"]


def test_a_flood_leaves_a_full_read_that_the_next_run_pays_and_clears(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    renamed, deleted = olds(env)
    env.emu.modify_activity(renamed, name="Renamed for real")
    env.emu.delete_activity(deleted)
    summary = flood(env, renamed, deleted)
    assert summary["requests"] == 20 and summary["full_read_due"] is True
    assert deferred.read_deferred(athlete).full_read_due
    # the reaction could not afford the real ones: production still has the old values
    assert env.production()[renamed]["name"] != "Renamed for real"
    assert env.production()[deleted]["deleted_at"] is None

    env.emu.reset_counts()
    run = env.run()
    assert "deferred by webhook reactions" in run["full_read_reason"]
    # the whole history: /athlete and ceil(450/200) = 3 pages, no single-activity read
    assert env.emu.request_count(athlete_id=athlete) == 1 + 3
    assert sum(1 for r in env.emu.requests if r.path.count("/") == 4 and "/activities/" in r.path) == 0
    rows = env.production()
    assert rows[renamed]["name"] == "Renamed for real"
    assert rows[deleted]["deleted_at"] is not None
    assert sum(1 for r in rows.values() if r["deleted_at"] is not None) == 1
    assert deferred.read_deferred(athlete).empty
    # paid once: the run after it is incremental again
    env.emu.reset_counts()
    again = env.run()
    assert "full_read_reason" not in again and env.emu.request_count(athlete_id=athlete) == 2


def test_a_run_that_fails_before_the_merge_keeps_the_record(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    renamed, deleted = olds(env)
    env.emu.modify_activity(renamed, name="Renamed for real")
    env.emu.delete_activity(deleted)
    flood(env, renamed, deleted)
    owed = read_variable(deferred.variable_name(athlete))
    mark = env.watermark()

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("crash before the merge")

    with monkeypatch.context() as patch:
        patch.setattr(wh.merge_staging, "fn", explode)
        with pytest.raises(RuntimeError, match="crash before the merge"):
            env.run()
    assert read_variable(deferred.variable_name(athlete)) == owed
    assert env.watermark() == mark
    assert env.production()[renamed]["name"] != "Renamed for real"
    # the next run pays it
    run = env.run()
    assert "deferred by webhook reactions" in run["full_read_reason"]
    assert env.production()[renamed]["name"] == "Renamed for real"
    assert deferred.read_deferred(athlete).empty


def test_an_athlete_without_a_record_makes_the_requests_it_made_before(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    assert read_variable(deferred.variable_name(athlete)) is None
    env.emu.add_activities(3)
    env.emu.reset_counts()
    skipping = env.run(skip_deferred=True)  # the run as it was before it read the record
    before = [r.path for r in env.emu.requests]
    env.emu.add_activities(3)
    env.emu.reset_counts()
    paying = env.run()
    assert [r.path for r in env.emu.requests] == before
    assert paying["requests"] == skipping["requests"] == 2 and paying["inserted"] == 3
    assert read_variable(deferred.variable_name(athlete)) is None  # and it writes none


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_owed_ids_inside_the_window_are_paid_by_the_incremental_read(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    newest = max(env.emu.activities, key=lambda a: a["start_date"])["id"]
    env.emu.modify_activity(newest, name="Renamed, deferred")
    deferred.save_deferred(athlete, deferred.Deferred({newest: "update"}, incremental_due=True))
    env.emu.reset_counts()
    run = env.run()
    assert "full_read_reason" not in run and env.emu.request_count(athlete_id=athlete) == 2
    assert env.production()[newest]["name"] == "Renamed, deferred"
    assert deferred.read_deferred(athlete).empty
    # one owed id older than the window: the run reads the whole history
    old = oldest_id(env)
    deferred.save_deferred(athlete, deferred.Deferred({old: "delete"}))
    env.emu.delete_activity(old)
    run = env.run()
    assert "1 owed activities outside the read window" in run["full_read_reason"]
    assert env.production()[old]["deleted_at"] is not None
    assert deferred.read_deferred(athlete).empty


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """Three athletes of 40, 60 and 80 activities."""
    yield from make_app(tmp_path, [40, 60, 80])


def test_after_a_flood_for_one_athlete_the_next_round_loads_every_athlete(app: App) -> None:
    ids = [str(i) for i in app.emu.athlete_ids]
    assert outcomes(app.round()) == dict.fromkeys(ids, "complete")
    flooded = app.emu.athlete_ids[0]
    forged = [{"object_type": "activity", "object_id": 100 + i, "aspect_type": "update"} for i in range(2000)]
    creates = [
        {"object_type": "activity", "object_id": 7_000_000_000 + i, "aspect_type": "create"} for i in range(2000)
    ]
    summary = strava_elt_react(
        athlete_id=flooded,
        application=app.application_block,
        lake_block=app.lake_block,
        warehouse_block=app.warehouse_block,
        events=forged + creates,
        max_activity_requests=20,
        daily_requests=60,
    )
    assert summary["full_read_due"] is True
    for athlete_id in app.emu.athlete_ids:
        app.emu.for_athlete(athlete_id).add_activities(2)
    second = app.round()
    assert outcomes(second) == dict.fromkeys(ids, "complete")
    assert {a["athlete"]: a["inserted"] for a in second["athletes"]} == dict.fromkeys(ids, 2)
    app.assert_each_activity_once()
    assert deferred.read_deferred(flooded).empty


def test_the_round_counts_an_owed_full_read_as_a_full_read(tmp_path: Path) -> None:
    """An athlete owing a full read needs its pages, not an incremental run's two requests.

    Three athletes of 450 activities; the first in the round's order owes a full read (4
    requests: /athlete and 3 pages) and 3 requests are left today. The round does not start it
    (it would spend them and be cut short), loads the next athlete incrementally with 2, and
    stops there; the next day the owing athlete goes first and pays its read.
    """
    for app in make_app(tmp_path, [450, 450, 450]):
        ids = sorted(app.emu.athlete_ids)  # the first round's order: ties by id
        keys = [str(i) for i in ids]
        assert outcomes(app.round()) == dict.fromkeys(keys, "complete")
        owing = ids[0]  # ended first: the oldest success, first in the next round
        deferred.save_deferred(owing, deferred.Deferred({}, full_read_due=True))
        used = app.emu.usage["read"][1]
        app.emu.set_limits(read=(600, used + 3), overall=(600, used + 3))
        record_budget(
            app.emu.client_id, RateLimits(RateLimit(600, 0, used + 3, used), RateLimit(600, 0, used + 3, used))
        )
        app.emu.reset_counts()

        second = app.round()
        assert outcomes(second) == {keys[0]: "partial", keys[1]: "complete", keys[2]: "partial"}, format_round(second)
        [line] = [a for a in second["athletes"] if a["athlete"] == keys[0]]
        assert "deferred full read needs 4 requests, 3 left today" in line["detail"]
        assert app.emu.request_count(athlete_id=owing) == 0  # not started: nothing spent on a read cut short
        assert app.emu.request_count(athlete_id=ids[1]) == 2
        assert not deferred.read_deferred(owing).empty

        app.next_day()
        app.emu.reset_counts()
        third = app.round()
        assert outcomes(third) == dict.fromkeys(keys, "complete"), format_round(third)
        assert [a["athlete"] for a in third["athletes"]][0] == keys[0]
        assert app.emu.request_count(athlete_id=owing) == 1 + 3  # the whole history, once
        assert deferred.read_deferred(owing).empty
        app.assert_each_activity_once()


def test_the_round_s_need_follows_the_run_s_own_plan() -> None:
    """``run_need`` is a full read exactly when ``plan`` makes the run read the whole history."""
    day = datetime(2026, 10, 1, tzinfo=UTC)
    starts = {i: day - timedelta(days=i) for i in range(1, 451)}  # 450 activities held
    after = day - timedelta(days=14)
    assert deferred.run_need(deferred.Deferred({}), after, starts) == 2
    assert deferred.run_need(deferred.Deferred({}, incremental_due=True), after, starts) == 2
    assert deferred.run_need(deferred.Deferred({3: "update"}), after, starts) == 2  # inside the window
    assert deferred.run_need(deferred.Deferred({}, full_read_due=True), after, starts) == 1 + 3
    assert deferred.run_need(deferred.Deferred({400: "delete"}), after, starts) == 1 + 3  # older than the window
    assert deferred.run_need(deferred.Deferred({10**12: "update"}), after, starts) == 1 + 3  # unknown to the warehouse
    assert deferred.run_need(deferred.Deferred({}, full_read_due=True), after, {}) == 2  # nothing held yet
