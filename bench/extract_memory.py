"""Memory of the extract subflow as the number of activities grows: it should stay flat.

Runs the real extract subflow (emulator over HTTP, local lake, Prefect test server) for a few
athlete sizes and prints requests, wall time and the Python heap's peak (tracemalloc) during the
extraction. Usage: ``python bench/extract_memory.py [N ...]`` (default 2000 8000 32000).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(sizes: list[int]) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from emulator import StravaEmulator
    from flows.extract import extract_activities
    from tasks.setup import setup_emulator_blocks

    print("strava-elt extract memory: emulator over HTTP -> local lake; tracemalloc peak during extract")
    with prefect_test_harness(server_startup_timeout=120):
        # The first size is a warm-up (one-time imports and caches), not printed.
        for index, n in enumerate([200, *sizes]):
            with tempfile.TemporaryDirectory() as home, StravaEmulator(activities=n, athlete_id=10**9 + n) as emu:
                suffix = uuid.uuid4().hex[:8]
                names = (f"strava-{suffix}", f"lake-{suffix}", f"warehouse-{suffix}")
                setup_emulator_blocks(Path(home), emu, names)
                tracemalloc.start()
                started = time.perf_counter()
                result = extract_activities(names[0], names[1], f"bench_{suffix}", 14, True)
                elapsed = time.perf_counter() - started
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                if index == 0:
                    continue
                print(
                    f"  {n:>7,} activities  {result.requests:>4} requests  {result.pages:>4} pages  "
                    f"{elapsed:7.1f} s  {n / elapsed:8,.0f} activities/s  heap peak {peak / 2**20:7.1f} MiB"
                )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 8000, 32000])
