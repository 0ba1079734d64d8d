"""The kudos model with the activity detail: a second candidate on the same split, chosen only when better."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tasks import kudos
from tasks.entities import catalog
from tests.insight_support import fill_warehouse
from tests.test_kudos_model import _engine, _row, _save_blocks


def _rows(count: int = 400, seed: int = 3) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Activities whose kudos follow their segment efforts and description (3 per effort, 1 per 40
    characters): nothing in the summary tells them apart."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, 7, tzinfo=UTC)
    rows, details = [], {}
    for i in range(count):
        efforts = rng.randint(0, 8)
        chars = rng.choice((0, 0, 40, 200))
        kudos_count = 3 * efforts + chars // 40 + rng.randint(0, 1)
        activity_id = 6_000_000 + i
        when = start + timedelta(days=i)
        rows.append(
            {
                "id": activity_id,
                "athlete_id": 77,
                "start_date": when,
                "start_date_local": when.replace(tzinfo=None),
                "distance": 8000.0,
                "moving_time": 2400,
                "total_elevation_gain": 40.0,
                "sport_type": "Run",
                "workout_type": 0,
                "total_photo_count": 0,
                "achievement_count": 0,
                "athlete_count": 1,
                "commute": False,
                "trainer": False,
                "visibility": "everyone",
                "kudos_count": kudos_count,
            }
        )
        details[activity_id] = {
            "description_chars": chars,
            "photo_count": 0,
            "pr_count": 0,
            "best_effort_count": 0,
            "segment_effort_count": efforts,
            "device_name": "Garmin Forerunner 265",
            "gear_id": "g1",
        }
    return rows, details


def test_the_detail_model_is_chosen_when_it_beats_todays_on_the_same_split() -> None:
    rows, details = _rows()
    plain = kudos.train_and_evaluate.fn(rows)
    rich = kudos.train_and_evaluate.fn(rows, details=details)
    comparison = rich.metrics["comparison"]
    assert comparison["chosen"] == "detail" and comparison["activities_with_detail"] == len(rows)
    # The summary candidate is today's model on the same split: the same MAE as training without detail.
    assert comparison["mae_summary"] == plain.metrics["mae_model"]
    assert comparison["mae_detail"] < 0.5 * comparison["mae_summary"]
    assert rich.accepted and rich.metrics["mae_model"] == comparison["mae_detail"]
    assert rich.metrics["features"] == list(kudos.FEATURES) + list(kudos.DETAIL_FEATURES)
    assert rich.bundle is not None and rich.bundle["features"] == rich.metrics["features"]
    table = rich.table()
    assert [r["mae"] for r in table] == [
        comparison["mae_detail"],
        comparison["mae_summary"],
        rich.metrics["mae_baseline"],
    ]
    assert "detail features (chosen)" in table[0]["predictor"] and "summary" in table[1]["predictor"]
    prediction, _ = kudos.predict_kudos(rich.bundle, distance_km=8.0, sport_type="Run")  # no detail yet: missing
    assert prediction >= 0


def test_detail_that_tells_nothing_keeps_todays_model() -> None:
    rows, details = _rows()
    constant = {k: {**v, "segment_effort_count": 1, "description_chars": 10} for k, v in details.items()}
    result = kudos.train_and_evaluate.fn(rows, details=constant)
    comparison = result.metrics["comparison"]
    assert comparison["mae_detail"] == comparison["mae_summary"]  # no split on a constant: the same trees
    assert comparison["chosen"] == "summary"
    assert result.metrics["features"] == list(kudos.FEATURES)


def test_read_details_is_per_athlete_and_skips_deleted(tmp_path: Path) -> None:
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'k.duckdb'}")
    start = datetime(2025, 1, 1, 7, tzinfo=UTC)
    mine = [_row(i, start + timedelta(days=i), 3) for i in range(3)]
    theirs = [_row(10 + i, start + timedelta(days=i), 3, athlete_id=78) for i in range(2)]
    fill_warehouse(engine, [*mine, *theirs], deleted_ids={mine[2]["id"]}, build=False)
    assert kudos.read_details(engine, 77) == {}  # no detail table yet
    metadata = sa.MetaData()
    table = catalog.DETAIL.table_of(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"activity_id": a["id"], "athlete_id": a["athlete"]["id"], "description": "x" * 5, "pr_count": 2}
                for a in [*mine, *theirs]
            ],
        )
    got = kudos.read_details(engine, 77)
    assert sorted(got) == [mine[0]["id"], mine[1]["id"]]  # athlete 78's and the deleted one's left out
    assert got[mine[0]["id"]]["description_chars"] == 5 and got[mine[0]["id"]]["pr_count"] == 2
    engine.dispose()


def test_the_retrain_flow_records_the_comparison(tmp_path: Path) -> None:
    from flows.kudos import retrain_kudos_model

    warehouse, lake = _save_blocks(tmp_path)
    rows, details = _rows(count=200)
    engine = _engine(tmp_path)
    start = datetime(2024, 1, 1, 7, tzinfo=UTC)
    fill_warehouse(
        engine,
        [_row(i, start + timedelta(days=i), r["kudos_count"], id=r["id"]) for i, r in enumerate(rows)],
        build=False,
    )
    metadata = sa.MetaData()
    table = catalog.DETAIL.table_of(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "activity_id": k,
                    "athlete_id": 77,
                    "description": "x" * d["description_chars"],
                    "segment_effort_count": d["segment_effort_count"],
                }
                for k, d in details.items()
            ],
        )
    engine.dispose()
    outcome = retrain_kudos_model(warehouse_block=warehouse, lake_block=lake, min_activities=50)
    assert outcome["status"] == "promoted" and outcome["comparison"]["chosen"] == "detail"
    metrics = json.loads((tmp_path / "lake" / outcome["paths"]["metrics"]).read_text())
    assert metrics["comparison"]["mae_detail"] < metrics["comparison"]["mae_summary"]
