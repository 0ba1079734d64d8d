"""``strava-elt run``: the main flow once in this process, or with ``--all`` the round."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli.common import add_command, print_json

__all__ = ["add_run_options", "enrichment_line", "print_summary", "register", "run_parameters", "run_pipeline"]

RUN_EXAMPLES = [
    "strava-elt run",
    "strava-elt run --full-refresh --json",
    "strava-elt run --all --application strava-club",
]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The main flow's parameters, and ``--json``."""
    parser.add_argument("--strava-block", default="strava", help="StravaCredentials block name (default strava)")
    parser.add_argument("--lake-block", default="strava-lake", help="lake block name (default strava-lake)")
    parser.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    parser.add_argument("--lookback-days", type=int, default=14, help="days re-read before the watermark (default 14)")
    parser.add_argument("--full-refresh", action="store_true", help="re-read the whole history")
    parser.add_argument("--slack-block", help="notification block for one message per run (default: none)")
    parser.add_argument(
        "--enrich",
        action="store_true",
        help="after the load, spend what the summary left of the budget on detail, streams, gear, stats and "
        "zones (docs/enrichment.md)",
    )
    parser.add_argument(
        "--enrich-max-requests",
        type=int,
        help="with --enrich: at most this many requests (default: what is left of the 15-minute window)",
    )
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON (README: Command line)")


def run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The main flow's keyword arguments from the parsed options."""
    return {
        "strava_block": args.strava_block,
        "lake_block": args.lake_block,
        "warehouse_block": args.warehouse_block,
        "lookback_days": args.lookback_days,
        "full_refresh": args.full_refresh,
        "slack_block": args.slack_block,
        "enrich": bool(getattr(args, "enrich", False)),
        "enrich_max_requests": getattr(args, "enrich_max_requests", None),
    }


def run_pipeline(**parameters: Any) -> dict[str, Any]:
    """Run the main flow in this process and return its summary."""
    from flows.pipeline import strava_elt

    return strava_elt(**parameters)


def print_summary(title: str, summary: dict[str, Any]) -> None:
    """A run's summary in a few lines: requests, rows, watermark, checks."""
    print(f"\n== {title}")
    print(
        f"   {summary['requests']} API requests ({summary['pages']} pages), {summary['extracted']} activities extracted"
    )
    print(
        f"   production: {summary['inserted']} inserted, {summary['updated']} updated, "
        f"{summary['unchanged']} unchanged, {summary['deleted']} marked deleted"
    )
    print(f"   watermark: {summary['watermark']}  status: {summary['status']}")
    checks = summary.get("checks") or []
    if checks:
        failed = [c for c in checks if str(c.get("outcome", "")).startswith("fail")]
        skipped = [c for c in checks if str(c.get("outcome", "")).startswith("skip")]
        print(
            f"   validation: {len(checks)} checks, {len(checks) - len(failed) - len(skipped)} passed, "
            f"{len(skipped)} skipped, {len(failed)} failed"
            + "".join(f"\n     {c.get('severity')} {c.get('name')}: {c.get('detail')}" for c in failed)
        )
    enrichment = summary.get("enrichment")
    if enrichment:
        print(f"   enrichment: {enrichment_line(enrichment)}")
    dashboard = (summary.get("dashboard") or {}).get("url")
    if dashboard:
        print(f"   dashboard: {dashboard}")


def enrichment_line(enrichment: dict[str, Any]) -> str:
    """``812/1234 activities enriched, 90 requests (44 details, 45 streams, 1 gear), 422 queued``."""
    line = (
        f"{enrichment.get('enriched')}/{enrichment.get('total')} activities enriched, "
        f"{enrichment.get('requests')} requests ({enrichment.get('details')} details, "
        f"{enrichment.get('streams')} streams, {enrichment.get('gear')} gear"
        + (", stats and zones" if enrichment.get("stats") else "")
        + f"), {enrichment.get('queued')} queued"
    )
    why = enrichment.get("partial_reason") or enrichment.get("skipped")
    return f"{line}; {why}" if why else line


def cmd_run(args: argparse.Namespace) -> int:
    """Run the main flow once and print its summary (``--all``: the round over an application's athletes)."""
    from flows.cli.console import progress

    if args.all:
        from flows.cli.round import print_round, run_round

        params = {"lake_block": args.lake_block, "warehouse_block": args.warehouse_block, "mode": args.mode}
        if args.enrich:
            params["enrich"] = True
        with progress():
            result = run_round(application_block=args.application, lookback_days=args.lookback_days, **params)
        if args.json:
            print_json(result)
        else:
            print_round(f"Round over {args.application}", result)
        return 0 if not any(a["outcome"] == "failed" for a in result["athletes"]) else 1
    with progress():
        summary = run_pipeline(**run_parameters(args))
    if args.json:
        print_json(summary)
    else:
        print_summary(f"Run {summary.get('run_key', '')}".rstrip(), summary)
    return 0


def register(sub: Any) -> None:
    """Add ``run`` to the parser."""
    run = add_command(
        sub,
        "run",
        help="run the pipeline once, in this process",
        description="Run the main flow strava_elt once in this process (extract, load behind the validation "
        "gate, models, dashboard) and print its summary; with --all, the round over every active athlete of "
        "--application. On a terminal, stderr shows pages read, activities, the requests left and rate-limit "
        "waits as they happen. Exit code 1 with the reason on stderr when the run fails (--all: when an athlete "
        "failed).",
        examples=RUN_EXAMPLES,
        func=cmd_run,
    )
    add_run_options(run)
    run.add_argument("--all", action="store_true", help="the round: every active athlete of --application")
    run.add_argument(
        "--application",
        default="strava-application",
        help="StravaApplication block (with --all; default strava-application)",
    )
    run.add_argument("--mode", choices=("inline", "deployment"), default="inline", help="with --all (default inline)")
