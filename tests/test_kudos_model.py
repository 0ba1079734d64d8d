"""The kudos model: features, the time-based holdout, the baseline gate, the lake, predict-kudos."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from flows.cli import main
from flows.kudos import retrain_kudos_model
from tasks import kudos
from tasks.kudos.model import Encoding, encode
from tests.conftest import Env, make_env
from tests.insight_support import fill_warehouse


def _row(i: int, start: datetime, kudos_count: int | None, **overrides: Any) -> dict[str, Any]:
    """A SummaryActivity dict with just what the model reads."""
    local = start + timedelta(hours=1)
    activity = {
        "id": 5_000_000_000 + i,
        "athlete": {"id": overrides.pop("athlete_id", 77)},
        "name": f"activity {i}",
        "distance": 8000.0 + (i % 7) * 1000,
        "moving_time": 2400 + (i % 5) * 300,
        "total_elevation_gain": 40.0,
        "sport_type": "Run" if i % 3 else "Ride",
        "type": "Run",
        "workout_type": 0,
        "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_date_local": local.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kudos_count": kudos_count,
        "total_photo_count": 0,
        "achievement_count": 0,
        "athlete_count": 1,
        "visibility": "everyone",
        "commute": False,
        "trainer": False,
    }
    activity.update(overrides)
    return activity


def _save_blocks(home: Path) -> tuple[str, str]:
    """A Warehouse block on a DuckDB file and a LocalFileSystem lake under ``home``."""
    from prefect.filesystems import LocalFileSystem

    from blocks import Warehouse

    suffix = uuid.uuid4().hex[:10]
    warehouse, lake = f"kudos-wh-{suffix}", f"kudos-lake-{suffix}"
    Warehouse(url=SecretStr(f"duckdb:///{home / 'warehouse.duckdb'}")).save(warehouse, overwrite=True)
    (home / "lake").mkdir(parents=True, exist_ok=True)
    LocalFileSystem(basepath=str(home / "lake")).save(lake, overwrite=True)
    return warehouse, lake


def _engine(home: Path) -> sa.Engine:
    return sa.create_engine(f"duckdb:///{home / 'warehouse.duckdb'}")


# --------------------------------------------------------------------------- features


def test_features_use_only_the_past() -> None:
    t0 = datetime(2025, 1, 1, 8, tzinfo=UTC)
    acts = [_row(i, t0 + timedelta(days=i * 2), k) for i, k in enumerate([4, None, 10, 6, 8])]
    rows = [
        {
            "id": a["id"],
            "start_date": datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")),
            "start_date_local": datetime.fromisoformat(a["start_date_local"].replace("Z", "")),
            "distance": a["distance"],
            "moving_time": a["moving_time"],
            "total_elevation_gain": a["total_elevation_gain"],
            "sport_type": a["sport_type"],
            "workout_type": a["workout_type"],
            "total_photo_count": 0,
            "achievement_count": 0,
            "athlete_count": 1,
            "commute": False,
            "trainer": False,
            "visibility": "everyone",
            "kudos_count": a["kudos_count"],
        }
        for a in reversed(acts)  # order must not matter
    ]
    frame = kudos.feature_frame(rows, window=2)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [*kudos.FEATURES, "kudos", "start_date", "baseline"]
    assert list(frame.index) == [a["id"] for a in acts]  # oldest first, indexed by activity id
    assert frame["kudos"].tolist()[:1] + frame["kudos"].tolist()[2:] == [4, 10, 6, 8]
    assert pd.isna(frame["kudos"].iloc[1])
    baseline = frame["baseline"].tolist()
    assert pd.isna(baseline[0])  # NaN: no history yet
    assert baseline[1:] == [4.0, 4.0, 7.0, 8.0]  # mean of the last 2 known kudos before each
    assert frame["recent_mean_kudos"].equals(frame["baseline"])
    assert frame["activities_prev_7d"].tolist() == [0, 1, 2, 3, 3]
    assert frame["activities_prev_28d"].tolist() == [0, 1, 2, 3, 4]
    first = frame.iloc[0]
    assert first["weekday"] == 2 and first["hour"] == 9  # local time: Wednesday 09:00
    assert frame["sport_type"].tolist()[:2] == ["Ride", "Run"]
    matrix = encode(frame, Encoding.fit(frame))
    assert matrix.shape == (5, len(kudos.FEATURES)) and matrix.dtype == float
    unseen = encode(frame.assign(sport_type="Kayak"), Encoding.fit(frame))
    assert np.isnan(unseen[:, kudos.FEATURES.index("sport_type")]).all()  # a sport never seen: missing


def test_read_activities_excludes_deleted_and_filters_the_athlete(tmp_path: Path) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    acts = [_row(i, t0 + timedelta(days=i), i) for i in range(10)]
    acts += [_row(100 + i, t0 + timedelta(days=i), 1, athlete_id=88) for i in range(3)]
    engine = _engine(tmp_path)
    fill_warehouse(engine, acts, deleted_ids={acts[2]["id"], acts[5]["id"]}, build=False)
    mine = kudos.read_activities(engine, 77)
    assert len(mine) == 8 and {r["athlete_id"] for r in mine} == {77}
    assert [r["start_date"] for r in mine] == sorted(r["start_date"] for r in mine)
    assert {r["athlete_id"] for r in kudos.read_activities(engine, 88)} == {88}  # one athlete at a time
    engine.dispose()


# --------------------------------------------------------------------------- the flow on the emulator's athlete


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, dict[str, Any]]]:
    """The emulator's default athlete (1500 activities) loaded by the pipeline, then the model retrained."""
    for env in make_env(tmp_path_factory.mktemp("kudos"), activities=1500):
        env.run()
        result = retrain_kudos_model(warehouse_block=env.warehouse_block, lake_block=env.lake_block)
        yield env, result


def test_model_beats_the_baseline_on_the_emulator_athlete(trained: tuple[Env, dict[str, Any]]) -> None:
    env, result = trained
    assert result["status"] == "promoted", result["reason"]
    assert result["athlete_id"] == env.emu.athlete["id"]
    assert result["mae_model"] < 0.75 * result["mae_baseline"], result
    assert result["n_test"] == pytest.approx(0.2 * result["n_labelled"], abs=1)
    assert result["n_train"] + result["n_test"] == result["n_labelled"] <= len(env.emu.activities)
    print(
        f"\nkudos model MAE {result['mae_model']} vs baseline {result['mae_baseline']} "
        f"({result['n_test']} held-out activities)"
    )


def test_model_and_pointers_are_in_the_lake(trained: tuple[Env, dict[str, Any]]) -> None:
    env, result = trained
    athlete = env.emu.athlete["id"]
    folder = env.lake_dir / result["paths"]["folder"]
    assert folder.parent == env.lake_dir / "models" / "kudos" / f"athlete_id={athlete}"
    assert (folder / "model.joblib").stat().st_size > 10_000
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["accepted"] is True and metrics["mae_model"] == result["mae_model"]
    assert metrics["holdout_from"] > "2000" and metrics["features"] == list(kudos.FEATURES)
    for pointer_path in (folder.parent / "latest.json", env.lake_dir / "models" / "kudos" / "latest.json"):
        pointer = json.loads(pointer_path.read_text())
        assert pointer["model"] == result["paths"]["model"] and pointer["athlete_id"] == athlete


def test_mae_table_artifact(trained: tuple[Env, dict[str, Any]]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.kudos import ARTIFACT_KEY

    _, result = trained
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])), limit=50
        )
    tables = [json.loads(a.data) if isinstance(a.data, str) else a.data for a in artifacts if a.type == "table"]
    assert any({row["mae"] for row in table} == {result["mae_model"], result["mae_baseline"]} for table in tables), (
        tables
    )


def test_predict_kudos_cli(trained: tuple[Env, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    env, _ = trained
    lake = ["--lake-block", env.lake_block]
    assert main(["predict-kudos", "--distance", "10", "--sport-type", "Run", *lake]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Predicted kudos: ") and "km of Run" in out and "MAE" in out

    def predicted(*args: str) -> float:
        assert main(["predict-kudos", *args, *lake, "--json", "--start", "2026-06-06T09:00"]) == 0
        return float(json.loads(capsys.readouterr().out)["kudos"])

    long_ride = predicted("--distance", "120", "--sport-type", "Ride", "--photos", "3")
    yoga = predicted("--distance", "0", "--sport-type", "Yoga", "--moving-time", "45")
    commute = predicted("--distance", "8", "--sport-type", "Ride", "--commute")
    race = predicted("--distance", "21.1", "--sport-type", "Run", "--workout-type", "1", "--moving-time", "95")
    assert 0 <= yoga < long_ride and 0 <= commute < long_ride
    assert race > yoga
    athlete = str(env.emu.athlete["id"])
    assert main(["predict-kudos", "--distance", "5", "--sport-type", "Run", "--athlete-id", athlete, *lake]) == 0


def test_predict_kudos_without_a_model_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lake = _save_blocks(tmp_path)
    assert main(["predict-kudos", "--distance", "10", "--sport-type", "Run", "--lake-block", lake]) == 1
    err = capsys.readouterr().err
    assert "No kudos model" in err and "retrain-kudos-model" in err


# --------------------------------------------------------------------------- refusing


def _trending(athlete_id: int, n: int = 400) -> list[dict[str, Any]]:
    """Kudos that climb steadily: the rolling mean tracks them, a one-step model cannot."""
    rng = random.Random(3)
    t0 = datetime(2024, 1, 1, 7, tzinfo=UTC)
    return [
        _row(
            i,
            t0 + timedelta(hours=20 * i),
            5 + i // 8 + rng.randint(0, 1),
            athlete_id=athlete_id,
            distance=rng.uniform(2000, 40000),
        )
        for i in range(n)
    ]


def test_a_model_worse_than_the_baseline_is_refused(trained: tuple[Env, dict[str, Any]], tmp_path: Path) -> None:
    env, promoted = trained
    athlete = env.emu.athlete["id"]
    pointer_file = env.lake_dir / "models" / "kudos" / f"athlete_id={athlete}" / "latest.json"
    before = pointer_file.read_bytes()
    # Same athlete and lake, another warehouse whose kudos trend strongly upwards.
    warehouse, _ = _save_blocks(tmp_path)
    engine = _engine(tmp_path)
    fill_warehouse(engine, _trending(athlete), build=False)
    engine.dispose()

    state = retrain_kudos_model(
        warehouse_block=warehouse,
        lake_block=env.lake_block,
        athlete_id=athlete,
        model_params={"max_iter": 1, "learning_rate": 0.001},  # forced worse: one tiny boosting step
        return_state=True,
    )
    assert state.is_completed()  # refusing is an outcome, not a failure
    result = state.result()
    assert result["status"] == "refused"
    assert result["mae_model"] >= result["mae_baseline"]
    assert "does not beat the baseline" in result["reason"]
    assert pointer_file.read_bytes() == before  # the previous model stays the latest
    assert result["latest"]["model"] == promoted["paths"]["model"]
    metrics = json.loads((env.lake_dir / result["paths"]["metrics"]).read_text())
    assert metrics["accepted"] is False


def test_too_few_activities_skip_training(tmp_path: Path) -> None:
    warehouse, lake = _save_blocks(tmp_path)
    engine = _engine(tmp_path)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    fill_warehouse(engine, [_row(i, t0 + timedelta(days=i), 3) for i in range(30)], build=False)
    engine.dispose()
    result = retrain_kudos_model(warehouse_block=warehouse, lake_block=lake)
    assert result["status"] == "skipped" and "not enough activities" in result["reason"]
    assert not (tmp_path / "lake" / "models").exists()


def test_several_athletes_need_an_athlete_id(tmp_path: Path) -> None:
    warehouse, lake = _save_blocks(tmp_path)
    engine = _engine(tmp_path)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    acts = [_row(i, t0 + timedelta(days=i), 3, athlete_id=1 + i % 2) for i in range(20)]
    fill_warehouse(engine, acts, build=False)
    engine.dispose()
    with pytest.raises(ValueError, match="pass athlete_id"):
        retrain_kudos_model(warehouse_block=warehouse, lake_block=lake)
    result = retrain_kudos_model(warehouse_block=warehouse, lake_block=lake, athlete_id=2, min_activities=50)
    assert result["status"] == "skipped" and result["n_activities"] == 10
