"""``strava-elt predict-kudos``: the kudos of one activity, by the latest kudos model."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli.common import add_command, print_json

__all__ = ["register"]


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
    """Add ``predict-kudos`` to the parser."""
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
