"""The ``strava.activities.loaded`` event, read back from the session's Prefect server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tasks.state.events import LOADED_EVENT, athlete_resource_id
from tests.conftest import Env


def _loaded_events(athlete_id: int, timeout: float = 20.0) -> list[Any]:
    """This athlete's loaded events, waiting for the server to persist them."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    flt = EventFilter(
        event=EventNameFilter(name=[LOADED_EVENT]),
        resource=EventResourceFilter(id=[athlete_resource_id(athlete_id)]),
    )
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            # The server answers at most 50 per page (the client's default of 100 is refused).
            events = client.read_events(filter=flt, limit=50).events
            if events or time.monotonic() > deadline:
                return sorted(events, key=lambda e: e.occurred)
            time.sleep(0.5)


def test_a_successful_run_emits_loaded_with_counts_and_watermark(env: Env) -> None:
    summary = env.run()
    athlete_id = env.emu.athlete["id"]
    events = _loaded_events(athlete_id)
    assert len(events) == 1
    event = events[0]
    assert event.resource.id == f"strava.athlete.{athlete_id}"
    assert event.payload["inserted"] == summary["inserted"] == len(env.emu.activities)
    assert event.payload["updated"] == 0 and event.payload["deleted"] == 0
    assert event.payload["watermark"] == summary["watermark"]
    assert event.payload["athlete_id"] == athlete_id
    assert event.payload["warehouse_block"] == env.warehouse_block
    assert event.payload["lake_block"] == env.lake_block
    # Prefect relates the event to the flow run that emitted it.
    assert "flow-run" in {r.role for r in event.related}


def test_a_failed_load_emits_nothing(env: Env) -> None:
    from blocks.loading import MissingBlockError

    with pytest.raises(MissingBlockError):
        env.run(warehouse_block="no-such-warehouse")  # the warehouse is opened first: nothing runs
    assert _loaded_events(env.emu.athlete["id"], timeout=3) == []
