"""``strava-elt athletes``: an application's roster with each athlete's status, watermark and last run."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli.common import add_command, print_json

__all__ = ["athlete_rows", "format_athletes", "register"]


def athlete_rows(application_block: str, warehouse_block: str | None) -> list[dict[str, Any]]:
    """One row per athlete of the application: id, block, status, watermark, last load and last run."""
    from tasks.insight.index import index_entries

    return [entry.as_row() for entry in index_entries(application_block, warehouse_block)]


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def format_athletes(rows: list[dict[str, Any]]) -> str:
    """The roster as an aligned text table, revocations spelled out below it."""
    columns = ["athlete_id", "block", "status", "watermark", "last_loaded", "last_run"]
    table = [columns] + [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    for row in rows:
        if row["status"] == "revoked":
            lines.append(
                f"athlete {row['athlete_id']} revoked at {_cell(row['revoked_at'])}: {_cell(row['revoked_reason'])}"
            )
    return "\n".join(lines)


def cmd_athletes(args: argparse.Namespace) -> int:
    """List the application's athletes with status, watermark and last run."""
    rows = athlete_rows(args.application, args.warehouse_block)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(
            f"Application {args.application!r} has no athletes yet: `strava-elt auth --application {args.application}`."
        )
        return 0
    print(format_athletes(rows))
    revoked = sum(1 for row in rows if row["status"] == "revoked")
    if revoked:
        print(f"{revoked} revoked: runs skip them until `strava-elt auth --application {args.application}`.")
    return 0


def register(sub: Any) -> None:
    """Add ``athletes`` to the parser."""
    athletes = add_command(
        sub,
        "athletes",
        help="list an application's athletes: status, watermark, last run",
        description="List the athletes of a Strava Application block: athlete id, block, status (active or "
        "revoked), watermark in --warehouse-block, last load and last run. --json: a list of objects with the "
        "keys athlete_id, block, name, status, revoked_at, revoked_reason, watermark, last_loaded, last_run.",
        examples=[
            "strava-elt athletes --application strava-club",
            "strava-elt athletes --application strava-club --json",
        ],
        func=cmd_athletes,
    )
    athletes.add_argument("--application", required=True, help="the Strava Application block")
    athletes.add_argument(
        "--warehouse-block",
        default="strava-warehouse",
        help="Warehouse block whose watermarks to show (default strava-warehouse)",
    )
    athletes.add_argument("--json", action="store_true", help="print the rows as JSON")
