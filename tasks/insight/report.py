"""The run report's markdown: the numbers, validation outcomes, models and newest months.

Published once per run, successful or not, by :func:`tasks.insight.notify.report_run` under
:data:`ARTIFACT_KEY`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tasks import quality
from tasks.insight import dashboard

__all__ = ["ARTIFACT_KEY", "monthly_rows", "run_report_markdown"]

ARTIFACT_KEY = "strava-run-report"
MONTHLY_MODEL = "activity_summary_monthly"
_NUMBERS = (
    ("status", "Status"),
    ("athlete_id", "Athlete"),
    ("requests", "API requests"),
    ("pages", "Pages read"),
    ("extracted", "Activities extracted"),
    ("inserted", "Inserted"),
    ("updated", "Updated"),
    ("unchanged", "Unchanged"),
    ("deleted", "Marked deleted"),
    ("undeleted", "Reappeared"),
    ("history_rows", "Kudos history rows"),
    ("watermark", "Watermark (newest start_date loaded, never past the run)"),
    ("full_read_reason", "Whole history read because"),
)


def monthly_rows(engine: sa.Engine, athlete_id: int | None, limit: int = 6) -> list[dict[str, Any]]:
    """The athlete's newest ``limit`` rows of the monthly model (none when it is not built yet)."""
    if athlete_id is None:
        return []
    with engine.connect() as conn:
        rows = dashboard.read_table(conn, MONTHLY_MODEL, athlete_id)
    return sorted(rows, key=lambda r: r["month"], reverse=True)[:limit]


def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, newlines flattened, numbers plain."""
    if value is None:
        return "–"
    if isinstance(value, Decimal):
        value = float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, float):
        value = f"{value:,.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split()) or "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def run_report_markdown(
    summary: Mapping[str, Any],
    monthly: Sequence[Mapping[str, Any]] = (),
    dashboard_url: str | None = None,
    headline: str | None = None,
) -> str:
    """The report's markdown: numbers, validation outcomes, models, newest months."""
    lines = [f"# {headline}" if headline else f"# strava-elt run `{summary.get('run_key', '?')}`", ""]
    rows = [(label, summary[key]) for key, label in _NUMBERS if key in summary]
    if dashboard_url:
        rows.append(("Dashboard", f"[dashboard.html]({dashboard_url})"))
    lines += _table(("", ""), rows)
    for key, label in (("new_fields", "New API fields"), ("new_sport_types", "New sport types")):
        if summary.get(key):
            lines += ["", f"**{label}:** " + ", ".join(_cell(v) for v in summary[key])]
    future = summary.get("future_dated") or {}
    if future.get("count"):
        lines += [
            "",
            f"**Future-dated activities:** {_cell(future['count'])} start after this run read them "
            f"(loaded; the watermark stops at the run's time), e.g. ids {', '.join(str(i) for i in future['ids'])}",
        ]

    lines += ["", "## Validation", ""]
    checks = summary.get("checks")
    if checks:
        outcomes = quality.outcome_counts(checks)
        lines.append(", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()) if n) + ".")
        lines.append("")
        table = quality.results_table(checks)
        lines += _table(tuple(quality.TABLE_COLUMNS), [tuple(r.values()) for r in table])
    else:
        lines.append("No validation results in this run.")

    models = summary.get("models") or {}
    if models:
        lines += ["", "## Models rebuilt", ""]
        lines += _table(("model", "rows"), sorted(models.items()))

    lines += ["", f"## Newest months of `{MONTHLY_MODEL}`", ""]
    if monthly:
        header = list(monthly[0].keys())
        lines += _table(header, [[r[h] for h in header] for r in monthly])
    else:
        lines.append("No rows yet.")
    return "\n".join(lines) + "\n"
