"""SQL files shipped in the ``sql`` package: reading, rendering with quoted identifiers."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tasks.warehouse import schema


def package_dir(package: str) -> Path:
    """The folder of one of strava-elt's packages, found with ``importlib.resources``.

    Installed from a wheel it is in site-packages; editable, in the checkout. Wheels install
    unzipped, so it is always a real folder.
    """
    root = resources.files(package)
    if not isinstance(root, Path):
        raise RuntimeError(
            f"strava-elt's package {package!r} is not a folder on disk ({root}); "
            "install strava-elt with pip (a wheel or `pip install .`), not as a zip file"
        )
    return root


SQL_DIR = Path(os.environ.get("STRAVA_ELT_SQL_DIR") or package_dir("sql"))
"""Every SQL file: the ``sql`` package shipped with strava-elt, or ``$STRAVA_ELT_SQL_DIR`` (a full copy)."""
STAGING_PREFIX = "stg_strava_activity_data_"
_SAFE_RUN_KEY = re.compile(r"^[a-z0-9_]{1,40}$")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def read_sql(relative: str) -> str:
    """Read a SQL file under ``sql/`` once; a missing or empty file is an error, not a no-op."""
    path = SQL_DIR / relative
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"SQL file {path} is empty; it must hold one statement")
    return text


def render(
    sql: str,
    preparer: sa.sql.compiler.IdentifierPreparer,
    *,
    columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
    **identifiers: str,
) -> str:
    """Fill ``{name}`` placeholders with quoted identifiers: the only way names enter SQL.

    ``{columns}`` becomes the quoted column list of ``columns``.
    """

    def quote(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "columns":
            return column_list(preparer, columns)
        if key not in identifiers:
            raise KeyError(f"SQL placeholder {{{key}}} has no identifier bound")
        return preparer.quote(identifiers[key])

    return _PLACEHOLDER.sub(quote, sql)


def column_list(preparer: sa.sql.compiler.IdentifierPreparer, columns: tuple[schema.Column, ...]) -> str:
    """Comma-separated quoted column names."""
    return ", ".join(preparer.quote(c.name) for c in columns)


RUN_KEY_TIME_FORMAT = "%Y%m%dt%H%M%S"
"""A run key starts with the run's UTC start in this format (then ``_`` and 8 hex digits)."""


def run_key_started(run_key: str) -> datetime | None:
    """When the run of ``run_key`` started (UTC), read from the key; None for a key of another form."""
    try:
        return datetime.strptime(run_key[:15], RUN_KEY_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def staging_name(run_key: str) -> str:
    """The per-run staging table's name; the run key is checked so a name is never injected."""
    if not _SAFE_RUN_KEY.match(run_key):
        raise ValueError(f"run key {run_key!r} must match {_SAFE_RUN_KEY.pattern}")
    return STAGING_PREFIX + run_key


def scalar(conn: sa.Connection, statement: sa.TextClause, params: Mapping[str, Any] | None = None) -> int:
    """The first column of the first row as an int (0 for none or NULL)."""
    return int(conn.execute(statement, dict(params or {})).scalar() or 0)
