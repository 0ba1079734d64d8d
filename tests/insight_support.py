"""Helpers for the insight tests: a DuckDB warehouse filled straight from the emulator's athlete."""

from __future__ import annotations

import time
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


def _when(value: Any) -> datetime | None:
    """An ISO timestamp of the API as a datetime (aware when it has a zone; local times stay naive)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def fill_enrichment(engine: sa.Engine, emu: StravaEmulator, activity_ids: list[int], *, build: bool = True) -> int:
    """Load the emulator's detail, efforts, streams, gear and zones of ``activity_ids`` (DuckDB); samples loaded.

    The tables are the catalog's (``spec.table_of``); values as the API sends them, flattened here
    by hand (the enrichment's own flattener is tested with it). The models are rebuilt after.
    """
    from emulator.record import zones
    from tasks.entities import catalog

    metadata = sa.MetaData()
    tables = {spec.name: spec.table_of(metadata) for spec in catalog.SPECS.values() if spec.name != "activities"}
    metadata.create_all(engine, checkfirst=True)
    athlete = int(emu.athlete["id"])
    details, best, segments, gear_ids = [], [], [], set()
    samples = 0
    columns: dict[str, list[Any]] = {c.name: [] for c in catalog.STREAMS.columns}
    for activity_id in activity_ids:
        d = emu.activity_detail(activity_id)
        details.append(
            {
                "activity_id": activity_id,
                "athlete_id": athlete,
                "description": d.get("description"),
                "calories": d.get("calories"),
                "device_name": d.get("device_name"),
                "gear_id": d.get("gear_id"),
                "photo_count": (d.get("photos") or {}).get("count"),
                "total_photo_count": d.get("total_photo_count"),
                "pr_count": d.get("pr_count"),
                "achievement_count": d.get("achievement_count"),
                "kudos_count": d.get("kudos_count"),
                "segment_effort_count": len(d.get("segment_efforts") or []),
                "best_effort_count": len(d.get("best_efforts") or []),
                "has_heartrate": d.get("has_heartrate"),
                "device_watts": d.get("device_watts"),
            }
        )
        if d.get("gear_id"):
            gear_ids.add(str(d["gear_id"]))
        for e in d.get("best_efforts") or []:
            best.append(
                {
                    "id": e["id"],
                    "activity_id": activity_id,
                    "athlete_id": athlete,
                    "name": e.get("name"),
                    "elapsed_time": e.get("elapsed_time"),
                    "moving_time": e.get("moving_time"),
                    "distance": e.get("distance"),
                    "start_date": _when(e.get("start_date")),
                    "pr_rank": e.get("pr_rank"),
                }
            )
        for e in d.get("segment_efforts") or []:
            segment = e.get("segment") or {}
            segments.append(
                {
                    "id": e["id"],
                    "activity_id": activity_id,
                    "athlete_id": athlete,
                    "segment_id": segment.get("id"),
                    "segment_name": segment.get("name"),
                    "segment_activity_type": segment.get("activity_type"),
                    "segment_distance": segment.get("distance"),
                    "segment_average_grade": segment.get("average_grade"),
                    "elapsed_time": e.get("elapsed_time"),
                    "moving_time": e.get("moving_time"),
                    "distance": e.get("distance"),
                    "start_date": _when(e.get("start_date")),
                    "average_watts": e.get("average_watts"),
                    "average_heartrate": e.get("average_heartrate"),
                    "pr_rank": e.get("pr_rank"),
                    "hidden": e.get("hidden"),
                }
            )
        streams = emu.activity_streams(activity_id)
        n = len(streams.get("time") or [])
        samples += n
        latlng = streams.get("latlng") or [None] * n
        for key in ("activity_id", "athlete_id"):
            columns[key].extend([activity_id if key == "activity_id" else athlete] * n)
        columns["sample_index"].extend(range(n))
        columns["lat"].extend(p[0] if p else None for p in latlng)
        columns["lng"].extend(p[1] if p else None for p in latlng)
        for key in ("time", "distance", "altitude", "velocity_smooth", "heartrate", "cadence", "watts", "temp"):
            data = streams.get(key) or [None] * n
            columns[key].extend(
                round(v) if key in ("heartrate", "cadence", "watts", "temp") and v is not None else v for v in data
            )
        columns["moving"].extend(streams.get("moving") or [None] * n)
        columns["grade_smooth"].extend(streams.get("grade_smooth") or [None] * n)
    gear = []
    for gear_id in sorted(gear_ids):
        g = emu.gear_detail(gear_id)
        fields = ("name", "nickname", "brand_name", "model_name", "distance")
        gear.append({"id": gear_id, "athlete_id": athlete, **{k: g.get(k) for k in fields}})
    generator = emu._st.generator  # noqa: SLF001 - the emulator's own athlete, for its zones
    found = zones(generator.max_heartrate, generator.ftp)
    zone_rows = [
        {
            "athlete_id": athlete,
            "kind": kind,
            "zone": i + 1,
            "min": z["min"],
            "max": None if z["max"] == -1 else z["max"],
        }
        for kind in ("heart_rate", "power")
        for i, z in enumerate(found[kind]["zones"])
    ]
    data = pa.table({k: v for k, v in columns.items()}, schema=catalog.STREAMS.arrow_schema)
    with engine.begin() as conn:
        conn.execute(tables["activity_detail"].insert(), details)
        if best:
            conn.execute(tables["activity_best_efforts"].insert(), best)
        if segments:
            conn.execute(tables["activity_segment_efforts"].insert(), segments)
        if gear:
            conn.execute(tables["gear"].insert(), gear)
        conn.execute(tables["athlete_zones"].insert(), zone_rows)
        driver = conn.connection.driver_connection
        driver.register("incoming_samples", data)
        try:
            cols = ", ".join(f'"{name}"' for name in data.column_names)
            conn.exec_driver_sql(f"INSERT INTO strava_activity_streams ({cols}) SELECT {cols} FROM incoming_samples")
        finally:
            driver.unregister("incoming_samples")
    if build:
        for path in wh.model_files():
            wh.build_model(engine, path)
    return samples


def bench_warehouse(activities: int, streams: int, db: Path | None = None) -> tuple[sa.Engine, Path]:
    """The benches' warehouse: ``activities`` of the emulator's athlete, the newest ``streams`` enriched.

    Built once at ``db`` (default a file under /tmp named by the two counts) and reused after;
    returns the engine and the file.
    """
    db = db or Path(f"/tmp/strava-bench-heatmap-{activities}-{streams}.duckdb")
    if db.exists():
        return sa.create_engine(f"duckdb:///{db}"), db
    started = time.perf_counter()
    engine, emu = emulator_warehouse(db, activities=activities)
    newest = sorted(emu.activities, key=lambda a: a["start_date"], reverse=True)[:streams]
    samples = fill_enrichment(engine, emu, [a["id"] for a in newest])
    print(f"built {db}: {activities} activities, {streams} with streams, {samples:,} samples "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    return engine, db
