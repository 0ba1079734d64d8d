"""Helpers for the insight tests: a DuckDB warehouse filled straight from the emulator's athlete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from emulator import StravaEmulator
from tasks import warehouse as wh
from tasks.warehouse import schema
from tests.conftest import EMULATOR_END


def fill_warehouse(
    engine: sa.Engine,
    activities: list[dict[str, Any]],
    *,
    deleted_ids: set[int] | frozenset[int] = frozenset(),
    build: bool = True,
) -> dict[str, int]:
    """Load SummaryActivity dicts into production (DuckDB, via Arrow), history too; build models."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [schema.flatten_activity(a, now) for a in activities]
    data = schema.to_arrow(rows)
    deleted = pa.array([now if r["id"] in deleted_ids else None for r in rows], pa.timestamp("us", tz="UTC"))
    data = data.append_column("deleted_at", deleted)
    wh.ensure_tables(engine)
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        driver.register("incoming_rows", data)
        try:
            cols = ", ".join(f'"{name}"' for name in data.column_names)
            conn.exec_driver_sql(f"INSERT INTO strava_activity_data ({cols}) SELECT {cols} FROM incoming_rows")
        finally:
            driver.unregister("incoming_rows")
        history = [
            {
                "activity_id": r["id"],
                "athlete_id": r["athlete_id"],
                "observed_at": r["start_date"] + timedelta(days=1),
                "kudos_count": r["kudos_count"],
                "comment_count": r["comment_count"],
                "achievement_count": r["achievement_count"],
            }
            for r in rows
            if r["start_date"] is not None
        ]
        conn.execute(schema.stats_history_table(sa.MetaData()).insert(), history)
    if not build:
        return {}
    return {wh.model_name(p): wh.build_model(engine, p) for p in wh.model_files()}


def emulator_warehouse(
    path: Path, activities: int = 1500, seed: int = 42, **kwargs: Any
) -> tuple[sa.Engine, StravaEmulator]:
    """A DuckDB file holding the emulator's athlete (not started: no HTTP needed), models built."""
    emu = StravaEmulator(activities=activities, seed=seed, end=EMULATOR_END)
    engine = sa.create_engine(f"duckdb:///{path}")
    fill_warehouse(engine, emu.activities, **kwargs)
    return engine, emu
