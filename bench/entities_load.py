"""Benchmark: a whole history's streams (about 4 million samples) through load_batch, on DuckDB and PostgreSQL.

One athlete, ``--activities`` activities (1,234 by default) of ``--samples`` samples each (3,300:
an hour at one sample a second, about what Strava keeps for a run), every channel filled. The
streams are written as one Parquet staging file per batch of ``--per-batch`` activities (what an
enrichment run hands over), each loaded with :func:`tasks.entities.store.load_batch` (staging
table, the gate, ONE merge transaction): this measures the warehouse side only.

Reported per warehouse: seconds, peak RSS of this process (DuckDB runs in it; the PostgreSQL
server is another process) as the increase over the RSS before the first batch, bytes per sample
in the lake (the Parquet files) and in the warehouse (DuckDB: the file's growth after a
CHECKPOINT; PostgreSQL: ``pg_total_relation_size`` of the streams table, indexes included).

Usage: python bench/entities_load.py [--warehouses duckdb,postgres] [--pg-url URL] [--activities N]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect.filesystems import LocalFileSystem

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import warehouse as wh  # noqa: E402
from tasks.entities import catalog  # noqa: E402
from tasks.entities.batch import StagedBatch  # noqa: E402
from tasks.entities.store import load_batch  # noqa: E402
from tasks.lake import Lake  # noqa: E402
from tasks.warehouse import schema  # noqa: E402

ATHLETE_ID = 4242
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """Samples VmRSS every 5 ms in a thread; ``peak_mb`` is the increase over the start."""

    def __init__(self) -> None:
        self.start = rss_kb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb())
            time.sleep(0.005)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.start) / 1024


def _walk(rng: np.random.Generator, n: int, start: float, step: float, decimals: int) -> np.ndarray:
    """A random walk rounded as a device records it (smooth, like a real channel, not white noise)."""
    return np.round(start + np.cumsum(rng.normal(0, step, n)), decimals)


def streams_table(activity_ids: list[int], samples: int, rng: np.random.Generator) -> pa.Table:
    """Every channel of ``samples`` one-second samples per activity, as smooth as a real recording."""
    n = len(activity_ids) * samples
    idx = np.tile(np.arange(samples, dtype=np.int32), len(activity_ids))
    velocity = np.clip(_walk(rng, n, 2.8, 0.02, 3), 0.0, 8.0)
    columns = {
        "activity_id": np.repeat(np.array(activity_ids, dtype=np.int64), samples),
        "sample_index": idx,
        "athlete_id": np.full(n, ATHLETE_ID, dtype=np.int64),
        "time": idx,
        "distance": np.round(idx * 2.8 + rng.normal(0, 0.05, n), 1).clip(0),
        "lat": _walk(rng, n, 47.0, 0.00002, 6),
        "lng": _walk(rng, n, 8.0, 0.00002, 6),
        "altitude": _walk(rng, n, 400.0, 0.2, 1),
        "velocity_smooth": velocity,
        "heartrate": np.clip(_walk(rng, n, 140, 0.5, 0), 90, 195).astype(np.int32),
        "cadence": np.clip(_walk(rng, n, 86, 0.3, 0), 70, 100).astype(np.int32),
        "watts": np.clip(_walk(rng, n, 220, 3.0, 0), 0, 600).astype(np.int32),
        "temp": np.clip(_walk(rng, n, 15, 0.01, 0), -10, 40).astype(np.int32),
        "moving": velocity > 0.5,
        "grade_smooth": np.clip(_walk(rng, n, 0.0, 0.1, 1), -30, 30),
    }
    return pa.table(columns, schema=catalog.STREAMS.arrow_schema)


def seed_summaries(engine: sa.Engine, activity_ids: list[int]) -> None:
    table = schema.activity_table(sa.MetaData())
    rows = [
        {"id": i, "athlete_id": ATHLETE_ID, "start_date": T0 - timedelta(hours=i), "name": "run"} for i in activity_ids
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(table), rows)


def warehouse_bytes(engine: sa.Engine, duckdb_file: Path | None) -> int:
    with engine.begin() as conn:
        if duckdb_file is not None:
            conn.exec_driver_sql("CHECKPOINT")
            return duckdb_file.stat().st_size
        return int(conn.exec_driver_sql("SELECT pg_total_relation_size('strava_activity_streams')").scalar() or 0)


def run(name: str, url: str, args: argparse.Namespace, work: Path) -> None:
    engine = sa.create_engine(url)
    duckdb_file = work / "w.duckdb" if name == "duckdb" else None
    activity_ids = list(range(1, args.activities + 1))
    wh.ensure_tables(engine)
    seed_summaries(engine, activity_ids)
    before = warehouse_bytes(engine, duckdb_file)
    lake_dir = work / "lake"
    lake_dir.mkdir(exist_ok=True)
    lake = Lake(LocalFileSystem(basepath=str(lake_dir)))
    rng = np.random.default_rng(42)
    lake_bytes = 0
    batches = []
    for b, start in enumerate(range(0, len(activity_ids), args.per_batch)):
        ids = activity_ids[start : start + args.per_batch]
        table = streams_table(ids, args.samples, rng)
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=schema.ROW_GROUP_ROWS)
        path = f"staging/athlete_id={ATHLETE_ID}/run=b{b}/activity_streams.parquet"
        lake_bytes += len(sink.getvalue())
        lake.write(path, sink.getvalue())
        run_key = f"{(T0 + timedelta(minutes=b)).strftime('%Y%m%dt%H%M%S')}_{uuid.uuid4().hex[:8]}"
        batches.append(
            StagedBatch(
                athlete_id=ATHLETE_ID,
                run_key=run_key,
                extracted_at=T0,
                files={"activity_streams": path},
                rows={"activity_streams": table.num_rows},
                parents={"activity_streams": tuple(ids)},
            )
        )
        del table, sink
    samples = len(activity_ids) * args.samples
    rss = PeakRss()
    started = time.perf_counter()
    for batch in batches:
        load_batch(engine, lake, batch)
    seconds = time.perf_counter() - started
    peak = rss.stop()
    stored = warehouse_bytes(engine, duckdb_file) - before
    engine.dispose()
    print(
        f"{name:9} {samples:>10,} samples in {len(batches)} batches: {seconds:7.1f} s, "
        f"peak RSS +{peak:6.0f} MB, lake {lake_bytes / samples:5.1f} B/sample, "
        f"warehouse {stored / samples:5.1f} B/sample"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouses", default="duckdb,postgres")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--activities", type=int, default=1234)
    parser.add_argument("--samples", type=int, default=3300)
    parser.add_argument("--per-batch", type=int, default=100)
    args = parser.parse_args()
    for name in args.warehouses.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if name == "duckdb":
                run(name, f"duckdb:///{work / 'w.duckdb'}", args, work)
            else:
                schema_name = f"bench_{uuid.uuid4().hex[:8]}"
                admin = sa.create_engine(args.pg_url)
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'CREATE SCHEMA "{schema_name}"')
                try:
                    url = sa.engine.make_url(args.pg_url).update_query_dict({"options": f"-csearch_path={schema_name}"})
                    run(name, url.render_as_string(hide_password=False), args, work)
                finally:
                    with admin.begin() as conn:
                        conn.exec_driver_sql(f'DROP SCHEMA "{schema_name}" CASCADE')
                    admin.dispose()


if __name__ == "__main__":
    main()
