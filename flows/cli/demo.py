"""``strava-elt demo`` (two runs, or two rounds, against the built-in emulator) and ``strava-elt emulator``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.cli.common import DEFAULT_HOME, add_command, env, print_json

__all__ = ["DEMO_APPLICATION", "DEMO_BLOCKS", "duckdb_hint", "register"]

DEMO_BLOCKS = ("strava-demo", "strava-demo-lake", "strava-demo-warehouse")
DEMO_APPLICATION = "strava-demo-app"

Say = Callable[[str], None]


def duckdb_hint(path: Path, sql: str = "FROM strava_activity_data LIMIT 5") -> str:
    """A command that prints a query on the DuckDB file with this Python (no duckdb CLI needed)."""
    code = f"import duckdb; duckdb.connect({json.dumps(str(path))}, read_only=True).sql({json.dumps(sql)}).show()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def _monthly_rows(duckdb_path: Path, limit: int = 6) -> tuple[list[str], list[tuple[Any, ...]]]:
    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM activity_summary_monthly ORDER BY month DESC LIMIT ?", [limit])
        return [d[0] for d in cursor.description], cursor.fetchall()


def _prefix(prefect_home: Path | None) -> str:
    """``PREFECT_HOME=...`` for the commands that look inside the demo's own Prefect home."""
    return f"PREFECT_HOME={shlex.quote(str(prefect_home))} " if prefect_home else ""


def _single(home: Path, activities: int, say: Say, report: dict[str, Any], enrich_requests: int = 0) -> bool:
    """Two runs of one athlete, with new, late and changed activities in between; enrichment progressing across them."""
    from emulator import StravaEmulator
    from flows.cli.console import progress
    from flows.cli.run import print_summary, run_pipeline
    from tasks.setup import setup_emulator_blocks

    with StravaEmulator(activities=activities) as emu:
        say(f"Strava API emulator on {emu.base_url} with {len(emu.activities)} activities")
        # A new DuckDB file is a new warehouse (its own id): no watermark carries over from an earlier demo.
        setup_emulator_blocks(home, emu, DEMO_BLOCKS)
        params: dict[str, Any] = dict(zip(("strava_block", "lake_block", "warehouse_block"), DEMO_BLOCKS, strict=True))
        if enrich_requests > 0:  # detail and streams, newest first, a few each run (docs/enrichment.md)
            params |= {"enrich": True, "enrich_max_requests": enrich_requests}
        with progress():
            first = run_pipeline(**params)
        report["runs"].append(first)
        if not report["json"]:
            print_summary("Run 1: first load", first)
        newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in emu.activities)
        added = emu.add_activities(3)
        late = emu.add_activities(1, start_date=newest - timedelta(days=3))
        recent = [a for a in emu.activities if a["id"] not in {x["id"] for x in added + late}][:5]
        for activity in recent:
            emu.modify_activity(activity["id"], kudos_count=activity["kudos_count"] + 7)
        say(
            f"\nIn the emulator: {len(added)} new activities, 1 late upload dated "
            f"{late[0]['start_date']}, kudos +7 on {len(recent)} recent activities"
        )
        with progress():
            second = run_pipeline(**params)
        report["runs"].append(second)
        if not report["json"]:
            print_summary("Run 2: incremental", second)
    duckdb_path = home / "warehouse.duckdb"
    columns, rows = _monthly_rows(duckdb_path)
    say("\nactivity_summary_monthly (latest months):")
    say("   " + " | ".join(columns))
    for row in rows:
        say("   " + " | ".join("" if v is None else str(v) for v in row))
    report["dashboard"] = (second.get("dashboard") or {}).get("url")
    if enrich_requests > 0:
        before, after = first.get("enrichment") or {}, second.get("enrichment") or {}
        say(
            f"\nEnrichment across the runs: {before.get('enriched')} then {after.get('enriched')} of "
            f"{after.get('total')} activities with their detail and streams, newest first; the rest waits in the "
            "queue for the next runs (the `enrich` deployment spends what each 15-minute window leaves: "
            "docs/enrichment.md)"
        )
        if int(after.get("enriched") or 0) <= int(before.get("enriched") or 0):
            return False
    return first["inserted"] > 0 and second["inserted"] == len(added) + len(late) and second["updated"] >= len(recent)


def _rounds(home: Path, athletes: int, activities: int, say: Say, report: dict[str, Any]) -> bool:
    """Two rounds over ``athletes`` emulated athletes of one application, with changes in between."""
    from emulator import StravaEmulator
    from flows.cli.console import progress
    from flows.cli.round import print_round, run_round
    from tasks.setup import setup_emulator_application, setup_local_blocks

    _, lake_block, warehouse_block = DEMO_BLOCKS
    with StravaEmulator(activities=activities, athletes=athletes) as emu:
        say(f"Strava API emulator on {emu.base_url}: {athletes} athletes of one application")
        setup_local_blocks(home, names=DEMO_BLOCKS)
        names = setup_emulator_application(emu, DEMO_APPLICATION)
        report["blocks"]["athletes"] = names
        say(f"Application block {DEMO_APPLICATION!r}, athlete blocks: {', '.join(names)}")
        params = {"application_block": DEMO_APPLICATION, "lake_block": lake_block, "warehouse_block": warehouse_block}
        with progress():
            first = run_round(**params)
        report["rounds"].append(first)
        if not report["json"]:
            print_round("Round 1: every athlete's first load", first)
        for athlete_id in emu.athlete_ids[1:]:
            emu.for_athlete(athlete_id).add_activities(2)
        say(f"\nIn the emulator: 2 new activities for {athletes - 1} of the athletes")
        with progress():
            second = run_round(**params)
        report["rounds"].append(second)
        if not report["json"]:
            print_round("Round 2: incremental", second)
    from tasks.insight.index import INDEX_PATH
    from tasks.lake import load_lake

    report["index_page"] = load_lake(lake_block).url(INDEX_PATH)
    ok = all(a["outcome"] == "complete" for r in (first, second) for a in r["athletes"])
    return ok and sum(a.get("inserted") or 0 for a in second["athletes"]) == 2 * (athletes - 1)


def cmd_demo(args: argparse.Namespace) -> int:
    """Two runs (or rounds) against the emulator, with a change in between, and where everything is."""
    home = Path(args.home).expanduser().resolve()
    prefect_home: Path | None = None
    if not env("PREFECT_API_URL"):
        # A self-contained Prefect home: the demo never touches the user's own blocks.
        prefect_home = home / "prefect"
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The demo's own temporary server is a local toy: no client-side usage data and no notice about it
    # (DO_NOT_TRACK is the client's switch; the setting above is the server's).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for leftover in ("lake", "warehouse.duckdb", "warehouse.duckdb.wal"):
        target = home / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out)

    _, lake_block, warehouse_block = DEMO_BLOCKS
    report: dict[str, Any] = {
        "home": str(home),
        "prefect_home": str(prefect_home) if prefect_home else None,
        "prefect_api_url": env("PREFECT_API_URL"),
        "blocks": {"strava": DEMO_BLOCKS[0], "lake": lake_block, "warehouse": warehouse_block},
        "runs": [],
        "rounds": [],
        "warehouse": str(home / "warehouse.duckdb"),
        "lake": str(home / "lake"),
        "dashboard": None,
        "index_page": None,
        "json": args.json,
    }
    say(f"strava-elt demo: emulator, DuckDB and lake under {home}")
    if args.athletes > 1:
        report["blocks"]["application"] = DEMO_APPLICATION
        ok = _rounds(home, args.athletes, min(args.activities, 300), say, report)
    else:
        ok = _single(home, args.activities, say, report, getattr(args, "enrich_requests", 0))
    duckdb_path = home / "warehouse.duckdb"
    where = _prefix(prefect_home)
    if args.athletes > 1:
        look = f"{where}strava-elt athletes --application {DEMO_APPLICATION} --warehouse-block {warehouse_block}"
    else:
        look = f"{where}prefect block ls"
    report |= {"look_inside": look, "query": duckdb_hint(duckdb_path), "ok": ok}
    if prefect_home:
        say(f"\nPrefect home: {prefect_home} (its own temporary server; your blocks are untouched)")
    else:
        say(f"\nPrefect server: {report['prefect_api_url']}")
    names = [v for k, v in report["blocks"].items() if k != "athletes"] + report["blocks"].get("athletes", [])
    say(f"Blocks:    {', '.join(names)}")
    say(f"Warehouse: {duckdb_path}")
    say(f"   look inside: {report['query']}")
    say(f"Lake:      {home / 'lake'}")
    if report["dashboard"]:
        say(f"Dashboard: {report['dashboard']}")
    if report["index_page"]:
        say(f"Index page: {report['index_page']}")
    say(f"Prefect's view: {look}")
    say("\nDemo " + ("succeeded." if ok else "finished, but the numbers are not what was expected."))
    if args.json:
        del report["json"]
        print_json(report)
    return 0 if ok else 1


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve the emulator until Ctrl-C."""
    from emulator.server import serve_forever

    serve_forever(port=args.port, activities=args.activities, seed=args.seed, host=args.host, athletes=args.athletes)
    return 0


def register(sub: Any) -> None:
    """Add ``demo`` and ``emulator`` to the parser."""
    demo = add_command(
        sub,
        "demo",
        help="two runs against the built-in emulator: no credentials, no network",
        description="Start the Strava emulator, save demo blocks (strava-demo, strava-demo-lake, "
        "strava-demo-warehouse) in a Prefect home of its own under --home (unless PREFECT_API_URL is set), run "
        "twice with new, late and changed activities in between, and print where the warehouse, lake, dashboard "
        "and blocks are. --athletes N: one application with N athletes, two rounds, and the index page. --json: "
        "the story goes to stderr and stdout gets an object with the keys home, prefect_home, prefect_api_url, "
        "blocks, runs, rounds, warehouse, lake, dashboard, index_page, look_inside, query, ok.",
        examples=["strava-elt demo", "strava-elt demo --athletes 3 --home /tmp/strava-demo"],
        func=cmd_demo,
    )
    demo.add_argument("--home", default=str(DEFAULT_HOME / "demo"), help="demo folder (default ./.strava-elt/demo)")
    demo.add_argument("--activities", type=int, default=1500, help="size of the emulated athlete (default 1500)")
    demo.add_argument("--verbose", action="store_true", help="show Prefect's flow and task logs")
    demo.add_argument("--athletes", type=int, default=1, help="athletes of one application: two rounds (default 1)")
    demo.add_argument("--json", action="store_true", help="print where everything is, and the runs, as JSON")
    demo.add_argument(
        "--enrich-requests",
        type=int,
        default=40,
        help="requests each run spends on detail and streams, newest first (default 40: 20 activities; 0: none)",
    )

    emu = add_command(
        sub,
        "emulator",
        help="serve the Strava API v3 emulator until Ctrl-C",
        description="Serve the Strava API v3 emulator (OAuth, activities, rate-limit headers, push "
        "subscriptions) with synthetic athletes, for trying deployments without Strava.",
        examples=["strava-elt emulator --port 8765", "strava-elt emulator --athletes 3 --activities 500"],
        func=cmd_emulator,
    )
    emu.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    emu.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    emu.add_argument("--activities", type=int, default=1500, help="number of synthetic activities")
    emu.add_argument("--seed", type=int, default=42, help="seed of the first synthetic athlete (athlete k: seed + k)")
    emu.add_argument(
        "--athletes", type=int, default=1, help="athletes of the one application, each with --activities (default 1)"
    )
