"""Benchmark: load and merge into a 1,000,000-row production table, on DuckDB and PostgreSQL.

Phases per warehouse, with the pipeline's own code (staging table, load through the lake
block, the shared merge SQL in one transaction):

1. seed       1,000,000 activities straight into production (setup, not the pipeline's path)
2. load       100,000 activities (50,000 changed + 50,000 new) from a Parquet file in the lake
3. merge      ...merged into production (counts, history, delete-then-insert)
4. load       a 5,000-row incremental batch (4,000 recent re-fetched + 1,000 new)
5. merge      ...merged, with the deletion window of the last weeks

The incremental merge must cost in proportion to its batch, not to the table: the report
prints both merges' time per staged row and their ratio.

Memory: peak resident set size during each phase, sampled from /proc/self/status (VmRSS)
every 5 ms, as the increase over the RSS when the phase began. It includes DuckDB's native
memory (DuckDB runs in this process) but not the PostgreSQL server's (another process).

DuckDB's engine is the Warehouse block's (its ``memory_limit``, default 128MB; ``none``: DuckDB's own).

Usage: python bench/load_merge.py [--warehouses duckdb,postgres] [--pg-url URL] [--table-rows N]
[--duckdb-memory-limit 128MB|none]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect.filesystems import LocalFileSystem
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blocks.warehouse import DEFAULT_MEMORY_LIMIT, Warehouse, use_schema  # noqa: E402
from tasks import warehouse as wh  # noqa: E402
from tasks.lake import Lake  # noqa: E402
from tasks.warehouse import schema  # noqa: E402

EPOCH = datetime(2006, 1, 1, tzinfo=UTC)
STEP_SECONDS = 600  # one activity every 10 minutes: 1M rows span ~19 years
ATHLETE_ID = 4242  # every synthetic activity is this athlete's: the merge is scoped to one athlete
NAMES = np.array(
    ["Morning Run", "Lunch Ride", "Tempo | 5x1k", "Long run\nwith the club", "back\\slash", "Évening 🏃", ""],
    dtype=object,
)
SPORTS = np.array(["Run", "Ride", "TrailRun", "Swim", "Walk", "WeightTraining"], dtype=object)


# --------------------------------------------------------------------------- synthetic rows


def synthetic(ids: np.ndarray, seed: int, extracted_at: datetime) -> pa.Table:
    """Activities with the staging file's exact schema, vectorised (no Python loop per row)."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    starts = EPOCH.timestamp() + ids.astype(np.int64) * STEP_SECONDS
    start_us = (starts * 1_000_000).astype("int64")
    columns: dict[str, pa.Array] = {}
    for column in schema.STAGED_COLUMNS:
        t = column.arrow_type
        if column.name == "id":
            columns["id"] = pa.array(10**10 + ids.astype(np.int64))
        elif column.name == "athlete_id":
            columns[column.name] = pa.array(np.full(n, ATHLETE_ID, dtype=np.int64))
        elif column.name == "name":
            columns[column.name] = pa.array(list(NAMES), pa.string()).take(rng.integers(0, len(NAMES), n))
        elif column.name in ("sport_type", "type"):
            columns[column.name] = pa.array(list(SPORTS), pa.string()).take(rng.integers(0, len(SPORTS), n))
        elif column.name == "start_date":
            columns[column.name] = pa.array(start_us, pa.timestamp("us", tz="UTC"))
        elif column.name == "start_date_local":
            columns[column.name] = pa.array(start_us + 3_600_000_000, pa.timestamp("us"))
        elif column.name == "extracted_at":
            columns[column.name] = pa.array(np.full(n, int(extracted_at.timestamp() * 1e6)), t)
        elif column.name == "row_hash":
            columns[column.name] = _hex32(rng, n)
        elif column.name == "map_summary_polyline":
            columns[column.name] = pa.array(["a~l~Fjk~uOwHJy@P" * 8], pa.string()).take(np.zeros(n, dtype=np.int64))
        elif pa.types.is_timestamp(t):
            columns[column.name] = pa.nulls(n, t)
        elif pa.types.is_boolean(t):
            columns[column.name] = pa.array(rng.integers(0, 2, n).astype(bool))
        elif pa.types.is_integer(t):
            columns[column.name] = pa.array(rng.integers(0, 500, n).astype(np.int32))
        elif pa.types.is_floating(t):
            columns[column.name] = pa.array(rng.random(n) * 10_000)
        else:  # text: "<column>-<number>", joined in Arrow's C++ kernels
            numbers = pc.cast(pa.array(rng.integers(0, 1000, n)), pa.string())
            columns[column.name] = pc.binary_join_element_wise(f"{column.name}-", numbers, "")
    return pa.table(columns).cast(schema.ARROW_SCHEMA)


_HEX_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def _hex32(rng: np.random.Generator, n: int) -> pa.Array:
    """n random 32-character hex strings (like MD5 digests), without a Python loop."""
    digits = _HEX_PAIRS[np.frombuffer(rng.bytes(16 * n), dtype=np.uint8)].tobytes()
    fixed = pa.Array.from_buffers(pa.binary(32), n, [None, pa.py_buffer(digits)])
    return fixed.cast(pa.binary()).cast(pa.string())


# --------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    warehouse: str
    name: str
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextmanager
def measured(results: list[Phase], warehouse: str, name: str, rows: int) -> Iterator[None]:
    """Time a phase and sample its peak RSS increase."""
    start_rss = _rss_bytes()
    peak = [start_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        phase = Phase(warehouse, name, rows, seconds, (peak[0] - start_rss) / 2**20)
        results.append(phase)
        print(
            f"  {warehouse:<9} {name:<32} {rows:>9,} rows {seconds:8.2f} s {phase.rate:>11,.0f} rows/s "
            f"peak RSS +{phase.peak_rss_mb:7.1f} MiB",
            flush=True,
        )


# --------------------------------------------------------------------------- the pipeline's steps


def seed_production(engine: sa.Engine, data: pa.Table) -> None:
    """Fill production directly (setup for the benchmark, not the pipeline's path)."""
    dialect = wh.dialect_for(engine)
    with engine.begin() as conn:
        dialect.load_staging(conn, schema.ACTIVITY_TABLE, data)
    with engine.connect() as conn:
        conn.commit()
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                f"VACUUM ANALYZE {schema.ACTIVITY_TABLE}"
            )
        else:
            conn.exec_driver_sql("CHECKPOINT")


def load(engine: sa.Engine, lake: Lake, path: str, run_key: str) -> tuple[str, int]:
    """What prepare_staging + load_staging do: a fresh staging table, loaded from the lake file."""
    dialect = wh.dialect_for(engine)
    staging = wh.staging_name(run_key)
    with engine.begin() as conn:
        dialect.create_staging(conn, staging, schema.ACTIVITY_TABLE)
    with engine.begin() as conn:
        loaded = dialect.load_file(conn, staging, lake, path)
    return staging, loaded


def merge(engine: sa.Engine, staging: str, window: tuple[datetime, datetime] | None) -> wh.MergeResult:
    """merge_staging's body (one transaction), then the staging table is dropped."""
    result = wh.merge_staging.fn(engine, staging, datetime.now(UTC), window, ATHLETE_ID)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {wh.dialect_for(engine).preparer.quote(staging)}")
    return result


def bench_one(
    warehouse: str, engine: sa.Engine, lake: Lake, table_rows: int, batch: int, incremental: int
) -> list[Phase]:
    results: list[Phase] = []
    now = datetime.now(UTC).replace(microsecond=0)
    wh.ensure_tables(engine)
    seed = synthetic(np.arange(table_rows), 1, now - timedelta(days=7))
    with measured(results, warehouse, "seed production (setup)", table_rows):
        seed_production(engine, seed)
    del seed

    rng = np.random.default_rng(2)
    changed = rng.choice(table_rows, batch // 2, replace=False)
    new = np.arange(table_rows, table_rows + batch - batch // 2)
    full = synthetic(np.concatenate([changed, new]), 3, now)
    lake.write("full.parquet", _parquet(full))
    with measured(results, warehouse, f"load {batch:,} (staging, COPY)", batch):
        staging, loaded = load(engine, lake, "full.parquet", "bench_full")
    assert loaded == batch, loaded
    with measured(results, warehouse, f"merge {batch:,} into {table_rows:,}", batch):
        full_result = merge(engine, staging, None)
    assert full_result.inserted == len(new) and full_result.updated == len(changed), full_result

    top = table_rows + batch - batch // 2
    recent = np.arange(top - (incremental - incremental // 5), top)
    fresh = np.arange(top, top + incremental // 5)
    inc = synthetic(np.concatenate([recent, fresh]), 4, now + timedelta(days=7))
    lake.write("incremental.parquet", _parquet(inc))
    after = EPOCH + timedelta(seconds=int(recent.min()) * STEP_SECONDS - 1)
    until = EPOCH + timedelta(seconds=int(fresh.max() + 1) * STEP_SECONDS)
    size = table_rows + len(new)
    with measured(results, warehouse, f"load {incremental:,} incremental", incremental):
        staging, loaded = load(engine, lake, "incremental.parquet", "bench_inc")
    assert loaded == incremental, loaded
    with measured(results, warehouse, f"merge {incremental:,} into {size:,}", incremental):
        inc_result = merge(engine, staging, (after, until))
    assert inc_result.inserted == len(fresh) and inc_result.updated == len(recent), inc_result
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT id) FROM strava_activity_data")).one()
    assert total[0] == total[1] == size + len(fresh), total
    return results


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


# --------------------------------------------------------------------------- warehouses


@contextmanager
def duckdb_engine(tmp: Path, memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> Iterator[sa.Engine]:
    """The engine a Warehouse block with ``memory_limit`` (None: DuckDB's default) builds on a fresh file."""
    block = Warehouse(url=SecretStr(f"duckdb:///{tmp / 'bench.duckdb'}"), memory_limit=memory_limit)
    engine = block.get_engine()
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def postgres_engine(url: str) -> Iterator[sa.Engine]:
    schema_name = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    use_schema(engine, schema_name)
    try:
        yield engine
    finally:
        engine.dispose()
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouses", default="duckdb,postgres")
    parser.add_argument(
        "--pg-url", default=os.environ.get("STRAVA_ELT_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument(
        "--duckdb-memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help=f"the Warehouse block's memory_limit (default {DEFAULT_MEMORY_LIMIT}; none: DuckDB's default)",
    )
    parser.add_argument("--table-rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--incremental", type=int, default=5_000)
    args = parser.parse_args(argv)

    print(
        f"strava-elt load/merge benchmark: production {args.table_rows:,} rows, batch {args.batch:,}, "
        f"incremental {args.incremental:,}; {os.cpu_count()} CPUs"
    )
    print("peak RSS = max VmRSS sampled every 5 ms during the phase, minus VmRSS at its start (this process only)")
    all_results: list[Phase] = []
    limit = args.duckdb_memory_limit
    print(f"DuckDB through the Warehouse block: memory_limit {limit}")
    engines: dict[str, Callable[[Path], Any]] = {
        "duckdb": lambda tmp: duckdb_engine(tmp, None if limit.lower() == "none" else limit),
        "postgres": lambda _tmp: postgres_engine(args.pg_url),
    }
    for name in args.warehouses.split(","):
        with tempfile.TemporaryDirectory(prefix="strava-elt-bench-") as tmp, engines[name](Path(tmp)) as engine:
            started = time.perf_counter()
            all_results += bench_one(
                name,
                engine,
                Lake(LocalFileSystem(basepath=str(Path(tmp) / "lake"))),
                args.table_rows,
                args.batch,
                args.incremental,
            )
            print(f"  {name}: {time.perf_counter() - started:.1f} s in all", flush=True)

    print("\nmerge cost per staged row (in proportion to the batch, not the table?):")
    for name in args.warehouses.split(","):
        merges = [p for p in all_results if p.warehouse == name and p.name.startswith("merge")]
        full, inc = merges
        per_full, per_inc = full.seconds / full.rows * 1e6, inc.seconds / inc.rows * 1e6
        print(
            f"  {name:<9} full {full.seconds:6.2f} s for {full.rows:,} = {per_full:6.1f} us/row; "
            f"incremental {inc.seconds:6.3f} s for {inc.rows:,} = {per_inc:6.1f} us/row; "
            f"time ratio {inc.seconds / full.seconds:.3f} for a batch ratio of {inc.rows / full.rows:.3f}"
        )
    print(f"\nprocess ru_maxrss at the end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
