"""The run report's markdown: the numbers, values not loaded, validation outcomes, models and newest months.

Published once per run, successful or not, by :func:`tasks.insight.notify.report_run` under
:data:`ARTIFACT_KEY`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tasks import quality
from tasks.insight import dashboard
from tasks.state.summary import FUTURE_IDS_SHOWN, ExtractResult, RunSummary

__all__ = [
    "ARTIFACT_KEY",
    "REJECTED_SHOWN",
    "UNFIT_TITLE",
    "monthly_rows",
    "rejected_lines",
    "run_report_markdown",
    "unfit_counts",
]

ARTIFACT_KEY = "strava-run-report"
MONTHLY_MODEL = "activity_summary_monthly"
REJECTED_SHOWN = 5
"""How many activities not loaded the run report and the Slack message name (the run's log names all)."""
UNFIT_TITLE = "Values loaded as NULL (they do not fit their column)"


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


_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _markdown_text(value: Any) -> str:
    """``value`` as literal markdown text: every ASCII punctuation backslash-escaped, whitespace flattened.

    For text Strava chose (a rejected value, say): no link, emphasis, HTML or table pipe survives.
    """
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))


def unfit_counts(extract: ExtractResult, escape: Callable[[str], str]) -> str | None:
    """``column count, ...`` of the values loaded as NULL (None: none), each name through ``escape``."""
    counts = extract.unfit_values
    return ", ".join(f"{escape(column)} {n:,}" for column, n in counts.items()) if counts else None


def rejected_lines(extract: ExtractResult, escape: Callable[[str], str]) -> list[str]:
    """One line per activity not loaded, the first :data:`REJECTED_SHOWN`, then how many more.

    A line names the activity's id (or its place in the raw page when it has no usable id) and
    the reason, through ``escape``: the reason quotes the value Strava sent.
    """
    lines = []
    for r in extract.rejected[:REJECTED_SHOWN]:
        where = f"page {r.page}, position {r.position}"
        lines.append(f"id {r.id} ({where}): {escape(r.reason)}" if r.id is not None else f"{where}: {escape(r.reason)}")
    more = len(extract.rejected) - REJECTED_SHOWN
    if more > 0:
        lines.append(f"and {more:,} more (all in the run's log)")
    return lines


def _value_findings(x: ExtractResult) -> list[str]:
    """The report's paragraphs on values loaded as NULL and activities not loaded (none when all fit)."""
    lines: list[str] = []
    counts = unfit_counts(x, _markdown_text)
    if counts:
        lines += ["", f"**{UNFIT_TITLE}:** {counts}"]
    if x.rejected:
        lines += ["", f"**Activities not loaded:** {len(x.rejected):,} (kept in the raw lake pages)", ""]
        lines += [f"- {line}" for line in rejected_lines(x, _markdown_text)]
    return lines


def _is_id(column: str) -> bool:
    """Whether a column holds ids (``id``, ``athlete_id``...): printed as they are, never ``140,837,370``."""
    return column == "id" or column.endswith("_id")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table; id columns keep their digits plain (:func:`_is_id`)."""
    ids = [_is_id(str(h)) for h in header]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| "
        + " | ".join(_cell(str(v) if is_id and v is not None else v) for v, is_id in zip(row, ids, strict=True))
        + " |"
        for row in rows
    ]
    return lines


def _numbers(summary: RunSummary) -> list[tuple[str, Any]]:
    """The report's table of numbers: those the run got to, in a fixed order."""
    x, m = summary.extract, summary.merge
    rows: list[tuple[str, Any]] = [("Status", summary.status)]
    if x is not None:
        rows += [
            ("Athlete", str(x.athlete_id)),  # an id, not a quantity: no thousands separators
            ("API requests", x.requests),
            ("Pages read", x.pages),
            ("Activities extracted", x.activities),
        ]
    if m is not None:
        rows += [
            ("Inserted", m.inserted),
            ("Updated", m.updated),
            ("Unchanged", m.unchanged),
            ("Marked deleted", m.deleted),
            ("Reappeared", m.undeleted),
            ("Kudos history rows", m.history_rows),
        ]
    if summary.watermark is not None:
        after = summary.watermark.after
        rows.append(("Watermark (newest start_date loaded, never past the run)", after.isoformat() if after else None))
    if x is not None and x.full_read_reason:
        rows.append(("Whole history read because", x.full_read_reason))
    if summary.seconds is not None:
        rows.append(("Run time (s)", round(summary.seconds, 1)))
    return rows


def run_report_markdown(summary: RunSummary, headline: str | None = None) -> str:
    """The report's markdown: numbers, validation outcomes, models, newest months (``summary.monthly_top``)."""
    lines = [f"# {headline}" if headline else f"# strava-elt run `{summary.run_key}`", ""]
    rows = _numbers(summary)
    published = summary.dashboard or {}
    if published.get("link"):  # http(s): opens from the Prefect UI
        rows.append(("Dashboard", f"[dashboard.html]({published['link']}) ({published.get('link_note') or ''})"))
    elif published.get("url"):  # no http(s) link: where the file is, as text (a file:// link opens nothing)
        where = published.get("location") or published["url"]
        rows.append(
            ("Dashboard", f"`{where}`" + (f" ({published['link_note']})" if published.get("link_note") else ""))
        )
    lines += _table(("Figure", "Value"), rows)
    x = summary.extract
    if x is not None:
        for label, values in (("New API fields", x.new_fields), ("New sport types", x.new_sport_types)):
            if values:
                lines += ["", f"**{label}:** " + ", ".join(_cell(v) for v in values)]
        if x.future_dated:
            shown = ", ".join(str(i) for i in x.future_dated[:FUTURE_IDS_SHOWN])
            lines += [
                "",
                f"**Future-dated activities:** {_cell(len(x.future_dated))} start after this run read them "
                f"(loaded; the watermark stops at the run's time), e.g. ids {shown}",
            ]
        lines += _value_findings(x)

    lines += ["", "## Validation", ""]
    checks = summary.checks
    if checks:
        outcomes = quality.outcome_counts(checks)
        lines.append(", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()) if n) + ".")
        lines.append("")
        table = quality.results_table(checks)
        lines += _table(tuple(quality.TABLE_COLUMNS), [tuple(r.values()) for r in table])
    else:
        lines.append("No validation results in this run.")

    if summary.models:
        lines += ["", "## Models rebuilt", ""]
        lines += _table(("model", "rows"), sorted(summary.models.items()))

    monthly = summary.monthly_top or ()
    lines += ["", f"## Newest months of `{MONTHLY_MODEL}`", ""]
    if monthly:
        header = list(monthly[0].keys())
        lines += _table(header, [[r[h] for h in header] for r in monthly])
    else:
        lines.append("No rows yet.")
    return "\n".join(lines) + "\n"
