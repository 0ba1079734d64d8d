"""The kudos model: features from the warehouse, a gradient-boosted regressor, a naive baseline.

Every activity becomes one row of features known when it is uploaded (distance, moving time,
climb, sport and workout type, local weekday and hour, photos, achievements, company, commute,
indoor, visibility) plus its recent history: activities in the 7 and 28 days before it and
the mean kudos of the ``window`` activities before it. That mean is also the baseline to beat.
:func:`feature_frame` gives them as a pandas DataFrame, one row per activity.

Evaluation is time-based: the newest ``holdout_fraction`` of the activities with a kudos
count is held out, the model trains on the older ones, and both are scored by MAE. A model
that does not beat the baseline is refused; an accepted one is refit on every activity and
saved to the lake as ``models/kudos/athlete_id=<id>/<stamp>/model.joblib`` with
``metrics.json``, and ``latest.json`` pointers are moved to it.

With the activity detail loaded (the enrichment's ``strava_activity_detail``), a second candidate
adds :data:`DETAIL_FEATURES` (description length, photo count, PRs, best efforts and segment
efforts in the activity, device, gear; missing where an activity has no detail yet). Both are
trained and scored on the same split; the richer one is chosen only when its MAE is lower than
the summary model's, and the chosen one is then accepted or refused against the baseline as
before. ``metrics["comparison"]`` records both (the artifact's table shows both rows).
"""

from __future__ import annotations

import bisect
import io
import json
import math
import statistics
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from tasks import warehouse as wh
from tasks.lake import Lake

__all__ = [
    "DETAIL_FEATURES",
    "FEATURES",
    "KudosModelError",
    "TrainingResult",
    "latest_pointer",
    "load_latest_model",
    "predict_kudos",
    "promote",
    "feature_frame",
    "read_activities",
    "read_details",
    "save_candidate",
    "train_and_evaluate",
]

FEATURES: tuple[str, ...] = (
    "distance_km",
    "moving_minutes",
    "elevation_m",
    "sport_type",
    "workout_type",
    "weekday",
    "hour",
    "photos",
    "achievements",
    "athlete_count",
    "commute",
    "trainer",
    "visibility",
    "activities_prev_7d",
    "activities_prev_28d",
    "recent_mean_kudos",
)
DETAIL_FEATURES: tuple[str, ...] = (
    "description_chars",
    "detail_photos",
    "pr_count",
    "best_efforts",
    "segment_efforts",
    "device",
    "gear",
)
"""Features from the activity's detail (``sql/kudos/details.sql``); NaN where an activity has none."""
RICH_FEATURES: tuple[str, ...] = (*FEATURES, *DETAIL_FEATURES)
CATEGORICAL = ("sport_type", "workout_type", "visibility", "device", "gear")
MODEL_ROOT = "models/kudos"
DEFAULT_PARAMS: dict[str, Any] = {
    "loss": "poisson",  # kudos are counts
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


class KudosModelError(RuntimeError):
    """No usable model, or data the model cannot be trained on; the message says what to do."""


# --------------------------------------------------------------------------- features


def read_activities(engine: sa.Engine, athlete_id: int) -> list[dict[str, Any]]:
    """One athlete's live activities, oldest first, with the columns the features need."""
    with engine.connect() as conn:
        result = conn.execute(sa.text(wh.read_sql("kudos/activities.sql")), {"athlete_id": athlete_id})
        return [dict(r) for r in result.mappings()]


def read_details(engine: sa.Engine, athlete_id: int) -> dict[int, dict[str, Any]]:
    """One athlete's activity details by activity id (none while the enrichment has loaded none)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("strava_activity_detail"):
            return {}
        result = conn.execute(sa.text(wh.read_sql("kudos/details.sql")), {"athlete_id": athlete_id})
        return {int(r["activity_id"]): dict(r) for r in result.mappings()}


@dataclass
class Encoding:
    """Category vocabularies: a value's code is its index; unknown values are missing (NaN)."""

    sport_type: list[str] = field(default_factory=list)
    workout_type: list[str] = field(default_factory=list)
    visibility: list[str] = field(default_factory=list)
    device: list[str] = field(default_factory=list)
    gear: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> Encoding:
        """Vocabularies from the training rows, most frequent first (ties: first seen first)."""
        return cls(
            **{
                c: [v for v, _ in Counter(frame[c].dropna().astype(str)).most_common()]
                for c in CATEGORICAL
                if c in frame
            }
        )

    def codes(self, column: str, values: pd.Series) -> pd.Series:
        """The categories' codes, NaN for a value never seen."""
        vocabulary: list[str] = getattr(self, column)
        return (
            values.map(lambda v: None if v is None or v != v else str(v))
            .map({v: float(i) for i, v in enumerate(vocabulary)})
            .astype(float)
        )


def _float(value: Any, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _detail_features(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :data:`DETAIL_FEATURES` of one activity (NaN / None where it has no detail)."""
    if detail is None:
        return {name: (None if name in CATEGORICAL else math.nan) for name in DETAIL_FEATURES}
    return {
        "description_chars": _float(detail.get("description_chars")),
        "detail_photos": _float(detail.get("photo_count")),
        "pr_count": _float(detail.get("pr_count")),
        "best_efforts": _float(detail.get("best_effort_count")),
        "segment_efforts": _float(detail.get("segment_effort_count")),
        "device": detail.get("device_name") or "none",
        "gear": detail.get("gear_id") or "none",
    }


def feature_frame(
    rows: Sequence[Mapping[str, Any]], window: int, details: Mapping[int, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """The feature frame: one row per activity, oldest first, indexed by activity id.

    Columns: :data:`FEATURES`, then ``kudos`` (NaN when unknown), ``start_date`` and
    ``baseline``, the mean of the last ``window`` known kudos before the activity (NaN with
    no earlier kudos): the prediction to beat. Every feature is known at upload time.
    With ``details`` (activity id -> its detail row, :func:`read_details`) the frame also has
    :data:`DETAIL_FEATURES` (missing for an activity without a detail).
    """
    ordered = sorted(rows, key=lambda r: (r["start_date"], r["id"]))
    starts: list[datetime] = []
    recent: deque[int] = deque(maxlen=window)
    records: list[dict[str, Any]] = []
    for row in ordered:
        start = row["start_date"]
        local = row["start_date_local"] or start
        mean = statistics.fmean(recent) if recent else math.nan
        records.append(
            {
                "id": row["id"],
                "distance_km": _float(row["distance"]) / 1000,
                "moving_minutes": _float(row["moving_time"]) / 60,
                "elevation_m": _float(row["total_elevation_gain"]),
                "sport_type": row["sport_type"] or "Unknown",
                "workout_type": "none" if row["workout_type"] is None else str(row["workout_type"]),
                "weekday": local.weekday(),
                "hour": local.hour,
                "photos": _float(row["total_photo_count"]),
                "achievements": _float(row["achievement_count"]),
                "athlete_count": _float(row["athlete_count"], 1.0),
                "commute": float(bool(row["commute"])),
                "trainer": float(bool(row["trainer"])),
                "visibility": row["visibility"] or "everyone",
                "activities_prev_7d": len(starts) - bisect.bisect_left(starts, start - timedelta(days=7)),
                "activities_prev_28d": len(starts) - bisect.bisect_left(starts, start - timedelta(days=28)),
                "recent_mean_kudos": mean,
                "kudos": math.nan if row["kudos_count"] is None else float(row["kudos_count"]),
                "start_date": start,
                "baseline": mean,
                **(_detail_features(details.get(int(row["id"]))) if details is not None else {}),
            }
        )
        starts.append(start)
        if row["kudos_count"] is not None:
            recent.append(int(row["kudos_count"]))
    extra = list(DETAIL_FEATURES) if details is not None else []
    columns = ["id", *FEATURES, "kudos", "start_date", "baseline", *extra]
    return pd.DataFrame.from_records(records, columns=columns).set_index("id")


def encode(frame: pd.DataFrame, encoding: Encoding, features: Sequence[str] = FEATURES) -> np.ndarray:
    """The feature matrix in ``features`` order (categories as codes; a feature the frame lacks is missing)."""
    columns = {
        name: (
            pd.Series(math.nan, index=frame.index, dtype=float)
            if name not in frame
            else encoding.codes(name, frame[name])
            if name in CATEGORICAL
            else frame[name].astype(float)
        )
        for name in features
    }
    return pd.DataFrame(columns, index=frame.index).to_numpy(dtype=float)


def make_regressor(
    params: Mapping[str, Any] | None = None, features: Sequence[str] = FEATURES
) -> HistGradientBoostingRegressor:
    """The regressor with the project's defaults, overridden by ``params``."""
    mask = [name in CATEGORICAL for name in features]
    return HistGradientBoostingRegressor(categorical_features=mask, **{**DEFAULT_PARAMS, **(params or {})})


def fit(
    params: Mapping[str, Any] | None, x: np.ndarray, y: np.ndarray, features: Sequence[str] = FEATURES
) -> HistGradientBoostingRegressor:
    """Fit on one OpenMP thread: for a few thousand rows threads only add contention.

    On a busy 2-CPU worker, OpenMP threads made a fit 10x slower.
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        return make_regressor(params, features).fit(x, y)


# --------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    """A trained candidate, its holdout scores and whether it beat the baseline."""

    accepted: bool
    reason: str
    metrics: dict[str, Any]
    bundle: dict[str, Any] | None = None

    def table(self) -> list[dict[str, Any]]:
        """Rows of the MAE table artifact (with the detail, both candidates: the chosen one first)."""
        m = self.metrics
        comparison = m.get("comparison")
        chosen = f" with the {comparison['chosen']} features (chosen)" if comparison else ""
        rows = [
            {
                "predictor": f"model: HistGradientBoostingRegressor ({m['params']['loss']}){chosen}",
                "mae": m["mae_model"],
                "holdout activities": m["n_test"],
                "trained on": m["n_train"],
            }
        ]
        if comparison:
            other = "summary" if comparison["chosen"] == "detail" else "detail"
            rows.append(
                {
                    "predictor": f"model with the {other} features (not chosen)",
                    "mae": comparison[f"mae_{other}"],
                    "holdout activities": m["n_test"],
                    "trained on": m["n_train"],
                }
            )
        return [
            *rows,
            {
                "predictor": f"baseline: mean kudos of the last {m['baseline_window']} activities",
                "mae": m["mae_baseline"],
                "holdout activities": m["n_test"],
                "trained on": 0,
            },
        ]


def _mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - predicted)))


def _context(frame: pd.DataFrame, window: int) -> dict[str, Any]:
    """What predicting a new activity needs from the history: recent activity, sport defaults."""
    kudos = frame["kudos"].dropna().tolist()
    newest = frame["start_date"].iloc[-1]
    sports = {}
    for sport, items in frame.groupby("sport_type", sort=False):
        moving = items[(items["distance_km"] > 0) & (items["moving_minutes"] > 0)]
        sports[str(sport)] = {
            "minutes_per_km": float(statistics.median(moving["moving_minutes"] / moving["distance_km"]))
            if len(moving)
            else None,
            "median_minutes": float(statistics.median(items["moving_minutes"])),
            "climb_per_km": float(statistics.median(moving["elevation_m"] / moving["distance_km"]))
            if len(moving)
            else 0.0,
            "workout_type": Counter(items["workout_type"]).most_common(1)[0][0],
            "activities": len(items),
        }
    recent = frame["start_date"][newest - frame["start_date"] <= pd.Timedelta(days=28)]
    return {
        "recent_mean_kudos": statistics.fmean(kudos[-window:]) if kudos else 0.0,
        "recent_starts": [start.isoformat() for start in recent],
        "newest_start": newest.isoformat(),
        "sports": sports,
    }


@task(cache_policy=NO_CACHE)
def train_and_evaluate(
    rows: Sequence[Mapping[str, Any]],
    *,
    holdout_fraction: float = 0.2,
    baseline_window: int = 20,
    min_activities: int = 100,
    model_params: Mapping[str, Any] | None = None,
    details: Mapping[int, Mapping[str, Any]] | None = None,
) -> TrainingResult:
    """Train on the older activities, score model and baseline on the newest, refit if it wins.

    ``details`` (:func:`read_details`; none or empty: the summary features only): a second
    candidate with :data:`DETAIL_FEATURES` is trained on the same split and chosen only when its
    MAE is lower; ``metrics["comparison"]`` holds both MAEs and which was chosen.
    """
    if not 0 < holdout_fraction < 1:
        raise ValueError("holdout_fraction must be between 0 and 1")
    frame = feature_frame(rows, baseline_window, details or None)
    labelled = np.flatnonzero(frame["kudos"].notna() & frame["baseline"].notna()).tolist()
    params = {**DEFAULT_PARAMS, **(model_params or {})}
    if len(labelled) < min_activities:
        return TrainingResult(
            False,
            f"not enough activities with kudos to train on: {len(labelled)} < min_activities={min_activities}",
            {"n_activities": len(frame), "n_labelled": len(labelled), "params": params},
        )
    n_test = max(10, math.ceil(len(labelled) * holdout_fraction))
    train_idx, test_idx = labelled[:-n_test], labelled[-n_test:]
    encoding = Encoding.fit(frame.iloc[train_idx])
    y = frame["kudos"].to_numpy(dtype=float)
    candidates: dict[str, tuple[Sequence[str], HistGradientBoostingRegressor, float]] = {}
    for label, names in (("summary", FEATURES), ("detail", RICH_FEATURES)):
        if label == "detail" and not details:
            continue
        x_all = encode(frame, encoding, names)
        candidate = fit(model_params, x_all[train_idx], y[train_idx], names)
        mae = _mae(y[test_idx], np.clip(candidate.predict(x_all[test_idx]), 0, None))
        candidates[label] = (names, candidate, mae)
    chosen = min(candidates, key=lambda k: (candidates[k][2], k != "summary"))  # a tie keeps today's model
    features, model, mae_model = candidates[chosen]
    mae_baseline = _mae(y[test_idx], frame["baseline"].to_numpy(dtype=float)[test_idx])
    accepted = mae_model < mae_baseline
    metrics: dict[str, Any] = {
        "mae_model": round(mae_model, 4),
        "mae_baseline": round(mae_baseline, 4),
        "improvement": round(1 - mae_model / mae_baseline, 4) if mae_baseline else None,
        "n_activities": len(frame),
        "n_labelled": len(labelled),
        "n_train": len(train_idx),
        "n_test": n_test,
        "holdout_from": frame["start_date"].iloc[test_idx[0]].isoformat(),
        "holdout_to": frame["start_date"].iloc[test_idx[-1]].isoformat(),
        "baseline_window": baseline_window,
        "holdout_fraction": holdout_fraction,
        "features": list(features),
        "params": params,
        "sklearn_version": sklearn.__version__,
    }
    if len(candidates) > 1:
        metrics["comparison"] = {
            "mae_summary": round(candidates["summary"][2], 4),
            "mae_detail": round(candidates["detail"][2], 4),
            "chosen": chosen,
            "activities_with_detail": sum(1 for i in frame.index if int(i) in (details or {})),
        }
    if not accepted:
        reason = f"model MAE {mae_model:.3f} does not beat the baseline's {mae_baseline:.3f}"
        bundle = _bundle(model, encoding, frame, baseline_window, metrics, features)
        return TrainingResult(False, reason, metrics, bundle)
    # It won on the holdout: refit on every labelled activity, the newest included.
    full_encoding = Encoding.fit(frame.iloc[labelled])
    full = fit(model_params, encode(frame, full_encoding, features)[labelled], y[labelled], features)
    metrics["refit_on"] = len(labelled)
    reason = f"model MAE {mae_model:.3f} beats the baseline's {mae_baseline:.3f}"
    if len(candidates) > 1:
        reason += (
            f" (the {chosen} features: summary {candidates['summary'][2]:.3f}, detail {candidates['detail'][2]:.3f})"
        )
    bundle = _bundle(full, full_encoding, frame, baseline_window, metrics, features)
    return TrainingResult(True, reason, metrics, bundle)


def _bundle(
    model: HistGradientBoostingRegressor,
    encoding: Encoding,
    frame: pd.DataFrame,
    window: int,
    metrics: Mapping[str, Any],
    features: Sequence[str] = FEATURES,
) -> dict[str, Any]:
    return {
        "model": model,
        "features": list(features),
        "encoding": encoding.__dict__,
        "context": _context(frame, window),
        "metrics": dict(metrics),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- the lake


def _read_json(lake: Lake, path: str) -> dict[str, Any] | None:
    """The JSON object at ``path``; None only when nothing is stored there.

    Raises:
        KudosModelError: The file is there but is not a JSON object (say, cut short).

    """
    body = lake.read_if_present(path)
    if body is None:
        return None
    try:
        value = json.loads(body)
        problem = "" if isinstance(value, dict) else f"holds a JSON {type(value).__name__}, not an object"
    except ValueError as exc:  # UnicodeDecodeError included
        problem = f"is not valid JSON ({exc})"
    if problem:
        raise KudosModelError(
            f"The model pointer {lake.url(path)} {problem}: it is corrupt, not absent. Run the "
            "retrain-kudos-model flow to write a new one, or restore the file."
        )
    return dict(value)


def athlete_root(athlete_id: int | str) -> str:
    """The lake folder of one athlete's models."""
    return f"{MODEL_ROOT}/athlete_id={athlete_id}"


@task(cache_policy=NO_CACHE)
def save_candidate(lake: Lake, result: TrainingResult, athlete_id: int | str, stamp: str) -> dict[str, str]:
    """Write the candidate's model and metrics (accepted or not) under its own timestamped folder."""
    folder = f"{athlete_root(athlete_id)}/{stamp}"
    paths = {"folder": folder, "metrics": f"{folder}/metrics.json"}
    metrics = {**result.metrics, "accepted": result.accepted, "reason": result.reason, "athlete_id": athlete_id}
    if result.bundle is not None:
        buffer = io.BytesIO()
        joblib.dump(result.bundle, buffer, compress=3)
        paths["model"] = f"{folder}/model.joblib"
        lake.write(paths["model"], buffer.getvalue())
    lake.write(paths["metrics"], json.dumps(metrics, indent=2, default=str).encode("utf-8"))
    return paths


@task(cache_policy=NO_CACHE)
def promote(lake: Lake, athlete_id: int | str, paths: Mapping[str, str], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Point ``latest.json`` (the athlete's and the lake-wide one) at an accepted model."""
    pointer = {
        "athlete_id": athlete_id,
        "model": paths["model"],
        "metrics": paths["metrics"],
        "mae_model": metrics["mae_model"],
        "mae_baseline": metrics["mae_baseline"],
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    body = json.dumps(pointer, indent=2, default=str).encode("utf-8")
    lake.write(f"{athlete_root(athlete_id)}/latest.json", body)
    lake.write(f"{MODEL_ROOT}/latest.json", body)
    return pointer


def latest_pointer(lake: Lake, athlete_id: int | str | None = None) -> dict[str, Any] | None:
    """The ``latest.json`` pointer of an athlete (or the lake-wide one); None when none exists."""
    path = f"{athlete_root(athlete_id)}/latest.json" if athlete_id is not None else f"{MODEL_ROOT}/latest.json"
    return _read_json(lake, path)


def load_latest_model(lake: Lake, athlete_id: int | str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The newest accepted model bundle and its pointer; :class:`KudosModelError` when none exists."""
    pointer = latest_pointer(lake, athlete_id)
    if pointer is None:
        who = f"athlete {athlete_id}" if athlete_id is not None else "any athlete"
        raise KudosModelError(
            f"No kudos model for {who} in the lake yet: run the retrain-kudos-model flow "
            "(flows/kudos.py:retrain_kudos_model) after a load."
        )
    bundle = joblib.load(io.BytesIO(lake.read(pointer["model"])))
    return bundle, pointer


# --------------------------------------------------------------------------- predicting


def predict_kudos(
    bundle: Mapping[str, Any],
    *,
    distance_km: float,
    sport_type: str,
    moving_minutes: float | None = None,
    elevation_m: float | None = None,
    workout_type: int | None = None,
    start_local: datetime | None = None,
    photos: int = 0,
    achievements: int = 0,
    athlete_count: int = 1,
    commute: bool = False,
    trainer: bool = False,
    visibility: str = "everyone",
) -> tuple[float, dict[str, Any]]:
    """Predict the kudos of one new activity; return the prediction and the features used.

    Missing moving time, climb and workout type default to the athlete's usual ones for the
    sport; the recent-activity features come from the history the model was trained on.
    """
    context = bundle["context"]
    usual = context["sports"].get(sport_type, {})
    if moving_minutes is None:
        pace = usual.get("minutes_per_km")
        moving_minutes = pace * distance_km if pace and distance_km else usual.get("median_minutes", 45.0)
    if elevation_m is None:
        elevation_m = (usual.get("climb_per_km") or 0.0) * distance_km
    start = start_local or datetime.now()
    when = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    starts = sorted(datetime.fromisoformat(s) for s in context["recent_starts"])
    row = {
        "distance_km": distance_km,
        "moving_minutes": moving_minutes,
        "elevation_m": elevation_m,
        "sport_type": sport_type,
        "workout_type": str(workout_type) if workout_type is not None else usual.get("workout_type", "none"),
        "weekday": start.weekday(),
        "hour": start.hour,
        "photos": photos,
        "achievements": achievements,
        "athlete_count": athlete_count,
        "commute": float(commute),
        "trainer": float(trainer),
        "visibility": visibility,
        "activities_prev_7d": sum(1 for s in starts if when - timedelta(days=7) <= s < when),
        "activities_prev_28d": sum(1 for s in starts if when - timedelta(days=28) <= s < when),
        "recent_mean_kudos": context["recent_mean_kudos"],
    }
    # A model with the detail's features sees them as missing here (a new activity has no detail yet).
    x = encode(pd.DataFrame([row]), Encoding(**bundle["encoding"]), bundle.get("features", FEATURES))
    prediction = max(0.0, float(bundle["model"].predict(x)[0]))
    return prediction, row
