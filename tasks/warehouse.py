"""Warehouse work: tables, the per-run staging table, the load, the merge and SQL files.

One seam, :class:`SqlDialect`, holds what truly differs between DuckDB, PostgreSQL and
Redshift (creating a staging table, bulk-loading a file, pointing a session at a schema).
Everything else is shared SQL from ``sql/``, with values bound and identifiers quoted by
:func:`render`.

Redshift's staging table is a session ``TEMP`` table, so a Redshift engine holds exactly one
connection (see :func:`engine_options`): prepare, load, checks, merge and drop then share
one session while each step keeps its own transaction, as on the other warehouses.
"""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.warehouse import engine_options as engine_options  # re-exported: the block builds engines
from blocks.warehouse import use_schema as use_schema
from tasks import lake as lake_tasks
from tasks import schema
from tasks.logs import run_logger


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


def staging_name(run_key: str) -> str:
    """The per-run staging table's name; the run key is checked so a name is never injected."""
    if not _SAFE_RUN_KEY.match(run_key):
        raise ValueError(f"run key {run_key!r} must match {_SAFE_RUN_KEY.pattern}")
    return STAGING_PREFIX + run_key


@dataclass
class SqlDialect:
    """What differs between warehouses. Subclasses override only what they must."""

    engine: sa.Engine
    # True when the staging table lives in the session (Redshift TEMP): the engine must hold one connection.
    single_session: ClassVar[bool] = False

    @property
    def preparer(self) -> sa.sql.compiler.IdentifierPreparer:
        """The dialect's identifier quoting."""
        return self.engine.dialect.identifier_preparer

    def sql(self, relative: str, **identifiers: str) -> sa.TextClause:
        """Read ``sql/<relative>`` and quote its identifiers for this dialect."""
        return sa.text(render(read_sql(relative), self.preparer, columns=schema.STAGED_COLUMNS, **identifiers))

    def create_staging(self, conn: sa.Connection, staging: str, target: str) -> None:
        """Create an empty staging table shaped like ``target`` (no constraints)."""
        q = self.preparer.quote
        conn.exec_driver_sql(f"CREATE TABLE {q(staging)} AS SELECT * FROM {q(target)} WITH NO DATA")  # noqa: S608

    def ensure_indexes(self, conn: sa.Connection) -> None:
        """Create the indexes the merge needs beyond the primary key (idempotent); none by default."""

    def load_file(self, conn: sa.Connection, staging: str, lake: Any, path: str) -> int:
        """Load the run's staging file at ``path`` in ``lake``; return rows loaded.

        The default reads the file back through the lake block and bulk-loads it from here;
        Redshift overrides this to have the cluster COPY the object from S3 itself.
        """
        return self.load_staging(conn, staging, read_staging_file(lake, path))

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
    """PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)`` through psycopg 3, fed by Arrow's CSV writer.

    Arrow writes each batch in C (no Python object per value): every string is quoted, so an
    empty name stays ``""`` while None is the unquoted empty field COPY reads as NULL; tabs,
    newlines and backslashes are plain bytes inside quotes and round-trip byte-exact;
    timestamps carry ``Z`` for UTC; floats are written in their shortest exact form.
    """

    batch_rows: ClassVar[int] = 50_000
    start_date_index: ClassVar[str] = "ix_strava_activity_data_start_date"

    def ensure_indexes(self, conn: sa.Connection) -> None:
        """Index ``start_date``: marking deletions scans only the run's window, not the table.

        (The primary key's index serves the merge's joins on ``id``. DuckDB needs neither:
        its zone maps prune the window, measured in bench/load_merge.py.)
        """
        q = self.preparer.quote
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {q(self.start_date_index)} ON {q(schema.ACTIVITY_TABLE)} (start_date)"
        )

    def load_staging(self, conn: sa.Connection, staging: str, data: pa.Table) -> int:
        cols = column_list(self.preparer, schema.STAGED_COLUMNS)
        driver = conn.connection.driver_connection
        if not hasattr(driver, "pgconn"):
            raise TypeError("PostgreSQL warehouses need the psycopg 3 driver: use a postgresql+psycopg:// URL")
        names = [c.name for c in schema.STAGED_COLUMNS]
        statement = f"COPY {self.preparer.quote(staging)} ({cols}) FROM STDIN (FORMAT csv)"
        options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for batch in data.select(names).to_batches(max_chunksize=self.batch_rows):
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(batch, sink, options)
                copy.write(sink.getvalue())
        return data.num_rows


class RedshiftCopyError(RuntimeError):
    """Redshift's COPY of the run's file failed; the message never carries the credentials clause."""


@dataclass
class RedshiftDialect(SqlDialect):
    """Amazon Redshift: session TEMP staging table, COPY of the run's Parquet object from S3.

    ``COPY ... FORMAT AS PARQUET`` accepts only a few options. ``MAXERROR`` and ``REGION`` are
    not among them (Redshift rejects them for columnar files): a Parquet COPY already fails on
    the first bad row, which is what ``MAXERROR 0`` asks for, and the bucket must be in the
    cluster's region, which :meth:`load_file` checks against ``region`` instead.
    ``FILLRECORD`` lets the file omit the table's last column, ``deleted_at``.
    """

    iam_role_arn: str | None = None
    region: str | None = None
    single_session: ClassVar[bool] = True

    def create_staging(self, conn: sa.Connection, staging: str, target: str) -> None:
        q = self.preparer.quote
        conn.exec_driver_sql(f"CREATE TEMP TABLE {q(staging)} (LIKE {q(target)})")

    def staging_tables(self, conn: sa.Connection) -> list[str]:
        """None can be left over: a TEMP table ends with the session that created it."""
        return []

    def copy_command(self, staging: str, uri: str) -> Any:
        """The COPY, built with sqlalchemy-redshift's CopyCommand."""
        from sqlalchemy_redshift.commands import CopyCommand, Format

        if not self.iam_role_arn:
            raise ValueError(
                "The Warehouse block has no iam_role_arn: Redshift's COPY needs an IAM role that can "
                "read the lake bucket (see docs/production.md)"
            )
        table = sa.table(staging, *(sa.column(c.name) for c in schema.ALL_COLUMNS))
        return CopyCommand(
            table,
            data_location=uri,
            iam_role_arns=self.iam_role_arn,
            format=Format.parquet,
            fill_record=True,
        )

    def copy_sql(self, staging: str, uri: str) -> tuple[str, str]:
        """The COPY as sent (values inlined: Redshift takes no bind parameters in COPY), and redacted for logs."""
        command = self.copy_command(staging, uri)
        sql = str(command.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        redacted = sql.replace(command.credentials, "aws_iam_role=***")
        return sql, redacted

    def check_column_order(self, conn: sa.Connection, target: str) -> None:
        """COPY maps Parquet columns by position: production must list the staged columns first, in order."""
        rows = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position"
            ),
            {"table": target},
        )
        actual = [r[0] for r in rows]
        expected = [c.name for c in schema.ALL_COLUMNS]
        if actual != expected:
            raise RedshiftCopyError(
                f"Table {target} has columns in another order than the pipeline declares; COPY from Parquet "
                "maps columns by position. Rebuild it with a deep copy as docs/production.md shows."
            )

    def load_file(self, conn: sa.Connection, staging: str, lake: Any, path: str) -> int:
        s3 = lake_tasks.Lake.of(lake)
        uri = s3.s3_uri(path)
        lake_region = s3.region
        if self.region and lake_region and lake_region != self.region:
            raise RedshiftCopyError(
                f"The lake's region {lake_region} differs from the Warehouse region {self.region}: "
                "Redshift COPYs Parquet only from a bucket in the cluster's own region"
            )
        self.check_column_order(conn, schema.ACTIVITY_TABLE)
        sql, redacted = self.copy_sql(staging, uri)
        run_logger(__name__).info("Redshift COPY: %s", redacted)
        try:
            conn.exec_driver_sql(sql)
        except sa.exc.DBAPIError as exc:
            # The DBAPIError's text repeats the statement: raise without it (and without the chain).
            reason = str(exc.orig)
            if self.iam_role_arn:
                reason = reason.replace(self.iam_role_arn, "***")
            raise RedshiftCopyError(f"Redshift COPY failed: {redacted}\n{reason}") from None
        return _scalar(conn, sa.text("SELECT pg_last_copy_count()"))


_DIALECTS: dict[str, type[SqlDialect]] = {
    "duckdb": DuckDBDialect,
    "postgresql": PostgresDialect,
    "redshift": RedshiftDialect,
}


def dialect_for(engine: sa.Engine, *, iam_role_arn: str | None = None, region: str | None = None) -> SqlDialect:
    """Pick the seam implementation for an engine (COPY options matter to Redshift only)."""
    name = engine.dialect.name
    cls = _DIALECTS.get(name)
    if cls is None:
        raise ValueError(
            f"Unsupported warehouse dialect {name!r}: use a duckdb://, postgresql+psycopg:// "
            "or redshift+redshift_connector:// URL in the Warehouse block"
        )
    if cls.single_session and not isinstance(engine.pool, sa.pool.StaticPool):
        raise ValueError(
            f"A {name} engine must keep one session (its staging table is TEMP): build it with Warehouse.get_engine()"
        )
    if cls is RedshiftDialect:
        return RedshiftDialect(engine, iam_role_arn=iam_role_arn, region=region)
    return cls(engine)


WAREHOUSE_TABLE = "strava_elt_warehouse"
"""One row: the warehouse's identity, a uuid created with the tables (watermarks are keyed by it)."""


def warehouse_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the one-row identity table (a block rename never changes it; a new warehouse has its own)."""
    return sa.Table(
        WAREHOUSE_TABLE,
        metadata,
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )


VALIDATION_TABLE = "strava_validation_results"
"""One row per check per run that reached the merge, written in the merge's transaction."""
DETAIL_MAX_CHARS = 2000
"""A check's detail is cut to this many characters in the table (an error message is far shorter)."""
_DETAIL = sa.Text().with_variant(sa.String(schema.TEXT_MAX_BYTES), "redshift")


def validation_results_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the validation results: one row per check of each merged run, scoped by athlete."""
    return sa.Table(
        VALIDATION_TABLE,
        metadata,
        sa.Column("athlete_id", sa.BigInteger(), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("checked_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("check_order", sa.Integer(), nullable=False),  # the manifest's order
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(32), nullable=False),
        sa.Column("value_1", sa.Double()),
        sa.Column("value_2", sa.Double()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", _DETAIL),
        sa.PrimaryKeyConstraint("athlete_id", "run_key", "name"),
    )


_IDS = {
    "target": schema.ACTIVITY_TABLE,
    "history": schema.STATS_HISTORY_TABLE,
    "identity": WAREHOUSE_TABLE,
    "results": VALIDATION_TABLE,
}


def ensure_tables(engine: sa.Engine) -> str:
    """Create (or migrate) the production, history, identity and validation tables; return the warehouse's id.

    Idempotent. The identity (32 hex digits) is generated the first time, with the tables.
    """
    metadata = sa.MetaData()
    schema.activity_table(metadata)
    schema.stats_history_table(metadata)
    warehouse_table(metadata)
    validation_results_table(metadata)
    dialect = dialect_for(engine)
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        migrate_to_double(conn)
        _migrate_history(conn, dialect)
        dialect.ensure_indexes(conn)
        if conn.execute(dialect.sql("load/warehouse_id.sql", **_IDS)).scalar() is None:
            new_id = {"warehouse_id": uuid.uuid4().hex, "created_at": datetime.now(UTC)}
            conn.execute(dialect.sql("load/warehouse_id_insert.sql", **_IDS), new_id)
    with engine.connect() as conn:  # read after the commit: a concurrent first run sees the same row
        identity = conn.execute(dialect.sql("load/warehouse_id.sql", **_IDS)).scalar()
    if not identity:
        raise RuntimeError(f"Table {WAREHOUSE_TABLE} holds no warehouse id after creating one")
    return str(identity)


def _migrate_history(conn: sa.Connection, dialect: SqlDialect) -> None:
    """Add ``athlete_id`` to a stats history table from before athlete scoping, filled from production."""
    where = {"table_name": schema.STATS_HISTORY_TABLE, "column_name": "athlete_id"}
    if _scalar(conn, dialect.sql("load/column_exists.sql", **_IDS), where):
        return
    conn.execute(dialect.sql("load/add_history_athlete_id.sql", **_IDS))
    filled = conn.execute(dialect.sql("load/backfill_history_athlete_id.sql", **_IDS)).rowcount
    run_logger(__name__).warning(
        "Migrated %s: added athlete_id, filled for %s earlier observations", schema.STATS_HISTORY_TABLE, filled
    )


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file: the run stops before it spends any Strava request."""


def _lock_message(engine: sa.Engine, exc: sa.exc.DBAPIError) -> str | None:
    """A clear message when ``exc`` is DuckDB refusing a file another process holds; else None."""
    text = str(exc.orig)
    if engine.dialect.name != "duckdb" or "lock" not in text.lower():
        return None
    return (
        f"The DuckDB warehouse {engine.url.database} is locked: another process holds it ({text}). "
        "A DuckDB file has one writer at a time: let that run finish, or close the program that has "
        "the file open (a DuckDB shell, a notebook; or stop that PID), then run again. "
        "Nothing was read from Strava."
    )


@task(cache_policy=NO_CACHE)
def open_warehouse(engine: sa.Engine) -> str:
    """Connect, create or migrate the tables and return the warehouse's id, before any Strava request.

    On DuckDB this takes the file's lock; a file another process holds raises :class:`WarehouseLocked`.
    """
    try:
        identity = ensure_tables(engine)
    except sa.exc.DBAPIError as exc:
        message = _lock_message(engine, exc)
        if message is None:
            raise
        raise WarehouseLocked(message) from None
    get_run_logger().info("Warehouse %s: tables ready", identity)
    return identity


@dataclass(frozen=True)
class AthleteRows:
    """What production holds for one athlete."""

    total: int
    live: int
    newest_start_date: datetime | None


def athlete_rows(conn: sa.Connection, athlete_id: int) -> AthleteRows:
    """Count the athlete's rows (and the live ones) and find its newest start_date."""
    row = conn.execute(dialect_for(conn.engine).sql("load/athlete_rows.sql", **_IDS), {"athlete_id": athlete_id}).one()
    total, deleted = int(row[0] or 0), int(row[1] or 0)
    return AthleteRows(total=total, live=total - deleted, newest_start_date=row[2])


def athletes(engine: sa.Engine) -> list[int]:
    """The athletes with live activities in production, in id order."""
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(dialect_for(engine).sql("load/athletes.sql", **_IDS))]


def choose_athlete(engine: sa.Engine, athlete_id: int | None, option: str = "--athlete-id") -> int | None:
    """``athlete_id``, or the warehouse's only athlete (None when it holds none).

    Raises:
        ValueError: No athlete was given and the warehouse holds several; the message lists them.

    """
    if athlete_id is not None:
        return int(athlete_id)
    found = athletes(engine)
    if len(found) > 1:
        listed = ", ".join(str(a) for a in found)
        raise ValueError(f"The warehouse holds {len(found)} athletes ({listed}); pass {option} to choose one")
    return found[0] if found else None


def migrate_to_double(conn: sa.Connection) -> list[str]:
    """Widen production's single-precision float columns to DOUBLE; return the columns changed.

    DuckDB compiled the old ``sa.Float()`` to a 4-byte FLOAT (11550.9 was kept as
    11550.900390625); an adopted PostgreSQL table may have ``real`` columns. Widening keeps each
    stored value as it is; a run re-reading an activity stores it exact again (within the
    lookback: the next run; older ones: ``--full-refresh``). Redshift's FLOAT was always double
    precision (and Redshift cannot alter a column's type).
    """
    if conn.dialect.name not in ("duckdb", "postgresql"):
        return []
    found = conn.execute(sa.text(read_sql("migrate/single_precision_columns.sql")), {"table": schema.ACTIVITY_TABLE})
    single = [r[0] for r in found]
    preparer = conn.dialect.identifier_preparer
    for column in single:
        statement = render(read_sql("migrate/to_double.sql"), preparer, table=schema.ACTIVITY_TABLE, column=column)
        try:
            conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            raise RuntimeError(
                f"Could not widen {schema.ACTIVITY_TABLE}.{column} from single to double precision ({exc.orig}). "
                "A column that an index or view depends on cannot change type: drop those, run again, then "
                "recreate them."
            ) from exc
    if single:
        run_logger(__name__).warning(
            "Widened %s.%s from single to double precision; values stored before stay rounded "
            "until a run re-reads them (run once with --full-refresh to restore them all)",
            schema.ACTIVITY_TABLE,
            ", ".join(single),
        )
    return single


@dataclass(frozen=True)
class MergeResult:
    """What one merge changed in production; ``athlete_rows`` is the athlete's row count after it."""

    staged: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    undeleted: int
    history_rows: int
    athlete_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for summaries and artifacts."""
        return dict(self.__dict__)


def prepare_staging(engine: sa.Engine, run_key: str) -> str:
    """Create production tables if needed, sweep leftover staging tables, create this run's."""
    logger = run_logger(__name__)
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
    table = pq.read_table(io.BytesIO(lake_tasks.read_bytes(lake, path)))
    return table.select([c.name for c in schema.STAGED_COLUMNS]).cast(schema.ARROW_SCHEMA)


def load_staging(
    engine: sa.Engine,
    lake: Any,
    path: str,
    staging: str,
    iam_role_arn: str | None = None,
    region: str | None = None,
) -> int:
    """Load the run's staging file from the lake into the staging table, in one transaction.

    ``iam_role_arn`` and ``region`` come from the Warehouse block; only Redshift's COPY uses them.
    """
    dialect = dialect_for(engine, iam_role_arn=iam_role_arn, region=region)
    with engine.begin() as conn:
        loaded = dialect.load_file(conn, staging, lake, path)
    run_logger(__name__).info("Loaded %s rows into %s", loaded, staging)
    return loaded


def _scalar(conn: sa.Connection, statement: sa.TextClause, params: Mapping[str, Any] | None = None) -> int:
    return int(conn.execute(statement, dict(params or {})).scalar() or 0)


def validation_rows(
    checks: Sequence[Mapping[str, Any]], athlete_id: int, run_key: str, checked_at: datetime
) -> list[dict[str, Any]]:
    """The rows of :data:`VALIDATION_TABLE` for one run's check results, in the manifest's order."""
    return [
        {
            "athlete_id": int(athlete_id),
            "run_key": run_key,
            "checked_at": checked_at,
            "check_order": order,
            "name": c["name"],
            "severity": c["severity"],
            "operator": c["operator"],
            "value_1": None if c["value_1"] is None else float(c["value_1"]),
            "value_2": None if c["value_2"] is None else float(c["value_2"]),
            "outcome": c["outcome"],
            "detail": str(c.get("detail") or "")[:DETAIL_MAX_CHARS],
        }
        for order, c in enumerate(checks)
    ]


@task(cache_policy=NO_CACHE)
def merge_staging(
    engine: sa.Engine,
    staging: str,
    observed_at: datetime,
    deletion_window: tuple[datetime, datetime] | None,
    athlete_id: int,
    run_key: str | None = None,
    checks: Sequence[Mapping[str, Any]] = (),
) -> MergeResult:
    """Merge staging into the athlete's production rows in ONE transaction: history, delete-then-insert, deletions.

    Every statement touches only ``athlete_id``'s rows (the validation gate has checked that
    every staged row is that athlete's). ``deletion_window`` is the [after, until] range of
    ``start_date`` that this run read in full; the athlete's rows inside it that Strava no
    longer returned are marked deleted. Pass None when the extraction was partial.
    ``checks`` (the gate's results as dicts) go to :data:`VALIDATION_TABLE` under ``run_key``
    in the same transaction: results are recorded exactly when the merge commits.
    """
    if checks and not run_key:
        raise ValueError("merge_staging records validation results under the run's key: pass run_key")
    dialect = dialect_for(engine)
    ids = {**_IDS, "staging": staging}
    athlete = {"athlete_id": int(athlete_id)}
    with engine.begin() as conn:
        staged = _scalar(conn, dialect.sql("load/count_staged.sql", **ids))
        inserted = _scalar(conn, dialect.sql("load/count_new.sql", **ids), athlete)
        updated = _scalar(conn, dialect.sql("load/count_changed.sql", **ids), athlete)
        undeleted = _scalar(conn, dialect.sql("load/count_reappeared.sql", **ids), athlete)
        history = conn.execute(
            dialect.sql("load/record_stats_history.sql", **ids), {"observed_at": observed_at, **athlete}
        ).rowcount
        conn.execute(dialect.sql("load/merge_delete.sql", **ids), athlete)
        conn.execute(dialect.sql("load/merge_insert.sql", **ids))
        deleted = 0
        if deletion_window is not None:
            after, until = deletion_window
            deleted = conn.execute(
                dialect.sql("load/mark_deleted.sql", **ids),
                {"deleted_at": observed_at, "after": after, "until": until, **athlete},
            ).rowcount
        total = athlete_rows(conn, athlete_id).total
        if checks:
            rows = validation_rows(checks, athlete_id, str(run_key), datetime.now(UTC))
            conn.execute(dialect.sql("load/record_validation_results.sql", **ids), rows)
    return MergeResult(
        staged=staged,
        inserted=inserted,
        updated=updated,
        unchanged=staged - inserted - updated,
        deleted=deleted,
        undeleted=undeleted,
        history_rows=max(history, 0),
        athlete_rows=total,
    )


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
