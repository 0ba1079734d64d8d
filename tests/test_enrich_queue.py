"""The enrichment queue (sql/enrich/): newest first, athlete-scoped, immutable streams, detail due on change.

On DuckDB files and PostgreSQL schemas; the summary merge's ``detail_due`` marking runs through
the real ``merge_staging``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tasks import enrich
from tasks import warehouse as wh
from tasks.entities.catalog import ENRICHMENT_TABLE, GEAR, STATS, enrichment_state_table
from tasks.warehouse import schema
from tasks.warehouse.tables import TABLE_NAMES
from tests.conftest import WAREHOUSES

ME, OTHER = 101, 202
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=WAREHOUSES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
    else:
        engine = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    wh.ensure_tables(engine)
    metadata = sa.MetaData()
    GEAR.table_of(metadata)
    STATS.table_of(metadata)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def activity(activity_id: int, athlete_id: int, day: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": activity_id,
        "athlete_id": athlete_id,
        "start_date": T0 + timedelta(days=day),
        "name": f"run {activity_id}",
        "row_hash": f"h{activity_id}",
        **extra,
    }


def declared(table: str) -> sa.Table:
    """The table as the code declares it (DuckDB's reflection cannot read PostgreSQL-style catalogs)."""
    metadata = sa.MetaData()
    known = {
        schema.ACTIVITY_TABLE: lambda: schema.activity_table(metadata),
        ENRICHMENT_TABLE: lambda: enrichment_state_table(metadata),
        GEAR.table: lambda: GEAR.table_of(metadata),
        STATS.table: lambda: STATS.table_of(metadata),
    }
    if table in known:
        return known[table]()
    return sa.Table(table, metadata, *(sa.Column(c.name, c.sql_type) for c in schema.STAGED_COLUMNS))


def insert(engine: sa.Engine, table: str, rows: list[dict[str, Any]]) -> None:
    target = declared(table)
    rows = [dict.fromkeys(target.columns.keys()) | row for row in rows]
    with engine.begin() as conn:
        conn.execute(target.insert(), rows)


def state(activity_id: int, athlete_id: int = ME, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(c.name for c in enrichment_state_table(sa.MetaData()).columns)
    return row | {"athlete_id": athlete_id, "activity_id": activity_id} | values


def test_the_table_name_the_summary_merge_uses_is_the_catalogs() -> None:
    assert TABLE_NAMES["enrichment"] == ENRICHMENT_TABLE


def test_queue_is_newest_first_scoped_to_the_athlete_and_never_refetches_streams(engine: sa.Engine) -> None:
    insert(
        engine,
        schema.ACTIVITY_TABLE,
        [activity(i, ME, i) for i in range(1, 7)]
        + [activity(7, ME, 7, deleted_at=T0 + timedelta(days=8))]
        + [activity(50, OTHER, 50)],
    )
    done = T0 + timedelta(days=9)
    insert(
        engine,
        ENRICHMENT_TABLE,
        [
            state(1, detail_at=done, streams_at=done, streams_outcome="loaded", streams_samples=10),  # complete
            state(2, detail_at=done, detail_due=True, streams_at=done, streams_outcome="none"),  # detail again
            state(3, detail_at=done, streams_at=None, attempts=1, last_error="503"),  # streams still
            state(4, detail_at=None, streams_at=None, attempts=3, last_error="404"),  # gave up
            state(6, athlete_id=OTHER, detail_at=done, streams_at=done),  # another athlete's row: not mine
        ],
    )
    with engine.connect() as conn:
        queue = enrich.read_queue(conn, ME)
        assert [(q.activity_id, q.needs_detail, q.needs_streams) for q in queue] == [
            (6, True, True),  # no state row of mine: both
            (5, True, True),
            (3, False, True),
            (2, True, False),  # changed on Strava: the detail only; streams never twice
        ]
        assert [q.requests for q in queue] == [2, 2, 1, 1]
        assert [q.activity_id for q in enrich.read_queue(conn, ME, limit=2)] == [6, 5]
        assert [q.activity_id for q in enrich.read_queue(conn, OTHER)] == [50]
        assert enrich.take(queue, 5) == queue[:3]  # 2 + 2 + 1; an activity is never half paid
        assert enrich.take(queue, 3) == queue[:1]
        assert enrich.take(queue, 1) == []
        mine = enrich.progress(conn, ME)
        assert (mine.enriched, mine.total, mine.pending) == (1, 6, 5) and str(mine) == "1/6"
        assert enrich.progress(conn, OTHER) == enrich.Progress(0, 1)


def test_gear_is_due_once_then_again_only_when_an_activity_started_after_its_read(engine: sa.Engine) -> None:
    insert(
        engine,
        schema.ACTIVITY_TABLE,
        [
            activity(1, ME, 1, gear_id="b1"),
            activity(2, ME, 2, gear_id="g2"),
            activity(3, ME, 3, gear_id="g3"),
            activity(4, ME, 4),
            activity(5, OTHER, 5, gear_id="b9"),
        ],
    )
    gear = [
        {"id": "b1", "athlete_id": ME, "distance": 10.0, "extracted_at": T0 + timedelta(days=10)},  # read since
        {"id": "g2", "athlete_id": ME, "distance": 20.0, "extracted_at": T0 + timedelta(days=1)},  # used after
        {"id": "g3", "athlete_id": OTHER, "distance": 1.0, "extracted_at": T0 + timedelta(days=10)},  # not mine
    ]
    insert(engine, GEAR.table, gear)
    with engine.connect() as conn:
        assert enrich.gear_due(conn, ME) == ["g2", "g3"]
        assert enrich.gear_due(conn, OTHER) == ["b9"]
        assert enrich.stats_read_on(conn, ME) is None
    observed = T0 + timedelta(days=3)
    insert(
        engine,
        STATS.table,
        [{"athlete_id": ME, "observed_at": observed, "period": "all", "sport": "run", "count": 3}],
    )
    with engine.connect() as conn:
        assert enrich.stats_read_on(conn, ME) == observed
        assert enrich.stats_read_on(conn, OTHER) is None


def test_the_summary_merge_marks_changed_enriched_activities_detail_due(engine: sa.Engine) -> None:
    insert(engine, schema.ACTIVITY_TABLE, [activity(i, ME, i) for i in (1, 2, 3)] + [activity(9, OTHER, 9)])
    done = T0 + timedelta(days=10)
    insert(
        engine,
        ENRICHMENT_TABLE,
        [state(i, detail_at=done, streams_at=done) for i in (1, 2)] + [state(9, OTHER, detail_at=done)],
    )
    staging = wh.prepare_staging(engine, "20260301t080000_abcdef01")
    try:
        # 1 unchanged, 2 renamed on Strava, 3 changed but never enriched (already queued), 4 new
        rows = [
            activity(1, ME, 1),
            activity(2, ME, 2, name="renamed", row_hash="changed"),
            activity(3, ME, 3, row_hash="changed"),
            activity(4, ME, 4),
        ]
        insert(engine, staging, rows)
        result = wh.merge_staging.fn(engine, staging, done, None, ME)
    finally:
        wh.drop_staging(engine, staging)
    assert (result.inserted, result.updated) == (1, 2)
    with engine.connect() as conn:
        due = conn.execute(
            sa.text(f"SELECT athlete_id, activity_id, detail_due FROM {ENRICHMENT_TABLE} ORDER BY activity_id")
        ).all()
        queue = enrich.read_queue(conn, ME)
    assert [(a, i, bool(d)) for a, i, d in due] == [(ME, 1, False), (ME, 2, True), (OTHER, 9, False)]
    assert [(q.activity_id, q.needs_detail, q.needs_streams) for q in queue] == [
        (4, True, True),
        (3, True, True),
        (2, True, False),
    ]
