"""What a reaction to webhook events needs: the athlete's mailbox of events, one activity, one staging file.

Events are hints, never data: the reaction reads each activity an event names with the
athlete's own token (one request per activity) and only what the API answers reaches the
warehouse, through the same lake -> staging -> gate -> merge path as every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

from tasks import lake as lake_tasks
from tasks.state.deferred import DEFERRED_IDS_MAX, Deferred, read_deferred, save_deferred
from tasks.state.variables import read_variable, write_variable
from tasks.strava.client import StravaClient
from tasks.strava.errors import NotFoundError
from tasks.warehouse import schema

__all__ = [
    "DEFAULT_DAILY_REQUESTS",
    "DEFAULT_MAX_ACTIVITY_REQUESTS",
    "DEFERRED_IDS_MAX",
    "MAILBOX_HORIZON",
    "Deferred",
    "Hint",
    "Mailbox",
    "activity_starts",
    "read_deferred",
    "read_spent",
    "save_deferred",
    "save_spent",
    "fetch_activity",
    "latest_per_activity",
    "read_mailbox",
    "save_cursor",
    "stage_activities",
]

MAILBOX_HORIZON = timedelta(days=1)
"""How far back a reaction without a cursor reads the athlete's events."""

_PAGE = 50  # the events API pages by at most 50
_CURSOR_PREFIX = "strava_react_cursor_"


@dataclass(frozen=True)
class Hint:
    """One Strava event as the receiver emitted it (the Prefect event's payload)."""

    object_type: str
    object_id: int
    aspect_type: str
    event_time: int
    updates: Mapping[str, str]
    event_id: str | None = None

    @classmethod
    def of(cls, payload: Mapping[str, Any], event_id: str | None = None) -> Hint:
        """Read a payload (or a Strava event body); ValueError for one without the fields."""
        try:
            return cls(
                object_type=str(payload["object_type"]),
                object_id=int(payload["object_id"]),
                aspect_type=str(payload["aspect_type"]),
                event_time=int(payload.get("event_time") or 0),
                updates={str(k): str(v) for k, v in dict(payload.get("updates") or {}).items()},
                event_id=event_id,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a Strava event: {dict(payload)!r:.200} ({exc})") from None

    @property
    def deauthorize(self) -> bool:
        return self.object_type == "athlete" and self.updates.get("authorized") == "false"


@dataclass(frozen=True)
class Mailbox:
    """The athlete's events read from Prefect, and the cursor to save once they are handled."""

    hints: list[Hint]
    cursor: dict[str, Any] | None


def cursor_name(athlete_id: int) -> str:
    """The Variable holding how far the athlete's events have been handled."""
    return f"{_CURSOR_PREFIX}{int(athlete_id)}"


def read_mailbox(athlete_id: int, now: datetime | None = None) -> Mailbox:
    """The athlete's ``strava.activity.*`` and ``strava.athlete.deauthorize`` events not handled yet.

    Read from the Prefect API (oldest first) since the athlete's cursor, or for
    :data:`MAILBOX_HORIZON` without one. The trigger starts a run per burst and passes only
    one event, so the run reads them all here.
    """
    now = now or datetime.now(UTC)
    saved = read_variable(cursor_name(athlete_id))
    since = now - MAILBOX_HORIZON
    done: set[str] = set()
    if isinstance(saved, dict) and saved.get("since"):
        since = max(since, datetime.fromisoformat(str(saved["since"])))
        done = {str(i) for i in saved.get("ids", [])}
    query = EventFilter(
        occurred=EventOccurredFilter(since=since, until=now + timedelta(minutes=1)),  # type: ignore[arg-type]
        event=EventNameFilter(
            name=[
                "strava.activity.create",
                "strava.activity.update",
                "strava.activity.delete",
                "strava.athlete.deauthorize",
            ]
        ),
        resource=EventResourceFilter(id=[f"strava.athlete.{int(athlete_id)}"]),
        order="ASC",  # type: ignore[arg-type]
    )
    events = []
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=query, limit=_PAGE)
        events.extend(page.events)
        while page.next_page is not None:
            page = client.read_events_page(page.next_page)  # type: ignore[arg-type]
            events.extend(page.events)
    events.sort(key=lambda e: e.occurred)
    hints = [Hint.of(e.payload, str(e.id)) for e in events if str(e.id) not in done]
    if not events:
        return Mailbox(hints, None)
    newest = events[-1].occurred
    return Mailbox(hints, {"since": newest.isoformat(), "ids": [str(e.id) for e in events if e.occurred == newest]})


def save_cursor(athlete_id: int, cursor: Mapping[str, Any] | None) -> None:
    """Remember that the mailbox's events up to ``cursor`` are handled (after they are)."""
    if cursor is not None:
        write_variable(cursor_name(athlete_id), dict(cursor))


def latest_per_activity(hints: Iterable[Hint]) -> dict[int, Hint]:
    """The newest event of each activity named (a delete after a create wins; equal times: the later)."""
    latest: dict[int, Hint] = {}
    for hint in hints:
        if hint.object_type != "activity":
            continue
        known = latest.get(hint.object_id)
        if known is None or hint.event_time >= known.event_time:
            latest[hint.object_id] = hint
    return latest


@task(cache_policy=NO_CACHE, task_run_name="fetch-activity-{activity_id}")
def fetch_activity(client: StravaClient, activity_id: int) -> dict[str, Any] | None:
    """``GET /activities/{id}`` with the athlete's token: the activity, or None when Strava answers 404."""
    try:
        body = client.get_json(f"/activities/{int(activity_id)}")
    except NotFoundError:
        return None
    if not isinstance(body, dict):
        raise ValueError(f"Strava answered /activities/{activity_id} with {type(body).__name__}, not an object")
    return body


@task(cache_policy=NO_CACHE)
def stage_activities(
    lake: lake_tasks.Lake, athlete_id: int, run_key: str, activities: list[dict[str, Any]], extracted_at: datetime
) -> tuple[str, int]:
    """Land the fetched activities as the run's raw page 1 and its typed staging file; return (path, rows).

    Only the athlete's own activities with a fitting id and start_date are staged (the
    reaction checked the owner; this is the same refusal as the extract's).
    """
    rows = []
    for activity in activities:
        row = schema.flatten_activity(activity, extracted_at)
        if schema.rejection(activity, row) is None and row["athlete_id"] == int(athlete_id):
            rows.append(row)
    lake_tasks.land_raw_page(lake, athlete_id, run_key, 1, activities)
    writer = lake_tasks.StagingFileWriter()
    try:
        writer.write_page(rows)
        path = writer.upload(lake, lake_tasks.staging_file_path(athlete_id, run_key))
    finally:
        writer.discard()
    return path, len(rows)


# ---------------------------------------------------------------- what a reaction may spend

DEFAULT_MAX_ACTIVITY_REQUESTS = 20
"""Single-activity reads (``GET /activities/{id}``) one reaction makes at most (older updates, deletes)."""
DEFAULT_DAILY_REQUESTS = 60
"""Requests the reactions of one athlete make per UTC day at most (single reads and incremental runs)."""
_SPENT_PREFIX = "strava_react_spent_"


def read_spent(athlete_id: int, today: str) -> int:
    """Requests the athlete's reactions made on the UTC day ``today`` (``YYYY-MM-DD``)."""
    value = read_variable(f"{_SPENT_PREFIX}{int(athlete_id)}")
    if isinstance(value, dict) and value.get("day") == today:
        return int(value.get("requests") or 0)
    return 0


def save_spent(athlete_id: int, today: str, requests: int) -> None:
    """Record the requests the athlete's reactions made on ``today``."""
    write_variable(f"{_SPENT_PREFIX}{int(athlete_id)}", {"day": today, "requests": int(requests)})


def activity_starts(engine: Any, athlete_id: int) -> dict[int, datetime]:
    """The start of each activity the athlete holds in the warehouse (deleted ones included)."""
    from tasks.warehouse.dialects import dialect_for
    from tasks.warehouse.tables import TABLE_NAMES, ensure_tables

    ensure_tables(engine)
    sql = dialect_for(engine).sql("load/athlete_activity_starts.sql", **TABLE_NAMES)
    starts: dict[int, datetime] = {}
    with engine.connect() as conn:
        for activity_id, started in conn.execute(sql, {"athlete_id": int(athlete_id)}):
            if isinstance(started, datetime):
                starts[int(activity_id)] = started if started.tzinfo else started.replace(tzinfo=UTC)
    return starts
