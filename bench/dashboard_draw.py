"""How fast the dashboard opens and draws in headless Chromium for the goal's athlete.

The goal (issue 23): the page opens and draws within 2 s for an athlete of 1,234 activities
with streams. This builds (once, then reuses: the same file as ``bench/heatmap.py``) a DuckDB
warehouse holding the emulator's athlete of N activities, the newest K of them with their
detail, efforts and every stream sample (``tests/insight_support.py``, no HTTP), renders the
page once and prints its size and what it is made of (vendored scripts, data per section).

Then it opens the file in headless Chromium (Debian's ``chromium``, over the DevTools protocol
of ``tests/cdp.py``): ``--cold`` times a new browser (a fresh profile and renderer, nothing
compiled yet) and its first open, each followed by ``--warm`` opens of the same file in that
browser. For every open it reads the page's own clock (milliseconds from navigation start):
``DOMContentLoaded``, ``script`` (the page's script starts: the HTML and the vendored scripts are
parsed and run), ``drawn`` (every chart and the heatmap drawn, ``window.stravaDashboard``),
``painted`` (the second animation frame after that: the frame holding them is on screen) and
each section's own milliseconds. Prints medians, every value, console errors and ``uptime``
before and after. ``--trace`` records one cold open's DevTools trace and prints where the
renderer's main thread spent its time. Asserts nothing.

Usage: ``python bench/dashboard_draw.py [--activities 1234] [--streams 1234] [--cold 5] [--warm 3] [--trace]``
(``--page FILE`` opens an existing page instead of building one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cdp import Chromium, find_chromium  # noqa: E402

STATE = """(function () {
  var s = window.stravaDashboard, nav = performance.getEntriesByType('navigation')[0];
  if (!s || s.paintedMs === null || !nav || !nav.domContentLoadedEventEnd) { return null; }
  return {dcl: Math.round(nav.domContentLoadedEventEnd), script: s.scriptStartMs, drawn: s.drawnMs,
          painted: s.paintedMs, sections: s.sections, charts: s.charts.length, expected: s.expected,
          heatmap: !!s.heatmap};
})()"""
FIGURES = ("dcl", "script", "drawn", "painted")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def build_page(args: argparse.Namespace) -> Path:
    """The goal athlete's page (the warehouse is built once and reused), with its size and make-up."""

    from tasks import warehouse as wh
    from tasks.insight import dashboard
    from tests.conftest import EMULATOR_END
    from tests.insight_support import bench_warehouse

    engine, db = bench_warehouse(args.activities, args.streams, args.db)
    athlete = wh.athletes(engine)[0]
    started = time.perf_counter()
    data = dashboard.collect_data(engine, [], athlete_id=athlete, generated_at=EMULATOR_END + timedelta(days=1))
    collected = time.perf_counter() - started
    page = dashboard.render_html(data)
    engine.dispose()
    out = args.out or db.with_suffix(".draw.html")
    out.write_text(page, encoding="utf-8")
    size = len(page.encode("utf-8"))
    vendored = sum(len(dashboard._asset(n).encode()) for n in dashboard.VENDORED)  # noqa: SLF001
    own = len(dashboard._asset("dashboard.js").encode())  # noqa: SLF001
    embedded = len(dashboard._script_json(data).encode())  # noqa: SLF001
    heat = data["heatmap"]
    print(f"athlete {athlete}: {data['kpis']['activities']:,} activities, heatmap {heat['tracks']:,} routes "
          f"({heat['fromStreams']:,} from streams), {len(heat['cells']) // 2:,} cells; "
          f"collect_data {collected:.1f} s")  # fmt: skip
    rest = size - vendored - own - embedded
    print(f"page: {size:,} bytes ({size / 1024:.0f} KiB): vendored scripts {vendored:,}, page script {own:,}, "
          f"embedded data {embedded:,}, the rest (HTML, style, tables) {rest:,}")  # fmt: skip
    parts = sorted(((len(dashboard._script_json(v).encode()), k) for k, v in data.items()), reverse=True)  # noqa: SLF001
    print("embedded data by key: " + ", ".join(f"{k} {n:,}" for n, k in parts[:8]))
    print(f"written to {out}")
    return out


def open_once(browser: Chromium, uri: str) -> dict[str, Any]:
    started = time.perf_counter()
    browser.open(uri, timeout=60)
    state = browser.wait_for(STATE, timeout=60)
    state["wall"] = round((time.perf_counter() - started) * 1000)
    return state


def trace(binary: str, uri: str) -> None:
    """One cold open under the DevTools trace: the renderer main thread's time by event (top level)."""
    events: list[dict[str, Any]] = []
    with Chromium(binary) as browser:
        record = browser._record  # noqa: SLF001

        def keep(event: dict[str, Any]) -> None:
            if event.get("method") == "Tracing.dataCollected":
                events.extend(event["params"]["value"])
            elif event.get("method") == "Tracing.tracingComplete":
                events.append({"done": True})
            else:
                record(event)

        browser._record = keep  # type: ignore[method-assign]  # noqa: SLF001
        categories = "devtools.timeline,v8,v8.execute,blink,disabled-by-default-devtools.timeline"
        browser.send("Tracing.start", {"categories": categories, "transferMode": "ReportEvents"})
        state = open_once(browser, uri)
        browser.send("Tracing.end")
        deadline = time.monotonic() + 60
        while not (events and events[-1].get("done")) and time.monotonic() < deadline:
            browser.pump(0.2)
    threads = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name" and
               e.get("args", {}).get("name") == "CrRendererMain"}  # fmt: skip
    main = [e for e in events if (e.get("pid"), e.get("tid")) in threads and e.get("ph") == "X" and "dur" in e]
    # Self time per event name: each event's duration minus its direct children's.
    main.sort(key=lambda e: (e["ts"], -e["dur"]))
    self_us: dict[str, float] = defaultdict(float)
    stack: list[dict[str, Any]] = []
    for event in main:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= event["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1]["name"]] -= event["dur"]
        self_us[event["name"]] += event["dur"]
        stack.append(event)
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:14]
    print(f"trace of a cold open (drawn {state['drawn']} ms, painted {state['painted']} ms): renderer main thread "
          "self time by event: " + ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in top))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=1234)
    parser.add_argument("--streams", type=int, default=1234, help="how many of the newest activities have streams")
    parser.add_argument("--db", type=Path, default=None, help="the warehouse file (kept; reused when it exists)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the page")
    parser.add_argument("--page", type=Path, default=None, help="open this page instead of building one")
    parser.add_argument("--cold", type=int, default=5, help="new browsers, each opening the page once cold")
    parser.add_argument("--warm", type=int, default=3, help="opens of the same page after each cold one")
    parser.add_argument("--trace", action="store_true", help="also trace one cold open")
    args = parser.parse_args()

    print(f"uptime before: {uptime()}")
    path = args.page or build_page(args)
    if args.page:
        print(f"page: {path.stat().st_size:,} bytes ({path.stat().st_size / 1024:.0f} KiB), {path}")
    binary = find_chromium()
    if binary is None:
        print("no chromium here: draw time not measured")
        return
    uri = path.resolve().as_uri()
    opens: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    errors: list[str] = []
    for _ in range(args.cold):
        with Chromium(binary) as browser:
            opens["cold"].append(open_once(browser, uri))
            for _ in range(args.warm):
                opens["warm"].append(open_once(browser, uri))
            browser.pump(0.2)
            errors.extend(browser.events.errors)
    for kind, states in opens.items():
        if not states:
            continue
        print(f"{kind} opens ({len(states)}), ms from navigation start, median [every value]:")
        for figure in (*FIGURES, "wall"):
            values = [s[figure] for s in states]
            print(f"  {figure:>8}: {statistics.median(values):>6.0f}  {values}")
        sections = {name: [s["sections"].get(name, 0.0) for s in states] for name in states[0]["sections"]}
        ranked = sorted(sections.items(), key=lambda kv: -statistics.median(kv[1]))
        print("  sections (median ms): " + ", ".join(f"{n} {statistics.median(v):.0f}" for n, v in ranked))
        print(f"  charts drawn: {sorted({(s['charts'], s['expected']) for s in states})}, heatmap drawn: "
              f"{all(s['heatmap'] for s in states)}")  # fmt: skip
    print(f"console errors: {errors or 'none'}")
    if args.trace:
        trace(binary, uri)
    print(f"uptime after: {uptime()}")
    print(json.dumps({k: [{f: s[f] for f in (*FIGURES, "wall")} for s in v] for k, v in opens.items()}))


if __name__ == "__main__":
    main()
