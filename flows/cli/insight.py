"""``strava-elt validate``, ``dashboard`` and ``predict-kudos``: questions asked of the warehouse and the lake."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flows.cli.common import CliError, add_command, print_json

__all__ = ["publish_index_page", "register"]


def cmd_validate(args: argparse.Namespace) -> int:
    """Run one ad-hoc check; exit 1 only when a halt check fails."""
    from tasks.quality import describe, run_adhoc

    result = run_adhoc(
        args.script_1, args.script_2, args.operator, args.severity, args.warehouse_block, args.athlete_id
    )
    if args.json:
        print_json({**result.as_dict(), "halts": result.halts})
    else:
        print(f"{result.name} ({result.severity}): {describe(result)}")
    return 1 if result.halts else 0


def publish_index_page(application_block: str, lake_block: str, warehouse_block: str | None) -> dict[str, str]:
    """Write the application's index page to the lake's root; return where."""
    from datetime import UTC, datetime

    from blocks.loading import load_lake
    from tasks.insight.index import index_entries, publish_index

    return publish_index(load_lake(lake_block), index_entries(application_block, warehouse_block), datetime.now(UTC))


def cmd_dashboard(args: argparse.Namespace) -> int:
    """One athlete's dashboard into a file, or with ``--index`` the application's index page in the lake."""
    if args.index:
        if not args.application:
            raise CliError("--index needs --application NAME (the Strava Application block whose athletes to list)")
        published = publish_index_page(args.application, args.lake_block, args.warehouse_block)
        print(f"index page written to {published['url']} ({int(published['bytes']):,} bytes)")
        return 0
    from flows.insight import write_dashboard_file

    path, size = write_dashboard_file(args.warehouse_block, Path(args.out), args.athlete_id)
    print(f"dashboard written to {path} ({size:,} bytes); open it in any browser, it needs no network")
    return 0


def cmd_predict_kudos(args: argparse.Namespace) -> int:
    """Predict the kudos of one activity with the latest accepted kudos model."""
    from datetime import datetime

    from flows.kudos import predict

    start = datetime.fromisoformat(args.start) if args.start else None
    result = predict(
        args.lake_block,
        args.athlete_id,
        distance_km=args.distance,
        sport_type=args.sport_type,
        moving_minutes=args.moving_time,
        elevation_m=args.elevation,
        workout_type=args.workout_type,
        start_local=start,
        photos=args.photos,
        achievements=args.achievements,
        athlete_count=args.athlete_count,
        commute=args.commute,
        trainer=args.trainer,
        visibility=args.visibility,
    )
    if args.json:
        print_json(result)
        return 0
    f, p = result["features"], result["pointer"]
    print(f"Predicted kudos: {result['kudos']:.1f}")
    print(
        f"   for {f['distance_km']:g} km of {f['sport_type']} in {f['moving_minutes']:.0f} min, "
        f"{f['elevation_m']:.0f} m climb, workout type {f['workout_type']}, "
        f"{start.strftime('%A %H:%M') if start else 'now'}"
    )
    print(
        f"   model {p['model']} (MAE {p['mae_model']} vs baseline {p['mae_baseline']}), trained {result['trained_at']}"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``validate``, ``dashboard`` and ``predict-kudos`` to the parser."""
    validate = add_command(
        sub,
        "validate",
        help="run one ad-hoc check: SCRIPT_1's value OPERATOR SCRIPT_2's value (or a number)",
        description="Run one ad-hoc check against the warehouse, read-only: each SQL file returns one value "
        "(:athlete_id bound). Exit code 1 only when a halt check fails. --json: an object with the keys name, "
        "severity, operator, value_1, value_2, outcome (passed, failed or skipped), detail, description, halts.",
        examples=[
            "strava-elt validate sql/validation/row_count.sql 0 greater halt",
            "strava-elt validate a.sql b.sql equals warn --athlete-id 12345 --json",
        ],
        func=cmd_validate,
    )
    validate.add_argument("script_1", metavar="SCRIPT_1", help="SQL file returning one value (value 1)")
    validate.add_argument("script_2", metavar="SCRIPT_2", help="SQL file returning one value, or a number (value 2)")
    validate.add_argument(
        "operator",
        metavar="OPERATOR",
        choices=("equals", "not_equals", "greater", "greater_equals", "less", "less_equals"),
        help="equals, not_equals, greater, greater_equals, less or less_equals",
    )
    validate.add_argument("severity", choices=("warn", "halt"), help="halt: exit code 1 when the check fails")
    validate.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    validate.add_argument("--athlete-id", type=int, help="bound as :athlete_id in the scripts (default NULL)")
    validate.add_argument("--json", action="store_true", help="print the check's result as JSON")

    dash = add_command(
        sub,
        "dashboard",
        help="write the self-contained HTML dashboard from the warehouse",
        description="Write one athlete's self-contained HTML dashboard (charts inline, no network) from the "
        "models in the warehouse; with --index, the index page of an application's athletes to the lake's root.",
        examples=[
            "strava-elt dashboard --out dashboard.html",
            "strava-elt dashboard --index --application strava-club",
        ],
        func=cmd_dashboard,
    )
    dash.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    dash.add_argument("--out", default="dashboard.html", help="HTML file to write (default ./dashboard.html)")
    dash.add_argument(
        "--athlete-id", type=int, help="whose dashboard (required when the warehouse holds several athletes)"
    )
    dash.add_argument(
        "--index",
        action="store_true",
        help="instead: write the index page of --application's athletes (freshness, links) to the lake's root",
    )
    dash.add_argument("--application", help="with --index: the Strava Application block")
    dash.add_argument("--lake-block", default="strava-lake", help="with --index: lake block (default strava-lake)")

    kudos = add_command(
        sub,
        "predict-kudos",
        help="predict an activity's kudos with the latest kudos model",
        description="Predict the kudos of one activity with the latest accepted kudos model in the lake "
        "(trained by the retrain-kudos-model flow). --json: an object with the keys kudos, features, pointer "
        "(model, mae_model, mae_baseline) and trained_at.",
        examples=[
            "strava-elt predict-kudos --distance 10 --sport-type Run",
            "strava-elt predict-kudos --distance 42.2 --sport-type Run --workout-type 1 --json",
        ],
        func=cmd_predict_kudos,
    )
    kudos.add_argument("--distance", type=float, required=True, help="distance in km")
    kudos.add_argument("--sport-type", required=True, help="Strava sport type, e.g. Run, Ride, TrailRun")
    kudos.add_argument("--moving-time", type=float, help="moving time in minutes (default: your usual pace)")
    kudos.add_argument("--elevation", type=float, help="climb in metres (default: your usual climb per km)")
    kudos.add_argument("--workout-type", type=int, help="Strava workout type, e.g. 1 race, 2 long run, 3 workout")
    kudos.add_argument("--start", help="local start time, ISO 8601 (default now)")
    kudos.add_argument("--photos", type=int, default=0, help="number of photos (default 0)")
    kudos.add_argument("--achievements", type=int, default=0, help="achievements (default 0)")
    kudos.add_argument("--athlete-count", type=int, default=1, help="athletes in the group (default 1)")
    kudos.add_argument("--commute", action="store_true", help="a commute")
    kudos.add_argument("--trainer", action="store_true", help="indoors, on a trainer or treadmill")
    kudos.add_argument(
        "--visibility", default="everyone", choices=("everyone", "followers_only", "only_me"), help="who can see it"
    )
    kudos.add_argument("--lake-block", default="strava-lake", help="lake block name (default strava-lake)")
    kudos.add_argument("--athlete-id", type=int, help="whose model (default: the newest model of any athlete)")
    kudos.add_argument("--json", action="store_true", help="print the prediction and its features as JSON")
