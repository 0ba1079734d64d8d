"""Extract subflow: Strava pages -> raw lake pages -> one typed staging file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from blocks.loading import load_block, load_lake
from blocks.strava import StravaCredentials
from tasks import lake as lake_tasks
from tasks import schema
from tasks import strava as strava_tasks
from tasks import watermark as wm
from tasks.errors import DailyLimitReached

KNOWN_SPORT_TYPES = frozenset(
    "AlpineSki BackcountrySki Badminton Canoeing Crossfit EBikeRide Elliptical EMountainBikeRide "
    "Golf GravelRide Handcycle HighIntensityIntervalTraining Hike IceSkate InlineSkate Kayaking "
    "Kitesurf MountainBikeRide NordicSki Pickleball Pilates Racquetball Ride RockClimbing "
    "RollerSki Rowing Run Sail Skateboard Snowboard Snowshoe Soccer Squash StairStepper "
    "StandUpPaddling Surfing Swim TableTennis Tennis TrailRun Velomobile VirtualRide VirtualRow "
    "VirtualRun Walk WeightTraining Wheelchair Windsurf Workout Yoga".split()
)


@dataclass
class ExtractResult:
    """What the extract subflow produced, passed on to the load subflow."""

    athlete_id: int
    run_key: str
    extracted_at: datetime
    after: datetime
    pages: int = 0
    requests: int = 0
    activities: int = 0
    staging_path: str | None = None
    raw_paths: list[str] = field(default_factory=list)
    newest_start_date: datetime | None = None
    complete: bool = True
    partial_reason: str | None = None
    previous_watermark: datetime | None = None
    new_fields: list[str] = field(default_factory=list)
    new_sport_types: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


def _start_date(activity: dict[str, Any]) -> datetime | None:
    value = schema.flatten_activity(activity, datetime.now(UTC)).get("start_date")
    return value if isinstance(value, datetime) else None


@flow(name="extract-activities")
def extract_activities(
    strava_block: str = "strava",
    lake_block: str = "strava-lake",
    run_key: str = "manual",
    lookback_days: int = 14,
    full_refresh: bool = False,
) -> ExtractResult:
    """Read activities started after ``watermark - lookback`` into the lake, page by page.

    Pages come oldest first (Strava orders by start_date ascending when only ``after`` is
    given), so a run cut short by the daily rate limit has loaded a gap-free prefix.
    """
    logger = get_run_logger()
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    credentials = load_block(StravaCredentials, strava_block)
    lake = load_lake(lake_block)
    extracted_at = datetime.now(UTC).replace(microsecond=0)

    with strava_tasks.StravaClient(credentials, log=logger) as client:
        athlete = strava_tasks.fetch_athlete(client)
        athlete_id = int(athlete["id"])
        previous = wm.read_watermark(athlete_id)
        if full_refresh or previous is None:
            after = datetime.fromtimestamp(0, UTC)
        else:
            after = previous - timedelta(days=lookback_days)
        result = ExtractResult(
            athlete_id=athlete_id,
            run_key=run_key,
            extracted_at=extracted_at,
            after=after,
            previous_watermark=previous,
        )
        logger.info(
            "Athlete %s: watermark %s, reading activities started after %s%s",
            athlete_id,
            previous.isoformat() if previous else "none",
            after.isoformat(),
            " (full refresh)" if full_refresh else "",
        )
        writer = lake_tasks.StagingFileWriter(extracted_at=extracted_at)
        paginator = strava_tasks.Paginator()
        new_fields: set[str] = set()
        new_sports: set[str] = set()
        try:
            while True:
                try:
                    page = strava_tasks.fetch_activities_page(client, int(after.timestamp()), paginator.page)
                except DailyLimitReached as exc:
                    result.complete = False
                    result.partial_reason = f"partial: resumes next run ({exc})"
                    logger.warning("Daily API budget spent after %s pages: %s", result.pages, exc)
                    break
                fresh = paginator.check(page)
                result.pages += 1
                if page:
                    result.raw_paths.append(
                        lake_tasks.land_raw_page(lake, athlete_id, run_key, paginator.page, page)
                    )
                writer.write_page(fresh)
                result.activities += len(fresh)
                new_fields |= schema.unknown_fields(page)
                new_sports |= {
                    str(a.get("sport_type")) for a in page if a.get("sport_type") not in KNOWN_SPORT_TYPES
                }
                for activity in fresh:
                    started = _start_date(activity)
                    if started and (result.newest_start_date is None or started > result.newest_start_date):
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
    result.new_fields = sorted(new_fields)
    result.new_sport_types = sorted(new_sports)
    if result.new_fields or result.new_sport_types:
        logger.warning(
            "Strava sent what the table does not know (kept in the raw pages): fields %s, sport types %s",
            result.new_fields or "none",
            result.new_sport_types or "none",
        )
    logger.info(
        "Extracted %s activities in %s pages with %s API requests%s",
        result.activities,
        result.pages,
        result.requests,
        f"; {result.partial_reason}" if result.partial_reason else "",
    )
    return result
