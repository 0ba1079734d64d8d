"""What a subflow costs in Prefect 3.9, and what each way of removing its heartbeat wait saves.

A main flow calling three empty subflows (the shape of ``strava_elt``: extract, load, models)
is run in a child process per option against a long-lived Prefect server (``PREFECT_API_URL``,
or one started here as in ``bench/run_overhead.py``); each child runs it ``--repeat`` times
after one warm-up run and prints the median seconds per call. Options:

- ``main-only``: the main flow alone, no subflows (the floor: one flow run; ``main-only+shim``
  the same with the shim below);
- ``sync``: sync subflows, heartbeats on (Prefect's default, every 180 s);
- ``heartbeat-off``: sync, heartbeats off (``flows.heartbeat_frequency`` None; Prefect 3.9 reads
  no "off" from the environment, only from Python settings);
- ``async``: async main flow and subflows (Prefect's async engine does not join the thread);
- ``shim``: sync, with :func:`blocks.prefect_compat.install_prompt_heartbeat_stop` (the
  heartbeat thread waits on its stop event, so it ends at once and the join costs nothing).

Prints a table; asserts nothing. ``python bench/subflow_cost.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPTIONS = ("main-only", "sync", "heartbeat-off", "async", "main-only+shim", "shim")


def child(option: str, repeat: int) -> None:
    """In the child: run the option's main flow ``repeat`` times after a warm-up; print the times."""
    from prefect import flow

    if option in ("shim", "main-only+shim"):
        from blocks.prefect_compat import install_prompt_heartbeat_stop

        install_prompt_heartbeat_stop()

    @flow
    def step() -> int:
        return 1

    @flow
    def main_sync(subflows: int = 3) -> int:
        return sum(step() for _ in range(subflows))

    @flow
    async def astep() -> int:
        return 1

    @flow
    async def main_async() -> int:
        return sum([await astep() for _ in range(3)])

    def once() -> None:
        if option == "async":
            asyncio.run(main_async())  # type: ignore[arg-type]
        else:
            main_sync(0 if option.startswith("main-only") else 3)

    def timed() -> float:
        started = time.perf_counter()
        once()
        return time.perf_counter() - started

    if option == "heartbeat-off":
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            times = [timed() for _ in range(repeat + 1)]
    else:
        times = [timed() for _ in range(repeat + 1)]
    print(json.dumps(times[1:]))


def main(repeat: int) -> None:
    """Run each option in a child process; print the medians."""
    from run_overhead import prefect_server  # type: ignore[import-not-found]

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with prefect_server() as api_url:
        env = {**os.environ, "PREFECT_API_URL": api_url}
        rows = []
        for option in OPTIONS:
            done = subprocess.run(
                [sys.executable, __file__, "--child", option, "--repeat", str(repeat)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"{option} failed:\n{done.stderr[-3000:]}")
            rows.append((option, json.loads(done.stdout.strip().splitlines()[-1])))
    load = os.getloadavg()[0]
    print(f"subflow cost: Prefect server {api_url}, {repeat} runs per option, load average {load:.1f}")
    floors = {option: statistics.median(times) for option, times in rows if option.startswith("main-only")}
    print(f"{'option':<14} {'median s':>9} {'per subflow s':>14} {'min s':>7} {'max s':>7}")
    for option, times in rows:
        median = statistics.median(times)
        floor = floors["main-only+shim" if option == "shim" else "main-only"]
        per = (median - floor) / 3 if not option.startswith("main-only") else 0.0
        print(f"{option:<14} {median:>9.2f} {per:>14.2f} {min(times):>7.2f} {max(times):>7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", choices=OPTIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeat)
    else:
        main(args.repeat)
