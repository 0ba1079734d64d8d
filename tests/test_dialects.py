"""The dialect owns every warehouse difference: read-only transactions, locks, migrations, its options."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from blocks.warehouse import BACKENDS, Backend, Warehouse, backend_of
from tasks.warehouse import SQL_DIR, dialects
from tests.conftest import split_pg_url


def _warehouse(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Warehouse:
    if kind == "duckdb":
        return Warehouse(url=SecretStr(f"duckdb:///{tmp_path / 'w.duckdb'}"), schema_name="strava")
    url, schema_name = split_pg_url(request.getfixturevalue("pg_url"))
    return Warehouse(url=SecretStr(url), schema_name=schema_name)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_begin_read_only_lets_reads_through_and_refuses_writes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with _warehouse(kind, tmp_path, request).engine() as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        dialect = dialects.dialect_for(engine)
        with engine.connect() as conn:
            dialect.begin_read_only(conn)
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
            with pytest.raises(sa.exc.DBAPIError, match="(?i)read.only"):
                conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.rollback()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1


def test_what_differs_is_declared_by_the_dialect_classes(tmp_path: Path) -> None:
    assert dialects.DuckDBDialect.alters_column_types and dialects.PostgresDialect.alters_column_types
    assert not dialects.RedshiftDialect.alters_column_types  # no ALTER COLUMN TYPE on Redshift
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'x.duckdb'}")
    try:
        duck = dialects.dialect_for(engine, iam_role_arn="arn:aws:iam::1:role/r", region="eu-west-1")
        assert type(duck) is dialects.DuckDBDialect  # COPY options matter only to Redshift
        assert duck.locked_message(_dbapi_error("IO Error: Could not set lock on file")) is not None
        assert duck.locked_message(_dbapi_error("Catalog Error: Table does not exist")) is None
        assert dialects.SqlDialect(engine).locked_message(_dbapi_error("lock")) is None
    finally:
        engine.dispose()


def test_the_gate_s_differences_are_declared_by_the_dialect_classes() -> None:
    """The checks role and the check-function lists live on the dialect; the files they name exist."""
    assert dialects.DuckDBDialect.checks_role_sql is None  # no roles: the guard and the read-only transaction
    postgres, redshift = dialects.PostgresDialect.checks_role_sql, dialects.RedshiftDialect.checks_role_sql
    assert postgres is not None and postgres.member is not None  # the loader joins the role to SET ROLE
    assert redshift is not None and redshift.member is None  # SET SESSION AUTHORIZATION: a superuser loader
    assert postgres.lock is not None and redshift.lock is None  # Redshift: no advisory locks; the grant is retried
    for name, cls in dialects.dialect_classes().items():
        assert not cls.check_functions & cls.denied_check_functions, name
        declared = cls.checks_role_sql
        files = [] if declared is None else [declared.exists, declared.create, declared.set_role, declared.member]
        files += [] if declared is None else [declared.lock, declared.lock_table]
        for relative in [cls.models_lock, *files]:
            if relative is not None:
                assert (SQL_DIR / relative).is_file(), f"{name}: {relative}"
    assert dialects.dialect_classes()["duckdb"] is dialects.DuckDBDialect
    with pytest.raises(TypeError):
        dialects.dialect_classes()["sqlite"] = dialects.SqlDialect  # type: ignore[index]


def _dbapi_error(message: str) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("SELECT 1", None, Exception(message))


def test_the_blocks_backends_are_the_one_place_that_names_engine_needs() -> None:
    assert backend_of("duckdb:////tmp/w.duckdb").file_database
    assert backend_of("postgresql+psycopg://u@h/db").connect_timeout_arg == "connect_timeout"
    assert backend_of("redshift+redshift_connector://u@h/db").single_session
    assert backend_of("mysql+pymysql://u@h/db") == Backend()  # unknown: plain defaults
    assert set(BACKENDS) == set(dialects._DIALECTS)
