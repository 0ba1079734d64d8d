"""The dashboard's cost for an athlete with streams: the heatmap, the curves, the whole page.

Builds (once, then reuses) a DuckDB warehouse holding the emulator's athlete of N activities with
the enrichment of the newest K of them (detail, best and segment efforts, every stream sample,
gear, zones), as ``tests/insight_support.py`` loads them, and the models. Then it times, with
the privacy radius on (200 m): reading the streams and computing the mean-maximal curves, the
heatmap from the stream tracks and the summary polylines (what ``render_heatmap`` costs), the
whole ``collect_data`` (without the lake's stores; with them, empty then kept: the first
and the next run) and ``render_html``, and prints the page's size. With ``--browser`` it
opens the page in headless Chromium (Debian's ``chromium``) and prints the time until every
chart is drawn (the page's own ``performance.now()``) and any console error. Asserts nothing.

Usage: ``python bench/heatmap.py [--activities 1234] [--streams 1234] [--db PATH] [--out PAGE] [--browser]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=1234)
    parser.add_argument("--streams", type=int, default=1234, help="how many of the newest activities have streams")
    parser.add_argument("--db", type=Path, default=None, help="the warehouse file (kept; reused when it exists)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the page")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()

    import sqlalchemy as sa

    from tasks import warehouse as wh
    from tasks.insight import curves, dashboard, heatmap
    from tests.conftest import EMULATOR_END
    from tests.insight_support import bench_warehouse

    engine, db = bench_warehouse(args.activities, args.streams, args.db)
    athlete = wh.athletes(engine)[0]
    reference = (EMULATOR_END + timedelta(days=1)).date()
    settings = dashboard.InsightSettings()
    timings: dict[str, list[float]] = {
        "streams + curves": [],
        "heatmap": [],
        "collect_data": [],
        "kept: first run": [],
        "kept: next run": [],
        "render_html": [],
    }
    page = ""
    import tempfile

    from prefect.filesystems import LocalFileSystem

    from tasks.lake import Lake

    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as kept_dir:  # the lake's summaries and heatmap: empty, then kept
            lake = Lake(LocalFileSystem(basepath=kept_dir))
            for name in ("kept: first run", "kept: next run"):
                started = time.perf_counter()
                dashboard.collect_data(
                    engine,
                    [],
                    athlete_id=athlete,
                    generated_at=EMULATOR_END + timedelta(days=1),
                    settings=settings,
                    heatmap_store=dashboard.LakeHeatmapStore(lake, athlete),
                    summary_store=dashboard.LakeSummaryStore(lake, athlete),
                )
                timings[name].append(time.perf_counter() - started)
            kept = Path(kept_dir, "dashboards", f"athlete_id={athlete}", "stream_summaries.json.gz")
            kept_size = kept.stat().st_size
            started = time.perf_counter()
            dashboard.LakeSummaryStore(lake, athlete).get(curves.summary_version())
            kept_read = time.perf_counter() - started
        tracks: dict[int, list[heatmap.Point]] = {}
        started = time.perf_counter()
        with engine.connect() as conn:
            result = curves.curves(dashboard._keeping_tracks(curves.read_streams(conn, athlete), tracks), reference)  # noqa: SLF001
            polylines = [
                str(r[1])
                for r in conn.execute(sa.text(wh.read_sql("dashboard/activity_routes.sql")), {"athlete_id": athlete})
                if int(r[0]) not in tracks
            ]
        timings["streams + curves"].append(time.perf_counter() - started)
        started = time.perf_counter()
        drawn = heatmap.render_heatmap(polylines, settings.privacy_radius_m, tracks_from_streams=tracks.values())
        timings["heatmap"].append(time.perf_counter() - started)
        started = time.perf_counter()
        data = dashboard.collect_data(
            engine, [], athlete_id=athlete, generated_at=EMULATOR_END + timedelta(days=1), settings=settings
        )
        timings["collect_data"].append(time.perf_counter() - started)
        started = time.perf_counter()
        page = dashboard.render_html(data)
        timings["render_html"].append(time.perf_counter() - started)
    print(
        f"athlete {athlete}: curves over {result['activities']} activities; heatmap {drawn.tracks} routes "
        f"({drawn.from_streams} from streams, {len(polylines)} polylines), {len(drawn.cells) // 2:,} cells, "
        f"{drawn.removed_points:,} points removed by the privacy radius"
    )
    for name, values in timings.items():
        print(f"{name:>18}: median {statistics.median(values):.2f} s (of {len(values)}: "
              f"{', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    print(f"kept summaries: {kept_size:,} bytes gzipped, read back in {kept_read:.2f} s")
    size = len(page.encode("utf-8"))
    print(f"page: {size:,} bytes ({size / 1024:.0f} KiB)")
    out = args.out or db.with_suffix(".html")
    out.write_text(page, encoding="utf-8")
    print(f"written to {out}")
    if args.browser:
        from tests.cdp import Chromium, find_chromium

        binary = find_chromium()
        if binary is None:
            print("no chromium here: draw time not measured")
            return
        with Chromium(binary) as browser:
            for attempt in range(args.repeat):  # the first open is a cold browser's
                started = time.perf_counter()
                browser.open(out.resolve().as_uri())
                state = browser.wait_for("window.stravaDashboard", timeout=60)
                wall = time.perf_counter() - started
                print(f"browser open {attempt + 1}: drawn {state['drawnMs']} ms after navigation start (script "
                      f"started at {state['scriptStartMs']} ms; {wall:.2f} s wall from open), "
                      f"{len(state['charts'])}/{state['expected']} charts")  # fmt: skip
            browser.pump(0.2)
            print(f"console errors: {browser.events.errors or 'none'}")


if __name__ == "__main__":
    main()
