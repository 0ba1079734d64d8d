"""``strava-elt dashboard``: one athlete's HTML dashboard, or the application's index page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flows.cli.common import CliError, add_command

__all__ = ["publish_index_page", "register"]


def publish_index_page(application_block: str, lake_block: str, warehouse_block: str | None) -> dict[str, str | None]:
    """Write the application's index page to the lake's root; return where."""
    from datetime import UTC, datetime

    from tasks.insight.index import index_entries, publish_index
    from tasks.lake import load_lake

    return publish_index(load_lake(lake_block), index_entries(application_block, warehouse_block), datetime.now(UTC))


def cmd_dashboard(args: argparse.Namespace) -> int:
    """One athlete's dashboard into a file; ``--index``: the application's index page; ``--serve``: serve the lake."""
    if args.serve:
        from flows.insight import serve_lake_pages

        return serve_lake_pages(args.lake_block, args.port, say=print)
    if args.index:
        if not args.application:
            raise CliError("--index needs --application NAME (the Strava Application block whose athletes to list)")
        published = publish_index_page(args.application, args.lake_block, args.warehouse_block)
        where = published["link"] or published["url"]
        print(f"index page written to {where} ({int(published['bytes'] or 0):,} bytes)")
        return 0
    from flows.insight import write_dashboard_file

    path, size = write_dashboard_file(args.warehouse_block, Path(args.out), args.athlete_id)
    print(f"dashboard written to {path} ({size:,} bytes); open it in any browser, it needs no network")
    return 0


def register(sub: Any) -> None:
    """Add ``dashboard`` to the parser."""
    dash = add_command(
        sub,
        "dashboard",
        help="write the self-contained HTML dashboard from the warehouse",
        description="Write one athlete's self-contained HTML dashboard (charts inline, no network) from the "
        "models in the warehouse; with --index, the index page of an application's athletes to the lake's root; "
        "with --serve, serve a local lake's dashboards and index read-only on 127.0.0.1 (the Prefect UI's "
        "dashboard links open there meanwhile).",
        examples=[
            "strava-elt dashboard --out dashboard.html",
            "strava-elt dashboard --index --application strava-club",
            "strava-elt dashboard --serve --port 8765",
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
    dash.add_argument(
        "--serve",
        action="store_true",
        help="instead: serve the local lake's dashboards and index page read-only on 127.0.0.1 until Ctrl-C; "
        "the Prefect UI's dashboard links open there",
    )
    dash.add_argument("--port", type=int, default=0, help="with --serve: the port (default: a free one)")
    dash.add_argument(
        "--lake-block", default="strava-lake", help="with --index or --serve: lake block (default strava-lake)"
    )
