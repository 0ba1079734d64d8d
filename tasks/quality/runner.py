"""The runner: each check in its own read-only, rolled-back transaction, and the gate.

SQL files name the run's staging table ``{staging}`` (quoted by :func:`tasks.warehouse.render`)
and production by its plain name; values arrive as bind parameters (``:expected_rows``,
``:run_started_at``, ``:athlete_id`` and a check's own ``params``). A file may return a second
column, a human-readable detail shown next to the outcome. A check whose SQL errors has failed,
with the database's message; a check whose value is NULL is skipped (e.g. ``not enough history``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks import warehouse as wh
from tasks.quality.guard import check_read_only
from tasks.quality.manifest import (
    FAILED,
    OPERATORS,
    PASSED,
    SEVERITIES,
    SKIPPED,
    Check,
    CheckResult,
    load_checks,
    refuse_unsafe_file,
)
from tasks.quality.presentation import describe, results_table
from tasks.quality.roles import ensure_checks_grants, set_role_sql

__all__ = [
    "ARTIFACT_KEY",
    "ValidationHalted",
    "enforce_gate",
    "read_only_connection",
    "run_adhoc",
    "run_check",
    "run_checks",
    "run_validation",
]

ARTIFACT_KEY = "strava-elt-validation"
_MAX_MESSAGE = 500


class ValidationHalted(RuntimeError):
    """A ``halt`` check failed, so the merge did not run.

    ``results`` holds every check's result (as dicts), for summaries and Slack.
    """

    def __init__(self, message: str, results: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.results: list[dict[str, Any]] = [dict(r) for r in results]


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
    sql = wh.render(text, preparer, staging=staging) if staging else wh.render(text, preparer)
    # Again here, now for this warehouse: the file may have changed since the manifest was read.
    check_read_only(sql, path.name, conn.dialect.name)
    rows = conn.execute(sa.text(sql), dict(params)).fetchall()
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


@contextmanager
def read_only_connection(engine: sa.Engine, role: str | None = None) -> Iterator[sa.Connection]:
    """A connection whose transaction is read-only on the server, rolled back at the end.

    PostgreSQL: ``SET TRANSACTION READ ONLY`` as the transaction's first statement. Redshift:
    the transaction opens with ``BEGIN READ ONLY`` (the driver's own BEGIN is held back).
    DuckDB (2.0+): the plain BEGIN its driver sends is replaced by ``BEGIN TRANSACTION READ
    ONLY``. Any write, a data-modifying CTE included, then fails with the server's error.
    With ``role`` (PostgreSQL, Redshift: the Warehouse block's ``checks_role``) the rest of the
    transaction runs as that role, which can only SELECT the project's tables
    (:mod:`tasks.quality.roles`).
    """
    with engine.connect() as conn:
        try:
            wh.dialect_for(conn.engine).begin_read_only(conn)
            if role:
                conn.execute(set_role_sql(conn, role))
            yield conn
        finally:
            conn.rollback()


def run_check(
    engine: sa.Engine,
    check: Check,
    *,
    staging: str | None = None,
    params: Mapping[str, Any] | None = None,
    role: str | None = None,
) -> CheckResult:
    """Run one check in its own read-only transaction (rolled back) and compare its two values.

    Its SQL must be one read-only query (:func:`check_read_only`); the transaction is read-only
    on the server as well (:func:`read_only_connection`). Never raises for a broken check: SQL
    errors, refused SQL, missing files and odd results become a ``failed`` result carrying the
    message.
    """
    bind = {**(params or {}), **check.params}
    value_1: int | float | None = None
    value_2: int | float | None = check.threshold
    details: list[str] = []
    try:
        # One connection and transaction per check: an error (which aborts a PostgreSQL
        # transaction) cannot poison the next check. Sequential, so a one-connection pool works.
        with read_only_connection(engine, role) as conn:
            value_1, detail = _query(conn, check.sql, staging, bind)
            details.append(detail)
            if check.compare_sql is not None:
                value_2, detail = _query(conn, check.compare_sql, staging, bind)
                details.append(detail)
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
    role: str | None = None,
) -> list[CheckResult]:
    """Run every check, one after another (as ``role``, if given); no check stops the others."""
    return [run_check(engine, check, staging=staging, params=params, role=role) for check in checks]


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


@task(cache_policy=NO_CACHE)
def run_validation(
    engine: sa.Engine,
    staging: str,
    expected_rows: int | None = None,
    run_started_at: datetime | None = None,
    athlete_id: int | None = None,
    checks_role: str | None = None,
) -> list[CheckResult]:
    """Run the manifest's checks against the staging table of ``athlete_id``'s run; publish a table artifact.

    With ``checks_role`` the checks run as that role, granted SELECT on the project's tables
    and this run's staging table first (only what it lacks).
    """
    logger = get_run_logger()
    checks = load_checks()
    if checks_role:
        granted = ensure_checks_grants(engine, checks_role, [staging])
        logger.info("Checks run as role %s (granted SELECT on %s)", checks_role, ", ".join(granted) or "nothing new")
    params = {
        "expected_rows": expected_rows,
        "run_started_at": run_started_at or datetime.now(UTC),
        "athlete_id": athlete_id,
    }
    results = run_checks(engine, checks, staging=staging, params=params, role=checks_role)
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

    Raises:
        ValidationConfigError: A script is not one read-only query; nothing was run.

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
    for path in (check.sql, check.compare_sql):
        refuse_unsafe_file(path, f"strava-elt validate {script_1} {script_2}")
    warehouse = load_block(Warehouse, warehouse_block)
    with warehouse.engine() as engine:
        params = {"expected_rows": None, "run_started_at": datetime.now(UTC), "athlete_id": athlete_id}
        return run_check(engine, check, params=params, role=getattr(warehouse, "checks_role", None))
