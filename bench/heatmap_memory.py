"""``render_heatmap``'s peak memory and time over the emulator's summary polylines, no warehouse.

Generates the emulator's athlete of N activities (seed 42, the tests' end date, no HTTP) in a
child process that writes its summary polylines to a temporary JSON file (the emulator's heap
would otherwise be reused by the rendering and hide its peak), reads them back, resets the
process's resident high-water mark (``/proc/self/clear_refs``, Linux) and prints, for
``render_heatmap(polylines, 200)``: the wall and CPU time, the RSS before and the peak during
the call (``VmHWM``), and the SHA-256 of the heatmap's JSON (the same input gives the same
heatmap). Asserts nothing.

Usage: ``python bench/heatmap_memory.py [--activities 15000] [--radius 200]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=15_000)
    parser.add_argument("--radius", type=float, default=200.0)
    parser.add_argument("--write", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write is not None:  # the child: the emulator's polylines to a file
        from emulator import StravaEmulator
        from tests.conftest import EMULATOR_END

        emu = StravaEmulator(activities=args.activities, seed=42, end=EMULATOR_END)
        args.write.write_text(json.dumps([a["map"]["summary_polyline"] or None for a in emu.activities]))
        return

    from tasks.insight import heatmap

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "polylines.json"
        started = time.perf_counter()
        command = [sys.executable, __file__, "--activities", str(args.activities), "--write", str(path)]
        subprocess.run(command, check=True)
        print(f"emulator: {args.activities:,} activities in {time.perf_counter() - started:.1f} s (child process)")
        polylines: list[str | None] = json.loads(path.read_text())
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    drawn = heatmap.render_heatmap(polylines, args.radius)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kib("VmHWM")
    digest = hashlib.sha256(json.dumps(drawn.as_dict(), sort_keys=True).encode()).hexdigest()[:16]
    print(
        f"render_heatmap: {sum(1 for p in polylines if p):,} polylines, {wall:.1f} s wall, {cpu:.1f} s CPU; "
        f"RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB (+{(peak - before) / 1024:.0f}); "
        f"drawn {drawn.tracks:,}, elsewhere {drawn.elsewhere:,}, unreadable {drawn.unreadable}, "
        f"removed points {drawn.removed_points:,}; heatmap sha256 {digest}"
    )


if __name__ == "__main__":
    main()
