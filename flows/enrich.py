"""Enrich: the athlete's activities get their detail and streams (and gear, stats, zones), under the budget.

:func:`enrich_activities` is the main flow's enrichment subflow, called after the load's merge,
and the flow of the ``enrich`` deployment, which spends what the weekly runs leave of the budget
(prefect.yaml, docs/enrichment.md). Its body is :func:`enrich`, which takes loaded blocks.

Each run: read the athlete's queue in the warehouse (``tasks/enrich/queue.py``: newest first),
plan what it may spend (``tasks/enrich/budget.py``: never the summary's reserve), fetch
(``tasks/entities/fetch.py``: raw responses and staging files in the lake) and load
(``tasks/entities/store.py``: gate, one merge transaction with the state rows) in batches of
about one window's requests. The state rows are the queue's memory: a run that stops (the daily
limit, a crash, the flow's timeout) resumes at the next run exactly where the last committed
batch left off; a stop by the daily limit is a clean partial, never a failure.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prefect import flow, get_run_logger
from prefect.states import Completed, State

from blocks.prefect_compat import install_prompt_heartbeat_stop
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from flows import flow_timeout, handoff
from tasks import enrich as enrich_tasks
from tasks import strava as strava_tasks
from tasks import warehouse as wh
from tasks.enrich.result import EnrichResult
from tasks.lake import Lake
from tasks.quality.roles import create_project_tables
from tasks.state import budget, slots

__all__ = ["BATCH_REQUESTS", "EnrichResult", "enrich", "enrich_activities"]

BATCH_REQUESTS = 100
"""Requests fetched before each load (one 15-minute window's worth): a crash loses at most this much."""
PROBE_REQUESTS = 2
"""The first batch: one activity (or the stats and zones), after which the budget is planned from live usage."""
ATHLETE_REQUESTS = enrich_tasks.ATHLETE_REQUESTS
"""The athlete's stats and zones: read once a UTC day (the enrichment deployment runs every 15 minutes)."""

ENRICH_TIMEOUT_SECONDS = 4 * 3600
"""A round's share may wait for several windows; alone, a run spends one window's leftover in minutes."""

install_prompt_heartbeat_stop()  # a subflow's end does not wait for its heartbeat thread


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"enrich-{params.get('strava_block', 'strava')}-{params.get('warehouse_block', 'strava-warehouse')}"


@flow(
    name="enrich-activities",
    flow_run_name=_run_name,
    timeout_seconds=flow_timeout(ENRICH_TIMEOUT_SECONDS),  # the enrich deployment sets 840 (prefect.yaml)
)
def enrich_activities(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    warehouse_block: str = "strava-warehouse",
    max_requests: int | None = None,
    wait_windows: bool = False,
    activity_ids: list[int] | None = None,
    athlete_id: int | None = None,
    share_with: list[int | None] | None = None,
) -> EnrichResult:
    """Fetch and load the detail and streams the athlete's activities still lack, newest first, under the budget.

    Args:
        strava_block: The athlete's StravaCredentials block.
        lake_block: The lake block.
        warehouse_block: The Warehouse block (its summary table is the queue's source).
        max_requests: At most this many requests (None: what the budget allows).
        wait_windows: Spend past the current 15-minute window (waiting for the next as the
            governor does): a round's share. Without it the run spends only what is left of the
            current window, and never waits.
        activity_ids: Only these activities (a webhook ``create``): their detail and streams,
            whatever the queue's order; no gear, stats or zones.
        athlete_id: The athlete, when the caller knows it (the main flow); else the block's,
            else the warehouse's only athlete, else ``GET /athlete`` (one request).
        share_with: In a round: the enrichment needs (requests; None: unknown) of the athletes
            after this one. The run spends at most its fair part of the day's leftover (as this
            run sees it) less the reserve: those needing less than an equal part are counted at
            their need, the others divide the rest (:func:`tasks.enrich.round_share`).

    A stop by the daily limit returns a Completed state whose message says ``partial``.

    """
    credentials = handoff.credentials(strava_block)
    with slots.athlete_slot(credentials, strava_block):  # slot: one run per athlete (a no-op under the main flow)
        result = enrich(
            credentials,
            handoff.lake(lake_block),
            handoff.warehouse(warehouse_block),
            max_requests=max_requests,
            wait_windows=wait_windows,
            activity_ids=activity_ids,
            athlete_id=athlete_id,
            engine=handoff.engine(warehouse_block),
            share_with=share_with,
        )
    if result.partial_reason is None:
        return result
    state: State[EnrichResult] = Completed(message=result.partial_reason, data=result)
    return state  # type: ignore[return-value]  # Prefect turns a returned state into the run's state


def enrich(
    credentials: StravaCredentials,
    lake: Lake,
    warehouse: Warehouse,
    *,
    max_requests: int | None = None,
    wait_windows: bool = False,
    activity_ids: list[int] | None = None,
    athlete_id: int | None = None,
    engine: sa.Engine | None = None,
    now: datetime | None = None,
    share_with: list[int | None] | None = None,
) -> EnrichResult:
    """The enrichment's steps in the calling flow's run (see :func:`enrich_activities`)."""
    logger = get_run_logger()
    client_id = _client_id(credentials)
    athlete_id = athlete_id if athlete_id is not None else credentials.athlete_id
    with wh.engine_of(warehouse, engine) as engine, strava_tasks.open_client(credentials, logger) as client:
        now = now or client.governor.now()
        known = budget.read_budget(client_id)
        usage = enrich_tasks.usage_of(
            _limits(known), known.observed_at if known else None, now
        )  # what the summary left
        if share_with is not None:  # a round's fair share of what the day has left
            share = enrich_tasks.round_share(usage.daily_left, share_with)
            max_requests = share if max_requests is None else min(max_requests, share or 0)
        planned = enrich_tasks.plan_requests(usage, cap=max_requests, wait_windows=wait_windows)
        if athlete_id is None:  # the warehouse's only athlete (no request), else the token's
            try:
                athlete_id = wh.choose_athlete(engine, None)
            except ValueError:
                athlete_id = None
        if athlete_id is None:
            if planned < 1:
                return EnrichResult(None, skipped="no budget left for enrichment")
            athlete = strava_tasks.fetch_athlete(client)
            if athlete is None:
                return EnrichResult(None, requests=client.requests, partial_reason=_stopped(client))
            athlete_id, planned = int(athlete["id"]), planned - 1
        # The entity tables and the state table too, which the checks role reads from their creation on.
        create_project_tables(engine, warehouse.checks_role)
        result = _Plan(client, lake, warehouse, engine, int(athlete_id), now, wait_windows).run(planned, activity_ids)
        # For the round and the next run, stamped with the governor's clock (a test's fake one too).
        budget.record_budget(client_id, client.governor.current(), at=client.governor.now())
    logger.info(
        "Athlete %s: enrichment spent %s of %s requests: %s details, %s streams, %s gear%s; %s%s",
        result.athlete_id,
        result.requests,
        result.planned,
        result.details,
        result.streams,
        result.gear,
        ", stats and zones" if result.stats else "",
        result.progress(),
        f"; {result.partial_reason}" if result.partial_reason else (f"; {result.skipped}" if result.skipped else ""),
    )
    return result


class _Plan:
    """One run's enrichment of one athlete: batches of fetch-then-load while the budget lasts."""

    def __init__(
        self,
        client: strava_tasks.StravaClient,
        lake: Lake,
        warehouse: Warehouse,
        engine: sa.Engine,
        athlete_id: int,
        now: datetime,
        wait_windows: bool,
    ) -> None:
        self.client, self.lake, self.warehouse, self.engine = client, lake, warehouse, engine
        self.athlete_id, self.now, self.wait_windows = athlete_id, now, wait_windows
        self.run_key = now.astimezone(UTC).strftime(wh.RUN_KEY_TIME_FORMAT) + "_" + uuid.uuid4().hex[:8]
        self.counts = {"details": 0, "streams": 0, "gear": 0, "batches": 0}
        self.athlete_read = False

    def run(self, planned: int, only: list[int] | None) -> EnrichResult:
        start = self.client.requests
        partial: str | None = None
        skipped: str | None = None
        if planned < 1:
            skipped = "no budget left for enrichment (the summary's reserve is kept)"
        else:
            with self.engine.connect() as conn:
                queue = enrich_tasks.read_queue(conn, self.athlete_id)
                gear = [] if only is not None else enrich_tasks.gear_due(conn, self.athlete_id)
                stats_on = enrich_tasks.stats_read_on(conn, self.athlete_id)
            if only is not None:
                wanted = {int(i) for i in only}
                queue = [q for q in queue if q.activity_id in wanted]
            athlete_due = only is None and (stats_on is None or stats_on.date() < self.now.astimezone(UTC).date())
            if not queue and not gear and not athlete_due:
                skipped = "nothing to enrich"
            else:
                partial = self._batches(planned, queue, gear, athlete_due)
        with self.engine.connect() as conn:
            progress = enrich_tasks.progress(conn, self.athlete_id)
            queued = len(enrich_tasks.read_queue(conn, self.athlete_id))
        return EnrichResult(
            self.athlete_id,
            planned=max(planned, 0),
            requests=self.client.requests - start,
            stats=self.athlete_read,
            zones=self.athlete_read,
            enriched=progress.enriched,
            total=progress.total,
            queued=queued,
            partial_reason=partial,
            skipped=skipped,
            **self.counts,
        )

    def _batches(
        self, left: int, queue: list[enrich_tasks.QueueItem], gear: list[str], athlete_due: bool
    ) -> str | None:
        """Fetch and load batch after batch; the reason the daily limit stopped it, or None.

        The plan was made from the budget some run recorded; the first batch is small (one
        activity, or the stats and zones), and after each batch what is left is planned again
        from the usage Strava just reported to this run (another process may have spent some).
        """
        stats = athlete_due and left >= ATHLETE_REQUESTS
        size = PROBE_REQUESTS
        while left > 0:
            spend = min(left, size) - (ATHLETE_REQUESTS if stats else 0)
            gear_now, gear = gear[: max(spend, 0)], gear[max(spend, 0) :]
            spend -= len(gear_now)
            taken = enrich_tasks.take(queue, max(spend, 0))
            queue = queue[len(taken) :]
            if not taken and not gear_now and not stats:
                return None
            batch = self._fetch(taken, gear_now, stats)
            self._load(batch)
            self.athlete_read = self.athlete_read or stats
            stats, size = False, BATCH_REQUESTS
            self.counts["gear"] += len(gear_now)
            if batch.partial_reason:
                return str(batch.partial_reason)
            left -= batch.requests
            live = self.client.governor.current()
            if live is not None:
                usage = enrich_tasks.usage_of(live)
                left = min(left, enrich_tasks.plan_requests(usage, wait_windows=self.wait_windows))
        return None

    def _fetch(self, taken: list[enrich_tasks.QueueItem], gear: list[str], stats: bool) -> Any:
        from tasks.entities.fetch import fetch_enrichment

        self.counts["batches"] += 1
        self.counts["details"] += sum(1 for q in taken if q.needs_detail)
        self.counts["streams"] += sum(1 for q in taken if q.needs_streams)
        return fetch_enrichment(
            self.client,
            self.lake,
            self.athlete_id,
            self._batch_key(),
            self.now.replace(microsecond=0),
            detail_ids=[q.activity_id for q in taken if q.needs_detail],
            stream_ids=[q.activity_id for q in taken if q.needs_streams],
            gear_ids=gear,
            stats=stats,
            zones=stats,
        )

    def _batch_key(self) -> str:
        """Each batch's own run key (lake paths, staging tables): the run's time, new hex, a run key's length."""
        return f"{self.run_key.split('_')[0]}_{uuid.uuid4().hex[:8]}"

    def _load(self, batch: Any) -> None:
        from tasks.entities.store import load_batch

        if not batch.state and not batch.files:
            return
        load_batch(
            self.engine,
            self.lake,
            batch,
            checks_role=self.warehouse.checks_role,
            iam_role_arn=self.warehouse.iam_role_arn,
            region=self.warehouse.region,
        )


def _limits(known: budget.Budget | None) -> Any:
    from tasks.strava.ratelimit import RateLimits

    return None if known is None else RateLimits(overall=known.overall, read=known.read)


def _client_id(credentials: StravaCredentials) -> str:
    """The application's client id (names its budget Variable), as the extract reads it."""
    application = getattr(credentials, "application", None)
    return str(application.client_id if application is not None else credentials.client_id)


def _stopped(client: strava_tasks.StravaClient) -> str:
    stop = client.daily_limit
    return f"partial: resumes next run (daily budget spent at /athlete: {stop.message if stop else 'daily limit'})"
