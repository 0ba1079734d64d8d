"""Extract subflow: Strava pages -> raw lake pages -> one typed staging file.

Pages come oldest first (only ``after`` is given), so a run that the daily rate limit cuts
short has fetched a gap-free prefix: it ends ``partial: resumes next run``, the pipeline
loads that prefix and moves the watermark to its newest start_date, and the next run goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from blocks.loading import load_block, load_lake
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from flows import run_names
from tasks import lake as lake_tasks
from tasks import strava as strava_tasks
from tasks import warehouse as wh
from tasks.state import budget
from tasks.state import watermark as wm
from tasks.warehouse import schema

KNOWN_SPORT_TYPES = frozenset(
    "AlpineSki BackcountrySki Badminton Canoeing Crossfit EBikeRide Elliptical EMountainBikeRide "
    "Golf GravelRide Handcycle HighIntensityIntervalTraining Hike IceSkate InlineSkate Kayaking "
    "Kitesurf MountainBikeRide NordicSki Pickleball Pilates Racquetball Ride RockClimbing "
    "RollerSki Rowing Run Sail Skateboard Snowboard Snowshoe Soccer Squash StairStepper "
    "StandUpPaddling Surfing Swim TableTennis Tennis TrailRun Velomobile VirtualRide VirtualRow "
    "VirtualRun Walk WeightTraining Wheelchair Windsurf Workout Yoga".split()
)


FUTURE_IDS_SHOWN = 5
"""How many ids of future-dated activities the logs, the summary and the report name."""

PARTIAL = "partial: resumes next run"
"""The status of a run that the daily rate limit cut short."""


@dataclass
class ExtractResult:
    """What the extract subflow produced, passed on to the load subflow.

    ``athlete_id`` is None (and ``staging_path`` too) when not even ``/athlete`` could be
    read today: nothing to load.
    """

    athlete_id: int | None
    run_key: str
    extracted_at: datetime
    after: datetime
    pages: int = 0
    requests: int = 0
    activities: int = 0
    staging_path: str | None = None
    newest_start_date: datetime | None = None
    complete: bool = True
    partial_reason: str | None = None
    previous_watermark: datetime | None = None
    full_read_reason: str | None = None
    future_dated: list[int] = field(default_factory=list)
    new_fields: list[str] = field(default_factory=list)
    new_sport_types: list[str] = field(default_factory=list)
    unfit_values: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """Activities not staged because their id or start_date is missing or unfit: page, position
    (0-based), id (when it fits) and reason. They stay in the raw lake page."""


def _unfit_values(activity: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    """The columns whose value Strava sent does not fit (type, range, finiteness): loaded as NULL."""
    return [c.name for c in schema.API_COLUMNS if row[c.name] is None and c.source(activity) is not None]


_ATHLETE_COLUMN = next(c for c in schema.API_COLUMNS if c.name == "athlete_id")


@dataclass
class _Page:
    """One page, flattened once: the rows to stage, the items rejected, the unfit values."""

    keyed: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    unfit: Counter[str] = field(default_factory=Counter)

    @classmethod
    def read(cls, items: list[dict[str, Any]], number: int, extracted_at: datetime, athlete_id: int) -> _Page:
        """Flatten ``items``; reject those without a fitting id or start_date, or of another athlete.

        ``/athlete/activities`` lists the authorised athlete's own activities, so an item without
        a usable ``athlete.id`` is that athlete's (filled in; an unusable one is counted in
        ``unfit``), and an item naming another athlete is refused rather than loaded into the
        wrong athlete's rows (or halting every run at the gate).
        """
        page = cls()
        for position, activity in enumerate(items):
            row = schema.flatten_activity(activity, extracted_at)
            rejected = schema.rejection(activity, row)
            if rejected is None and row["athlete_id"] is None:
                if _ATHLETE_COLUMN.source(activity) is not None:
                    page.unfit["athlete_id"] += 1
                row["athlete_id"] = athlete_id
                row["row_hash"] = schema.row_hash(row)
            elif rejected is None and row["athlete_id"] != athlete_id:
                rejected = (
                    "athlete_id",
                    f"belongs to athlete {row['athlete_id']}, not this run's athlete {athlete_id}",
                )
            if rejected is None:
                page.keyed.append((activity, row))
                continue
            column, reason = rejected
            page.unfit.update({*_unfit_values(activity, row), column})  # a missing id or start_date counts too
            page.rejected.append({"page": number, "position": position, "id": row["id"], "reason": reason})
        return page

    def stage(self, fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of ``fresh`` (the paginator's pick among ``keyed``), their unfit values counted."""
        chosen = {id(a) for a in fresh}
        rows = []
        for activity, row in self.keyed:
            if id(activity) in chosen:
                rows.append(row)
                self.unfit.update(_unfit_values(activity, row))
        return rows


@task(cache_policy=NO_CACHE, task_run_name="fetch-page-{page}")
def fetch_page(
    client: strava_tasks.StravaClient,
    paginator: strava_tasks.Paginator,
    lake: Any,
    athlete_id: int,
    run_key: str,
    after: int,
    page: int,
    extracted_at: datetime,
) -> tuple[list[dict[str, Any]], _Page, list[dict[str, Any]]] | None:
    """Fetch one page, check it, and land it raw in the lake: one task per page.

    Returns the page, its flattened rows and the activities not seen before (an empty page is
    not written); None when the daily budget is spent. A page holding something other than
    objects, or only activities already read,
    raises before anything of it is written.
    """
    items = strava_tasks.fetch_activities_page(client, after, page)
    if items is None:
        return None
    schema.require_objects(items, page)  # before anything of the page is written
    read = _Page.read(items, page, extracted_at, athlete_id)
    fresh = paginator.check([activity for activity, _ in read.keyed])
    if items:
        lake_tasks.land_raw_page(lake, athlete_id, run_key, page, items)
    return items, read, fresh


def _new_sport_types(activities: Iterable[Mapping[str, Any]]) -> set[str]:
    types = {a.get("sport_type") for a in activities}
    return {str(t) for t in types if t is not None and t not in KNOWN_SPORT_TYPES}


@flow(name="extract-activities", flow_run_name=run_names.EXTRACT)
def extract_activities(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    run_key: str = "manual",
    lookback_days: int = 14,
    full_refresh: bool = False,
    warehouse_block: str | None = None,
) -> ExtractResult:
    """Read activities started after ``watermark - lookback`` into the lake, page by page.

    The watermark is the one of ``warehouse_block`` and the athlete, checked against what that
    warehouse holds (:func:`tasks.state.watermark.resolve_start`); without a warehouse block, or with
    ``full_refresh``, the whole history is read. When the daily rate limit stops a request,
    the run keeps what it fetched, says ``partial: resumes next run`` (also in the flow run's
    Completed state) and ends cleanly.
    """
    logger = get_run_logger()
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    credentials = load_block(StravaCredentials, strava_block)
    lake = load_lake(lake_block)
    extracted_at = datetime.now(UTC).replace(microsecond=0)

    with strava_tasks.open_client(credentials, logger) as client:
        athlete = strava_tasks.fetch_athlete(client)
        if athlete is None:
            result = ExtractResult(None, run_key, extracted_at, datetime.fromtimestamp(0, UTC), complete=False)
            result.requests = client.requests
            result.partial_reason = _partial_reason(client, "at /athlete, nothing to load")
            logger.warning("Nothing extracted; %s", result.partial_reason)
            return _finish(result)
        athlete_id = int(athlete["id"])
        start = _start(warehouse_block, athlete_id, full_refresh, extracted_at)
        previous = start.watermark
        if previous is None:
            after = datetime.fromtimestamp(0, UTC)
        else:
            after = previous - timedelta(days=lookback_days)
        result = ExtractResult(
            athlete_id=athlete_id,
            run_key=run_key,
            extracted_at=extracted_at,
            after=after,
            previous_watermark=previous,
            full_read_reason=start.full_read_reason,
        )
        logger.info(
            "Athlete %s: watermark %s, reading activities started after %s%s",
            athlete_id,
            previous.isoformat() if previous else "none",
            after.isoformat(),
            f" (whole history: {start.full_read_reason})" if start.full_read_reason else "",
        )
        writer = lake_tasks.StagingFileWriter()
        paginator = strava_tasks.Paginator()
        new_fields: set[str] = set()
        new_sports: set[str] = set()
        unfit: Counter[str] = Counter()
        try:
            while True:
                fetched = fetch_page(
                    client, paginator, lake, athlete_id, run_key, int(after.timestamp()), paginator.page, extracted_at
                )
                if fetched is None:
                    result.complete = False
                    result.partial_reason = _partial_reason(client, f"after {result.pages} pages")
                    break
                page, read, fresh = fetched
                result.pages += 1
                rows = read.stage(fresh)
                writer.write_page(rows)
                result.activities += len(rows)
                result.rejected += read.rejected
                new_fields |= schema.unknown_fields(page)
                new_sports |= _new_sport_types(page)
                unfit.update(read.unfit)
                for row in rows:
                    started = row["start_date"]
                    if started and started > extracted_at:
                        # Loaded, named in the report, but never the watermark: a watch with a wrong
                        # clock would otherwise push it past uploads still to come.
                        result.future_dated.append(row["id"])
                    elif started and (result.newest_start_date is None or started > result.newest_start_date):
                        result.newest_start_date = started
                if not paginator.has_more(page):
                    break
                paginator.get_next()
            result.staging_path = lake_tasks.upload_staging_file(
                writer, lake, lake_tasks.staging_file_path(athlete_id, run_key)
            )
        finally:
            writer.discard()
            result.requests = client.requests
            # What is left of the application's budget, for the round (tasks/state/budget.py).
            budget.record_budget(_client_id(credentials), client.governor.current())
    result.new_fields = sorted(new_fields)
    result.new_sport_types = sorted(new_sports)
    result.unfit_values = dict(sorted(unfit.items()))
    if result.rejected:
        logger.warning(
            "%s activities not loaded (no fitting id or start_date; kept in the raw lake pages): %s",
            len(result.rejected),
            result.rejected,
        )
    if result.new_fields or result.new_sport_types or result.unfit_values:
        logger.warning(
            "Strava sent what the table does not know (kept in the raw pages): fields %s, sport types %s; "
            "values loaded as NULL because they do not fit their column: %s",
            result.new_fields or "none",
            result.new_sport_types or "none",
            result.unfit_values or "none",
        )
    if result.future_dated:
        logger.warning(
            "%s activities start after this run read them (a device clock?), e.g. ids %s: loaded, "
            "and the watermark stops at this run's time %s",
            len(result.future_dated),
            result.future_dated[:FUTURE_IDS_SHOWN],
            extracted_at.isoformat(),
        )
    logger.info(
        "Extracted %s activities in %s pages with %s API requests%s",
        result.activities,
        result.pages,
        result.requests,
        f"; {result.partial_reason}" if result.partial_reason else "",
    )
    return _finish(result)


def _start(warehouse_block: str | None, athlete_id: int, full_refresh: bool, extracted_at: datetime) -> wm.Start:
    """Where to start reading: the whole history, or the warehouse's checked watermark for the athlete."""
    if full_refresh:
        return wm.Start(None, "full refresh")
    if warehouse_block is None:
        return wm.Start(None, "no warehouse given to take the watermark from")
    with load_block(Warehouse, warehouse_block).engine() as engine:
        warehouse_id = wh.ensure_tables(engine)
        with engine.connect() as conn:
            held = wh.athlete_rows(conn, athlete_id)
    return wm.resolve_start(warehouse_id, athlete_id, held, extracted_at)


def _client_id(credentials: StravaCredentials) -> str:
    """The application's client id: its StravaApplication block's when the athlete block references one."""
    application = getattr(credentials, "application", None)
    return str(application.client_id if application is not None else credentials.client_id)


def _partial_reason(client: strava_tasks.StravaClient, where: str) -> str:
    stop = client.daily_limit
    why = stop.message if stop is not None else "daily rate limit reached"
    return f"{PARTIAL} (daily budget spent {where}: {why})"


def _finish(result: ExtractResult) -> ExtractResult:
    """Return the result; a partial one as a Completed state whose message says so."""
    if result.complete:
        return result
    state: State[ExtractResult] = Completed(message=result.partial_reason, data=result)
    return state  # type: ignore[return-value]  # Prefect turns a returned state into the run's state
