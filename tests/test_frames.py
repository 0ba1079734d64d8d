"""DataFrames for notebooks (tasks.insight.read_*): athlete-scoped reads of a DuckDB warehouse."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from blocks.warehouse import Warehouse
from tasks import insight
from tasks import warehouse as wh
from tests.insight_support import fill_warehouse

T0 = datetime(2025, 3, 1, 7, tzinfo=UTC)


def _activity(i: int, athlete_id: int, sport_type: str = "Run") -> dict[str, Any]:
    start = T0 + timedelta(days=i)
    return {
        "id": 7_000_000_000 + athlete_id * 1000 + i,
        "athlete": {"id": athlete_id},
        "name": f"activity {i}",
        "distance": 5000.0 + 100 * i,
        "moving_time": 1500 + 10 * i,
        "total_elevation_gain": 12.5,
        "sport_type": sport_type,
        "type": sport_type,
        "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_date_local": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kudos_count": i % 4,
    }


def _warehouse(tmp_path: Path, activities: list[dict[str, Any]], **kwargs: Any) -> Warehouse:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    engine = sa.create_engine(url)
    try:
        fill_warehouse(engine, activities, **kwargs)
    finally:
        engine.dispose()
    return Warehouse(url=SecretStr(url))


@pytest.fixture
def two_athletes(tmp_path: Path) -> tuple[Warehouse, list[dict[str, Any]]]:
    mine = [_activity(i, 77, "Run" if i % 3 else "Ride") for i in range(40)]  # into April: two months
    theirs = [_activity(i, 88) for i in range(5)]
    deleted = {mine[3]["id"], mine[10]["id"]}
    return _warehouse(tmp_path, mine + theirs, deleted_ids=deleted), mine


def test_read_activities_is_one_athletes_live_rows_oldest_first(
    two_athletes: tuple[Warehouse, list[dict[str, Any]]],
) -> None:
    warehouse, mine = two_athletes
    frame = insight.read_activities(warehouse, 77)
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == len(mine) - 2 and set(frame["athlete_id"]) == {77}
    assert frame["start_date"].is_monotonic_increasing
    assert str(frame["start_date"].dtype).startswith("datetime64") and str(frame["start_date"].dt.tz) == "UTC"
    assert frame["start_date"].iloc[0] == pd.Timestamp(T0)
    assert frame["start_date_local"].dt.tz is None  # local time stays naive
    assert {"id", "name", "distance", "kudos_count", "deleted_at"} <= set(frame.columns)
    assert frame["deleted_at"].isna().all()
    everything = insight.read_activities(warehouse, 77, include_deleted=True)
    assert len(everything) == len(mine) and everything["deleted_at"].notna().sum() == 2
    assert set(insight.read_activities(warehouse, 88)["athlete_id"]) == {88}


def test_an_athlete_must_be_named_when_the_warehouse_holds_several(
    two_athletes: tuple[Warehouse, list[dict[str, Any]]],
) -> None:
    warehouse, _ = two_athletes
    with pytest.raises(ValueError, match=r"holds 2 athletes \(77, 88\); pass athlete_id"):
        insight.read_activities(warehouse)


def test_read_model_is_one_athletes_rows_without_the_athlete_column(
    two_athletes: tuple[Warehouse, list[dict[str, Any]]],
) -> None:
    warehouse, mine = two_athletes
    assert "activity_summary_monthly" in insight.model_names()
    monthly = insight.read_model(warehouse, "activity_summary_monthly", 77)
    assert "athlete_id" not in monthly.columns
    runs = [a for i, a in enumerate(mine) if a["sport_type"] == "Run" and i not in (3, 10)]
    assert len(monthly) == 2 and int(monthly["activity_count"].sum()) == len(runs)
    assert int(insight.read_model(warehouse, "activity_summary_monthly", 88)["activity_count"].sum()) == 5
    with pytest.raises(ValueError, match="No model named 'nope'; the models are: activity_summary_monthly"):
        insight.read_model(warehouse, "nope", 77)


def test_a_model_not_built_yet_says_so_and_one_athlete_needs_no_id(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path, [_activity(i, 5) for i in range(3)], build=False)
    with pytest.raises(LookupError, match="not built in this warehouse yet"):
        insight.read_model(warehouse, "activity_summary_monthly")
    assert len(insight.read_activities(warehouse)) == 3  # the only athlete
    results = insight.read_validation_results(warehouse)
    assert results.empty and {"run_key", "name", "outcome"} <= set(results.columns)


def test_an_empty_warehouse_reads_as_an_empty_frame_with_its_columns(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    engine = sa.create_engine(url)
    wh.ensure_tables(engine)
    engine.dispose()
    frame = insight.read_activities(Warehouse(url=SecretStr(url)))
    assert frame.empty and {"id", "athlete_id", "start_date"} <= set(frame.columns)


def test_importing_the_insight_package_does_not_import_pandas() -> None:
    probe = "import sys, tasks.insight; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
