"""Redshift, verified without a cluster: the real sqlalchemy-redshift dialect compiles, sqlglot parses.

No Redshift can run here, so this is the one place with a stand-in: a DB-API module that
records what the real ``redshift+redshift_connector`` dialect sends through a real SQLAlchemy
engine while the real load subflow runs. Everything else (dialect, compiler, CopyCommand,
Prefect flow, blocks) is the production code.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from prefect_aws import AwsCredentials, S3Bucket
from pydantic import SecretStr
from sqlalchemy.schema import CreateTable
from sqlalchemy_redshift.dialect import RedshiftDialect_redshift_connector

from blocks import Warehouse
from blocks.warehouse import engine_options
from flows.load import load_activities
from tasks import quality as validation
from tasks import warehouse as wh
from tasks.entities.catalog import enrichment_state_table
from tasks.lake import Lake
from tasks.warehouse import schema
from tasks.warehouse.tables import ENTITY_SPECS

SQL_ROOT = Path(__file__).resolve().parents[1] / "sql"
ARN = "arn:aws:iam::123456789012:role/strava-elt-copy"
PASSWORD = "rs-pa55word"  # noqa: S105 - a test value that must never be logged
URL = f"redshift+redshift_connector://etl:{PASSWORD}@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev"
BUCKET, FOLDER = "strava-lake-prod", "strava/prod"
STAGING = "stg_strava_activity_data_20250101t000000_abcdef12"
ATHLETE = 7
STAGING_KEY = f"staging/activities/athlete_id={ATHLETE}/run=20250101t000000_abcdef12/activities.parquet"
WAREHOUSE_ID = "0123456789abcdef0123456789abcdef"
S3_OBJECT = f"s3://{BUCKET}/{FOLDER}/{STAGING_KEY}"
DIALECT = RedshiftDialect_redshift_connector()

# ------------------------------------------------------------------ a recording DB-API


class _Error(Exception):
    pass


@dataclass
class _Recorder:
    """What one fake Redshift session received, and how it answers."""

    log: list[str] = field(default_factory=list)
    connect_kwargs: dict[str, Any] = field(default_factory=dict)
    staged: int = 450
    validating: bool = False

    def mark(self, entry: str) -> None:
        self.log.append(entry)
        self.validating = entry == "<validation>"

    def columns(self, sql: str) -> list[str] | None:
        """The answer's column names, where the caller reads them by name (None: one column ``c``)."""
        return None

    def answer(self, sql: str) -> list[tuple[Any, ...]] | None:
        s = " ".join(sql.lower().split())
        if self.validating:
            return [(0,)]  # every check passes: no duplicates, nulls, negatives; counts agree
        if "version()" in s:
            return [("PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2, Redshift 1.0.77467",)]
        if s == "select current_schema()":
            return [("strava",)]
        if s.startswith("show"):
            return [("read committed",)]
        if "from information_schema.columns" in s and "column_name = " in s:
            return [(1,)]  # the stats history already has athlete_id: no migration
        if "from information_schema.columns" in s:
            return [(c.name,) for c in schema.ALL_COLUMNS]
        if "from strava_elt_warehouse" in s:
            return [(WAREHOUSE_ID,)]
        if "count(deleted_at)" in s:  # the athlete's rows after the merge
            return [(self.staged, 0, datetime(2024, 12, 31, tzinfo=UTC))]
        if "pg_last_copy_count()" in s or s.startswith("select count(*) from"):
            return [(self.staged,)]
        if s.startswith(("select", "with", "-- ")):
            return []  # has_table, validation and counts: nothing there yet
        return None


class _Cursor:
    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self._recorder.log.append(sql if not params else f"{sql} -- {params!r}")
        rows = self._recorder.answer(sql)
        self._rows = list(rows or [])
        names = self._recorder.columns(sql) or ["c"]
        self.description = None if rows is None else [(n, None, None, None, None, None, None) for n in names]
        self.rowcount = len(self._rows) if rows is not None else 0

    def executemany(self, sql: str, seq_of_params: Any) -> None:
        params = list(seq_of_params)
        self._recorder.log.append(f"{sql} -- ({len(params)} rows)")
        self._rows, self.description, self.rowcount = [], None, len(params)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder
        self.py_types: dict[Any, Any] = {str: None}  # redshift_connector's type map, patched on connect
        self.autocommit = False

    def cursor(self) -> _Cursor:
        return _Cursor(self.recorder)

    def commit(self) -> None:
        self.recorder.log.append("COMMIT")

    def rollback(self) -> None:
        self.recorder.log.append("ROLLBACK")

    def close(self) -> None:
        self.recorder.log.append("CLOSE")


def fake_redshift_connector(sessions: list[_Recorder], recorder: type[_Recorder] = _Recorder) -> types.ModuleType:
    """A module that quacks like ``redshift_connector``: each connect() opens a recorded session (a ``recorder``)."""
    module = types.ModuleType("fake_redshift_connector")
    module.paramstyle = "format"  # type: ignore[attr-defined]
    module.Error = _Error  # type: ignore[attr-defined]
    for name in ("DatabaseError", "OperationalError", "InterfaceError", "ProgrammingError", "IntegrityError",
                 "DataError", "NotSupportedError", "InternalError", "Warning"):  # fmt: skip
        setattr(module, name, type(name, (_Error,), {}))

    def connect(*_: Any, **kwargs: Any) -> _Connection:
        sessions.append(recorder(connect_kwargs=kwargs))
        return _Connection(sessions[-1])

    module.connect = connect  # type: ignore[attr-defined]
    return module


# ------------------------------------------------------------------ compiled statements


def test_production_ddl_compiles_to_types_redshift_accepts() -> None:
    ddl = str(CreateTable(schema.activity_table(sa.MetaData())).compile(dialect=DIALECT))
    lines = [line.strip().rstrip(",") for line in ddl.strip().splitlines()]
    assert lines[0] == "CREATE TABLE strava_activity_data ("
    assert lines[1] == "id BIGINT NOT NULL"
    assert "athlete_id BIGINT" in lines and "name VARCHAR(65535)" in lines
    assert "map_summary_polyline VARCHAR(65535)" in lines and "upload_id VARCHAR(65535)" in lines
    assert "start_date TIMESTAMP WITH TIME ZONE" in lines  # TIMESTAMPTZ
    assert "start_date_local TIMESTAMP WITHOUT TIME ZONE" in lines
    assert "row_hash VARCHAR(32)" in lines and "deleted_at TIMESTAMP WITH TIME ZONE" in lines
    assert "distance DOUBLE PRECISION" in lines and "start_lat DOUBLE PRECISION" in lines  # FLOAT8, not FLOAT4
    assert lines[-2:] == ["PRIMARY KEY (id)", ")"]
    assert not any(re.search(r"\b(TEXT|JSONB?|UUID|SERIAL)\b", line) for line in lines)


def test_validation_results_ddl_compiles_for_redshift() -> None:
    ddl = str(CreateTable(wh.validation_results_table(sa.MetaData())).compile(dialect=DIALECT))
    lines = [line.strip().rstrip(",") for line in ddl.strip().splitlines()]
    assert lines[0] == "CREATE TABLE strava_validation_results ("
    assert "athlete_id BIGINT NOT NULL" in lines and "checked_at TIMESTAMP WITH TIME ZONE NOT NULL" in lines
    assert "value_1 DOUBLE PRECISION" in lines and "detail VARCHAR(65535)" in lines
    assert lines[-2:] == ["PRIMARY KEY (athlete_id, run_key, name)", ")"]
    assert not any(re.search(r"\b(TEXT|JSONB?|UUID|SERIAL)\b", line) for line in lines)


def _dialect() -> wh.RedshiftDialect:
    engine = sa.create_engine(URL, module=fake_redshift_connector([]), **engine_options(URL))
    return wh.RedshiftDialect(engine, iam_role_arn=ARN, region="eu-west-1")


def test_copy_is_built_by_copycommand_exactly() -> None:
    sql, redacted = _dialect().copy_sql(STAGING, S3_OBJECT)
    assert sql == (
        f"COPY {STAGING} FROM '{S3_OBJECT}'\n"
        f"        WITH CREDENTIALS AS 'aws_iam_role={ARN}'\n"
        "        FORMAT AS PARQUET\n"
        "        FILLRECORD"
    )
    assert redacted == sql.replace(ARN, "***")
    assert ARN not in redacted
    # Redshift rejects these with Parquet (MAXERROR, REGION) or they do not apply; a Parquet COPY
    # already fails on the first bad row.
    for option in ("MAXERROR", "REGION", "ACCEPTANYDATE", "DELIMITER", "IGNOREHEADER", "TRUNCATECOLUMNS"):
        assert option not in sql


def test_copy_needs_an_iam_role_and_an_s3_lake(tmp_path: Path) -> None:
    from prefect.filesystems import LocalFileSystem

    with pytest.raises(ValueError, match="iam_role_arn"):
        wh.RedshiftDialect(_dialect().engine).copy_sql(STAGING, S3_OBJECT)
    with pytest.raises(TypeError, match="S3Bucket"):
        Lake(LocalFileSystem(basepath=str(tmp_path))).s3_uri(STAGING_KEY)


def test_redshift_engine_keeps_one_session() -> None:
    assert engine_options(URL) == {"poolclass": sa.pool.StaticPool}
    assert engine_options("postgresql+psycopg://u@h/db") == {}
    plain = sa.create_engine(URL, module=fake_redshift_connector([]))
    with pytest.raises(ValueError, match="one session"):
        wh.dialect_for(plain)


def test_load_sql_renders_for_redshift_exactly() -> None:
    dialect = _dialect()
    ids = {"target": schema.ACTIVITY_TABLE, "staging": STAGING, "history": schema.STATS_HISTORY_TABLE}

    def body(relative: str) -> str:
        text = str(dialect.sql(relative, **ids))
        return " ".join(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("--"))

    assert body("load/merge_delete.sql") == (
        f"DELETE FROM strava_activity_data WHERE athlete_id = :athlete_id AND id IN (SELECT id FROM {STAGING})"
    )
    cols = ", ".join(c.name for c in schema.STAGED_COLUMNS)
    assert cols.startswith("id, resource_state, athlete_id, name,") and cols.endswith("extracted_at, row_hash")
    assert body("load/merge_insert.sql") == f"INSERT INTO strava_activity_data ({cols}) SELECT {cols} FROM {STAGING}"
    assert body("load/mark_deleted.sql") == (
        "UPDATE strava_activity_data SET deleted_at = :deleted_at WHERE athlete_id = :athlete_id "
        "AND deleted_at IS NULL "
        f"AND start_date > :after AND start_date <= :until AND id NOT IN (SELECT id FROM {STAGING})"
    )
    # Reserved words are quoted by the Redshift preparer, never by hand.
    assert wh.render("SELECT 1 FROM {t}", DIALECT.identifier_preparer, t="user") == 'SELECT 1 FROM "user"'


def test_an_old_history_table_is_migrated_on_redshift(monkeypatch: pytest.MonkeyPatch) -> None:
    """A history without athlete_id (information_schema says so) gets the column and its values in one transaction."""
    real_answer = _Recorder.answer

    def old_history(self: _Recorder, sql: str) -> list[tuple[Any, ...]] | None:
        if "column_name = " in sql:
            return [(0,)]
        return real_answer(self, sql)

    monkeypatch.setattr(_Recorder, "answer", old_history)
    sessions: list[_Recorder] = []
    engine = sa.create_engine(URL, module=fake_redshift_connector(sessions), **engine_options(URL))
    assert wh.ensure_tables(engine) == WAREHOUSE_ID
    log = _normalised(sessions[0].log)
    at = log.index("ALTER TABLE strava_activity_stats_history ADD COLUMN athlete_id BIGINT")
    assert log[at + 1] == (
        "UPDATE strava_activity_stats_history SET athlete_id = t.athlete_id FROM strava_activity_data AS t "
        "WHERE t.id = strava_activity_stats_history.activity_id AND strava_activity_stats_history.athlete_id IS NULL"
    )
    assert log.index("COMMIT") > at + 1


# ------------------------------------------------------------------ every SQL file parses as Redshift

# Constructs sqlglot reads without complaint but Redshift rejects (or runs only on the leader node).
NOT_REDSHIFT = {
    r"\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b": "no IS DISTINCT FROM in Redshift",
    r"\bFILTER\s*\(\s*WHERE\b": "no aggregate FILTER clause",
    r"\bGENERATE_SERIES\s*\(": "leader-node only",
    r"\bSTRING_AGG\s*\(": "Redshift has LISTAGG",
    r"\bON\s+CONFLICT\b": "no upsert clause",
    r"::\s*JSONB?\b|\bJSONB\b": "no JSON type (SUPER instead)",
    r"\bILIKE\s+ANY\b|\bLIKE\s+ANY\b": "no LIKE ANY",
    r"\bQUALIFY\b": "DuckDB-only",
    r"\bEXCLUDE\s*\(": "DuckDB-only SELECT * EXCLUDE",
}


def _render_any(text: str) -> str:
    """Fill every ``{placeholder}`` as the pipeline would: a quoted identifier (``{columns}``, a list)."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: (
            wh.column_list(DIALECT.identifier_preparer, schema.STAGED_COLUMNS)
            if m.group(1) == "columns"
            else DIALECT.identifier_preparer.quote(f"x_{m.group(1)}")
        ),
        text,
    )


SQL_FILES = sorted(SQL_ROOT.rglob("*.sql"))


def test_there_are_sql_files_to_check() -> None:
    assert len(SQL_FILES) >= 10 and any(p.parent.name == "load" for p in SQL_FILES)


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(SQL_ROOT)))
def test_every_sql_file_parses_as_redshift(path: Path) -> None:
    text = _render_any(path.read_text(encoding="utf-8"))
    statements = [s for s in sqlglot.parse(text, read="redshift", error_level=sqlglot.ErrorLevel.RAISE) if s]
    assert len(statements) == 1, f"{path} must hold exactly one statement"
    sqlglot.transpile(text, read="redshift", write="redshift", unsupported_level=sqlglot.ErrorLevel.RAISE)
    code = re.sub(r"--[^\n]*", "", text)
    for pattern, why in NOT_REDSHIFT.items():
        assert not re.search(pattern, code, re.IGNORECASE), f"{path}: {why}"


# ------------------------------------------------------------------ the load subflow against a recording session


@pytest.fixture
def redshift(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, list[_Recorder]]]:
    """Warehouse and S3Bucket blocks for Redshift; engines get the recording DB-API."""
    sessions: list[_Recorder] = []
    module = fake_redshift_connector(sessions)
    real_get_engine = Warehouse.get_engine
    monkeypatch.setattr(Warehouse, "get_engine", lambda self, **kw: real_get_engine(self, module=module, **kw))
    suffix = uuid.uuid4().hex[:8]
    Warehouse(url=SecretStr(URL), schema_name="strava", iam_role_arn=ARN, region="eu-west-1").save(
        f"rs-{suffix}", overwrite=True
    )
    lake = S3Bucket(bucket_name=BUCKET, bucket_folder=FOLDER, credentials=AwsCredentials(region_name="eu-west-1"))
    lake.save(f"rs-lake-{suffix}", overwrite=True)
    yield f"rs-{suffix}", f"rs-lake-{suffix}", sessions


def _run_load(monkeypatch: pytest.MonkeyPatch, warehouse_block: str, lake_block: str, sessions: list[_Recorder]) -> Any:
    """Run the real load subflow; the validation gate's statements are bracketed in the log."""
    real = validation.run_validation.fn

    def marked(*args: Any, **kwargs: Any) -> Any:
        sessions[-1].mark("<validation>")
        try:
            return real(*args, **kwargs)
        finally:
            sessions[-1].mark("</validation>")

    monkeypatch.setattr(validation.run_validation, "fn", marked)
    observed = datetime(2025, 1, 1, tzinfo=UTC)
    return load_activities(
        warehouse_block, lake_block, STAGING_KEY, "20250101t000000_abcdef12", observed,
        (datetime(2024, 12, 1, tzinfo=UTC), observed), 450, ATHLETE,
    )  # fmt: skip


def _normalised(log: list[str]) -> list[str]:
    """Statements without ``--`` comments, whitespace collapsed; the gate's own SQL left out."""
    out: list[str] = []
    inside = False
    for entry in log:
        if entry in ("<validation>", "</validation>"):
            inside = entry == "<validation>"
            out.append(entry)
        elif not inside:
            sql, _, _params = entry.partition(" -- (")
            out.append(" ".join(re.sub(r"--[^\n]*", "", sql).split()))
    return out


def test_load_subflow_sends_this_sequence_on_one_session(
    redshift: tuple[str, str, list[_Recorder]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse_block, lake_block, sessions = redshift
    result = _run_load(monkeypatch, warehouse_block, lake_block, sessions)
    assert len(sessions) == 1, "prepare, load, checks, merge and drop must share ONE session (TEMP table)"
    assert sessions[0].connect_kwargs["timeout"] == 10  # the block's connect_timeout_seconds
    log = sessions[0].log
    cols = ", ".join(c.name for c in schema.STAGED_COLUMNS)
    ddl = [
        " ".join(str(CreateTable(t).compile(dialect=DIALECT)).split())
        for t in (
            schema.activity_table(sa.MetaData()),
            schema.stats_history_table(sa.MetaData()),
            wh.warehouse_table(sa.MetaData()),
            wh.validation_results_table(sa.MetaData()),
            wh.model_state_table(sa.MetaData()),
            # The enrichment's tables (tasks/entities): one per entity spec, then its state.
            *(spec.table_of(sa.MetaData()) for spec in ENTITY_SPECS),
            enrichment_state_table(sa.MetaData()),
        )
    ]
    s = STAGING
    expected: list[str | re.Pattern[str]] = [
        # The dialect's first-connect probe, the block's statement timeout, then its schema (use_schema).
        "select pg_catalog.version()", "select current_schema()", "show transaction isolation level", "ROLLBACK",
        "SET statement_timeout TO 1800000", "COMMIT",
        "CREATE SCHEMA IF NOT EXISTS strava", "SET search_path TO strava", "COMMIT",
        # prepare_staging: production, history and identity tables if missing (the history's
        # athlete_id migration is not needed: the column is there), then this run's TEMP staging table.
        re.compile(r"SELECT pg_catalog\.pg_class\.relname FROM pg_catalog\.pg_class .*"),  # has_table
        *ddl,
        # The models' inputs version starts at 0, once (tasks/warehouse/models.py).
        "INSERT INTO strava_elt_model_state (kind, version) SELECT 'inputs', 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM strava_elt_model_state WHERE kind = 'inputs')",
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND column_name = %s",
        "SELECT MIN(warehouse_id) FROM strava_elt_warehouse", "COMMIT", "ROLLBACK",
        "SELECT MIN(warehouse_id) FROM strava_elt_warehouse", "ROLLBACK",
        f"CREATE TEMP TABLE {s} (LIKE strava_activity_data)", "COMMIT", "ROLLBACK",
        # load_staging: column order check, COPY of the exact object, rows loaded; one transaction.
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s ORDER BY ordinal_position",
        f"COPY {s} FROM '{S3_OBJECT}' WITH CREDENTIALS AS 'aws_iam_role={ARN}' FORMAT AS PARQUET FILLRECORD",
        "SELECT pg_last_copy_count()", "COMMIT", "ROLLBACK",
        "<validation>", "</validation>",
        # merge_staging: counts, history, delete-then-insert, deletions, all of the run's athlete
        # only, then the athlete's row count for the watermark: ONE transaction.
        f"SELECT COUNT(*) FROM {s}",
        f"SELECT COUNT(*) FROM {s} AS s LEFT JOIN strava_activity_data AS t ON t.id = s.id AND t.athlete_id = %s "
        "WHERE t.id IS NULL",
        f"SELECT COUNT(*) FROM {s} AS s JOIN strava_activity_data AS t ON t.id = s.id AND t.athlete_id = %s "
        "WHERE t.row_hash <> s.row_hash OR t.row_hash IS NULL",
        f"SELECT COUNT(*) FROM {s} AS s JOIN strava_activity_data AS t ON t.id = s.id AND t.athlete_id = %s "
        "WHERE t.deleted_at IS NOT NULL",
        "INSERT INTO strava_activity_stats_history (activity_id, observed_at, kudos_count, comment_count, "
        "achievement_count, athlete_id) SELECT s.id, %s, s.kudos_count, s.comment_count, s.achievement_count, "
        f"CAST(%s AS BIGINT) FROM {s} AS s LEFT JOIN strava_activity_data AS t ON t.id = s.id AND t.athlete_id = %s "
        "WHERE t.id IS NULL "
        "OR COALESCE(t.kudos_count, -1) <> COALESCE(s.kudos_count, -1) "
        "OR COALESCE(t.comment_count, -1) <> COALESCE(s.comment_count, -1) "
        "OR COALESCE(t.achievement_count, -1) <> COALESCE(s.achievement_count, -1)",
        f"DELETE FROM strava_activity_data WHERE athlete_id = %s AND id IN (SELECT id FROM {s})",
        f"INSERT INTO strava_activity_data ({cols}) SELECT {cols} FROM {s}",
        "UPDATE strava_activity_data SET deleted_at = %s WHERE athlete_id = %s AND deleted_at IS NULL "
        f"AND start_date > %s AND start_date <= %s AND id NOT IN (SELECT id FROM {s})",
        "SELECT COUNT(*) AS total_rows, COUNT(deleted_at) AS deleted_rows, MAX(start_date) AS newest_start_date "
        "FROM strava_activity_data WHERE athlete_id = %s",
        # The gate's results, one row per check, in the merge's transaction (executemany).
        "INSERT INTO strava_validation_results ( athlete_id, run_key, checked_at, check_order, name, severity, "
        "operator, value_1, value_2, outcome, detail ) VALUES ( CAST(%s AS BIGINT), %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s )",
        "COMMIT", "ROLLBACK",
        # drop_staging, then engine.dispose() ends the session.
        f"DROP TABLE IF EXISTS {s}", "COMMIT", "ROLLBACK", "CLOSE",
    ]  # fmt: skip
    actual = _normalised(log)
    assert len(actual) == len(expected), "\n".join(actual)
    for got, want in zip(actual, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(got), got
        else:
            assert got == want
    # The gate ran on the same session, between the COPY's commit and the merge.
    gate = log[log.index("<validation>") + 1 : log.index("</validation>")]
    assert gate and any(s in q for q in gate)
    # Each check in its own read-only transaction: BEGIN READ ONLY first, then only reads, then ROLLBACK.
    checks = len(validation.load_checks())
    starts = [i for i, q in enumerate(gate) if q == "BEGIN READ ONLY"]
    assert starts[0] == 0 and len(starts) == checks
    assert all(gate[j - 1] == "ROLLBACK" for j in [*starts[1:], len(gate)])
    reads = [q for q in gate if q not in ("BEGIN READ ONLY", "ROLLBACK")]
    assert all(re.sub(r"--[^\n]*", "", q).lstrip().upper().startswith(("SELECT", "WITH")) for q in reads), reads
    assert result.merge.staged == 450
    recorded = next(q for q in log if "INSERT INTO strava_validation_results" in q)
    assert recorded.endswith(f"-- ({checks} rows)")
    # The COPY is logged, redacted; nothing that authenticates reaches the logs.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"Redshift COPY: COPY {s} FROM '{S3_OBJECT}'" in logged and "aws_iam_role=***" in logged
    assert ARN not in logged and PASSWORD not in logged


def test_copy_failure_is_reported_without_the_credentials(
    redshift: tuple[str, str, list[_Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse_block, lake_block, sessions = redshift
    real_answer = _Recorder.answer

    def failing(self: _Recorder, sql: str) -> list[tuple[Any, ...]] | None:
        if sql.startswith("COPY"):
            raise _Error(f"S3ServiceException: Access Denied for {ARN}")
        return real_answer(self, sql)

    monkeypatch.setattr(_Recorder, "answer", failing)
    with pytest.raises(wh.RedshiftCopyError) as caught:
        _run_load(monkeypatch, warehouse_block, lake_block, sessions)
    message = str(caught.value)
    assert "Access Denied" in message and S3_OBJECT in message
    assert ARN not in message and "aws_iam_role=***" in message and PASSWORD not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    log = _normalised(sessions[0].log)
    # The COPY's transaction rolls back; the staging table is still dropped; production untouched.
    copy_at = next(i for i, q in enumerate(log) if q.startswith("COPY"))
    assert log[copy_at + 1] == "ROLLBACK"
    assert f"DROP TABLE IF EXISTS {STAGING}" in log[copy_at:]
    assert not any(q.startswith(("DELETE FROM", "INSERT INTO strava_activity_data")) for q in log)


def test_copy_refuses_a_lake_in_another_region(
    redshift: tuple[str, str, list[_Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse_block, _, sessions = redshift
    name = f"rs-lake-us-{uuid.uuid4().hex[:6]}"
    S3Bucket(bucket_name=BUCKET, credentials=AwsCredentials(region_name="us-east-1")).save(name, overwrite=True)
    with pytest.raises(wh.RedshiftCopyError, match="us-east-1 differs from the Warehouse region eu-west-1"):
        _run_load(monkeypatch, warehouse_block, name, sessions)
    assert not any(q.startswith("COPY") for q in sessions[0].log)


def test_column_order_mismatch_is_refused_before_copy(
    redshift: tuple[str, str, list[_Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse_block, lake_block, sessions = redshift
    real_answer = _Recorder.answer

    def adopted(self: _Recorder, sql: str) -> list[tuple[Any, ...]] | None:
        if "ordinal_position" in sql:  # an old table with row_hash added after deleted_at
            names = [c.name for c in schema.ALL_COLUMNS if c.name != "row_hash"] + ["row_hash"]
            return [(n,) for n in names]
        return real_answer(self, sql)

    monkeypatch.setattr(_Recorder, "answer", adopted)
    with pytest.raises(wh.RedshiftCopyError, match="maps columns by position"):
        _run_load(monkeypatch, warehouse_block, lake_block, sessions)
    assert not any(q.startswith("COPY") for q in sessions[0].log)


# ------------------------------------------------------------------ the checks role covers the enrichment tables

_RELATION = ["relkind", "schema_oid", "schema", "rel_oid", "relname", "diststyle", "owner_id", "owner_name",
             "view_definition", "privileges"]  # fmt: skip


@dataclass
class _Catalog(_Recorder):
    """A session that answers like a catalog: the tables it created exist, the checks user does not yet."""

    created: set[str] = field(default_factory=set)

    def columns(self, sql: str) -> list[str] | None:
        return _RELATION if "from pg_catalog.pg_class c" in sql.lower() else None

    def answer(self, sql: str) -> list[tuple[Any, ...]] | None:
        s = " ".join(sql.lower().split())
        created = re.match(r'create table (?:\w+\.)?"?(\w+)', s)
        if created:
            self.created.add(created.group(1))
            return None
        if "from pg_catalog.pg_class c" in s:  # sqlalchemy-redshift's has_table
            name = re.search(r"relname = '(\w+)'", s)
            found = name is not None and name.group(1) in self.created
            return [("r", 1, "strava", 2, name.group(1), "EVEN", 1, "etl", None, None)] if found and name else []
        if s.endswith("select current_schema()"):  # the file's, after its comment
            return [("strava",)]
        if "from pg_user" in s or "has_table_privilege" in s:
            return [(0,)]  # no checks user yet, and it may read nothing yet
        return super().answer(sql)


def test_the_checks_user_is_granted_the_enrichment_tables_at_setup_on_redshift(monkeypatch: pytest.MonkeyPatch) -> None:
    """``strava-elt setup aws --checks-role``: the tables first, then SELECT on every one, the enrichment's too."""
    from tasks.quality.roles import ENRICHMENT_TABLES, create_checks_role

    sessions: list[_Recorder] = []
    module = fake_redshift_connector(sessions, _Catalog)
    real_get_engine = Warehouse.get_engine
    monkeypatch.setattr(Warehouse, "get_engine", lambda self, **kw: real_get_engine(self, module=module, **kw))
    block = f"rs-roles-{uuid.uuid4().hex[:8]}"
    Warehouse(url=SecretStr(URL), schema_name="strava", iam_role_arn=ARN, region="eu-west-1").save(block)

    said = create_checks_role(block, "strava_elt_checks")

    assert Warehouse.load(block).checks_role == "strava_elt_checks"
    assert len(sessions) == 1
    log = [s for s in _normalised(sessions[0].log) if not s.startswith(("select", "SELECT", "show"))]
    assert "CREATE USER strava_elt_checks PASSWORD DISABLE" in log
    assert "GRANT USAGE ON SCHEMA strava TO strava_elt_checks" in log
    expected = ["strava_enrichment_state", "strava_activity_detail", "strava_activity_laps",
                "strava_activity_streams", "strava_gear", "strava_athlete_zones"]  # fmt: skip
    assert set(expected) <= set(ENRICHMENT_TABLES)
    for table in ENRICHMENT_TABLES:
        created = next(i for i, s in enumerate(log) if s.startswith(f"CREATE TABLE {table} ("))
        granted = log.index(f"GRANT SELECT ON strava.{table} TO strava_elt_checks")
        assert created < granted, table  # created up front, then granted: complete from setup on
        assert table in said
        sqlglot.parse_one(log[created], read="redshift")
        sqlglot.parse_one(log[granted], read="redshift")
    # Only the project's tables: every grant names one of them.
    grants = [s for s in log if s.startswith("GRANT SELECT")]
    assert all(re.fullmatch(r"GRANT SELECT ON strava\.strava_\w+ TO strava_elt_checks", g) for g in grants), grants


def test_the_enrichment_grants_the_checks_user_its_tables_as_it_creates_them_on_redshift() -> None:
    """flows/enrich.py creates the tables, then grants what the checks user cannot read yet (here: all)."""
    from tasks.quality.roles import ENRICHMENT_TABLES, create_project_tables, set_role_sql

    sessions: list[_Recorder] = []
    engine = sa.create_engine(URL, module=fake_redshift_connector(sessions, _Catalog), **engine_options(URL))
    try:
        granted = create_project_tables(engine, "strava_elt_checks")
    finally:
        engine.dispose()
    assert set(ENRICHMENT_TABLES) <= set(granted)
    log = _normalised(sessions[0].log)
    for table in ENRICHMENT_TABLES:
        created = next(i for i, s in enumerate(log) if s.startswith(f"CREATE TABLE {table} ("))
        assert created < log.index(f"GRANT SELECT ON strava.{table} TO strava_elt_checks"), table
    plain = sa.create_engine(URL, module=fake_redshift_connector([], _Catalog), **engine_options(URL))
    assert create_project_tables(plain) == []  # no checks role: nothing granted
    plain.dispose()
    assert (
        str(set_role_sql(engine, "strava_elt_checks"))
        .strip()
        .endswith("SET LOCAL SESSION AUTHORIZATION strava_elt_checks")
    )
