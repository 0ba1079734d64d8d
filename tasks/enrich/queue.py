"""The enrichment queue: what of one athlete's history still lacks its detail or its streams.

The queue is not a table of its own: it is read from the summary table and the enrichment state
(:data:`~tasks.entities.catalog.ENRICHMENT_TABLE`, one row per activity the enrichment touched),
so it can never disagree with what the warehouse holds. Newest first: an athlete sees this
week's activities enriched before last year's. Every statement is the athlete's alone
(``sql/enrich/``: portable SQL for DuckDB, PostgreSQL and Redshift).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from tasks.entities.catalog import ENRICHMENT_TABLE, GEAR, STATS
from tasks.warehouse import schema
from tasks.warehouse.dialects import dialect_for

__all__ = [
    "ATHLETE_REQUESTS",
    "MAX_ATTEMPTS",
    "Progress",
    "QueueItem",
    "gear_due",
    "needed_requests",
    "progress",
    "read_queue",
    "stats_read_on",
    "take",
]

ATHLETE_REQUESTS = 2
"""The athlete's stats and zones: read once a UTC day."""

MAX_ATTEMPTS = 3
"""Failed fetches in a row after which an activity leaves the queue until it changes on Strava."""

TABLES = {
    "target": schema.ACTIVITY_TABLE,
    "enrichment": ENRICHMENT_TABLE,
    "gear": GEAR.table,
    "stats": STATS.table,
}


@dataclass(frozen=True)
class QueueItem:
    """One activity of the queue: what it still needs (2 requests for both, 1 for one)."""

    activity_id: int
    start_date: datetime | None
    needs_detail: bool
    needs_streams: bool

    @property
    def requests(self) -> int:
        return int(self.needs_detail) + int(self.needs_streams)


@dataclass(frozen=True)
class Progress:
    """How much of the athlete's live history is enriched (detail current, streams fetched)."""

    enriched: int
    total: int

    @property
    def pending(self) -> int:
        return self.total - self.enriched

    @property
    def complete(self) -> bool:
        return self.enriched >= self.total

    def __str__(self) -> str:
        return f"{self.enriched}/{self.total}"


def read_queue(
    conn: sa.Connection, athlete_id: int, limit: int | None = None, max_attempts: int = MAX_ATTEMPTS
) -> list[QueueItem]:
    """The athlete's queue, newest first (at most ``limit`` items)."""
    sql = dialect_for(conn.engine).sql("enrich/queue.sql", **TABLES)
    result = conn.execute(sql, {"athlete_id": int(athlete_id), "max_attempts": int(max_attempts)})
    rows = result.fetchmany(limit) if limit is not None else result.fetchall()
    result.close()
    return [QueueItem(int(r[0]), _aware(r[1]), bool(r[2]), bool(r[3])) for r in rows]


def take(queue: list[QueueItem], requests: int) -> list[QueueItem]:
    """The head of the queue that ``requests`` pay for in full (an activity is never half paid)."""
    taken: list[QueueItem] = []
    for item in queue:
        if item.requests > requests:
            break
        taken.append(item)
        requests -= item.requests
    return taken


def progress(conn: sa.Connection, athlete_id: int) -> Progress:
    """Enriched / total live activities of the athlete."""
    sql = dialect_for(conn.engine).sql("enrich/progress.sql", **TABLES)
    total, enriched = conn.execute(sql, {"athlete_id": int(athlete_id)}).one()
    return Progress(int(enriched or 0), int(total or 0))


def gear_due(conn: sa.Connection, athlete_id: int) -> list[str]:
    """Gear ids the athlete's activities name that were never read, or have been used since their last read."""
    sql = dialect_for(conn.engine).sql("enrich/gear_due.sql", **TABLES)
    return [str(r[0]) for r in conn.execute(sql, {"athlete_id": int(athlete_id)})]


def stats_read_on(conn: sa.Connection, athlete_id: int) -> datetime | None:
    """When the athlete's stats were last read (None: never)."""
    sql = dialect_for(conn.engine).sql("enrich/stats_observed.sql", **TABLES)
    return _aware(conn.execute(sql, {"athlete_id": int(athlete_id)}).scalar())


def needed_requests(conn: sa.Connection, athlete_id: int, now: datetime) -> int | None:
    """Requests the athlete's enrichment still needs: its queue, its gear due, its stats and zones if due today.

    A fully enriched athlete needs 0 (or 2, its stats and zones, once a UTC day). None when the
    warehouse holds none of the athlete's activities yet (its first load is still to come: its
    need is not known). A round reads it for each athlete before it starts
    (:func:`tasks.enrich.round_share`).
    """
    if progress(conn, athlete_id).total == 0:
        return None
    queued = sum(item.requests for item in read_queue(conn, athlete_id))
    stats_on = stats_read_on(conn, athlete_id)
    stats_due = stats_on is None or stats_on.date() < now.astimezone(UTC).date()
    return queued + len(gear_due(conn, athlete_id)) + (ATHLETE_REQUESTS if stats_due else 0)


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
