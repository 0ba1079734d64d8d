"""What differs between DuckDB, PostgreSQL and Redshift: one :class:`SqlDialect` seam.

Redshift's staging table is a session ``TEMP`` table, so a Redshift engine holds exactly one
connection (see :func:`blocks.warehouse.engine_options`): prepare, load, checks, merge and drop
then share one session while each step keeps its own transaction, as on the other warehouses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from tasks.logs import run_logger
from tasks.warehouse import schema
from tasks.warehouse.sql_files import STAGING_PREFIX, column_list, read_sql, render, scalar

if TYPE_CHECKING:  # tasks.lake imports tasks.warehouse.schema: no import back at run time
    from tasks.lake import Lake


@dataclass(frozen=True)
class ChecksRoleSql:
    """The SQL files (under ``sql/``) that make a warehouse's checks role and switch to it.

    The role holds only SELECT on the project's tables (:mod:`tasks.quality.roles`); the grants
    are shared files in ``sql/checks_role/``, these are what differs between warehouses.
    """

    exists: str
    """One row, non-zero when the role exists (binds ``:role``)."""
    create: str
    """Creates the role ``{role}`` with nothing granted."""
    set_role: str
    """Inside a check's read-only transaction: the rest of it runs as ``{role}``."""
    member: str | None = None
    """Lets the connecting user switch to ``{role}``; None when it needs no grant for that."""
    lock: str | None = None
    """Serialises the grants to ``{role}`` until the transaction ends (two sessions granting on one
    table at once fail with ``tuple concurrently updated``); None: no lock, the grant is retried."""
    lock_table: str | None = None
    """Run after :attr:`lock` for each table ``{schema}.{table}`` still to grant, before its privilege
    is read again: makes the session see what the session it waited for committed."""


@dataclass
class SqlDialect:
    """What differs between warehouses. Subclasses override only what they must.

    A new warehouse is one subclass here, registered in :data:`_DIALECTS` under its SQLAlchemy
    backend name, plus its SQL files where the shared ones do not fit (``sql/.../*_<name>.sql``).
    What an engine needs when it is created (a driver's connect-timeout argument, one pooled
    session) is the block's: :data:`blocks.warehouse.BACKENDS`, the one place in ``blocks/``.
    """

    engine: sa.Engine
    title: ClassVar[str] = "SQL"
    """The warehouse's name for people (messages)."""
    # True when the staging table lives in the session (Redshift TEMP): the engine must hold one connection.
    single_session: ClassVar[bool] = False
    alters_column_types: ClassVar[bool] = True
    """Whether ``ALTER TABLE ... ALTER COLUMN ... TYPE`` works (the float widening migration runs)."""

    check_functions: ClassVar[frozenset[str]] = frozenset()
    """Functions a validation check may call here on top of the shared allowlist (:mod:`tasks.quality.guard`)."""
    denied_check_functions: ClassVar[frozenset[str]] = frozenset()
    """Functions here that reach outside the data (files, network, session, large objects,
    administration, sleep): never allowed in a check, named so the refusal can say why."""
    checks_role_sql: ClassVar[ChecksRoleSql | None] = None
    """How the gate runs as a role that may only SELECT the project's tables (:mod:`tasks.quality.roles`);
    None: the warehouse has no such role (its checks rely on the guard and the read-only transaction)."""

    @classmethod
    def create(cls, engine: sa.Engine, *, iam_role_arn: str | None = None, region: str | None = None) -> SqlDialect:
        """The dialect of ``engine``; the COPY options matter only to warehouses that COPY from S3."""
        return cls(engine)

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

    def analyze_staging(self, conn: sa.Connection, staging: str) -> None:
        """Give the planner the freshly loaded staging table's statistics, where it plans by them; none by default."""

    def ensure_index(self, conn: sa.Connection, name: str, table: str, columns: tuple[str, ...]) -> None:
        """Create index ``name`` on ``table`` (``columns``) if this warehouse wants one (idempotent); none by default.

        DuckDB prunes with its zone maps and Redshift has no indexes (sort keys instead); PostgreSQL creates it.
        """

    models_lock: ClassVar[str | None] = None
    """SQL file (under ``sql/``) that serializes model builds until the transaction ends; None:
    the warehouse has one writer at a time anyway (DuckDB: one writing process per file)."""

    def lock_models(self, conn: sa.Connection, **identifiers: str) -> None:
        """Wait until no other run rebuilds a model, for the rest of ``conn``'s transaction."""
        if self.models_lock is not None:
            conn.execute(self.sql(self.models_lock, **identifiers))

    def load_file(
        self,
        conn: sa.Connection,
        staging: str,
        lake: Lake,
        path: str,
        *,
        columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
        target: str = schema.ACTIVITY_TABLE,
    ) -> int:
        """Load the run's staging file at ``path`` in ``lake``; return rows loaded.

        The default streams the file's record batches (:func:`staging_batches`) into the
        staging table from here, so memory holds a batch, not the file; Redshift overrides
        this to have the cluster COPY the object from S3 itself. ``columns`` are the file's
        (the activity summary's staged columns unless an entity's), ``target`` the production
        table the staging table is shaped like.
        """
        with staging_batches(lake, path, columns) as batches:
            return self.load_staging(conn, staging, batches, columns)

    def load_staging(
        self,
        conn: sa.Connection,
        staging: str,
        data: pa.Table | pa.RecordBatchReader,
        columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
    ) -> int:
        """Bulk-load Arrow data (a table, or batches read once) of ``columns`` into the staging table; return rows."""
        raise NotImplementedError

    def checkpoint(self) -> None:
        """After a batch's merge committed: let an embedded warehouse write what it holds in memory; none by default."""

    def begin_read_only(self, conn: sa.Connection) -> None:
        """Start a read-only transaction on ``conn``: any write in it then fails with the server's error."""
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    def locked_message(self, exc: sa.exc.DBAPIError) -> str | None:
        """A clear message when ``exc`` means another process holds the warehouse; else None."""
        return None

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

    def read_arrow(self, conn: sa.Connection, statement: str, params: Mapping[str, Any]) -> pa.Table | None:
        """A read's result as an Arrow table when the driver hands one over (None: read it as rows).

        ``statement`` takes ``:name`` parameters. Used for large reads (a dashboard's stream samples).
        """
        return None


class DuckDBDialect(SqlDialect):
    """Embedded DuckDB: scans Arrow data in place (batch by batch from a reader), no round trip through rows."""

    title: ClassVar[str] = "DuckDB"
    check_functions: ClassVar[frozenset[str]] = frozenset(
        {"date_diff", "datediff", "epoch", "median", "quantile_cont", "string_agg"}
    )
    # A check must not read files or URLs, the environment, secrets or settings, or load extensions.
    denied_check_functions: ClassVar[frozenset[str]] = frozenset(
        {
            "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_json_objects",
            "read_ndjson", "read_ndjson_auto", "read_ndjson_objects", "read_parquet", "parquet_scan",
            "parquet_metadata", "parquet_schema", "read_text", "read_blob", "glob", "getenv",
            "read_xlsx", "sniff_csv", "iceberg_scan", "delta_scan", "sqlite_scan", "postgres_scan",
            "mysql_scan", "query", "query_table", "duckdb_secrets", "duckdb_settings",
            "current_setting", "install_extension", "load_extension", "nextval", "sleep_ms",
        }
    )  # fmt: skip

    def begin_read_only(self, conn: sa.Connection) -> None:
        """DuckDB (2.0+): replace the plain BEGIN duckdb_engine sent with ``BEGIN TRANSACTION READ ONLY``."""
        conn.exec_driver_sql("ROLLBACK")  # ends the plain transaction duckdb_engine began
        conn.exec_driver_sql("BEGIN TRANSACTION READ ONLY")

    def checkpoint(self) -> None:
        """``CHECKPOINT``: the batch's rows and index changes go to the file, out of DuckDB's memory.

        DuckDB checkpoints by itself when its write-ahead log passes 16 MB, which a run of many
        enrichment batches may not reach for a long while; meanwhile the streams table's primary
        key index grows in memory, and under the Warehouse block's ``memory_limit`` a history of
        about 3,500 activities would fail with "Out of Memory" (measured in docs/enrichment.md).
        A checkpoint DuckDB refuses (another writer's transaction open) is left to the next batch.
        """
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("CHECKPOINT")
        except sa.exc.DBAPIError as exc:
            run_logger(__name__).debug("DuckDB CHECKPOINT skipped: %s", exc.orig)

    def locked_message(self, exc: sa.exc.DBAPIError) -> str | None:
        """DuckDB refusing a file another process holds: say what to do."""
        text = str(exc.orig)
        if "lock" not in text.lower():
            return None
        return (
            f"The DuckDB warehouse {self.engine.url.database} is locked: another process holds it ({text}). "
            "A DuckDB file has one writer at a time: let that run finish, or close the program that has "
            "the file open (a DuckDB shell, a notebook; or stop that PID), then run again. "
            "Nothing was read from Strava."
        )

    def read_arrow(self, conn: sa.Connection, statement: str, params: Mapping[str, Any]) -> pa.Table | None:
        """DuckDB hands its result over as Arrow (``:name`` parameters become ``$name``)."""
        import warnings

        text = re.sub(r"(?<![:\w]):(\w+)", r"$\1", statement)
        with warnings.catch_warnings():  # "an extra copy of the rows": far cheaper than rows all the same
            warnings.simplefilter("ignore", UserWarning)
            result = conn.connection.driver_connection.execute(text, dict(params))  # type: ignore[union-attr]
            return result.to_arrow_table()  # type: ignore[no-any-return]

    def load_staging(
        self,
        conn: sa.Connection,
        staging: str,
        data: pa.Table | pa.RecordBatchReader,
        columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
    ) -> int:
        driver = conn.connection.driver_connection
        view = f"arrow_{staging}"
        counted = _Counted(data, columns)
        driver.register(view, counted.reader)  # type: ignore[union-attr]
        try:
            cols = column_list(self.preparer, columns)
            q = self.preparer.quote
            conn.exec_driver_sql(f"INSERT INTO {q(staging)} ({cols}) SELECT {cols} FROM {q(view)}")  # noqa: S608
        finally:
            driver.unregister(view)  # type: ignore[union-attr]
        return counted.rows


class PostgresDialect(SqlDialect):
    """PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)`` through psycopg 3, fed by Arrow's CSV writer.

    Arrow writes each batch in C (no Python object per value): every string is quoted, so an
    empty name stays ``""`` while None is the unquoted empty field COPY reads as NULL; tabs,
    newlines and backslashes are plain bytes inside quotes and round-trip byte-exact;
    timestamps carry ``Z`` for UTC; floats are written in their shortest exact form.
    """

    title: ClassVar[str] = "PostgreSQL"
    models_lock: ClassVar[str | None] = "model_state/lock_postgresql.sql"
    check_functions: ClassVar[frozenset[str]] = frozenset({"age", "justify_interval", "string_agg", "to_char"})
    # Large objects, server files, dblink, sleep, settings, other sessions, sequences, query text run as XML, adminpack.
    denied_check_functions: ClassVar[frozenset[str]] = frozenset(
        {
            "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_creat", "lo_open", "lo_get",
            "lo_put", "lo_from_bytea", "lo_truncate", "lowrite", "loread",
            "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir",
            "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_current_logfile",
            "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
            "dblink_get_result", "dblink_open", "dblink_fetch",
            "pg_sleep", "pg_sleep_for", "pg_sleep_until",
            "set_config", "current_setting", "pg_terminate_backend", "pg_cancel_backend",
            "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "pg_switch_wal",
            "pg_create_restore_point", "pg_advisory_lock", "pg_advisory_xact_lock",
            "pg_try_advisory_lock", "pg_notify", "nextval", "setval",
            "query_to_xml", "query_to_xml_and_xmlschema", "cursor_to_xml", "table_to_xml",
            "pg_logical_emit_message", "pg_file_write", "pg_file_rename", "pg_file_unlink",
        }
    )  # fmt: skip
    # A NOLOGIN role the loader joins (PostgreSQL 16+ does not grant that to a role's creator), then SET LOCAL ROLE.
    checks_role_sql: ClassVar[ChecksRoleSql | None] = ChecksRoleSql(
        exists="checks_role/exists_postgresql.sql",
        create="checks_role/create_postgresql.sql",
        set_role="checks_role/set_postgresql.sql",
        member="checks_role/member_postgresql.sql",
        lock="checks_role/lock_postgresql.sql",
        lock_table="checks_role/lock_table_postgresql.sql",
    )

    batch_rows: ClassVar[int] = 10_000
    """Rows per CSV chunk sent to COPY (a few MB): memory holds one chunk, whatever the file's size."""
    start_date_index: ClassVar[str] = "ix_strava_activity_data_start_date"

    def analyze_staging(self, conn: sa.Connection, staging: str) -> None:
        """``ANALYZE`` it: without statistics a fresh table looks small and a merge's join on it may scan production."""
        conn.exec_driver_sql(f"ANALYZE {self.preparer.quote(staging)}")

    def ensure_index(self, conn: sa.Connection, name: str, table: str, columns: tuple[str, ...]) -> None:
        q = self.preparer.quote
        cols = ", ".join(q(c) for c in columns)
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(table)} ({cols})")

    def ensure_indexes(self, conn: sa.Connection) -> None:
        """Index ``start_date``: marking deletions scans only the run's window, not the table.

        (The primary key's index serves the merge's joins on ``id``. DuckDB needs neither:
        its zone maps prune the window, measured in bench/load_merge.py.)
        """
        q = self.preparer.quote
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {q(self.start_date_index)} ON {q(schema.ACTIVITY_TABLE)} (start_date)"
        )

    def load_staging(
        self,
        conn: sa.Connection,
        staging: str,
        data: pa.Table | pa.RecordBatchReader,
        columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
    ) -> int:
        cols = column_list(self.preparer, columns)
        driver = conn.connection.driver_connection
        if not hasattr(driver, "pgconn"):
            raise TypeError("PostgreSQL warehouses need the psycopg 3 driver: use a postgresql+psycopg:// URL")
        statement = f"COPY {self.preparer.quote(staging)} ({cols}) FROM STDIN (FORMAT csv)"
        options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
        rows = 0
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for batch in _rebatched(_reader(data, columns), self.batch_rows):
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(batch, sink, options)
                copy.write(sink.getvalue())
                rows += batch.num_rows
        return rows


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

    title: ClassVar[str] = "Redshift"
    models_lock: ClassVar[str | None] = "model_state/lock_redshift.sql"
    check_functions: ClassVar[frozenset[str]] = frozenset({"dateadd", "datediff", "listagg", "median", "to_char"})
    denied_check_functions: ClassVar[frozenset[str]] = frozenset(
        {
            "set_config", "current_setting", "pg_terminate_backend", "pg_cancel_backend",
            "pg_sleep", "pg_read_file", "pg_ls_dir", "pg_stat_file", "nextval",
        }
    )  # fmt: skip
    # A user with no password (SET SESSION AUTHORIZATION takes a user, and needs a superuser loader).
    checks_role_sql: ClassVar[ChecksRoleSql | None] = ChecksRoleSql(
        exists="checks_role/exists_redshift.sql",
        create="checks_role/create_redshift.sql",
        set_role="checks_role/set_redshift.sql",
    )

    iam_role_arn: str | None = None
    region: str | None = None
    single_session: ClassVar[bool] = True
    alters_column_types: ClassVar[bool] = False  # and its FLOAT was always double precision

    @classmethod
    def create(cls, engine: sa.Engine, *, iam_role_arn: str | None = None, region: str | None = None) -> SqlDialect:
        """Redshift's COPY needs the IAM role and the cluster's region."""
        return cls(engine, iam_role_arn=iam_role_arn, region=region)

    def begin_read_only(self, conn: sa.Connection) -> None:
        """Open the transaction with ``BEGIN READ ONLY`` itself.

        redshift_connector sends BEGIN before a statement outside a transaction; Redshift would
        then ignore a second BEGIN READ ONLY.
        """
        driver = conn.connection.driver_connection
        driver.autocommit = True  # type: ignore[union-attr]
        try:
            conn.exec_driver_sql("BEGIN READ ONLY")
        finally:
            driver.autocommit = False  # type: ignore[union-attr]

    def create_staging(self, conn: sa.Connection, staging: str, target: str) -> None:
        q = self.preparer.quote
        conn.exec_driver_sql(f"CREATE TEMP TABLE {q(staging)} (LIKE {q(target)})")

    def staging_tables(self, conn: sa.Connection) -> list[str]:
        """None can be left over: a TEMP table ends with the session that created it."""
        return []

    def copy_command(self, staging: str, uri: str, columns: tuple[schema.Column, ...] = schema.ALL_COLUMNS) -> Any:
        """The COPY of ``columns`` (the staging table's, in order), built with sqlalchemy-redshift's CopyCommand.

        ``FILLRECORD`` only for the activity summary, whose file lacks the table's last column.
        """
        from sqlalchemy_redshift.commands import CopyCommand, Format

        if not self.iam_role_arn:
            raise ValueError(
                "The Warehouse block has no iam_role_arn: Redshift's COPY needs an IAM role that can "
                "read the lake bucket (see docs/production.md)"
            )
        table = sa.table(staging, *(sa.column(c.name) for c in columns))
        return CopyCommand(
            table,
            data_location=uri,
            iam_role_arns=self.iam_role_arn,
            format=Format.parquet,
            fill_record=columns == schema.ALL_COLUMNS,
        )

    def copy_sql(
        self, staging: str, uri: str, columns: tuple[schema.Column, ...] = schema.ALL_COLUMNS
    ) -> tuple[str, str]:
        """The COPY as sent (values inlined: Redshift takes no bind parameters in COPY), and redacted for logs."""
        command = self.copy_command(staging, uri, columns)
        sql = str(command.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        redacted = sql.replace(command.credentials, "aws_iam_role=***")
        return sql, redacted

    def check_column_order(
        self, conn: sa.Connection, target: str, columns: tuple[schema.Column, ...] = schema.ALL_COLUMNS
    ) -> None:
        """COPY maps Parquet columns by position: production must list the staged columns first, in order."""
        rows = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position"
            ),
            {"table": target},
        )
        actual = [r[0] for r in rows]
        expected = [c.name for c in columns]
        if actual != expected:
            raise RedshiftCopyError(
                f"Table {target} has columns in another order than the pipeline declares; COPY from Parquet "
                "maps columns by position. Rebuild it with a deep copy as docs/production.md shows."
            )

    def load_file(
        self,
        conn: sa.Connection,
        staging: str,
        lake: Lake,
        path: str,
        *,
        columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS,
        target: str = schema.ACTIVITY_TABLE,
    ) -> int:
        uri = lake.s3_uri(path)
        lake_region = lake.region
        if self.region and lake_region and lake_region != self.region:
            raise RedshiftCopyError(
                f"The lake's region {lake_region} differs from the Warehouse region {self.region}: "
                "Redshift COPYs Parquet only from a bucket in the cluster's own region"
            )
        # The summary's table has deleted_at after the staged columns; an entity's table is its columns.
        table_columns = schema.ALL_COLUMNS if columns == schema.STAGED_COLUMNS else columns
        self.check_column_order(conn, target, table_columns)
        sql, redacted = self.copy_sql(staging, uri, table_columns)
        run_logger(__name__).info("Redshift COPY: %s", redacted)
        try:
            conn.exec_driver_sql(sql)
        except sa.exc.DBAPIError as exc:
            # The DBAPIError's text repeats the statement: raise without it (and without the chain).
            reason = str(exc.orig)
            if self.iam_role_arn:
                reason = reason.replace(self.iam_role_arn, "***")
            raise RedshiftCopyError(f"Redshift COPY failed: {redacted}\n{reason}") from None
        return scalar(conn, sa.text("SELECT pg_last_copy_count()"))


_DIALECTS: dict[str, type[SqlDialect]] = {
    "duckdb": DuckDBDialect,
    "postgresql": PostgresDialect,
    "redshift": RedshiftDialect,
}


def dialect_classes() -> Mapping[str, type[SqlDialect]]:
    """Every supported warehouse's dialect class, by SQLAlchemy backend name (``engine.dialect.name``)."""
    return MappingProxyType(_DIALECTS)


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
    return cls.create(engine, iam_role_arn=iam_role_arn, region=region)


STAGING_BATCH_ROWS = schema.ROW_GROUP_ROWS
"""Rows per record batch read from the staging file: a row group of it."""


@contextmanager
def staging_batches(
    lake: Lake, path: str, columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS
) -> Iterator[pa.RecordBatchReader]:
    """The run's typed Parquet file in the lake, as record batches of the staged columns, read once.

    Each batch is cast to :data:`~tasks.warehouse.schema.ARROW_SCHEMA` (the staged columns, in
    order), so a loader sees exactly the types the file was written with, and memory holds a
    batch at a time: the file is read from the local lake in place, or from a temporary
    download (:meth:`tasks.lake.Lake.local_file`).
    """
    names = [c.name for c in columns]
    arrow_schema = schema.ARROW_SCHEMA if columns == schema.STAGED_COLUMNS else _arrow_schema(columns)
    with lake.local_file(path) as local, pq.ParquetFile(local) as parquet:
        batches = (
            batch.select(names).cast(arrow_schema)
            # One row group at a time (no read-ahead threads): memory holds a batch, not the file.
            for batch in parquet.iter_batches(batch_size=STAGING_BATCH_ROWS, columns=names, use_threads=False)
        )
        yield pa.RecordBatchReader.from_batches(arrow_schema, batches)


def _arrow_schema(columns: tuple[schema.Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


def _reader(
    data: pa.Table | pa.RecordBatchReader, columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS
) -> pa.RecordBatchReader:
    """The ``columns`` of ``data`` as a reader (a table is read in place, batch by batch)."""
    if isinstance(data, pa.Table):
        return data.select([c.name for c in columns]).to_reader()
    return data


def _rebatched(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches regrouped into batches of about ``rows`` rows (fewer, larger writes)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in reader:
        pending.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield from pa.Table.from_batches(pending, reader.schema).combine_chunks().to_batches()
            pending, held = [], 0
    if pending:
        yield from pa.Table.from_batches(pending, reader.schema).combine_chunks().to_batches()


class _Counted:
    """A reader over ``data`` that counts the rows a consumer (DuckDB's scan) pulls through it."""

    def __init__(
        self, data: pa.Table | pa.RecordBatchReader, columns: tuple[schema.Column, ...] = schema.STAGED_COLUMNS
    ) -> None:
        self.rows = 0
        source = _reader(data, columns)
        self.reader = pa.RecordBatchReader.from_batches(source.schema, self._count(source))

    def _count(self, source: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in source:
            self.rows += batch.num_rows
            yield batch
