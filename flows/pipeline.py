"""The main flow: extract, load, move the watermark, build the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from flows import run_names
from flows.extract import PARTIAL, extract_activities
from flows.insight import publish_insight
from flows.load import load_activities
from flows.models import build_models
from tasks import events, notify, retry
from tasks import watermark as wm

MAX_LOOKBACK_DAYS = 365
RETRIES = 1
RETRY_DELAY_SECONDS = 300


def new_run_key() -> str:
    """Sortable, unique, identifier-safe key for this run's lake prefix and staging table."""
    return datetime.now(UTC).strftime("%Y%m%dt%H%M%S") + "_" + uuid.uuid4().hex[:8]


@flow(
    name="strava-elt",
    flow_run_name=run_names.pipeline,
    # Transient trouble (a warehouse or S3 outage, Strava 5xx beyond the client's own retries)
    # gets one more run; permanent errors fail at once (retry.final_unless_transient).
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def strava_elt(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    warehouse_block: str = "strava-warehouse",
    lookback_days: Annotated[int, Field(ge=0, le=MAX_LOOKBACK_DAYS)] = 14,
    full_refresh: bool = False,
    slack_block: str | None = None,
) -> dict[str, Any]:
    """Keep the warehouse in step with Strava: every activity once, with its newest values.

    Args:
        strava_block: Name of the StravaCredentials block.
        lake_block: Name of the lake block (LocalFileSystem or S3Bucket).
        warehouse_block: Name of the Warehouse block.
        lookback_days: Re-read this many days before the watermark, for late uploads and
            changed kudos: 0 to 365.
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
        retry.final_unless_transient(exc)
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
    extract = extract_activities(strava_block, lake_block, run_key, lookback_days, full_refresh)
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
        "rejected": extract.rejected,
    }
    if extract.athlete_id is None:  # the daily budget was spent before /athlete answered
        logger.warning("Run %s: nothing extracted, nothing loaded, watermark unchanged; %s", run_key, summary["status"])
        return summary
    if extract.staging_path is None:
        raise RuntimeError("extract produced no staging file")
    window = (extract.after, extract.extracted_at) if extract.complete else None
    merged = load_activities(
        warehouse_block, lake_block, extract.staging_path, run_key, extract.extracted_at, window, extract.activities
    )
    summary.update(merged)
    # The merge has committed: only now may the watermark move.
    watermark = wm.advance_watermark(extract.athlete_id, extract.newest_start_date, str(flow_run.id or ""))
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


if __name__ == "__main__":
    # `python flows/pipeline.py [--lookback-days N] [--full-refresh] ...`: one run in this
    # process with the default blocks, exactly like `strava-elt run`.
    import sys

    from flows.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
