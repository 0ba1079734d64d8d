"""``strava-elt validate``: one ad-hoc check against the warehouse, read-only."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli.common import add_command, print_json

__all__ = ["register"]


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


def register(sub: Any) -> None:
    """Add ``validate`` to the parser."""
    validate = add_command(
        sub,
        "validate",
        help="run one ad-hoc check: SCRIPT_1's value OPERATOR SCRIPT_2's value (or a number)",
        description="Run one ad-hoc check against the warehouse, read-only: each SQL file returns one value "
        "(:athlete_id bound). Exit code 1 only when a halt check fails. --json: an object with the keys name, "
        "severity, operator, value_1, value_2, outcome (passed, failed or skipped), detail, description, halts.",
        examples=[
            "strava-elt validate rows.sql 0 greater halt   # rows.sql: SELECT COUNT(*) FROM strava_activity_data",
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
