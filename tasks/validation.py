"""The validation gate: declared SQL checks that run between the staging table and production.

Checks are declared in ``sql/validation/checks.toml``. Each compares value 1 (the result of one
SQL file) with value 2 (a second SQL file or a threshold) through an operator, and has a
severity: a failed ``halt`` check stops the load before the merge, a failed ``warn`` check is
reported and the merge goes on. A check whose SQL errors has failed, with the database's
message; a check whose value is NULL is skipped (e.g. ``not enough history``).

SQL files name the run's staging table ``{staging}`` (quoted by :func:`tasks.warehouse.render`)
and production by its plain name; values arrive as bind parameters (``:expected_rows``,
``:run_started_at``, ``:athlete_id`` and a check's own ``params``). A file may return a second column, a
human-readable detail shown next to the outcome.
"""

from __future__ import annotations

import operator as _op
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks import warehouse as wh

__all__ = [
    "OPERATORS",
    "SEVERITIES",
    "Check",
    "CheckResult",
    "ValidationConfigError",
    "ValidationHalted",
    "enforce_gate",
    "load_checks",
    "run_adhoc",
    "run_check",
    "run_validation",
]

MANIFEST = "checks.toml"
ARTIFACT_KEY = "strava-elt-validation"
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": _op.eq,
    "not_equals": _op.ne,
    "greater": _op.gt,
    "greater_equals": _op.ge,
    "less": _op.lt,
    "less_equals": _op.le,
}
SYMBOLS: dict[str, str] = {
    "equals": "=",
    "not_equals": "!=",
    "greater": ">",
    "greater_equals": ">=",
    "less": "<",
    "less_equals": "<=",
}
SEVERITIES = ("warn", "halt")
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
RUN_PARAMS = frozenset({"expected_rows", "run_started_at", "athlete_id"})

_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_REQUIRED = ("name", "description", "severity", "sql", "operator")
_OPTIONAL = ("compare_sql", "threshold", "params", "skip_reason")
_MAX_MESSAGE = 500


class ValidationConfigError(ValueError):
    """The manifest declares a check wrongly; the message names the file and the entry."""


class ValidationHalted(RuntimeError):
    """A ``halt`` check failed, so the merge did not run.

    ``results`` holds every check's result (as dicts), for summaries and Slack.
    """

    def __init__(self, message: str, results: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.results: list[dict[str, Any]] = [dict(r) for r in results]


@dataclass(frozen=True)
class Check:
    """One declared check: value 1 (``sql``) <operator> value 2 (``compare_sql`` or ``threshold``)."""

    name: str
    description: str
    severity: str
    operator: str
    sql: Path
    compare_sql: Path | None = None
    threshold: int | float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    skip_reason: str = "no value"


@dataclass
class CheckResult:
    """What one check found. ``outcome`` is ``passed``, ``failed`` or ``skipped``."""

    name: str
    severity: str
    operator: str
    value_1: int | float | None
    value_2: int | float | None
    outcome: str
    detail: str = ""
    description: str = ""

    @property
    def failed(self) -> bool:
        """The comparison did not hold, or the check could not run."""
        return self.outcome == FAILED

    @property
    def halts(self) -> bool:
        """A failed ``halt`` check: the merge must not run."""
        return self.failed and self.severity == "halt"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for flow results, artifacts and messages."""
        return asdict(self)


# --------------------------------------------------------------------------- manifest


def validation_dir() -> Path:
    """The manifest's folder: ``$STRAVA_ELT_VALIDATION_DIR`` if set, else ``sql/validation``."""
    return Path(os.environ.get("STRAVA_ELT_VALIDATION_DIR") or wh.SQL_DIR / "validation")


def load_checks(directory: Path | None = None) -> list[Check]:
    """Read and check the manifest ``checks.toml`` in ``directory``; keep its order.

    SQL files are not read here: a missing or broken file fails only its own check.
    """
    directory = directory or validation_dir()
    path = directory / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationConfigError(f"No validation manifest at {path}; see docs/validation.md") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationConfigError(f"{path} is not valid TOML: {exc}") from None
    extra = set(data) - {"check"}
    if extra:
        raise ValidationConfigError(f"{path}: unknown top-level keys {sorted(extra)}; declare checks as [[check]]")
    entries = data.get("check", [])
    if not isinstance(entries, list):
        raise ValidationConfigError(f"{path}: declare checks as [[check]] tables")
    checks = [_parse_check(entry, directory, f"{path} [[check]] #{i}") for i, entry in enumerate(entries, 1)]
    seen: set[str] = set()
    for check in checks:
        if check.name in seen:
            raise ValidationConfigError(f"{path}: check name {check.name!r} is declared twice")
        seen.add(check.name)
    return checks


def _parse_check(entry: Any, directory: Path, where: str) -> Check:
    if not isinstance(entry, dict):
        raise ValidationConfigError(f"{where}: a check must be a table")
    missing = [k for k in _REQUIRED if k not in entry]
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise ValidationConfigError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    name = str(entry["name"])
    where = f"{where} ({name})"
    if not _NAME.match(name):
        raise ValidationConfigError(f"{where}: name must match {_NAME.pattern}")
    if entry["operator"] not in OPERATORS:
        raise ValidationConfigError(f"{where}: operator must be one of {', '.join(OPERATORS)}")
    if entry["severity"] not in SEVERITIES:
        raise ValidationConfigError(f"{where}: severity must be warn or halt")
    if ("compare_sql" in entry) == ("threshold" in entry):
        raise ValidationConfigError(f"{where}: give exactly one of compare_sql (a second SQL file) or threshold")
    threshold = entry.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
        raise ValidationConfigError(f"{where}: threshold must be a number")
    params = entry.get("params", {})
    if not isinstance(params, dict) or RUN_PARAMS & set(params):
        raise ValidationConfigError(
            f"{where}: params must be a table that does not redefine {', '.join(sorted(RUN_PARAMS))}"
        )
    compare = entry.get("compare_sql")
    return Check(
        name=name,
        description=str(entry["description"]),
        severity=entry["severity"],
        operator=entry["operator"],
        sql=directory / str(entry["sql"]),
        compare_sql=directory / str(compare) if compare is not None else None,
        threshold=threshold,
        params=dict(params),
        skip_reason=str(entry.get("skip_reason", "no value")),
    )


# --------------------------------------------------------------------------- running


def _read_sql(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"SQL file {path} is empty; it must hold one SELECT")
    return text


def _number(value: Any, path: Path) -> int | float | None:
    if value is None or isinstance(value, int | float):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise ValueError(f"{path.name} returned {value!r}, not a number")


def _query(
    conn: sa.Connection, path: Path, staging: str | None, params: Mapping[str, Any]
) -> tuple[int | float | None, str]:
    """Run one check file; return its value and optional detail column."""
    text, preparer = _read_sql(path), conn.dialect.identifier_preparer
    # No staging table (ad-hoc checks): a {staging} placeholder is then an error of that check.
    statement = sa.text(wh.render(text, preparer, staging=staging) if staging else wh.render(text, preparer))
    rows = conn.execute(statement, dict(params)).fetchall()
    if len(rows) != 1:
        raise ValueError(f"{path.name} returned {len(rows)} rows; a check's SQL must return exactly one")
    row = rows[0]
    detail = "" if len(row) < 2 or row[1] is None else str(row[1])
    return _number(row[0], path), detail


def _error_message(exc: Exception) -> str:
    """The database's own message (SQLAlchemy's SQL echo and links dropped), kept short."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    kind = type(orig if orig is not None else exc).__name__
    message = f"{kind}: {text}"
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def run_check(
    engine: sa.Engine,
    check: Check,
    *,
    staging: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Run one check in its own transaction (rolled back) and compare its two values.

    Never raises for a broken check: SQL errors, missing files and odd results become a
    ``failed`` result carrying the message.
    """
    bind = {**(params or {}), **check.params}
    value_1: int | float | None = None
    value_2: int | float | None = check.threshold
    details: list[str] = []
    try:
        # One connection and transaction per check: an error (which aborts a PostgreSQL
        # transaction) cannot poison the next check. Sequential, so a one-connection pool works.
        with engine.connect() as conn:
            try:
                value_1, detail = _query(conn, check.sql, staging, bind)
                details.append(detail)
                if check.compare_sql is not None:
                    value_2, detail = _query(conn, check.compare_sql, staging, bind)
                    details.append(detail)
            finally:
                conn.rollback()
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check, reported
        return CheckResult(
            name=check.name,
            severity=check.severity,
            operator=check.operator,
            value_1=value_1,
            value_2=None,
            outcome=FAILED,
            detail=f"check could not run: {_error_message(exc)}",
            description=check.description,
        )
    detail = "; ".join(d for d in details if d)
    if value_1 is None or value_2 is None:
        outcome, detail = SKIPPED, check.skip_reason + (f" ({detail})" if detail else "")
    else:
        outcome = PASSED if OPERATORS[check.operator](value_1, value_2) else FAILED
    return CheckResult(check.name, check.severity, check.operator, value_1, value_2, outcome, detail, check.description)


def run_checks(
    engine: sa.Engine,
    checks: Sequence[Check],
    *,
    staging: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> list[CheckResult]:
    """Run every check, one after another; no check stops the others."""
    return [run_check(engine, check, staging=staging, params=params) for check in checks]


def enforce_gate(results: Sequence[CheckResult]) -> None:
    """Raise :class:`ValidationHalted` naming the failed ``halt`` checks, if there are any."""
    halting = [r for r in results if r.halts]
    if not halting:
        return
    named = "; ".join(f"{r.name} ({describe(r)})" for r in halting)
    raise ValidationHalted(
        f"Validation halted the load before the merge: {len(halting)} halt check(s) failed: {named}. "
        "Production and the watermark are unchanged and the run's lake files are kept for inspection; "
        "fix the source or the check, then rerun.",
        [r.as_dict() for r in results],
    )


# --------------------------------------------------------------------------- presenting


def format_value(value: Any) -> str:
    """A value for people: integers as they are, other numbers to at most 3 decimals."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return text if text not in ("-0", "") else "0"
    return str(value)


def describe(result: CheckResult | Mapping[str, Any]) -> str:
    """``3 = 0, failed: e.g. id 17`` - the comparison, the outcome and its detail, on one line."""
    r = result.as_dict() if isinstance(result, CheckResult) else result
    comparison = f"{format_value(r['value_1'])} {SYMBOLS[r['operator']]} {format_value(r['value_2'])}"
    if r["outcome"] == SKIPPED:
        return f"skipped: {r['detail']}"
    if r["outcome"] == FAILED and r["detail"].startswith("check could not run"):
        return r["detail"]
    return f"{comparison}, {r['outcome']}" + (f": {r['detail']}" if r["detail"] else "")


def results_table(results: Sequence[CheckResult | Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows of the validation table artifact."""
    rows = []
    for result in results:
        r = result.as_dict() if isinstance(result, CheckResult) else result
        rows.append(
            {
                "check": r["name"],
                "severity": r["severity"],
                "value 1": format_value(r["value_1"]),
                "operator": r["operator"],
                "value 2": format_value(r["value_2"]),
                "outcome": r["outcome"],
                "detail": r["detail"],
            }
        )
    return rows


@task(cache_policy=NO_CACHE)
def run_validation(
    engine: sa.Engine,
    staging: str,
    expected_rows: int | None = None,
    run_started_at: datetime | None = None,
    athlete_id: int | None = None,
) -> list[CheckResult]:
    """Run the manifest's checks against the staging table of ``athlete_id``'s run; publish a table artifact."""
    logger = get_run_logger()
    checks = load_checks()
    params = {
        "expected_rows": expected_rows,
        "run_started_at": run_started_at or datetime.now(UTC),
        "athlete_id": athlete_id,
    }
    results = run_checks(engine, checks, staging=staging, params=params)
    for result in results:
        if result.failed:
            logger.warning("Check %s (%s) FAILED: %s", result.name, result.severity, describe(result))
        else:
            logger.info("Check %s (%s): %s", result.name, result.severity, describe(result))
    failed = [r.name for r in results if r.failed]
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=results_table(results),
        description=f"Validation of staging table {staging}: {len(results)} checks, "
        f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""),
    )
    return results


def _parse_value_2(script_2: str) -> tuple[Path | None, float | None]:
    path = Path(script_2)
    if path.exists():
        return path, None
    try:
        return None, float(script_2)
    except ValueError:
        raise FileNotFoundError(f"SCRIPT_2 {script_2!r} is neither a SQL file nor a number") from None


def run_adhoc(
    script_1: str,
    script_2: str,
    operator: str,
    severity: str,
    warehouse_block: str = "strava-warehouse",
    athlete_id: int | None = None,
) -> CheckResult:
    """Run one ad-hoc check (two SQL files, or a file and a number) against the warehouse.

    The scripts see production by name, ``:run_started_at`` (now) and ``:athlete_id`` (None
    unless given); there is no staging table.
    """
    from blocks.loading import load_block
    from blocks.warehouse import Warehouse

    if operator not in OPERATORS or severity not in SEVERITIES:
        raise ValueError(f"operator must be one of {', '.join(OPERATORS)} and severity warn or halt")
    compare_sql, threshold = _parse_value_2(script_2)
    check = Check(
        name=Path(script_1).stem,
        description=f"ad-hoc: {script_1} {operator} {script_2}",
        severity=severity,
        operator=operator,
        sql=Path(script_1),
        compare_sql=compare_sql,
        threshold=threshold,
    )
    warehouse = load_block(Warehouse, warehouse_block)
    engine = warehouse.get_engine()
    wh.use_schema(engine, warehouse.schema_name)
    try:
        params = {"expected_rows": None, "run_started_at": datetime.now(UTC), "athlete_id": athlete_id}
        return run_check(engine, check, params=params)
    finally:
        engine.dispose()
