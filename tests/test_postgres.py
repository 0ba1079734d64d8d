"""PostgreSQL's bulk load: COPY FROM STDIN (CSV written by Arrow) round-trips every value exactly (real server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from blocks.warehouse import use_schema
from tasks import warehouse as wh
from tasks.warehouse import schema
from tests.conftest import split_pg_url

pytestmark = pytest.mark.postgres

NASTY = [
    "tab\there",
    "new\nline",
    "crlf\r\nend",
    "back\\slash \\N \\t",
    "\\.",
    "quote \"double\" and 'single'",
    "pipe | comma , semicolon ;",
    "emoji 🏃‍♀️🔥 and ünïcödé",
    "",
    " leading and trailing ",
    "x" * 5000,
]


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    url, schema_name = split_pg_url(pg_url)
    eng = sa.create_engine(url)
    use_schema(eng, schema_name)
    wh.ensure_tables(eng)
    yield eng
    eng.dispose()


def _rows() -> list[dict[str, Any]]:
    base = datetime(2024, 3, 31, 0, 59, 59, 123456, tzinfo=UTC)
    rows = []
    for i, name in enumerate([*NASTY, None]):
        row = {c.name: None for c in schema.STAGED_COLUMNS}
        row.update(
            id=2**40 + i,
            name=name,
            distance=1234.5678901234 + i,
            average_speed=1 / (i + 3),  # floats must come back bit-exact
            max_speed=2.0**60 + 2**i,
            suffer_score=5e-324 if i == 0 else 1e300 / (i + 1),
            moving_time=i,
            trainer=bool(i % 2),
            start_date=base + timedelta(days=i),
            start_date_local=(base + timedelta(days=i)).astimezone(timezone(timedelta(hours=2))).replace(tzinfo=None),
            upload_id=str(2**62 + i),
            extracted_at=base,
            row_hash=f"{i:032x}",
        )
        rows.append(row)
    return rows


def test_copy_from_stdin_round_trips_every_value(engine: sa.Engine) -> None:
    rows = _rows()
    dialect = wh.dialect_for(engine)
    assert isinstance(dialect, wh.PostgresDialect)
    with engine.begin() as conn:
        dialect.create_staging(conn, "stg_roundtrip", schema.ACTIVITY_TABLE)
        assert dialect.load_staging(conn, "stg_roundtrip", schema.to_arrow(rows)) == len(rows)
    names = [c.name for c in schema.STAGED_COLUMNS]
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT {', '.join(names)} FROM stg_roundtrip ORDER BY id")).mappings().all()  # noqa: S608
    assert [dict(r) for r in got] == rows  # aware datetimes compare by instant; names byte for byte
    assert [r["name"] for r in got] == [r["name"] for r in rows]
    assert got[-1]["name"] is None and got[NASTY.index("")]["name"] == ""


def test_copy_loads_in_batches(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wh.PostgresDialect, "batch_rows", 3)
    rows = _rows()
    dialect = wh.dialect_for(engine)
    with engine.begin() as conn:
        dialect.create_staging(conn, "stg_batches", schema.ACTIVITY_TABLE)
        dialect.load_staging(conn, "stg_batches", schema.to_arrow(rows))
        assert conn.execute(sa.text("SELECT COUNT(DISTINCT id) FROM stg_batches")).scalar() == len(rows)
