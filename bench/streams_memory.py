"""DuckDB's memory under the Warehouse block's ``memory_limit`` as the streams table grows: batch after batch.

A synthetic streams table shaped like ``strava_activity_streams`` (its primary key on
``activity_id, sample_index``) in a fresh DuckDB file opened through the Warehouse block, then
batches of 50 activities x 4,000 samples loaded the way the enrichment merges them (a staging
table from Arrow, then delete-by-parent and insert in one transaction), with or without a
``CHECKPOINT`` after each batch (``tasks/warehouse/dialects.py``, ``DuckDBDialect.checkpoint``).
Prints, every 10 batches, the process's RSS and peak and DuckDB's own accounting
(``duckdb_memory()``); an "Out of Memory" error ends the run and is printed. Asserts nothing.

Usage: ``python bench/streams_memory.py [--batches 100] [--memory-limit 128MB|none] [--no-checkpoint]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blocks.warehouse import DEFAULT_MEMORY_LIMIT, Warehouse  # noqa: E402

ACTIVITIES, SAMPLES = 50, 4000


def _rss_mib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def _batch(number: int, rng: np.random.Generator) -> pa.Table:
    rows = ACTIVITIES * SAMPLES
    index = np.tile(np.arange(SAMPLES, dtype=np.int32), ACTIVITIES)
    return pa.table(
        {
            "activity_id": np.repeat(
                np.arange(number * ACTIVITIES, (number + 1) * ACTIVITIES, dtype=np.int64), SAMPLES
            ),
            "sample_index": index,
            "athlete_id": np.full(rows, 7, np.int64),
            "time": index,
            "distance": np.cumsum(rng.random(rows)),
            "lat": 45 + rng.random(rows) / 100,
            "lng": 7 + rng.random(rows) / 100,
            "altitude": 300 + rng.random(rows) * 10,
            "velocity_smooth": rng.random(rows) * 5,
            "heartrate": rng.integers(90, 180, rows, dtype=np.int32),
            "cadence": rng.integers(70, 95, rows, dtype=np.int32),
            "watts": rng.integers(100, 300, rows, dtype=np.int32),
            "temp": rng.integers(10, 20, rows, dtype=np.int32),
            "moving": rng.random(rows) > 0.1,
            "grade_smooth": rng.random(rows) * 4 - 2,
        }
    )


def main() -> int:
    """Load the batches; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT, help="the block's memory_limit; none: DuckDB's")
    parser.add_argument("--no-checkpoint", action="store_true", help="leave checkpoints to DuckDB (the WAL's size)")
    args = parser.parse_args()
    limit = None if args.memory_limit.lower() == "none" else args.memory_limit
    peak = [0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    print(f"bench/streams_memory.py: memory_limit {limit or 'DuckDB default'}, checkpoint {not args.no_checkpoint}")
    with tempfile.TemporaryDirectory(prefix="strava-elt-bench-streams-") as tmp:
        block = Warehouse(url=SecretStr(f"duckdb:///{Path(tmp) / 'w.duckdb'}"), memory_limit=limit)
        with block.engine() as engine, engine.connect() as conn:
            duck: Any = conn.connection.driver_connection
            duck.execute(
                "CREATE TABLE s (activity_id BIGINT, sample_index INTEGER, athlete_id BIGINT, time INTEGER, "
                "distance DOUBLE, lat DOUBLE, lng DOUBLE, altitude DOUBLE, velocity_smooth DOUBLE, heartrate INTEGER, "
                "cadence INTEGER, watts INTEGER, temp INTEGER, moving BOOLEAN, grade_smooth DOUBLE, "
                "PRIMARY KEY (activity_id, sample_index))"
            )
            for number in range(args.batches):
                table = _batch(number, rng)
                try:
                    duck.execute("BEGIN")
                    duck.execute("CREATE TABLE st AS SELECT * FROM s WITH NO DATA")
                    duck.register("batch", table)
                    duck.execute("INSERT INTO st SELECT * FROM batch")
                    duck.unregister("batch")
                    duck.execute("DELETE FROM s WHERE activity_id IN (SELECT DISTINCT activity_id FROM st)")
                    duck.execute("INSERT INTO s SELECT * FROM st")
                    duck.execute("DROP TABLE st")
                    duck.execute("COMMIT")
                    if not args.no_checkpoint:
                        duck.execute("CHECKPOINT")
                except Exception as exc:  # noqa: BLE001 - the figure is the error
                    print(f"batch {number + 1}: {(number + 1) * ACTIVITIES * SAMPLES:,} samples: {exc}".splitlines()[0])
                    break
                if (number + 1) % 10 == 0 or number + 1 == args.batches:
                    held = duck.execute("SELECT SUM(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0]
                    print(
                        f"batch {number + 1:>4}: {(number + 1) * ACTIVITIES * SAMPLES:>12,} samples, "
                        f"RSS {_rss_mib():>4} MiB, peak {peak[0]:>4} MiB, "
                        f"DuckDB holds {int(held or 0) / 2**20:>5.0f} MiB, "
                        f"{time.perf_counter() - started:6.1f} s"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
