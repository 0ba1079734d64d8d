"""Enrichment's memory and storage: streams for N activities loaded, peak RSS, bytes per sample, requests per activity.

Starts a local Prefect server as bench/run_overhead.py does (or uses ``PREFECT_API_URL``) and
the emulator with one athlete of N activities (limits raised: the bench measures memory and
storage, not rate-limit waits), then runs the pipeline in a child process (so that its peak RSS
is the pipeline's, not the emulator's): the summary load, then the enrichment of the whole
history (``enrich_activities``, batches of 100 requests). Prints the child's peak RSS, the
samples loaded, bytes per sample in the lake (raw gzipped JSON and Parquet staging) and in the
warehouse, and requests per activity and per gear; asserts nothing.

Usage: ``python bench/enrich.py [--activities 1234] [--warehouse duckdb|postgres] [--pg-url URL]
[--duckdb-memory-limit 128MB|none]`` (the Warehouse block's ``memory_limit``; default: the block's default;
``none``: DuckDB's own, 80% of the machine's memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

END = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SEED = 42
LIMITS = (100_000, 1_000_000)
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def child(blocks: list[str]) -> int:
    """In the child process: the summary, then the enrichment until the queue is empty; figures as JSON."""
    from flows.enrich import enrich_activities
    from flows.pipeline import strava_elt
    from tasks.entities import store  # after the flows: tasks.entities imported first meets an import cycle

    strava, lake, warehouse = blocks
    loading = [0.0]  # seconds inside the warehouse side (staging, checks, merge): the part a warehouse setting moves
    load_batch = store.load_batch

    def timed_load_batch(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return load_batch(*args, **kwargs)
        finally:
            loading[0] += time.perf_counter() - began

    store.load_batch = timed_load_batch  # type: ignore[assignment]  # flows/enrich.py imports it at each load
    started = time.perf_counter()
    summary = strava_elt(strava_block=strava, lake_block=lake, warehouse_block=warehouse)
    loaded = time.perf_counter()
    requests = runs = 0
    while True:
        result = enrich_activities(strava, lake, warehouse, max_requests=100_000, wait_windows=True)
        requests, runs = requests + result.requests, runs + 1
        if result.enriched >= result.total or result.requests == 0 or runs > 5:
            break
    done = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "summary_requests": summary["requests"],
                "summary_seconds": loaded - started,
                "enrich_seconds": done - loaded,
                "load_seconds": loading[0],
                "enrich_requests": requests,
                "enrich_runs": runs,
                "enriched": result.enriched,
                "total": result.total,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )
    return 0


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _warehouse_figures(kind: str, home: Path, pg: tuple[str, str] | None, athlete_id: int) -> dict[str, Any]:
    import sqlalchemy as sa

    if kind == "duckdb":
        import duckdb

        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
            samples = conn.execute(
                "SELECT COUNT(*) FROM strava_activity_streams WHERE athlete_id = ?", [athlete_id]
            ).fetchone()
            blocks = conn.execute(
                "SELECT COUNT(DISTINCT block_id) FROM pragma_storage_info('strava_activity_streams') WHERE persistent"
            ).fetchone()
        return {
            "samples": int(samples[0]),
            "table_bytes": int(blocks[0] or 0) * 262_144,
            "file_bytes": (home / "warehouse.duckdb").stat().st_size,
        }
    assert pg is not None
    url, schema = pg
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'SET search_path TO "{schema}"')
        samples = conn.execute(
            sa.text("SELECT COUNT(*) FROM strava_activity_streams WHERE athlete_id = :a"), {"a": athlete_id}
        ).scalar()
        size = conn.execute(sa.text("SELECT pg_total_relation_size('strava_activity_streams')")).scalar()
    engine.dispose()
    return {"samples": int(samples or 0), "table_bytes": int(size or 0)}


def main() -> int:
    """Run the bench and print its figures."""
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=1234)
    parser.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--pg-url", default=os.environ.get("STRAVA_ELT_PG_URL", PG_URL))
    parser.add_argument(
        "--duckdb-memory-limit",
        help="the Warehouse block's memory_limit (e.g. 256MB; none: DuckDB's default; default: the block's)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from run_overhead import prefect_server

    with prefect_server() as api_url, tempfile.TemporaryDirectory(prefix="strava-elt-bench-enrich-") as tmp:
        os.environ["PREFECT_API_URL"] = api_url
        from emulator import StravaEmulator
        from tasks.setup import setup_emulator_blocks, setup_postgres_blocks

        home = Path(tmp)
        names = ("bench-strava", "bench-lake", "bench-warehouse")
        pg: tuple[str, str] | None = None
        with StravaEmulator(
            activities=args.activities, seed=SEED, end=END, read_limits=LIMITS, overall_limits=LIMITS
        ) as emu:
            setup_emulator_blocks(home, emu, names)
            from blocks.warehouse import Warehouse

            block = Warehouse.load(names[2])
            if args.duckdb_memory_limit and args.warehouse == "duckdb":
                limit = args.duckdb_memory_limit
                block.memory_limit = None if limit.lower() == "none" else limit
                block.save(names[2], overwrite=True)
            memory_limit = block.memory_limit
            if args.warehouse == "postgres":
                import psycopg
                import sqlalchemy as sa

                schema = f"bench_enrich_{os.getpid()}"
                conninfo = sa.engine.make_url(args.pg_url).set(drivername="postgresql").render_as_string(False)
                with psycopg.connect(conninfo, autocommit=True) as admin:
                    admin.execute(f'CREATE SCHEMA "{schema}"')
                setup_postgres_blocks(args.pg_url, schema, warehouse_name=names[2])
                pg = (args.pg_url, schema)
            try:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", *names],
                    check=False,
                    capture_output=True,
                    text=True,
                    env=os.environ | {"PREFECT_API_URL": api_url},
                )
                if out.returncode != 0:
                    print(out.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"the pipeline's process failed (exit {out.returncode})")
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                routes = emu.route_counts()
                gear = len({a.get("gear_id") for a in emu.activities if a.get("gear_id")})
                stored = _warehouse_figures(args.warehouse, home, pg, emu.athlete["id"])
            finally:
                if pg is not None:
                    with psycopg.connect(conninfo, autocommit=True) as admin:
                        admin.execute(f'DROP SCHEMA IF EXISTS "{pg[1]}" CASCADE')
        lake = home / "lake"
        raw_streams = _dir_bytes(lake / "raw" / "activity_streams")
        staged_streams = _dir_bytes(lake / "staging" / "activity_streams")
    samples = max(1, stored["samples"])
    print(
        f"bench/enrich.py: {args.activities} activities, {args.warehouse}"
        + (f" (memory_limit {memory_limit or 'DuckDB default'})" if args.warehouse == "duckdb" else "")
        + f", {api_url}; "
        f"load average {os.getloadavg()[0]:.1f} (1 min) at the end"
    )
    print(
        f"summary: {figures['summary_requests']} requests in {figures['summary_seconds']:.1f} s; enrichment: "
        f"{figures['enrich_requests']} requests in {figures['enrich_runs']} run(s), {figures['enrich_seconds']:.1f} s "
        f"(of which loading batches into the warehouse {figures['load_seconds']:.1f} s); "
        f"{figures['enriched']}/{figures['total']} enriched"
    )
    print(f"peak RSS of the pipeline's process: {figures['peak_rss_mib']:.0f} MiB")
    print(
        f"stream samples loaded: {stored['samples']:,} ({stored['samples'] / max(1, args.activities):,.0f} an activity)"
    )
    print(
        f"bytes per sample: lake raw (gzipped JSON) {raw_streams / samples:.1f}, lake staging (Parquet) "
        f"{staged_streams / samples:.1f}, warehouse table {stored['table_bytes'] / samples:.1f}"
        + (f" (DuckDB file in all: {stored['file_bytes'] / samples:.1f})" if "file_bytes" in stored else "")
    )
    print(
        f"requests per activity: detail {routes.get('activity', 0) / args.activities:.2f}, streams "
        f"{routes.get('streams', 0) / args.activities:.2f}; per gear: {routes.get('gear', 0) / max(1, gear):.2f} "
        f"({gear} gear); stats {routes.get('stats', 0)}, zones {routes.get('zones', 0)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
