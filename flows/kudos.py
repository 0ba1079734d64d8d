"""Retrain the kudos model from the warehouse; keep it only when it beats the naive baseline.

Deployment entrypoint: ``flows/kudos.py:retrain_kudos_model`` (triggered by the
``strava.activities.loaded`` event).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from flows import flow_timeout, run_names
from tasks.lake import load_lake

if TYPE_CHECKING:
    from types import ModuleType
from tasks import warehouse as wh

ARTIFACT_KEY = "strava-kudos-model"
KUDOS_EXTRA = "strava-elt[kudos]"
_KUDOS_DEPENDENCIES = {"sklearn", "scipy", "numpy", "joblib", "threadpoolctl", "pandas"}


class KudosExtraMissing(ImportError):
    """scikit-learn and friends are not installed: the kudos model is an optional extra."""


def require_kudos() -> ModuleType:
    """The kudos model's module, or :class:`KudosExtraMissing` naming the extra to install."""
    try:
        from tasks import kudos
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _KUDOS_DEPENDENCIES:
            raise
        raise KudosExtraMissing(
            f"The kudos model needs scikit-learn and pandas, which are not installed here ({exc.name} is missing): "
            f"install the extra, pip install '{KUDOS_EXTRA}' (from a checkout: pip install '.[kudos]'); "
            "on a worker, add it to the deployment's pip install step or image."
        ) from None
    return kudos


@flow(name="retrain-kudos-model", flow_run_name=run_names.retrain, timeout_seconds=flow_timeout(1800))
def retrain_kudos_model(
    warehouse_block: str = "strava-warehouse",
    lake_block: str = "strava-lake",
    athlete_id: int | None = None,
    holdout_fraction: float = 0.2,
    baseline_window: int = 20,
    min_activities: int = 100,
    model_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a kudos regressor, score it against the baseline on the newest activities, save it.

    The flow completes either way: a model that does not beat the baseline is saved for
    inspection but ``latest.json`` keeps pointing at the previous one.

    Args:
        warehouse_block: Name of the Warehouse block to read activities from.
        lake_block: Name of the lake block the model is saved to.
        athlete_id: Whose activities; None: the warehouse's only athlete.
        holdout_fraction: Share of the newest activities held out for scoring.
        baseline_window: N of the baseline "mean kudos of the last N activities" (also a feature).
        min_activities: Fewest activities with kudos to train on; fewer and the flow skips.
        model_params: Overrides of the HistGradientBoostingRegressor parameters.

    Returns:
        ``status`` (promoted, refused or skipped), ``reason``, the MAEs and the lake paths.

    """
    kudos = require_kudos()
    logger = get_run_logger()
    lake = load_lake(lake_block)
    with load_block(Warehouse, warehouse_block).engine() as engine:
        chosen = wh.choose_athlete(engine, athlete_id, option="athlete_id")
        rows = kudos.read_activities(engine, chosen) if chosen is not None else []
        details = kudos.read_details(engine, chosen) if chosen is not None else {}
    athlete: int | str = chosen if chosen is not None else "unknown"

    result = kudos.train_and_evaluate(
        rows,
        holdout_fraction=holdout_fraction,
        baseline_window=baseline_window,
        min_activities=min_activities,
        model_params=model_params,
        details=details,
    )
    outcome: dict[str, Any] = {"athlete_id": athlete, "reason": result.reason, **result.metrics}
    if "mae_model" not in result.metrics:
        logger.warning("Kudos model not trained: %s", result.reason)
        return {**outcome, "status": "skipped"}

    create_table_artifact(
        key=ARTIFACT_KEY,
        table=result.table(),
        description=f"Kudos model for athlete {athlete}: {result.reason}; "
        + ("promoted to latest." if result.accepted else "REFUSED, the previous model stays latest."),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    paths = kudos.save_candidate(lake, result, athlete, stamp)
    outcome["paths"] = paths
    if result.accepted:
        outcome["pointer"] = kudos.promote(lake, athlete, paths, result.metrics)
        logger.info(
            "Kudos model promoted: MAE %s vs baseline %s on %s held-out activities; saved at %s",
            result.metrics["mae_model"],
            result.metrics["mae_baseline"],
            result.metrics["n_test"],
            paths["model"],
        )
        return {**outcome, "status": "promoted"}
    previous = kudos.latest_pointer(lake, athlete)
    logger.warning(
        "Kudos model refused: %s. The latest model stays %s; the candidate is kept at %s for inspection",
        result.reason,
        previous["model"] if previous else "(none yet)",
        paths["folder"],
    )
    return {**outcome, "status": "refused", "latest": previous}


def predict(lake_block: str = "strava-lake", athlete_id: int | None = None, **activity: Any) -> dict[str, Any]:
    """Predict one activity's kudos with the latest accepted model in the lake.

    Args:
        lake_block: Name of the lake block holding ``models/kudos/``.
        athlete_id: Whose model; None: the newest model of any athlete.
        **activity: Keyword arguments of :func:`tasks.kudos.predict_kudos` (distance_km, sport_type, ...).

    Returns:
        ``kudos`` (the prediction), the ``features`` used, and the model's ``pointer``.

    """
    kudos = require_kudos()
    bundle, pointer = kudos.load_latest_model(load_lake(lake_block), athlete_id)
    prediction, features = kudos.predict_kudos(bundle, **activity)
    return {"kudos": prediction, "features": features, "pointer": pointer, "trained_at": bundle.get("trained_at")}
