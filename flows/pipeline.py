"""The main flow: extract, load, move the watermark, build the models."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from flows import flow_retries, flow_timeout, run_names
from flows.extract import FUTURE_IDS_SHOWN, extract_activities
from flows.insight import publish_insight
from flows.load import load_activities
from flows.models import build_models
from tasks import warehouse as wh
from tasks.insight import notify
from tasks.state import events, retry, rounds
from tasks.state import watermark as wm

MAX_LOOKBACK_DAYS = 365
RETRIES = flow_retries(0)  # deployments set STRAVA_ELT_FLOW_RETRIES=1 (prefect.yaml)
RETRY_DELAY_SECONDS = 300


def open_target(warehouse_block: str) -> str:
    """Connect to the warehouse, create or migrate its tables and return its id (the engine is closed again)."""
    with load_block(Warehouse, warehouse_block).engine() as engine:
        return wh.open_warehouse(engine)


def new_run_key() -> str:
    """Sortable, unique, identifier-safe key for this run's lake prefix and staging table."""
    return datetime.now(UTC).strftime("%Y%m%dt%H%M%S") + "_" + uuid.uuid4().hex[:8]


# A run reads at most the daily budget: 1,000 requests at 100 per 15 minutes is 150 minutes
# of rate-limit windows, plus the load and the models. Four hours bounds a stuck run well inside
# the weekly schedule (deployments may set their own: prefect.yaml, docs/deploy.md).
FLOW_TIMEOUT_SECONDS = 4 * 3600


@flow(
    name="strava-elt",
    flow_run_name=run_names.pipeline,
    # Transient trouble (a warehouse or S3 outage, Strava 5xx beyond the client's own retries)
    # gets one more run; permanent errors fail at once (retry.final_unless_transient).
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
    timeout_seconds=flow_timeout(FLOW_TIMEOUT_SECONDS),
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
        # Completed, and the state's message says what the run did (cut short by the daily rate
        # limit: "partial: resumes next run ..."); a round reads it back (tasks/state/rounds.py).
        return Completed(message=rounds.outcome_message(summary), data=summary)  # type: ignore[return-value]
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
        "rejected": extract.rejected,
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
    _after_commit(summary, extract, warehouse_id, warehouse_block, lake_block)
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


def _after_commit(
    summary: dict[str, Any], extract: Any, warehouse_id: str, warehouse_block: str, lake_block: str
) -> None:
    """The merge has committed: move the watermark, emit the event, rebuild models and dashboard.

    Nothing here can undo the load. A step that fails is recorded and the steps that do not
    need it still run (the dashboard needs the models); then the run fails with
    :class:`~tasks.insight.notify.PostCommitError`, whose message says what completed and what did
    not. The watermark moves first, and only to what the committed merge holds, so warehouse
    and watermark agree whatever fails after it; the next run rebuilds the models and the
    dashboard from the warehouse, as every run does.
    """
    logger = get_run_logger()
    failed: dict[str, str] = {}
    errors: list[Exception] = []

    def step(name: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and the run fails below
            errors.append(exc)
            failed[name] = notify.short_error(exc)
            logger.error("After the merge, %s failed: %s", name, failed[name])
            return None

    # Only now may the watermark move (never past this run's time).
    watermark = step(
        "watermark",
        lambda: wm.advance_watermark(
            warehouse_id,
            extract.athlete_id,
            extract.newest_start_date,
            extract.extracted_at,
            summary["athlete_rows"],
            str(flow_run.id or ""),
            reset=extract.previous_watermark is None,
        ),
    )
    if "watermark" not in failed:
        summary["watermark"] = watermark.isoformat() if watermark else None
    # Tell automations (e.g. the kudos model's trigger) that this athlete's activities changed.
    step(
        "event", lambda: events.emit_activities_loaded(summary, warehouse_block=warehouse_block, lake_block=lake_block)
    )
    models = step("models", lambda: build_models(warehouse_block))
    # Something to look at: the dashboard in the lake (link artifact) and the run report.
    if "models" in failed:
        failed["dashboard"] = "not rebuilt (the models failed)"
    else:
        summary["models"] = models
        dashboard = step("dashboard", lambda: publish_insight(warehouse_block, lake_block, summary))
        if "dashboard" not in failed:
            summary["dashboard"] = dashboard
    if failed:
        summary["failed_after_merge"] = failed
        raise notify.PostCommitError.of(summary, failed) from errors[0]


if __name__ == "__main__":
    # `python flows/pipeline.py [--lookback-days N] [--full-refresh] ...`: one run in this
    # process with the default blocks, exactly like `strava-elt run`.
    import sys

    from flows.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
