"""The round's cost: N athletes of M activities against the emulator and a long-lived Prefect server.

Starts a local Prefect server as bench/run_overhead.py does (or uses ``PREFECT_API_URL``), the
emulator with N athletes of one application (limits raised: the bench measures cost, not
rate-limit waits), a DuckDB warehouse and a local lake in a temporary folder, then runs the
round (inline, in this process) twice: the first load of every athlete, then an incremental
round with one new activity for every other athlete. Prints requests, wall time and time per
athlete for each; asserts nothing.

Usage: ``python bench/athletes.py [--athletes 50] [--activities 300]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_overhead import prefect_server  # noqa: E402

END = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SEED = 42
LIMITS = (100_000, 1_000_000)


def _round(app: str, lake: str, warehouse: str, emu: Any) -> dict[str, Any]:
    from flows.cli.round import run_round

    before = emu.request_count(path="/api/v3/athlete") + emu.request_count(path="/api/v3/athlete/activities")
    started = time.perf_counter()
    result = run_round(application_block=app, lake_block=lake, warehouse_block=warehouse)
    wall = time.perf_counter() - started
    after = emu.request_count(path="/api/v3/athlete") + emu.request_count(path="/api/v3/athlete/activities")
    outcomes: dict[str, int] = {}
    for line in result["athletes"]:
        outcomes[line["outcome"]] = outcomes.get(line["outcome"], 0) + 1
    return {"wall": wall, "requests": after - before, "outcomes": outcomes, "n": len(result["athletes"])}


def main() -> int:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=50)
    parser.add_argument("--activities", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_server() as api_url, tempfile.TemporaryDirectory(prefix="strava-elt-bench-athletes-") as tmp:
        os.environ["PREFECT_API_URL"] = api_url
        from emulator import StravaEmulator
        from tasks.setup import setup_emulator_application, setup_local_blocks

        with StravaEmulator(
            activities=args.activities,
            athletes=args.athletes,
            seed=SEED,
            end=END,
            read_limits=LIMITS,
            overall_limits=LIMITS,
        ) as emu:
            setup_local_blocks(Path(tmp), names=("unused", "bench-lake", "bench-warehouse"))
            setup_emulator_application(emu, "bench-app")
            first = _round("bench-app", "bench-lake", "bench-warehouse", emu)
            for athlete_id in emu.athlete_ids[::2]:
                emu.for_athlete(athlete_id).add_activities(1)
            incremental = _round("bench-app", "bench-lake", "bench-warehouse", emu)
    print(
        f"bench/athletes.py: {args.athletes} athletes x {args.activities} activities, round inline, {api_url}; "
        f"load average {os.getloadavg()[0]:.1f} (1 min) at the end"
    )
    print(f"{'round':<12} {'requests':>9} {'wall s':>9} {'s/athlete':>10}  outcomes")
    for name, figures in (("first", first), ("incremental", incremental)):
        per = figures["wall"] / max(1, figures["n"])
        print(f"{name:<12} {figures['requests']:>9} {figures['wall']:>9.1f} {per:>10.2f}  {figures['outcomes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
