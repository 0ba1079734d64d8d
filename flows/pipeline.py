"""The main flow: extract, load, move the watermark, build the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed

from flows.extract import FUTURE_IDS_SHOWN, PARTIAL, extract_activities
from flows.insight import publish_insight
from flows.load import load_activities, open_engine
from flows.models import build_models
from tasks import events, notify
from tasks import warehouse as wh
from tasks import watermark as wm


def open_target(warehouse_block: str) -> str:
    """Connect to the warehouse, create or migrate its tables and return its id (the engine is closed again)."""
    _, engine = open_engine(warehouse_block)
    try:
        return wh.open_warehouse(engine)
    finally:
        engine.dispose()


def new_run_key() -> str:
    """Sortable, unique, identifier-safe key for this run's lake prefix and staging table."""
    return datetime.now(UTC).strftime("%Y%m%dt%H%M%S") + "_" + uuid.uuid4().hex[:8]


@flow(name="strava-elt")
def strava_elt(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    warehouse_block: str = "strava-warehouse",
    lookback_days: int = 14,
    full_refresh: bool = False,
    slack_block: str | None = None,
) -> dict[str, Any]:
    """Keep the warehouse in step with Strava: every activity once, with its newest values.

    Args:
        strava_block: Name of the StravaCredentials block.
        lake_block: Name of the lake block (LocalFileSystem or S3Bucket).
        warehouse_block: Name of the Warehouse block.
        lookback_days: Re-read this many days before the watermark, for late uploads and
            changed kudos.
        full_refresh: Re-read the whole history and mark deletions across it.
        slack_block: Name of a prefect-slack SlackWebhook block for one message per run
            (also when the run fails or validation halts it). None: no message.

    """
    summary: dict[str, Any] = {"run_key": new_run_key(), "status": "started"}
    slack = notify.load_slack(slack_block)
    try:
        _run(summary, strava_block, lake_block, warehouse_block, lookback_days, full_refresh)
        if str(summary["status"]).startswith(PARTIAL):
            # Cut short by the daily rate limit: Completed, and the run's state says so.
            return Completed(message=summary["status"], data=summary)  # type: ignore[return-value]
        return summary
    except Exception as exc:
        notify.record_failure(summary, exc)
        raise
    finally:
        notify.report_run(summary, slack)


def _run(
    summary: dict[str, Any],
    strava_block: str,
    lake_block: str,
    warehouse_block: str,
    lookback_days: int,
    full_refresh: bool,
) -> dict[str, Any]:
    """Extract, load, move the watermark, build the models; ``summary`` fills in as it goes."""
    logger = get_run_logger()
    run_key = summary["run_key"]
    # The warehouse first: a wrong URL or a DuckDB file another process holds fails the run
    # before it spends any of the Strava budget.
    warehouse_id = open_target(warehouse_block)
    summary["warehouse_id"] = warehouse_id
    extract = extract_activities(strava_block, lake_block, run_key, lookback_days, full_refresh, warehouse_block)
    summary |= {
        "run_key": run_key,
        "athlete_id": extract.athlete_id,
        "pages": extract.pages,
        "requests": extract.requests,
        "extracted": extract.activities,
        "status": extract.partial_reason or "complete",
        "new_fields": extract.new_fields,
        "new_sport_types": extract.new_sport_types,
        "unfit_values": extract.unfit_values,
        "future_dated": {"count": len(extract.future_dated), "ids": extract.future_dated[:FUTURE_IDS_SHOWN]},
    }
    if extract.full_read_reason:
        summary["full_read_reason"] = extract.full_read_reason
    if extract.athlete_id is None:  # the daily budget was spent before /athlete answered
        logger.warning("Run %s: nothing extracted, nothing loaded, watermark unchanged; %s", run_key, summary["status"])
        return summary
    if extract.staging_path is None:
        raise RuntimeError("extract produced no staging file")
    window = (extract.after, extract.extracted_at) if extract.complete else None
    merged = load_activities(
        warehouse_block,
        lake_block,
        extract.staging_path,
        run_key,
        extract.extracted_at,
        window,
        extract.activities,
        extract.athlete_id,
    )
    summary.update(merged)
    # The merge has committed: only now may the watermark move (never past this run's time).
    watermark = wm.advance_watermark(
        warehouse_id,
        extract.athlete_id,
        extract.newest_start_date,
        extract.extracted_at,
        merged["athlete_rows"],
        str(flow_run.id or ""),
        reset=extract.previous_watermark is None,
    )
    summary["watermark"] = watermark.isoformat() if watermark else None
    # Tell automations (e.g. the kudos model's trigger) that this athlete's activities changed.
    events.emit_activities_loaded(summary, warehouse_block=warehouse_block, lake_block=lake_block)
    summary["models"] = build_models(warehouse_block)
    # Something to look at: the dashboard in the lake (link artifact) and the run report.
    summary["dashboard"] = publish_insight(warehouse_block, lake_block, summary)
    logger.info(
        "Run %s: %s requests, %s pages, %s extracted, %s inserted, %s updated, %s deleted; watermark %s; %s",
        run_key,
        summary["requests"],
        summary["pages"],
        summary["extracted"],
        summary["inserted"],
        summary["updated"],
        summary["deleted"],
        summary["watermark"],
        summary["status"],
    )
    return summary
