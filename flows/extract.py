"""Extract: Strava pages -> raw lake pages -> one typed staging file.

:func:`extract_activities` is the main flow's extract subflow (and runs alone too); its body
is :func:`extract`, which takes loaded blocks.

Pages come oldest first (only ``after`` is given), so a run that the daily rate limit cuts
short has fetched a gap-free prefix: it ends ``partial: resumes next run``, the pipeline
loads that prefix and moves the watermark to its newest start_date, and the next run goes on.
The page loop is the client's (:meth:`~tasks.strava.StravaClient.iter_activity_pages`); each
page is one task (:func:`~tasks.strava.fetch_page`: fetch, check, land) and the tally
(:class:`~tasks.strava.ExtractTally`) keeps the totals, the drift and the newest start_date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.states import Completed, State

from blocks.prefect_compat import install_prompt_heartbeat_stop
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from flows import handoff, run_names
from tasks import lake as lake_tasks
from tasks import strava as strava_tasks
from tasks import warehouse as wh
from tasks.state import budget, deferred, slots
from tasks.state import watermark as wm
from tasks.state.summary import FUTURE_IDS_SHOWN, PARTIAL, ExtractResult

__all__ = ["FUTURE_IDS_SHOWN", "PARTIAL", "ExtractResult", "extract", "extract_activities"]

_EPOCH = datetime.fromtimestamp(0, UTC)

install_prompt_heartbeat_stop()  # a subflow's end does not wait for its heartbeat thread


@flow(name="extract-activities", flow_run_name=run_names.EXTRACT)
def extract_activities(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    run_key: str = "manual",
    lookback_days: int = 14,
    full_refresh: bool = False,
    warehouse_block: str | None = None,
    pay_deferred: bool = False,
) -> ExtractResult:
    """Read activities started after ``watermark - lookback`` into the lake, page by page: :func:`extract` as a flow.

    The watermark is the one of ``warehouse_block`` and the athlete, checked against what that
    warehouse holds (:func:`tasks.state.watermark.resolve_start`); without a warehouse block, or with
    ``full_refresh``, the whole history is read. When the daily rate limit stops a request,
    the run keeps what it fetched, says ``partial: resumes next run`` (also in the flow run's
    Completed state) and ends cleanly. Called by the main flow, it uses the blocks the main flow
    loaded (:mod:`flows.handoff`) and the warehouse id it opened. ``pay_deferred`` (the main
    flow's run): read the athlete's deferred webhook reads and pay them with this read
    (:func:`tasks.state.deferred.plan`).
    """
    credentials = handoff.credentials(strava_block)
    lake = handoff.lake(lake_block)
    warehouse = None if warehouse_block is None else handoff.warehouse(warehouse_block)
    warehouse_id = None if warehouse_block is None else handoff.warehouse_id(warehouse_block)
    with slots.athlete_slot(credentials, strava_block):  # slot: one run per athlete (tasks/state/slots.py)
        result = extract(credentials, lake, run_key, lookback_days, full_refresh, warehouse, warehouse_id, pay_deferred)
    if result.complete:
        return result
    state: State[ExtractResult] = Completed(message=result.partial_reason, data=result)
    return state  # type: ignore[return-value]  # Prefect turns a returned state into the run's state


def extract(
    credentials: StravaCredentials,
    lake: lake_tasks.Lake,
    run_key: str,
    lookback_days: int = 14,
    full_refresh: bool = False,
    warehouse: Warehouse | None = None,
    warehouse_id: str | None = None,
    pay_deferred: bool = False,
) -> ExtractResult:
    """The extract's steps, in the calling flow's run (the body of :func:`extract_activities`).

    Args:
        credentials: The athlete's StravaCredentials block.
        lake: The lake block (LocalFileSystem or S3Bucket).
        run_key: This run's key (lake prefix, staging table).
        lookback_days: Days re-read before the watermark.
        full_refresh: Read the whole history.
        warehouse: Whose watermark to start from; None reads the whole history.
        warehouse_id: Its id, when the caller has opened it already (its tables are there);
            None: the extract creates or checks the tables and reads the id itself.
        pay_deferred: Read the athlete's deferred webhook reads (one Variable read, no Strava
            request) and widen this read to the whole history when the window cannot cover them.

    """
    logger = get_run_logger()
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    extracted_at = datetime.now(UTC).replace(microsecond=0)

    with strava_tasks.open_client(credentials, logger) as client:
        athlete = strava_tasks.fetch_athlete(client)
        if athlete is None:
            reason = _partial_reason(client, "at /athlete, nothing to load")
            logger.warning("Nothing extracted; %s", reason)
            return ExtractResult(None, run_key, extracted_at, _EPOCH, requests=client.requests, partial_reason=reason)
        athlete_id = int(athlete["id"])
        start = _start(warehouse, warehouse_id, athlete_id, full_refresh, extracted_at)
        payment = deferred.Payment()
        if pay_deferred and warehouse is not None:
            payment = _deferred_payment(warehouse, athlete_id, start, lookback_days)
            if payment.full_read_reason is not None and start.watermark is not None:
                start = wm.Start(None, payment.full_read_reason)
        after = _EPOCH if start.watermark is None else start.watermark - timedelta(days=lookback_days)
        logger.info(
            "Athlete %s: watermark %s, reading activities started after %s%s",
            athlete_id,
            start.watermark.isoformat() if start.watermark else "none",
            after.isoformat(),
            f" (whole history: {start.full_read_reason})" if start.full_read_reason else "",
        )
        base = ExtractResult(
            athlete_id,
            run_key,
            extracted_at,
            after,
            previous_watermark=start.watermark,
            full_read_reason=start.full_read_reason,
            deferred_owed=payment.owed,
        )
        tally = strava_tasks.ExtractTally(extracted_at)
        pages = client.iter_activity_pages(int(after.timestamp()))
        partial_reason: str | None = None
        writer = lake_tasks.StagingFileWriter()
        try:
            while pages.has_more:
                page = strava_tasks.fetch_page(pages, pages.number, lake, athlete_id, run_key, extracted_at)
                if page is None:
                    partial_reason = _partial_reason(client, f"after {tally.pages} pages")
                    break
                writer.write_page(page.rows)
                tally.add(page)
            staging_path = lake_tasks.upload_staging_file(
                writer, lake, lake_tasks.staging_file_path(athlete_id, run_key)
            )
        finally:
            writer.discard()
            # What is left of the application's budget, for the round (tasks/state/budget.py).
            budget.record_budget(_client_id(credentials), client.governor.current())
        result = tally.result(base, requests=client.requests, staging_path=staging_path, partial_reason=partial_reason)
    strava_tasks.log_findings(result)
    return result


def _start(
    warehouse: Warehouse | None, warehouse_id: str | None, athlete_id: int, full_refresh: bool, extracted_at: datetime
) -> wm.Start:
    """Where to start reading: the whole history, or the warehouse's checked watermark for the athlete."""
    if full_refresh:
        return wm.Start(None, "full refresh")
    if warehouse is None:
        return wm.Start(None, "no warehouse given to take the watermark from")
    with warehouse.engine() as engine:
        if warehouse_id is None:
            warehouse_id = wh.ensure_tables(engine)
        with engine.connect() as conn:
            held = wh.athlete_rows(conn, athlete_id)
    return wm.resolve_start(warehouse_id, athlete_id, held, extracted_at)


def _deferred_payment(warehouse: Warehouse, athlete_id: int, start: wm.Start, lookback_days: int) -> deferred.Payment:
    """How this read pays the athlete's deferred webhook reads (nothing owed: one Variable read, nothing else)."""
    owed = deferred.read_deferred(athlete_id)
    if owed.empty:
        return deferred.Payment()
    after = None if start.watermark is None else start.watermark - timedelta(days=lookback_days)
    starts: dict[int, datetime] = {}
    if owed.ids and after is not None:
        from tasks.webhooks.reactions import activity_starts

        with warehouse.engine() as engine:
            starts = activity_starts(engine, athlete_id)
    payment = deferred.plan(owed, after, starts)
    get_run_logger().info(
        "Athlete %s: deferred webhook reads owed (%s ids%s%s): %s",
        athlete_id,
        len(owed.ids),
        ", full read due" if owed.full_read_due else "",
        ", incremental due" if owed.incremental_due else "",
        payment.full_read_reason or "covered by this run's read",
    )
    return payment


def _client_id(credentials: StravaCredentials) -> str:
    """The application's client id: its StravaApplication block's when the athlete block references one."""
    application = getattr(credentials, "application", None)
    return str(application.client_id if application is not None else credentials.client_id)


def _partial_reason(client: strava_tasks.StravaClient, where: str) -> str:
    stop = client.daily_limit
    why = stop.message if stop is not None else "daily rate limit reached"
    return f"{PARTIAL} (daily budget spent {where}: {why})"
