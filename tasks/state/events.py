"""The event a successful load emits, for automations such as the kudos model's trigger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.events import Event, emit_event

LOADED_EVENT = "strava.activities.loaded"
"""Emitted once per run, after the merge committed and the watermark moved."""


def athlete_resource_id(athlete_id: int) -> str:
    """The event's resource id, ``strava.athlete.<id>`` (triggers match ``strava.athlete.*``)."""
    return f"strava.athlete.{int(athlete_id)}"


def emit_activities_loaded(summary: Mapping[str, Any], *, warehouse_block: str, lake_block: str) -> Event | None:
    """Emit ``strava.activities.loaded`` for the run's athlete; return the event (None if not sent).

    The payload carries the merge counts, the new watermark and the block names, so a
    deployment trigger can pass them on as parameters (``{{ event.payload.warehouse_block }}``).
    The flow run, flow and deployment are attached as related resources by Prefect.

    Args:
        summary: The main flow's summary after the merge: ``athlete_id``, ``run_key``,
            ``inserted``, ``updated``, ``deleted``, ``watermark`` and ``status``.
        warehouse_block: Name of the Warehouse block the run loaded.
        lake_block: Name of the lake block the run wrote to.

    """
    athlete_id = int(summary["athlete_id"])
    return emit_event(
        event=LOADED_EVENT,
        resource={
            "prefect.resource.id": athlete_resource_id(athlete_id),
            "prefect.resource.name": f"Strava athlete {athlete_id}",
        },
        payload={
            "athlete_id": athlete_id,
            "inserted": int(summary.get("inserted") or 0),
            "updated": int(summary.get("updated") or 0),
            "deleted": int(summary.get("deleted") or 0),
            "watermark": summary.get("watermark"),
            "status": summary.get("status"),
            "run_key": summary.get("run_key"),
            "warehouse_block": warehouse_block,
            "lake_block": lake_block,
        },
    )
