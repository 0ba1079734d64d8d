"""What the athlete's slot (tasks/state/slots.py) costs a run, against a long-lived Prefect server.

Starts a local Prefect server as ``bench/run_overhead.py`` does (or uses ``PREFECT_API_URL``),
then, inside one flow run (so the lease names a flow run as its holder, as in a real run), takes
and releases the slot ``--repeat`` times after two warm-ups, in three ways:

- ``existing``: the athlete's limit exists already (every run but an athlete's first);
- ``new``: a fresh athlete each time, so the limit is created on demand;
- ``existing+body``: the limit exists and the slot is held around a 0.3 s body (a stand-in for the
  run), the body subtracted: what the slot adds to a run whose work overlaps any background step.

Prints the median seconds of each; asserts nothing. ``python bench/slot_cost.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY_SECONDS = 0.3


def measure(repeat: int) -> dict[str, float]:
    """Take and release the slot ``repeat`` times each way inside one flow run; median seconds."""
    from prefect import flow

    from tasks.state import slots

    def once(key: str, body: float = 0.0) -> float:
        started = time.perf_counter()
        with slots.athlete_slot(block_name=key, athlete_id=None, credentials=_NoId()):
            if body:
                time.sleep(body)
        return time.perf_counter() - started - body

    @flow(name="slot-cost")
    def bench() -> dict[str, float]:
        base = f"bench-{uuid.uuid4().hex[:8]}"
        once(base)
        once(base)  # warm-ups: the client, the server's caches, the limit created
        existing = [once(base) for _ in range(repeat)]
        new = [once(f"{base}-{i}") for i in range(repeat)]
        body = [once(base, BODY_SECONDS) for _ in range(repeat)]
        return {
            "existing": statistics.median(existing),
            "new": statistics.median(new),
            "existing+body": statistics.median(body),
        }

    return bench()


class _NoId:
    """A credentials stand-in without an athlete id: the slot is keyed by the block name."""

    athlete_id = None


def main(repeat: int) -> None:
    """Start (or reuse) a Prefect server and print the slot's median cost each way."""
    from bench.run_overhead import prefect_server

    with prefect_server() as api_url:
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.slot_cost import child; child({repeat})"
        env = {**__import__("os").environ, "PREFECT_API_URL": api_url}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"athlete slot cost: Prefect server {api_url}; {repeat} acquisitions each; load {' '.join(load)}")  # noqa: T201
    print(out.rstrip())  # noqa: T201


def child(repeat: int) -> None:
    """In the child process: measure and print one line per way."""
    for way, seconds in measure(repeat).items():
        print(f"  {way:<14} median {seconds * 1000:7.1f} ms")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    main(parser.parse_args().repeat)
