"""The round: every active athlete of one application once, stalest first, one budget, isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import EMULATOR_END, EMULATOR_SEED
from prefect.variables import Variable

from emulator import StravaEmulator
from flows.cli.round import format_round, run_round
from tasks.setup import setup_emulator_application, setup_local_blocks
from tasks.state import budget, rounds, runs


@dataclass
class App:
    """One application behind the emulator, its athletes' blocks, a lake and a DuckDB warehouse."""

    emu: StravaEmulator
    home: Path
    application_block: str
    athlete_blocks: list[str]
    lake_block: str
    warehouse_block: str

    def round(self, **overrides: Any) -> dict[str, Any]:
        params = {
            "application_block": self.application_block,
            "lake_block": self.lake_block,
            "warehouse_block": self.warehouse_block,
            **overrides,
        }
        return run_round(**params)

    def ids_per_athlete(self) -> dict[int, list[int]]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as conn:
            rows = conn.execute("SELECT athlete_id, id FROM strava_activity_data ORDER BY id").fetchall()
        found: dict[int, list[int]] = {}
        for athlete_id, activity_id in rows:
            found.setdefault(int(athlete_id), []).append(int(activity_id))
        return found

    def assert_each_activity_once(self) -> None:
        held = self.ids_per_athlete()
        for athlete_id in self.emu.athlete_ids:
            expected = sorted(a["id"] for a in self.emu.for_athlete(athlete_id).activities)
            assert held.get(athlete_id) == expected, athlete_id

    def next_day(self) -> None:
        """Midnight UTC passes: Strava's daily usage resets, and the budget last seen is yesterday's."""
        self.emu.reset_usage()
        name = budget.variable_name(self.emu.client_id)
        seen = Variable.get(name, default=None)
        if isinstance(seen, dict):
            seen["at"] = (datetime.fromisoformat(seen["at"]) - timedelta(days=1)).isoformat()
            Variable.set(name, seen, overwrite=True)


def make_app(tmp_path: Path, activities: list[int], **emulator_kwargs: Any) -> Iterator[App]:
    suffix = uuid.uuid4().hex[:8]
    # Its own client id: the budget Variable is per application.
    emu = StravaEmulator(
        activities=activities,
        athletes=len(activities),
        # Fixed, and other than the other modules' emulators: athlete ids (and so the tags of
        # their runs on the session's server) never collide with theirs.
        seed=EMULATOR_SEED + 1000,
        end=EMULATOR_END,
        client_id=str(10**6 + int(uuid.uuid4().int % 10**6)),
        **emulator_kwargs,
    )
    emu.start()
    lake, warehouse = f"lake-{suffix}", f"warehouse-{suffix}"
    setup_local_blocks(tmp_path, names=(f"strava-{suffix}", lake, warehouse))
    application = f"app-{suffix}"
    names = setup_emulator_application(emu, application)
    try:
        yield App(emu, tmp_path, application, names, lake, warehouse)
    finally:
        emu.stop()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """Three athletes of 40, 60 and 80 activities."""
    yield from make_app(tmp_path, [40, 60, 80])


def outcomes(result: dict[str, Any]) -> dict[str, str]:
    return {a["athlete"]: a["outcome"] for a in result["athletes"]}


def test_three_athletes_are_loaded_exactly_once_then_incrementally(app: App) -> None:
    first = app.round()
    ids = [str(i) for i in app.emu.athlete_ids]
    assert outcomes(first) == dict.fromkeys(ids, "complete"), format_round(first)
    assert first["state"].startswith("Completed")
    app.assert_each_activity_once()
    index_page = (app.home / "lake" / "index.html").read_text(encoding="utf-8")
    assert all(f"athlete_id={i}/dashboard.html" in index_page for i in ids)
    # Each child's numbers come from its own run: /athlete plus one page of up to 200.
    for line in first["athletes"]:
        athlete_id = int(line["athlete"])
        assert line["requests"] == app.emu.request_count(athlete_id=athlete_id) == 2
        assert line["rows"] == line["inserted"] == len(app.emu.for_athlete(athlete_id).activities)
    # Every child is tagged with its athlete, so `strava-elt athletes` finds its last run.
    last = runs.last_run(app.emu.athlete_ids[0])
    assert last is not None and last.state == "Completed" and last.message and last.message.startswith("complete")

    added = app.emu.for_athlete(app.emu.athlete_ids[1]).add_activities(2)
    second = app.round()
    assert outcomes(second) == dict.fromkeys(ids, "complete")
    assert {a["athlete"]: a["inserted"] for a in second["athletes"]} == {ids[0]: 0, ids[1]: len(added), ids[2]: 0}
    assert all(a["requests"] == 2 for a in second["athletes"])
    app.assert_each_activity_once()


def round_run_names(application_block: str) -> list[str]:
    """The names of the rounds over ``application_block`` on the session's server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["strava-elt-round"])))
    return [r.name for r in found if r.parameters.get("application_block") == application_block]


def test_a_revoked_athlete_is_marked_and_skipped_while_the_others_load(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    revoked = app.emu.athlete_ids[1]
    app.emu.for_athlete(revoked).revoke_refresh_token()
    caplog.set_level("INFO", logger="prefect.flow_runs")
    first = app.round()
    ids = [str(i) for i in app.emu.athlete_ids]
    assert outcomes(first) == {ids[0]: "complete", ids[1]: "revoked", ids[2]: "complete"}, format_round(first)
    # The round's log says what its table says: revoked (not "failed, None requests").
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"Athlete {ids[1]}:")]
    assert lines and all(line.startswith(f"Athlete {ids[1]}: revoked, - requests") for line in lines), lines
    assert not any("None requests" in r.getMessage() or ": failed" in r.getMessage() for r in caplog.records)
    # A descriptive run name, like the athletes' runs.
    assert round_run_names(app.application_block) == [
        f"round {app.application_block} to {app.warehouse_block}, lookback 14d"
    ]
    # A revocation is the athlete's choice, not the round's failure.
    assert first["state"].startswith("Completed")
    held = app.ids_per_athlete()
    assert revoked not in held
    assert set(held) == {app.emu.athlete_ids[0], app.emu.athlete_ids[2]}

    before = {a: app.emu.request_count(athlete_id=a) for a in app.emu.athlete_ids}
    second = app.round()
    assert outcomes(second)[ids[1]] == "revoked"
    [line] = [a for a in second["athletes"] if a["athlete"] == ids[1]]
    assert line["requests"] is None  # skipped: not a single request, not even a token refresh
    spent = {a: app.emu.request_count(athlete_id=a) - before[a] for a in app.emu.athlete_ids}
    assert spent == {app.emu.athlete_ids[0]: 2, revoked: 0, app.emu.athlete_ids[2]: 2}  # the others, incrementally


def test_a_failing_athlete_fails_the_round_but_not_the_others(app: App) -> None:
    failing = app.emu.athlete_ids[0]
    app.emu.for_athlete(failing).inject_items("42")  # a page holding a number: the run refuses it
    result = app.round()
    ids = [str(i) for i in app.emu.athlete_ids]
    assert outcomes(result) == {ids[0]: "failed", ids[1]: "complete", ids[2]: "complete"}, format_round(result)
    assert result["state"].startswith("Failed") and "1 of 3 athletes failed" in result["state"]
    held = app.ids_per_athlete()
    assert failing not in held  # nothing of the failed athlete, the others loaded
    assert set(held) == set(app.emu.athlete_ids[1:])
    # The failed athlete goes first next time.
    assert (
        rounds.order_athletes(ids, rounds.read_round_state(app_warehouse_id(app), app.application_block))[0] == ids[0]
    )


def app_warehouse_id(app: App) -> str:
    with duckdb.connect(str(app.home / "warehouse.duckdb"), read_only=True) as conn:
        return str(conn.execute("SELECT MIN(warehouse_id) FROM strava_elt_warehouse").fetchone()[0])  # type: ignore[index]


def test_a_spent_budget_ends_the_rest_partial_and_the_next_rounds_finish_them(tmp_path: Path) -> None:
    for app in make_app(tmp_path, [30, 40, 50, 35, 45]):
        ids = [str(i) for i in sorted(app.emu.athlete_ids)]  # the first round's order: ties by id
        # Two athletes a day: each needs /athlete and one page.
        app.emu.set_limits(read=(100, 5), overall=(200, 5))
        first = app.round()
        assert outcomes(first) == {
            ids[0]: "complete",
            ids[1]: "complete",
            ids[2]: "partial",
            ids[3]: "partial",
            ids[4]: "partial",
        }, format_round(first)
        assert first["state"].startswith("Completed")
        assert app.emu.usage["read"][1] <= 5
        assert app.emu.request_count(path="/api/v3/athlete") == 2  # the three left were not even asked who they are

        app.next_day()
        second = app.round()
        # The athletes left behind go first: never loaded, then partial.
        taken = [a["athlete"] for a in second["athletes"] if a["outcome"] == "complete"]
        assert taken == [ids[2], ids[3]], format_round(second)

        app.next_day()
        third = app.round()
        assert [a["athlete"] for a in third["athletes"] if a["outcome"] == "complete"] == [ids[4], ids[0]], (
            format_round(third)
        )

        held = app.ids_per_athlete()
        assert set(held) == set(app.emu.athlete_ids)  # nobody starved: all five within three rounds
        app.assert_each_activity_once()
        assert app.emu.usage["read"][1] <= 5


def test_round_state_orders_the_stalest_first() -> None:
    day = datetime(2026, 10, 1, tzinfo=UTC)
    memory = {
        "1": rounds.AthleteMemory(rounds.COMPLETE, day),
        "2": rounds.AthleteMemory(rounds.PARTIAL, day + timedelta(days=2)),
        "3": rounds.AthleteMemory(rounds.COMPLETE, day - timedelta(days=7)),
        "4": rounds.AthleteMemory(rounds.FAILED, day - timedelta(days=1)),
    }
    assert rounds.order_athletes(["1", "2", "3", "4", "5"], memory) == ["5", "2", "3", "4", "1"]


def test_round_state_stays_small_for_two_hundred_athletes() -> None:
    memory = {str(10**9 + i): rounds.AthleteMemory(rounds.COMPLETE, datetime.now(UTC)) for i in range(200)}
    rounds.write_round_state("f" * 32, "app", memory)
    value = Variable.get(rounds.variable_name("f" * 32, "app"))
    import json

    assert len(json.dumps(value, separators=(",", ":"))) <= 5000
    assert set(rounds.read_round_state("f" * 32, "app")) == set(memory)


def test_an_outcome_message_reads_back() -> None:
    summary = {"status": "complete", "requests": 3, "athlete_rows": 312, "inserted": 2, "updated": 1, "deleted": 0}
    summary["watermark"] = "2026-10-31T08:00:00+00:00"
    parsed = rounds.parse_outcome(rounds.outcome_message(summary), completed=True)
    assert parsed == rounds.ChildOutcome("complete", 3, 312, 2, 1, 0, "2026-10-31T08:00:00+00:00")
    partial = rounds.outcome_message({"status": "partial: resumes next run (daily budget spent)", "requests": 1})
    assert rounds.parse_outcome(partial, completed=True).status == "partial"
    assert rounds.parse_outcome("boom", completed=False).status == "failed"


def test_the_ledger_holds_back_what_running_children_may_need() -> None:
    from tasks.strava.ratelimit import RateLimit, RateLimits

    client_id = f"ledger-{uuid.uuid4().hex[:8]}"
    budget.record_budget(client_id, RateLimits(read=RateLimit(100, 10, 1000, 990), overall=None))
    ledger = budget.Ledger(client_id, budget.read_budget(client_id))
    assert ledger.remaining() == 10
    ledger.hold("a", 4)
    ledger.hold("b", 4)
    assert ledger.allows(2) and not ledger.allows(3)
    ledger.settle("a", 2)  # a spent 2; the Variable still says 990 until a run records more
    assert ledger.remaining() == 4
    # An older, lower observation never overwrites today's higher usage.
    budget.record_budget(client_id, RateLimits(read=RateLimit(100, 1, 1000, 980), overall=None))
    assert budget.read_budget(client_id).read.long_usage == 990  # type: ignore[union-attr]
