"""Warehouse work: tables, the per-run staging table, the load, the merge and SQL files.

One seam, :class:`SqlDialect`, holds what truly differs between DuckDB, PostgreSQL and
Redshift (creating a staging table, bulk-loading a file, pointing a session at a schema).
Everything else is shared SQL from ``sql/``, with values bound and identifiers quoted by
:func:`render`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import schema

SQL_DIR = Path(os.environ.get("STRAVA_ELT_SQL_DIR", Path(__file__).resolve().parents[1] / "sql"))
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


def staging_name(run_key: str) -> str:
    """The per-run staging table's name; the run key is checked so a name is never injected."""
    if not _SAFE_RUN_KEY.match(run_key):
        raise ValueError(f"run key {run_key!r} must match {_SAFE_RUN_KEY.pattern}")
    return STAGING_PREFIX + run_key


@dataclass
class SqlDialect:
    """What differs between warehouses. Subclasses override only what they must."""

    engine: sa.Engine

    @property
    def preparer(self) -> sa.sql.compiler.IdentifierPreparer:
        """The dialect's identifier quoting."""
        return self.engine.dialect.identifier_preparer

    def sql(self, relative: str, **identifiers: str) -> sa.TextClause:
        """Read ``sql/<relative>`` and quote its identifiers for this dialect."""
        return sa.text(render(read_sql(relative), self.preparer, **identifiers))

    def create_staging(self, conn: sa.Connection, staging: str, target: str) -> None:
        """Create an empty staging table shaped like ``target`` (no constraints)."""
        q = self.preparer.quote
        conn.exec_driver_sql(f"CREATE TABLE {q(staging)} AS SELECT * FROM {q(target)} WITH NO DATA")  # noqa: S608

    def load_staging(self, conn: sa.Connection, staging: str, data: pa.Table) -> int:
        """Bulk-load an Arrow table into the staging table; return rows loaded."""
        raise NotImplementedError

    def staging_tables(self, conn: sa.Connection) -> list[str]:
        """Staging tables left in the current schema (by name prefix)."""
        rows = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name LIKE :prefix"
            ),
            {"prefix": STAGING_PREFIX + "%"},
        )
        return sorted(r[0] for r in rows)


class DuckDBDialect(SqlDialect):
    """Embedded DuckDB: loads Arrow data in place, no round trip through rows."""

    def load_staging(self, conn: sa.Connection, staging: str, data: pa.Table) -> int:
        driver = conn.connection.driver_connection
        view = f"arrow_{staging}"
        driver.register(view, data)  # type: ignore[union-attr]
        try:
            cols = column_list(self.preparer, schema.STAGED_COLUMNS)
            q = self.preparer.quote
            conn.exec_driver_sql(f"INSERT INTO {q(staging)} ({cols}) SELECT {cols} FROM {q(view)}")  # noqa: S608
        finally:
            driver.unregister(view)  # type: ignore[union-attr]
        return data.num_rows


class PostgresDialect(SqlDialect):
    """PostgreSQL: COPY ... FROM STDIN through psycopg 3."""

    def load_staging(self, conn: sa.Connection, staging: str, data: pa.Table) -> int:
        cols = column_list(self.preparer, schema.STAGED_COLUMNS)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY {self.preparer.quote(staging)} ({cols}) FROM STDIN"
        with cursor.copy(statement) as copy:
            for batch in data.to_batches(max_chunksize=10_000):
                for row in batch.to_pylist():
                    copy.write_row([row[c.name] for c in schema.STAGED_COLUMNS])
        return data.num_rows


def dialect_for(engine: sa.Engine) -> SqlDialect:
    """Pick the seam implementation for an engine."""
    name = engine.dialect.name
    if name == "duckdb":
        return DuckDBDialect(engine)
    if name == "postgresql":
        return PostgresDialect(engine)
    raise ValueError(
        f"Unsupported warehouse dialect {name!r}: use a duckdb://, postgresql+psycopg:// "
        "or redshift+redshift_connector:// URL in the Warehouse block"
    )


def use_schema(engine: sa.Engine, schema_name: str | None) -> None:
    """Make every connection of ``engine`` create and use ``schema_name`` (search path)."""
    if not schema_name:
        return
    quoted = engine.dialect.identifier_preparer.quote(schema_name)
    set_path = (
        f"SET schema = '{schema_name}'" if engine.dialect.name == "duckdb" else f"SET search_path TO {quoted}"
    )
    if engine.dialect.name == "duckdb" and "'" in schema_name:
        raise ValueError(f"schema name {schema_name!r} may not contain a quote")

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            cursor.execute(set_path)
        finally:
            cursor.close()
        if engine.dialect.name != "duckdb":
            dbapi_connection.commit()


def ensure_tables(engine: sa.Engine) -> None:
    """Create the production and history tables when missing (idempotent)."""
    metadata = sa.MetaData()
    schema.activity_table(metadata)
    schema.stats_history_table(metadata)
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)


@dataclass(frozen=True)
class MergeResult:
    """What one merge changed in production."""

    staged: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    undeleted: int
    history_rows: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict for summaries and artifacts."""
        return dict(self.__dict__)


@task(cache_policy=NO_CACHE)
def prepare_staging(engine: sa.Engine, run_key: str) -> str:
    """Create production tables if needed, sweep leftover staging tables, create this run's."""
    logger = get_run_logger()
    ensure_tables(engine)
    dialect = dialect_for(engine)
    staging = staging_name(run_key)
    q = dialect.preparer.quote
    with engine.begin() as conn:
        for leftover in dialect.staging_tables(conn):
            logger.warning("Dropping staging table %s left by an earlier run that crashed", leftover)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(leftover)}")
        dialect.create_staging(conn, staging, schema.ACTIVITY_TABLE)
    return staging


def read_staging_file(lake: Any, path: str) -> pa.Table:
    """Read the run's typed Parquet file back through the lake block."""
    table = pq.read_table(io.BytesIO(lake.read_path(path)))
    return table.select([c.name for c in schema.STAGED_COLUMNS]).cast(schema.ARROW_SCHEMA)


@task(cache_policy=NO_CACHE)
def load_staging(engine: sa.Engine, lake: Any, path: str, staging: str) -> int:
    """Load the run's staging file from the lake into the staging table."""
    data = read_staging_file(lake, path)
    dialect = dialect_for(engine)
    with engine.begin() as conn:
        loaded = dialect.load_staging(conn, staging, data)
    get_run_logger().info("Loaded %s rows into %s", loaded, staging)
    return loaded


def _scalar(conn: sa.Connection, statement: sa.TextClause, params: Mapping[str, Any] | None = None) -> int:
    return int(conn.execute(statement, dict(params or {})).scalar() or 0)


@task(cache_policy=NO_CACHE)
def merge_staging(
    engine: sa.Engine,
    staging: str,
    observed_at: datetime,
    deletion_window: tuple[datetime, datetime] | None,
) -> MergeResult:
    """Merge staging into production in ONE transaction: history, delete-then-insert, deletions.

    ``deletion_window`` is the [after, until] range of ``start_date`` that this run read in
    full; production rows inside it that Strava no longer returned are marked deleted.
    Pass None when the extraction was partial.
    """
    dialect = dialect_for(engine)
    ids = {"target": schema.ACTIVITY_TABLE, "staging": staging, "history": schema.STATS_HISTORY_TABLE}
    with engine.begin() as conn:
        staged = _scalar(conn, dialect.sql("load/count_staged.sql", **ids))
        inserted = _scalar(conn, dialect.sql("load/count_new.sql", **ids))
        updated = _scalar(conn, dialect.sql("load/count_changed.sql", **ids))
        undeleted = _scalar(conn, dialect.sql("load/count_reappeared.sql", **ids))
        history = conn.execute(
            dialect.sql("load/record_stats_history.sql", **ids), {"observed_at": observed_at}
        ).rowcount
        conn.execute(dialect.sql("load/merge_delete.sql", **ids))
        conn.execute(dialect.sql("load/merge_insert.sql", **ids))
        deleted = 0
        if deletion_window is not None:
            after, until = deletion_window
            deleted = conn.execute(
                dialect.sql("load/mark_deleted.sql", **ids),
                {"deleted_at": observed_at, "after": after, "until": until},
            ).rowcount
    return MergeResult(
        staged=staged,
        inserted=inserted,
        updated=updated,
        unchanged=staged - inserted - updated,
        deleted=deleted,
        undeleted=undeleted,
        history_rows=max(history, 0),
    )


@task(cache_policy=NO_CACHE)
def drop_staging(engine: sa.Engine, staging: str) -> None:
    """Drop this run's staging table (idempotent)."""
    q = dialect_for(engine).preparer.quote
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(staging)}")


def model_files() -> list[Path]:
    """The models under ``sql/models/``, in name order (prefix numbers set dependencies)."""
    return sorted((SQL_DIR / "models").glob("*.sql"))


def model_name(path: Path) -> str:
    """``sql/models/10_activity_summary_monthly.sql`` builds ``activity_summary_monthly``."""
    return re.sub(r"^\d+_", "", path.stem)


@task(cache_policy=NO_CACHE)
def build_model(engine: sa.Engine, path: Path) -> int:
    """Rebuild one model table from its SELECT in one transaction; return its row count."""
    dialect = dialect_for(engine)
    name = model_name(path)
    select = path.read_text(encoding="utf-8").strip().rstrip(";")
    if not select:
        raise ValueError(f"model file {path} is empty")
    q = dialect.preparer.quote(name)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q}")
        conn.execute(sa.text(f"CREATE TABLE {q} AS {select}"))
        return _scalar(conn, sa.text(f"SELECT COUNT(*) FROM {q}"))  # noqa: S608 - quoted identifier
