"""Presentation: check results as text for people (logs, Slack, artifacts, reports, dashboard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasks.quality.manifest import FAILED, PASSED, SKIPPED, SYMBOLS, CheckResult

__all__ = ["TABLE_COLUMNS", "check_cells", "describe", "format_value", "outcome_counts", "results_table"]


def format_value(value: Any) -> str:
    """A value for people: integers as they are, other numbers to at most 3 decimals."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return text if text not in ("-0", "") else "0"
    return str(value)


def check_cells(result: CheckResult | Mapping[str, Any]) -> dict[str, str]:
    """One check result as text for people: the one formatter of the logs, Slack, reports and the dashboard.

    Values to at most 3 decimals (NULL when absent); ``operator`` is its name, ``symbol`` its
    sign from :data:`SYMBOLS`.
    """
    r = result.as_dict() if isinstance(result, CheckResult) else result
    operator = str(r["operator"])
    return {
        "name": str(r["name"]),
        "severity": str(r["severity"]),
        "value_1": format_value(r["value_1"]),
        "operator": operator,
        "symbol": SYMBOLS.get(operator, operator),
        "value_2": format_value(r["value_2"]),
        "outcome": str(r["outcome"]),
        "detail": str(r.get("detail") or ""),
    }


def describe(result: CheckResult | Mapping[str, Any]) -> str:
    """``3 = 0, failed: e.g. id 17`` - the comparison, the outcome and its detail, on one line."""
    c = check_cells(result)
    if c["outcome"] == SKIPPED:
        return f"skipped: {c['detail']}"
    if c["outcome"] == FAILED and c["detail"].startswith("check could not run"):
        return c["detail"]
    comparison = f"{c['value_1']} {c['symbol']} {c['value_2']}"
    return f"{comparison}, {c['outcome']}" + (f": {c['detail']}" if c["detail"] else "")


def outcome_counts(results: Sequence[CheckResult | Mapping[str, Any]]) -> dict[str, int]:
    """How many results ``passed``, ``failed`` and ``skipped`` (in that order; other outcomes after them)."""
    counts = dict.fromkeys((PASSED, FAILED, SKIPPED), 0)
    for outcome in (check_cells(r)["outcome"] for r in results):
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


TABLE_COLUMNS = {
    "check": "name",
    "severity": "severity",
    "value 1": "value_1",
    "operator": "operator",
    "value 2": "value_2",
    "outcome": "outcome",
    "detail": "detail",
}
"""The columns of every table of check results (artifact, run report), and the field each shows."""


def results_table(results: Sequence[CheckResult | Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows of the validation table artifact and the run report: :data:`TABLE_COLUMNS` of :func:`check_cells`."""
    return [{title: cells[key] for title, key in TABLE_COLUMNS.items()} for cells in map(check_cells, results)]
