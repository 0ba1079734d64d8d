"""Resumable backfill: 5,000 activities, 10 reads a day, loaded over several runs, each activity exactly once.

DuckDB only (the warehouse SQL is covered on PostgreSQL by the spine tests); the emulator
and the governor share one fake clock, moved to the next day between runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from flows.pipeline import strava_elt
from tests.conftest import Env, make_env
from tests.strava_support import LIST_PATH, FakeClock, ts, use_clock

ACTIVITIES = 5000
DAILY_READS = 10
PARTIAL = "partial: resumes next run"


def run_with_state(env: Env) -> tuple[Any, dict[str, Any]]:
    state = strava_elt(**env.params(), return_state=True)
    assert state.is_completed(), state.message
    return state, state.result()


def server_state_message(state: Any) -> str | None:
    with get_client(sync_client=True) as client:
        server_state = client.read_flow_run(state.state_details.flow_run_id).state
    assert server_state is not None
    return server_state.message


def test_backfill_over_several_days_loads_every_activity_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    use_clock(monkeypatch, clock)
    for env in make_env(tmp_path, activities=ACTIVITIES, clock=clock, read_limits=(100, DAILY_READS)):
        emulator_ids = {a["id"] for a in env.emu.activities}
        runs: list[dict[str, Any]] = []
        while True:
            state, summary = run_with_state(env)
            runs.append(summary)
            assert summary["requests"] <= DAILY_READS  # the governor never spends past the budget
            if summary["status"] == "complete":
                break
            # Cut short by the daily limit: Completed, says so, and loaded a gap-free prefix.
            assert summary["status"].startswith(PARTIAL)
            assert "daily read budget spent (10/10)" in summary["status"]
            # The state's message: the status, then the numbers a round reads back (tasks/state/rounds.py).
            assert state.message == server_state_message(state)
            assert state.message.startswith(summary["status"] + ": requests=")
            assert summary["deleted"] == 0  # no deletions marked from a partial read
            loaded = env.production()
            newest_loaded = max(r["start_date"] for r in loaded.values())
            assert env.watermark() == newest_loaded
            oldest_first = sorted(env.emu.activities, key=lambda a: ts(a["start_date"]))
            assert set(loaded) == {a["id"] for a in oldest_first[: len(loaded)]}

            if len(runs) == 1:
                # Same day again: even /athlete is refused (429); the run still ends cleanly.
                before = env.emu.request_count()
                state, idle = run_with_state(env)
                assert idle["status"].startswith(PARTIAL) and "nothing to load" in idle["status"]
                assert state.message.startswith(idle["status"])
                assert idle["requests"] == 1 and env.emu.request_count() == before + 2  # + the token
                assert env.production() == loaded
                assert env.watermark() == newest_loaded
                runs.append(idle)

            clock.set(clock().replace(hour=9) + timedelta(days=1))  # past midnight UTC: a new budget
            assert len(runs) < 10, "the backfill does not progress"

        prod = env.production()
        assert set(prod) == emulator_ids and len(prod) == ACTIVITIES
        count, distinct = env.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM strava_activity_data")[0]
        assert count == distinct == ACTIVITIES
        assert all(r["deleted_at"] is None for r in prod.values())
        assert env.watermark() == max(ts(a["start_date"]) for a in env.emu.activities)
        assert sum(r.get("inserted", 0) for r in runs) == ACTIVITIES

        # What it cost: 4 runs (one refused at /athlete), 30 API requests of which 26 list pages.
        statuses = [r["status"].split(" (")[0] for r in runs]
        assert statuses == [PARTIAL, PARTIAL, PARTIAL, "complete"]
        assert [r["requests"] for r in runs] == [10, 1, 10, 9]
        assert [r["pages"] for r in runs] == [9, 0, 9, 8]
        assert env.emu.request_count(LIST_PATH) == 26
        # Each run re-read the lookback's 14 days before the watermark (unchanged, not re-inserted).
        assert [r["extracted"] for r in runs] == [1800, 0, 1800, 1431]
        assert [r.get("inserted", 0) for r in runs] == [1800, 0, 1784, 1416]
        assert [r.get("unchanged", 0) for r in runs] == [0, 0, 16, 15]
