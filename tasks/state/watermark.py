"""The watermark: newest start_date loaded, per (warehouse, athlete), in a Prefect Variable.

The Variable is a cache of what the warehouse holds, never a substitute for it. Its name holds
the warehouse's identity (a uuid created with its tables, see
:func:`tasks.warehouse.ensure_tables`), so another warehouse, or the same one emptied and
created anew, never reuses it; and before a run trusts it, :func:`resolve_start` checks it
against the athlete's rows in that warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.state.variables import read_variable, write_variable
from tasks.warehouse import AthleteRows

PREFIX = "strava_watermark_"
WAREHOUSE_ID_CHARS = 12


@dataclass(frozen=True)
class Watermark:
    """A Variable's value: the newest start_date loaded and the athlete's row count at that moment."""

    start_date: datetime
    rows: int | None = None
    updated_at: datetime | None = None
    """When a run last moved it (the last load), when the Variable says."""


@dataclass(frozen=True)
class Start:
    """Where a run starts reading: after ``watermark`` (minus the lookback), or the whole history.

    ``full_read_reason`` says why the whole history is read (None when the watermark is trusted).
    """

    watermark: datetime | None
    full_read_reason: str | None = None


def variable_name(warehouse_id: str, athlete_id: int) -> str:
    """One Variable per warehouse and athlete, e.g. ``strava_watermark_3f2a9c0d1e4b_12345``."""
    return f"{PREFIX}{warehouse_id[:WAREHOUSE_ID_CHARS].lower()}_{int(athlete_id)}"


def legacy_variable_name(athlete_id: int) -> str:
    """The Variable of releases before per-warehouse watermarks, ``strava_watermark_<athlete id>``."""
    return f"{PREFIX}{int(athlete_id)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read(name: str) -> Watermark | None:
    value = read_variable(name)
    if value is None:
        return None
    iso = value.get("start_date") if isinstance(value, dict) else value
    if not iso:
        return None
    parsed = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    rows = value.get("rows") if isinstance(value, dict) else None
    updated = value.get("updated_at") if isinstance(value, dict) else None
    return Watermark(
        start_date=_utc(parsed),
        rows=int(rows) if isinstance(rows, int) else None,
        updated_at=_utc(datetime.fromisoformat(str(updated).replace("Z", "+00:00"))) if updated else None,
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def watermark_record(warehouse_id: str, athlete_id: int) -> Watermark | None:
    """The athlete's watermark in the warehouse with its row count and when it last moved, or None."""
    return _read(variable_name(warehouse_id, athlete_id))


def read_watermark(warehouse_id: str, athlete_id: int) -> datetime | None:
    """The newest start_date loaded for the athlete into the warehouse, or None before the first load."""
    found = _read(variable_name(warehouse_id, athlete_id))
    return found.start_date if found else None


def resolve_start(warehouse_id: str, athlete_id: int, held: AthleteRows, extracted_at: datetime) -> Start:
    """The watermark a run may read after, checked against what the warehouse holds for the athlete.

    The whole history is read (with a warning saying why) when there is no watermark for this
    warehouse and athlete, when the warehouse holds no live activity of the athlete, fewer rows
    than when the watermark last moved, or nothing as new as the watermark, and when the
    watermark lies after this run. An old per-athlete Variable (``strava_watermark_<athlete>``)
    is adopted only when the warehouse holds the athlete's activities.
    """
    logger = get_run_logger()
    name = variable_name(warehouse_id, athlete_id)
    current = _read(name)
    if current is None:
        legacy = legacy_variable_name(athlete_id)
        old = _read(legacy)
        if old is not None and held.live > 0:
            logger.info(
                "Adopting Variable %s (%s, from before watermarks were per warehouse) as %s: "
                "warehouse %s holds %s activities of athlete %s",
                legacy, _iso(old.start_date), name, warehouse_id, held.total, athlete_id,
            )  # fmt: skip
            current = Watermark(old.start_date)
        elif old is not None:
            logger.info(
                "Ignoring Variable %s (from before watermarks were per warehouse): warehouse %s holds no "
                "activity of athlete %s",
                legacy, warehouse_id, athlete_id,
            )  # fmt: skip
    if current is None:
        return Start(None, f"no watermark yet for athlete {athlete_id} in warehouse {warehouse_id}")
    mark = _iso(current.start_date)
    why = None
    if held.live == 0:
        why = f"the warehouse holds no live activity of athlete {athlete_id}, although the watermark is {mark}"
    elif current.rows is not None and held.total < current.rows:
        why = (
            f"the warehouse holds {held.total} rows of athlete {athlete_id}, fewer than the {current.rows} "
            f"it held when the watermark moved to {mark}"
        )
    elif held.newest_start_date is None or held.newest_start_date < current.start_date:
        why = f"the warehouse holds no activity of athlete {athlete_id} as new as the watermark {mark}"
    elif current.start_date > extracted_at:
        why = f"the watermark {mark} lies after this run ({_iso(extracted_at)})"
    if why is not None:
        logger.warning("Reading the whole history of athlete %s: %s (Variable %s)", athlete_id, why, name)
        return Start(None, why)
    return Start(current.start_date)


@task(cache_policy=NO_CACHE)
def advance_watermark(
    warehouse_id: str,
    athlete_id: int,
    newest: datetime | None,
    extracted_at: datetime,
    rows: int,
    flow_run_id: str | None,
    *,
    reset: bool = False,
) -> datetime | None:
    """Record the watermark after the merge committed; return it.

    It moves to the newest start_date loaded, but never past ``extracted_at`` (the run's own
    extraction time: a future-dated activity cannot push it ahead) and, unless ``reset`` (the
    run read the whole history), never back. ``rows`` is the athlete's row count after the
    merge, which the next run checks the warehouse against.
    """
    target = min(newest, extracted_at) if newest is not None else None
    current = read_watermark(warehouse_id, athlete_id)
    if current is not None and current > extracted_at:
        current = None  # written by a release that let future dates through: not kept
    if reset or current is None:
        moved = target
    else:
        moved = max(current, target) if target is not None else current
    if moved is None:
        return None
    value: dict[str, Any] = {
        "start_date": _iso(moved),
        "rows": int(rows),
        "warehouse_id": warehouse_id,
        "athlete_id": int(athlete_id),
        "updated_at": _iso(datetime.now(UTC)),
        "flow_run_id": flow_run_id,
    }
    write_variable(variable_name(warehouse_id, athlete_id), value)
    return moved
