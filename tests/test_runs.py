"""Runs people can read and bound: run names, the lookback's range, retries for transient failures only."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Env
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.exceptions import ParameterTypeError
from prefect.runtime import flow_run

from blocks.loading import MissingBlockError
from flows.pipeline import MAX_LOOKBACK_DAYS, RETRIES, strava_elt
from tasks.state.retry import final_unless_transient


@pytest.mark.parametrize("days", [-1, MAX_LOOKBACK_DAYS + 1])
def test_lookback_outside_0_to_365_is_refused_before_the_run_starts(days: int) -> None:
    with pytest.raises(ParameterTypeError, match="lookback_days"):
        strava_elt(lookback_days=days)


def test_the_parameter_schema_carries_the_bounds_for_the_ui_and_deployment_runs() -> None:
    lookback = strava_elt.parameters.model_dump()["properties"]["lookback_days"]
    assert (lookback["minimum"], lookback["maximum"], lookback["default"]) == (0, 365, 14)


def test_runs_are_named_for_what_they_ran(env: Env) -> None:
    env.run(lookback_days=7)
    with get_client(sync_client=True) as client:
        name = f"{env.strava_block} to {env.warehouse_block}, lookback 7d"
        # Filtered by name on the server: the session's server holds more runs than one page.
        [main] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[main.id]))
        )
    # Three subflow runs, each holding its tasks: the extract (one task per page, fetched and
    # landed together), the load (the gate, the merge, the watermark), the models (one unit
    # without a task run per model); the main run keeps opening the warehouse and the dashboard.
    by_name = {c.name: c for c in children}
    assert sorted(n.split("-")[0] for n in by_name) == ["extract", "load", "models"], by_name
    extract = next(c for n, c in by_name.items() if n.startswith(f"extract-{env.strava_block}-"))
    load = next(c for n, c in by_name.items() if n.startswith(f"load-{env.warehouse_block}-"))
    models = by_name[f"models-{env.warehouse_block}"]
    assert extract.name.removeprefix("extract-" + env.strava_block) == load.name.removeprefix(
        "load-" + env.warehouse_block
    )  # the same run key
    # Each is a subflow of the main run: its parent task run belongs to the main flow run.
    parents = {c.parent_task_run_id for c in children}
    assert None not in parents and len(parents) == 3
    with get_client(sync_client=True) as client:
        assert {client.read_task_run(p).flow_run_id for p in parents} == {main.id}
    pages = sorted(n for n in client_tasks(extract.id) if n.startswith("fetch-page-"))
    assert pages == ["fetch-page-1", "fetch-page-2", "fetch-page-3"]
    assert sorted(n.rsplit("-", 1)[0] for n in client_tasks(extract.id) if n not in pages) == []
    assert sorted(n.rsplit("-", 1)[0] for n in client_tasks(load.id)) == [
        "advance_watermark",
        "merge_staging",
        "run_validation",
    ]
    assert client_tasks(models.id) == []
    # In the main run: opening the warehouse, the three subflows' parent task runs, the dashboard.
    own = sorted(n.rsplit("-", 1)[0] for n in client_tasks(main.id))
    assert [n for n in own if n in ("open_warehouse", "publish_dashboard")] == ["open_warehouse", "publish_dashboard"]
    assert [n for n in own if n not in ("open_warehouse", "publish_dashboard")] == sorted(
        ["extract-activities", "load-activities", "build-models"]
    ), own
    assert main.empirical_policy.retries == RETRIES


def client_tasks(flow_run_id: Any) -> list[str]:
    """The names of the task runs of one flow run."""
    with get_client(sync_client=True) as client:
        found = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
        )
    return [t.name for t in found]


def _attempts(error: Exception) -> int:
    @flow(retries=1, retry_delay_seconds=0)
    def flaky() -> None:
        attempts.append(flow_run.run_count)
        try:
            raise error
        except Exception as exc:
            final_unless_transient(exc)
            raise

    attempts: list[Any] = []
    with pytest.raises(type(error)):
        flaky()
    return len(attempts)


def test_a_transient_failure_is_retried_and_a_permanent_one_is_not() -> None:
    assert _attempts(ConnectionResetError("the warehouse went away")) == 2
    assert _attempts(MissingBlockError("No Warehouse block named 'x'")) == 1


def test_python_flows_pipeline_py_runs_the_pipeline_once(env: Env) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    script = Path(__file__).resolve().parents[1] / "flows" / "pipeline.py"
    args = [
        "--strava-block",
        env.strava_block,
        "--lake-block",
        env.lake_block,
        "--warehouse-block",
        env.warehouse_block,
    ]
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        cwd=env.home, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["inserted"] == len(env.emu.activities) == len(env.production())
