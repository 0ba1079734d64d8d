"""Speed of the extract's per-activity work: flattening, and a page's rows as the extract reads them.

Builds 20,000 activities from the emulator (fixed seed and clock, no server), round-trips them
through JSON as the HTTP client would, and prints activities per CPU second (best of 5) of
``schema.flatten_activity`` alone, and of ``PageRows.read`` over pages of 200 (flatten, rejection,
athlete check, unfit values, loop detection). No network, no Prefect server.
Usage: ``python bench/flatten.py [N]`` (default 20000).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 42
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROUNDS = 5


def _best(work: Callable[[], object]) -> float:
    """The shortest of :data:`ROUNDS` CPU times of ``work()``, in seconds.

    CPU time of this process, not wall time: other processes on a shared machine barely move it.
    """
    times = []
    for _ in range(ROUNDS):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def main(n: int) -> None:
    from emulator import StravaEmulator
    from tasks.strava.client import PER_PAGE, ActivityPages
    from tasks.strava.pages import PageRows
    from tasks.warehouse import schema

    emu = StravaEmulator(activities=n, seed=SEED, clock=lambda: NOW)
    activities: list[dict[str, Any]] = json.loads(json.dumps(emu.activities))
    athlete_id = emu.athlete_id
    pages = [activities[i : i + PER_PAGE] for i in range(0, n, PER_PAGE)]

    def flatten() -> None:
        for activity in activities:
            schema.flatten_activity(activity, NOW)

    def read_pages() -> None:
        listing = ActivityPages(None, after=0)  # type: ignore[arg-type]  # never fetches: pages are given
        for number, items in enumerate(pages, start=1):
            listing.read = number
            page = PageRows.read(listing, items, NOW, athlete_id)
            assert len(page.rows) == len(items), "every emulator activity should stage"

    print(f"strava-elt flatten: {n:,} emulator activities (seed {SEED}), best of {ROUNDS} (CPU time)")
    for label, work in (("flatten_activity", flatten), ("PageRows.read", read_pages)):
        seconds = _best(work)
        print(f"  {label:<17} {seconds:6.3f} s  {n / seconds:9,.0f} activities/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
