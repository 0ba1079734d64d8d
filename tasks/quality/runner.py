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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    "ARTIFACT_KEY",
    "FAILED",
    "MANIFEST",
    "PASSED",
    "SKIPPED",
    "TABLE_COLUMNS",
    "OPERATORS",
    "SEVERITIES",
    "Check",
    "CheckResult",
    "ValidationConfigError",
    "ValidationHalted",
    "UnsafeCheckSQL",
    "check_cells",
    "check_read_only",
    "describe",
    "enforce_gate",
    "load_checks",
    "outcome_counts",
    "run_adhoc",
    "run_check",
    "run_checks",
    "read_only_connection",
    "results_table",
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


# --------------------------------------------------------------------------- the read-only guard


class UnsafeCheckSQL(ValueError):
    """A check's SQL is not one read-only query; the message names the file and the reason."""


_FIRST_WORDS = frozenset({"select", "with", "values"})
# Statements (and clauses) that change data, schema, transaction or session state. Matched as whole
# words outside strings, quoted identifiers and comments: a column such as ``updated_at`` or a
# function such as ``replace()`` is not one of them; a column really named ``delete`` must be quoted.
_FORBIDDEN_WORDS = frozenset(
    {
        "abort", "alter", "analyze", "attach", "begin", "call", "checkpoint", "cluster", "comment",
        "commit", "copy", "create", "deallocate", "delete", "detach", "discard", "do", "drop",
        "execute", "export", "grant", "import", "insert", "install", "into", "listen", "load", "lock",
        "merge", "notify", "prepare", "pragma", "refresh", "reindex", "release", "reset", "revoke",
        "rollback", "savepoint", "set", "truncate", "unlisten", "unload", "update", "use", "vacuum",
    }
)  # fmt: skip
# Functions that act on the server or the session from inside a SELECT.
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        "dblink", "dblink_exec", "lo_export", "lo_import", "lo_unlink", "nextval", "pg_advisory_lock",
        "pg_advisory_xact_lock", "pg_cancel_backend", "pg_reload_conf", "pg_terminate_backend",
        "set_config", "setval",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W\d][\w$]*")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")


@dataclass(frozen=True)
class _Reading:
    """One way a server may read the text (they differ; the guard demands that every reading pass)."""

    backslash_escapes: bool = False  # E'...' always; plain strings too with standard_conforming_strings off
    nested_comments: bool = True  # PostgreSQL and DuckDB nest /* */; a server that does not ends earlier

    def describe(self) -> str:
        parts = ["backslashes escaping quotes"] if self.backslash_escapes else []
        parts += [] if self.nested_comments else ["/* */ comments that do not nest"]
        return " (read with " + " and ".join(parts) + ")" if parts else ""


_READINGS = tuple(_Reading(b, n) for b in (False, True) for n in (True, False))


def _skip_string(sql: str, i: int, backslash: bool) -> int:
    """Index after the single-quoted string opening at ``i`` ('' escapes, and backslash ones if asked)."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c == "'":
            if sql.startswith("''", j):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise UnsafeCheckSQL("has an unterminated string literal")


def _skip_comment(sql: str, i: int, nested: bool) -> int:
    """Index after the ``/* */`` comment opening at ``i``."""
    depth, j = 1, i + 2
    while j < len(sql):
        if sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        elif nested and sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        else:
            j += 1
    raise UnsafeCheckSQL("has an unterminated /* comment")


def _code_tokens(sql: str, reading: _Reading) -> Iterator[str]:
    """The SQL's code tokens: words (lower-cased) and punctuation.

    Strings, quoted identifiers and numbers become placeholders; comments vanish.
    """
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_comment(sql, i, reading.nested_comments)
        elif c == "'":
            i = _skip_string(sql, i, reading.backslash_escapes)
            yield "'"
        elif c == '"':
            end = i + 1
            while True:
                end = sql.find('"', end)
                if end < 0:
                    raise UnsafeCheckSQL('has an unterminated "quoted identifier"')
                if not sql.startswith('""', end):
                    break
                end += 2
            i = end + 1
            yield '"'
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(tag.group(0), tag.end())
            if end < 0:
                raise UnsafeCheckSQL(f"has an unterminated {tag.group(0)} string")
            i = end + len(tag.group(0))
            yield "'"
        elif word := _WORD.match(sql, i):
            i = word.end()
            if word.group(0) in ("E", "e") and sql.startswith("'", i):  # E'...': backslash escapes
                i = _skip_string(sql, i, backslash=True)
                yield "'"
            else:
                yield word.group(0).lower()
        elif number := _NUMBER.match(sql, i):
            i = number.end()
            yield "0"
        else:
            i += 1
            yield c


def _refusal(tokens: list[str]) -> str | None:
    """Why these tokens are not one read-only query, or None when they are."""
    if ";" in tokens and any(t != ";" for t in tokens[tokens.index(";") :]):
        return "holds more than one statement (something follows a ';')"
    code = [t for t in tokens if t != ";"]
    first = next((t for t in code if t != "("), None)
    if first is None:
        return "holds no statement"
    if first not in _FIRST_WORDS:
        return f"starts with {first.upper()!r}, not SELECT, WITH or VALUES"
    for k, token in enumerate(code):
        if k and code[k - 1] == ".":
            continue  # a qualified name: t.update is a column, not a statement
        if token in _FORBIDDEN_WORDS:
            return f"uses {token.upper()}, which can change data or the session (quote a column of that name)"
        if token in _FORBIDDEN_FUNCTIONS and k + 1 < len(code) and code[k + 1] == "(":
            return f"calls {token}(), which acts on the server or the session"
    return None


def check_read_only(sql: str, label: str) -> None:
    """Refuse ``sql`` unless it is one query that reads: SELECT, WITH or VALUES, and nothing else.

    The text is tokenised as the server would (strings with '' escapes, "quoted identifiers",
    -- and /* */ comments, $tag$ strings), in every reading the supported servers allow
    (backslash escapes in strings or not, nested comments or not); each must pass, so text
    that one server would read as a string and another as code is refused.

    Raises:
        UnsafeCheckSQL: Naming ``label`` (the file) and the reason.

    """
    for reading in _READINGS:
        try:
            reason = _refusal(list(_code_tokens(sql, reading)))
        except UnsafeCheckSQL as exc:
            reason = str(exc)
        if reason is not None:
            raise UnsafeCheckSQL(
                f"{label} {reason}{reading.describe()}; a check must be one read-only query "
                "(SELECT, WITH or VALUES), see docs/validation.md"
            )


# --------------------------------------------------------------------------- manifest


def validation_dir() -> Path:
    """The manifest's folder: ``$STRAVA_ELT_VALIDATION_DIR`` if set, else ``sql/validation``."""
    return Path(os.environ.get("STRAVA_ELT_VALIDATION_DIR") or wh.SQL_DIR / "validation")


def load_checks(directory: Path | None = None) -> list[Check]:
    """Read and check the manifest ``checks.toml`` in ``directory``; keep its order.

    Each SQL file present must be one read-only query (:func:`check_read_only`): one that is
    not refuses the whole manifest, before anything runs. A missing or empty file, or SQL the
    database rejects, fails only its own check when it runs.
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
    check = Check(
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
    for path in (check.sql, check.compare_sql):
        _refuse_unsafe_file(path, where)
    return check


def _refuse_unsafe_file(path: Path | None, where: str) -> None:
    """Raise :class:`ValidationConfigError` when the SQL file at ``path`` is not one read-only query."""
    try:
        text = path.read_text(encoding="utf-8") if path is not None else ""
    except OSError:
        return  # a missing file fails its own check when it runs
    if not text.strip():
        return  # so does an empty one
    try:
        check_read_only(text, str(path))
    except UnsafeCheckSQL as exc:
        raise ValidationConfigError(f"{where}: {exc}") from None


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
    sql = wh.render(text, preparer, staging=staging) if staging else wh.render(text, preparer)
    check_read_only(sql, path.name)  # again here: the file may have changed since the manifest was read
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
def read_only_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose transaction is read-only on the server, rolled back at the end.

    PostgreSQL: ``SET TRANSACTION READ ONLY`` as the transaction's first statement. Redshift:
    the transaction opens with ``BEGIN READ ONLY`` (the driver's own BEGIN is held back).
    DuckDB (2.0+): the plain BEGIN its driver sends is replaced by ``BEGIN TRANSACTION READ
    ONLY``. Any write, a data-modifying CTE included, then fails with the server's error.
    """
    with engine.connect() as conn:
        try:
            _begin_read_only(conn)
            yield conn
        finally:
            conn.rollback()


def _begin_read_only(conn: sa.Connection) -> None:
    name = conn.dialect.name
    if name == "duckdb":
        conn.exec_driver_sql("ROLLBACK")  # ends the plain transaction duckdb_engine began
        conn.exec_driver_sql("BEGIN TRANSACTION READ ONLY")
    elif name == "redshift":
        # redshift_connector sends BEGIN before a statement outside a transaction; Redshift
        # would then ignore a second BEGIN READ ONLY. Let this one open the transaction itself.
        driver = conn.connection.driver_connection
        driver.autocommit = True  # type: ignore[union-attr]
        try:
            conn.exec_driver_sql("BEGIN READ ONLY")
        finally:
            driver.autocommit = False  # type: ignore[union-attr]
    else:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def run_check(
    engine: sa.Engine,
    check: Check,
    *,
    staging: str | None = None,
    params: Mapping[str, Any] | None = None,
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
        with read_only_connection(engine) as conn:
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
        _refuse_unsafe_file(path, f"strava-elt validate {script_1} {script_2}")
    warehouse = load_block(Warehouse, warehouse_block)
    with warehouse.engine() as engine:
        params = {"expected_rows": None, "run_started_at": datetime.now(UTC), "athlete_id": athlete_id}
        return run_check(engine, check, params=params)
