"""The event a successful load emits, for automations such as the kudos model's trigger."""

from __future__ import annotations

from prefect.events import Event, emit_event

from tasks.state.summary import RunSummary

LOADED_EVENT = "strava.activities.loaded"
"""Emitted once per run, after the merge committed and the watermark moved."""


def athlete_resource_id(athlete_id: int) -> str:
    """The event's resource id, ``strava.athlete.<id>`` (triggers match ``strava.athlete.*``)."""
    return f"strava.athlete.{int(athlete_id)}"


def emit_activities_loaded(summary: RunSummary, *, warehouse_block: str, lake_block: str) -> Event | None:
    """Emit ``strava.activities.loaded`` for the run's athlete; return the event (None if not sent).

    The payload carries the merge counts, the new watermark and the block names, so a
    deployment trigger can pass them on as parameters (``{{ event.payload.warehouse_block }}``).
    The flow run, flow and deployment are attached as related resources by Prefect.

    Args:
        summary: The main flow's summary after the merge and the watermark.
        warehouse_block: Name of the Warehouse block the run loaded.
        lake_block: Name of the lake block the run wrote to.

    """
    if summary.athlete_id is None:
        raise ValueError("emit_activities_loaded needs a summary whose extract named the athlete")
    athlete_id = int(summary.athlete_id)
    merge, mark = summary.merge, summary.watermark
    return emit_event(
        event=LOADED_EVENT,
        resource={
            "prefect.resource.id": athlete_resource_id(athlete_id),
            "prefect.resource.name": f"Strava athlete {athlete_id}",
        },
        payload={
            "athlete_id": athlete_id,
            "inserted": merge.inserted if merge else 0,
            "updated": merge.updated if merge else 0,
            "deleted": merge.deleted if merge else 0,
            "watermark": mark.after.isoformat() if mark and mark.after else None,
            "status": summary.status,
            "run_key": summary.run_key,
            "warehouse_block": warehouse_block,
            "lake_block": lake_block,
        },
    )
