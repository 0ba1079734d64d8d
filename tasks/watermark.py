"""The watermark: newest start_date loaded, per athlete, in a Prefect Variable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable


def variable_name(athlete_id: int) -> str:
    """One Variable per athlete, e.g. ``strava_watermark_12345``."""
    return f"strava_watermark_{int(athlete_id)}"


def read_watermark(athlete_id: int) -> datetime | None:
    """The newest start_date loaded for the athlete, or None before the first load."""
    value = Variable.get(variable_name(athlete_id), default=None)
    if value is None:
        return None
    iso = value.get("start_date") if isinstance(value, dict) else value
    if not iso:
        return None
    parsed = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@task(cache_policy=NO_CACHE)
def advance_watermark(athlete_id: int, newest: datetime | None, flow_run_id: str | None) -> datetime | None:
    """Move the watermark forward to ``newest`` (never back, never to "now"); return it.

    Called only after the merge committed.
    """
    current = read_watermark(athlete_id)
    if newest is None or (current is not None and newest <= current):
        return current
    value: dict[str, Any] = {
        "start_date": newest.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "updated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "flow_run_id": flow_run_id,
    }
    Variable.set(variable_name(athlete_id), value, overwrite=True)
    return newest
