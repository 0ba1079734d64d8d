"""Which pipeline runs belong to which athlete: the ``strava-athlete:<id>`` tag and the last run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort

__all__ = ["ATHLETE_TAG_PREFIX", "PIPELINE_FLOW", "LastRun", "athlete_tag", "last_run"]

ATHLETE_TAG_PREFIX = "strava-athlete:"
PIPELINE_FLOW = "strava-elt"
"""The per-athlete pipeline's flow name (``flows/pipeline.py``)."""


def athlete_tag(athlete_id: int) -> str:
    """The tag of every pipeline run for ``athlete_id``: ``strava-athlete:<id>``."""
    return f"{ATHLETE_TAG_PREFIX}{int(athlete_id)}"


@dataclass(frozen=True)
class LastRun:
    """An athlete's latest pipeline run: its state and when it ended (or started, or was due)."""

    name: str
    state: str
    at: datetime | None
    message: str | None = None


def last_run(athlete_id: int) -> LastRun | None:
    """The newest pipeline run tagged ``strava-athlete:<athlete_id>``, or None when there is none."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PIPELINE_FLOW])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[athlete_tag(athlete_id)])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    if not runs:
        return None
    run = runs[0]
    state = run.state
    return LastRun(
        name=run.name,
        state=(state.name if state is not None else None) or "Unknown",
        at=run.end_time or run.start_time or run.expected_start_time,
        message=state.message if state is not None and state.message else None,
    )
