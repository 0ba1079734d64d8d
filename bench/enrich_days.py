"""The 3-day goal at full scale: a 1,234-activity history enriched by the shipped deployments, on the fake clock.

The emulator's athlete of N activities (default 1,234) at a new application's limits (100 per
15 minutes, 1,000 a day), the default reserves, and the schedules of prefect.yaml played on the
emulator's fake clock (tests/enrich_days_support.py, shared with tests/test_enrich_days.py,
which plays the same at 1/10 scale): the ``weekly`` run at Sunday 00:00 (the first load of the
history), then a run of ``enrich`` at every tick of its cron until the history is enriched.
The ticks of a day whose enrichment budget is spent are passed over (each would send nothing;
``--every-tick`` runs them all). Prints the days taken, requests per day, per activity and per
gear, the stats and zones snapshots, wall times, and every time the plan met a limit (a 429, a
wait for a window, a run stopped by the daily limit); asserts nothing.

Starts a local Prefect server as bench/run_overhead.py does (or uses ``PREFECT_API_URL``).
Usage: ``python bench/enrich_days.py [--activities 1234] [--every-tick] [--warehouse duckdb|postgres]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

LIMITS = (100, 1000)  # a new Strava application's read limits: 15 minutes, a day
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> int:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--activities", type=int, default=1234)
    parser.add_argument("--every-tick", action="store_true", help="run every tick, also those of a spent day")
    parser.add_argument("--max-days", type=int, default=7)
    parser.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--pg-url", default=os.environ.get("STRAVA_ELT_PG_URL", PG_URL))
    parser.add_argument("--quiet", action="store_true", help="no line per run")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    import pytest
    from run_overhead import prefect_server

    with prefect_server() as api_url, tempfile.TemporaryDirectory(prefix="strava-elt-bench-days-") as tmp:
        os.environ["PREFECT_API_URL"] = api_url
        from tasks.enrich import budget as enrich_budget
        from tests.conftest import make_env
        from tests.enrich_days_support import play, weekly_start
        from tests.strava_support import FakeClock, use_clock

        start = weekly_start(datetime(2026, 11, 1, tzinfo=UTC))
        clock = FakeClock(start)
        pg_url = _pg_schema(args.pg_url) if args.warehouse == "postgres" else None
        began = time.perf_counter()
        try:
            with pytest.MonkeyPatch.context() as monkeypatch:
                use_clock(monkeypatch, clock)
                for env in make_env(
                    Path(tmp), pg_url=pg_url[0] if pg_url else None, activities=args.activities, clock=clock,
                    read_limits=LIMITS,
                ):  # fmt: skip
                    gear = len({a.get("gear_id") for a in env.emu.activities if a.get("gear_id")})
                    days = enrich_budget.days_to_enrich(args.activities, gear=gear, per_day_extra=2)
                    print(
                        f"bench/enrich_days.py: {args.activities} activities, {gear} gear, limits {LIMITS[0]} per "
                        f"15 min / {LIMITS[1]} a day, reserves {enrich_budget.WINDOW_RESERVE} a window / "
                        f"{enrich_budget.DAILY_RESERVE} a day, {args.warehouse}; the arithmetic says {days} days",
                        flush=True,
                    )

                    def progress(tick: datetime, result: object, requests: int) -> None:
                        if not args.quiet and requests:
                            r = result
                            print(
                                f"  {tick:%a %Y-%m-%d %H:%M} {requests:3d} requests "
                                f"({r.details} details, {r.streams} streams, {r.gear} gear"  # type: ignore[attr-defined]
                                f"{', stats and zones' if r.stats else ''}): "  # type: ignore[attr-defined]
                                f"{r.enriched}/{r.total} enriched",  # type: ignore[attr-defined]
                                flush=True,
                            )

                    played = play(
                        env, clock, start, limits=LIMITS, max_days=args.max_days, every_tick=args.every_tick,
                        on_run=progress,
                    )  # fmt: skip
                    routes = env.emu.route_counts()
        finally:
            if pg_url is not None:
                _drop_schema(args.pg_url, pg_url[1])
        wall = time.perf_counter() - began
    _report(played, routes, args.activities, gear, days, wall)
    return 0


def _report(played: object, routes: dict[str, int], activities: int, gear: int, days: int, wall: float) -> None:
    from tests.enrich_days_support import Played

    assert isinstance(played, Played)
    last = played.results[-1][1] if played.results else None
    enriched, total = (last.enriched, last.total) if last else (0, activities)
    weekly = played.weekly
    print(
        f"weekly run at {played.start:%a %Y-%m-%d %H:%M}: {weekly['requests']} requests, "
        f"{weekly['inserted']} activities loaded"
    )
    if played.finished is None:
        print(f"NOT enriched within the play: {enriched}/{total}")
    else:
        taken = played.finished - played.start
        hours = taken.total_seconds() / 3600
        print(
            f"enriched: {enriched}/{total} at {played.finished:%a %Y-%m-%d %H:%M} "
            f"UTC, {hours:.2f} h after the weekly run: day {played.days} of the goal's 3 "
            f"({math.ceil(hours / 24)} x 24 h; arithmetic {days})"
        )
    for day, spent in played.per_day.items():
        print(
            f"  {day}: {spent} requests by enrich"
            + (f" + {weekly['requests']} weekly" if day == min(played.per_day) else "")
        )
    print(
        f"runs of enrich: {played.runs} played, {played.passed_over} ticks of spent days passed over; "
        f"per run wall time max {max(w for *_, w in played.results):.1f} s, "
        f"mean {sum(w for *_, w in played.results) / max(1, played.runs):.1f} s"
    )
    print(
        f"requests per activity: detail {routes.get('activity', 0) / activities:.2f}, streams "
        f"{routes.get('streams', 0) / activities:.2f}; per gear {routes.get('gear', 0) / max(1, gear):.2f} "
        f"({routes.get('gear', 0)} for {gear} gear); stats snapshots {routes.get('stats', 0)}, "
        f"zones {routes.get('zones', 0)}; /athlete {routes.get('athlete', 0)}, list pages {routes.get('activities', 0)}"
    )
    print("429 or other limit met: " + ("none" if not played.limit_hits else "; ".join(played.limit_hits)))
    print(f"wall time: {wall:.0f} s; load average {os.getloadavg()[0]:.2f} (1 min) at the end")


def _pg_schema(url: str) -> tuple[str, str]:
    """A fresh schema on the PostgreSQL server: (the URL whose search_path is it, its name)."""
    import psycopg
    import sqlalchemy as sa

    schema = f"bench_days_{os.getpid()}"
    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    pg = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return pg.render_as_string(hide_password=False), schema


def _drop_schema(url: str, schema: str) -> None:
    import psycopg
    import sqlalchemy as sa

    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    sys.exit(main())
