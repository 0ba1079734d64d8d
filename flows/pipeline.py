"""The main flow: its subflows extract, load (and move the watermark) and build the models; then the dashboard."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from blocks.loading import load_block
from blocks.prefect_compat import install_prompt_heartbeat_stop
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from flows import flow_retries, flow_timeout, handoff, run_names
from flows.enrich import enrich_activities
from flows.extract import extract_activities
from flows.insight import publish_insight
from flows.load import WatermarkNotMoved, WatermarkPlan, load_activities
from flows.models import build_models
from tasks import warehouse as wh
from tasks.insight import notify
from tasks.lake import Lake, load_lake
from tasks.state import deferred, events, retry, rounds, slots
from tasks.state.summary import ExtractResult, LoadResult, RunSummary, WatermarkMove

MAX_LOOKBACK_DAYS = 365
RETRIES = flow_retries(0)  # deployments set STRAVA_ELT_FLOW_RETRIES=1 (prefect.yaml)
RETRY_DELAY_SECONDS = 300

install_prompt_heartbeat_stop()  # each flow run's end does not wait for its heartbeat thread


def open_target(warehouse: str | Warehouse) -> str:
    """Connect to the warehouse (a block or its name), create or migrate its tables and return its id.

    The engine is closed again.
    """
    block = load_block(Warehouse, warehouse) if isinstance(warehouse, str) else warehouse
    with block.engine() as engine:
        return wh.open_warehouse(engine)


def new_run_key() -> str:
    """Sortable, unique, identifier-safe key for this run's lake prefix and staging table."""
    return datetime.now(UTC).strftime(wh.RUN_KEY_TIME_FORMAT) + "_" + uuid.uuid4().hex[:8]


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
    skip_deferred: bool = False,
    enrich: bool = False,
    enrich_max_requests: Annotated[int, Field(ge=0)] | None = None,
    enrich_wait_windows: bool = False,
    enrich_activity_ids: list[int] | None = None,
    enrich_share_with: list[int | None] | None = None,
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
        skip_deferred: Leave the athlete's deferred webhook reads (``strava_react_deferred_<id>``)
            to a later run: the reaction's own incremental run sets it, since it pays them itself.
            By default the run pays them with its read, a full one when its window cannot cover
            them, and clears them once its merge has committed (docs/webhooks.md).
        enrich: After the merge, spend what the summary left of the budget on the athlete's
            detail, streams, gear, stats and zones (subflow ``enrich-activities``,
            docs/enrichment.md); the deployments set it. A stop by the daily limit is a
            partial enrichment, never a failed run.
        enrich_max_requests: At most this many enrichment requests (None: what the budget
            leaves of the current 15-minute window).
        enrich_wait_windows: Let the enrichment spend past the current window, waiting for the
            next ones (a round's share of the day).
        enrich_activity_ids: Enrich only these activities (a webhook reaction's new ones).
        enrich_share_with: In a round: the enrichment needs of the athletes after this one (None:
            unknown); the enrichment spends at most its fair part of the day's leftover less the
            reserve (:func:`tasks.enrich.round_share`; the round sets it).

    """
    run = _Run(RunSummary(new_run_key()))
    slack = notify.load_slack(slack_block)
    slot = None  # slot: one run per athlete, before the warehouse or a request (tasks/state/slots.py)
    try:
        slot = slots.hold_slot(block_name=strava_block)  # slot
        enrichment = (
            _Enrichment(enrich_max_requests, enrich_wait_windows, enrich_activity_ids, enrich_share_with)
            if enrich
            else None
        )
        run.go(strava_block, lake_block, warehouse_block, lookback_days, full_refresh, not skip_deferred, enrichment)
        # Completed, and the state's message says what the run did (cut short by the daily rate
        # limit: "partial: resumes next run ..."); a round reads it back (tasks/state/rounds.py).
        returned = run.summary.as_dict()
        return Completed(message=rounds.outcome_message(returned), data=returned)  # type: ignore[return-value]
    except Exception as exc:
        run.summary = notify.record_failure(run.summary, exc)
        retry.final_unless_transient(exc)
        raise
    finally:
        if slot is not None:  # slot
            slot.release()  # slot
        run.summary = run.summary.finished()
        notify.report_run(run.summary, slack)


@dataclass(frozen=True)
class _Enrichment:
    """The run's enrichment parameters (None: no enrichment)."""

    max_requests: int | None
    wait_windows: bool
    activity_ids: list[int] | None
    share_with: list[int | None] | None = None


@dataclass(frozen=True)
class _Target:
    """Where a run loads to: the warehouse and lake blocks, loaded once, their names (for events), the engine."""

    warehouse_block: str
    warehouse: Warehouse
    lake_block: str
    lake: Lake
    engine: sa.Engine
    strava_block: str = "strava"
    enrichment: _Enrichment | None = None


class _Run:
    """One run's steps; ``summary`` (frozen, replaced as the run goes) is as far as it got."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def go(
        self,
        strava_block: str,
        lake_block: str,
        warehouse_block: str,
        lookback_days: int,
        full_refresh: bool,
        pay_deferred: bool = True,
        enrichment: _Enrichment | None = None,
    ) -> None:
        """Extract, load and move the watermark, build the models: three subflows, then the dashboard.

        Each block is loaded once here and handed down to the subflows (:mod:`flows.handoff`),
        with the warehouse's id and, after the extract, this run's one engine. None of the
        subflows retries on its own: the main flow's run does.
        """
        logger = get_run_logger()
        run_key = self.summary.run_key
        # The warehouse first: a wrong URL or a DuckDB file another process holds fails the run
        # before it spends any of the Strava budget.
        warehouse = load_block(Warehouse, warehouse_block)
        warehouse_id = open_target(warehouse)
        self.summary = self.summary.with_(warehouse_id=warehouse_id)
        lake = load_lake(lake_block)
        credentials = load_block(StravaCredentials, strava_block)
        handed = {
            "strava_block": strava_block,
            "credentials": credentials,
            "lake_block": lake_block,
            "lake": lake,
            "warehouse_block": warehouse_block,
            "warehouse": warehouse,
            "warehouse_id": warehouse_id,
        }
        with handoff.hand_down(**handed):
            extract = extract_activities(
                strava_block, lake_block, run_key, lookback_days, full_refresh, warehouse_block, pay_deferred
            )
        self.summary = self.summary.with_extract(extract)
        if extract.athlete_id is None:  # the daily budget was spent before /athlete answered
            logger.warning(
                "Run %s: nothing extracted, nothing loaded, watermark unchanged; %s", run_key, self.summary.status
            )
            return
        if extract.staging_path is None:
            raise RuntimeError("extract produced no staging file")
        window = (extract.after, extract.extracted_at) if extract.complete else None
        # One engine for the load and the steps after it (the extract, which may wait hours on
        # the rate limit, holds none: a DuckDB file stays free for others meanwhile).
        plan = WatermarkPlan(
            warehouse_id,
            extract.newest_start_date,
            extract.extracted_at,
            reset=extract.previous_watermark is None,
            flow_run_id=str(flow_run.id or ""),
        )
        with warehouse.engine() as engine, handoff.hand_down(**handed, engine=engine):
            watermark_error: Exception | None = None
            try:
                loaded = load_activities(
                    warehouse_block,
                    lake_block,
                    extract.staging_path,
                    run_key,
                    extract.extracted_at,
                    window,
                    extract.activities,
                    extract.athlete_id,
                    plan,
                )
            except WatermarkNotMoved as exc:  # the merge committed: the steps after it still run
                loaded = exc.loaded
                watermark_error = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            self.summary = self.summary.with_load(loaded)
            target = _Target(warehouse_block, warehouse, lake_block, lake, engine, strava_block, enrichment)
            self._after_commit(extract, loaded, watermark_error, target)
        mark = self.summary.watermark
        logger.info(
            "Run %s: %s requests, %s pages, %s extracted, %s inserted, %s updated, %s deleted; watermark %s; %s",
            run_key,
            extract.requests,
            extract.pages,
            extract.activities,
            loaded.merge.inserted,
            loaded.merge.updated,
            loaded.merge.deleted,
            mark.after.isoformat() if mark and mark.after else None,
            self.summary.status,
        )

    def _after_commit(
        self, extract: ExtractResult, loaded: LoadResult, watermark_error: Exception | None, target: _Target
    ) -> None:
        """The merge has committed: record the watermark, emit the event, rebuild models and dashboard.

        Nothing here can undo the load. A step that fails is recorded and the steps that do not
        need it still run (the dashboard needs the models); then the run fails with
        :class:`~tasks.state.summary.PostCommitError`, whose message says what completed and what did
        not. The load subflow moved the watermark first (``watermark_error``: why it did not),
        and only to what the committed merge holds, so warehouse and watermark agree whatever
        fails after it; the next run rebuilds the models and the dashboard from the warehouse.
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

        if watermark_error is not None:
            step("watermark", lambda: _raise(watermark_error))
        else:
            self.summary = self.summary.with_(watermark=WatermarkMove(extract.previous_watermark, loaded.watermark))
        # The athlete's deferred webhook reads this complete read covered: cleared now, never before
        # the merge (a run that fails earlier keeps them for the next).
        if extract.deferred_owed and extract.complete and extract.athlete_id is not None:
            athlete_id, owed = extract.athlete_id, extract.deferred_owed
            step("deferred reads", lambda: deferred.clear_paid(athlete_id, owed))
        # Tell automations (e.g. the kudos model's trigger) that this athlete's activities changed.
        summary = self.summary
        step(
            "event",
            lambda: events.emit_activities_loaded(
                summary, warehouse_block=target.warehouse_block, lake_block=target.lake_block
            ),
        )
        if target.enrichment is not None and extract.athlete_id is not None:
            # What the summary left of the budget: detail and streams, newest first (flows/enrich.py).
            plan, athlete_id = target.enrichment, extract.athlete_id
            enriched = step(
                "enrichment",
                lambda: enrich_activities(
                    target.strava_block,
                    target.lake_block,
                    target.warehouse_block,
                    max_requests=plan.max_requests,
                    wait_windows=plan.wait_windows,
                    activity_ids=plan.activity_ids,
                    athlete_id=athlete_id,
                    share_with=plan.share_with,
                ),
            )
            if enriched is not None:
                self.summary = self.summary.with_(enrichment=enriched.as_dict())
        models = step("models", lambda: build_models(target.warehouse_block))
        # Something to look at: the dashboard in the lake (link artifact) and the run report.
        if "models" in failed:
            failed["dashboard"] = "not rebuilt (the models failed)"
        else:
            self.summary = self.summary.with_(models=models)
            published = step(
                "dashboard", lambda: publish_insight(target.warehouse, target.lake, self.summary, target.engine)
            )
            if published is not None:
                self.summary = published
        if failed:
            self.summary = self.summary.with_(failed_after_merge=failed)
            raise notify.PostCommitError.of(self.summary, failed) from errors[0]


def _raise(exc: Exception) -> None:
    raise exc


if __name__ == "__main__":
    # `python flows/pipeline.py [--lookback-days N] [--full-refresh] ...`: one run in this process,
    # options made from the flow's own parameters; the summary printed as JSON. The CLI is not
    # imported (it imports this module: no circle); `strava-elt run` does the same, and more.
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python flows/pipeline.py",
        description="Run the main flow strava_elt once, in this process, and print its summary as JSON "
        "(the same as `strava-elt run --json`).",
        epilog="example: python flows/pipeline.py --full-refresh --warehouse-block my-postgres",
    )
    for name, spec in strava_elt.parameters.properties.items():
        default, text = spec.get("default"), " ".join(str(spec.get("description", "")).split())
        flag = "--" + name.replace("_", "-")
        if spec.get("type") == "boolean":
            parser.add_argument(flag, dest=name, action="store_true", help=text)
        else:
            kind = int if spec.get("type") == "integer" else str
            parser.add_argument(flag, dest=name, type=kind, default=default, help=f"{text} (default {default})")
    print(json.dumps(strava_elt(**vars(parser.parse_args())), indent=2, default=str))
