"""Flow run names that say what ran, for the UI's run lists (Prefect formats them per run)."""

from __future__ import annotations

from prefect.runtime import flow_run

EXTRACT = "extract-{strava_block}-{run_key}"
LOAD = "load-{warehouse_block}-{run_key}"
MODELS = "models-{warehouse_block}"


def pipeline() -> str:
    """``strava to strava-warehouse, lookback 14d`` (or ``full refresh``): whose data, where, how far back."""
    params = flow_run.parameters
    reach = "full refresh" if params.get("full_refresh") else f"lookback {params.get('lookback_days', 14)}d"
    return f"{params.get('strava_block', 'strava')} to {params.get('warehouse_block', 'strava-warehouse')}, {reach}"


def round_() -> str:
    """``round strava-application to strava-warehouse, lookback 14d`` (``, 2 at a time`` in parallel).

    Like :func:`pipeline`: whose athletes (the application block), where, how far back; a
    deployment-mode round that runs several children at once says how many.
    """
    params = flow_run.parameters
    name = (
        f"round {params.get('application_block', 'strava-application')} to "
        f"{params.get('warehouse_block', 'strava-warehouse')}, lookback {params.get('lookback_days', 14)}d"
    )
    parallel = params.get("parallel", 1)
    if params.get("mode") == "deployment" and isinstance(parallel, int) and parallel > 1:
        name += f", {parallel} at a time"
    return name


def retrain() -> str:
    """``kudos-athlete-123-strava-warehouse``, or ``kudos-newest-...`` when no athlete is named."""
    params = flow_run.parameters
    athlete = params.get("athlete_id")
    who = f"athlete-{athlete}" if athlete is not None else "newest"
    return f"kudos-{who}-{params.get('warehouse_block', 'strava-warehouse')}"
