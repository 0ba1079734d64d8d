"""The manifest: ``checks.toml`` and the checks it declares.

Each check compares value 1 (the result of one SQL file) with value 2 (a second SQL file or a
threshold) through an operator, and has a severity: a failed ``halt`` check stops the load
before the merge, a failed ``warn`` check is reported and the merge goes on. Every SQL file is
refused when the manifest is read unless it passes :func:`tasks.quality.guard.check_read_only`.
"""

from __future__ import annotations

import operator as _op
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks import warehouse as wh
from tasks.quality.guard import UnsafeCheckSQL, check_read_only

__all__ = [
    "FAILED",
    "MANIFEST",
    "OPERATORS",
    "PASSED",
    "RUN_PARAMS",
    "SEVERITIES",
    "SKIPPED",
    "SYMBOLS",
    "Check",
    "CheckResult",
    "ValidationConfigError",
    "load_checks",
    "refuse_unsafe_file",
    "validation_dir",
]

MANIFEST = "checks.toml"
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


class ValidationConfigError(ValueError):
    """The manifest declares a check wrongly; the message names the file and the entry."""


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
        refuse_unsafe_file(path, where)
    return check


def refuse_unsafe_file(path: Path | None, where: str) -> None:
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
