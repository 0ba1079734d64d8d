"""Checks cannot reach outside the data: the function guard and, on PostgreSQL, the checks role.

``SELECT count(*) FROM (SELECT lo_import('/etc/passwd')) t`` once passed the keyword filter and
ran inside the read-only transaction. Here every such call is refused before it runs: in the
manifest, at run time and in ``strava-elt validate``, on PostgreSQL and DuckDB; and a gate run
as the checks role cannot read a table outside the project's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from tasks import quality as v
from tasks.quality import guard, roles
from tests.conftest import Env
from tests.test_validation import write_manifest

OUTSIDE = "/etc/passwd"
POSTGRES_REACHING_OUT = {
    "lo_import": f"SELECT COUNT(*) FROM (SELECT lo_import('{OUTSIDE}')) t",
    "pg_read_file": f"SELECT LENGTH(pg_read_file('{OUTSIDE}'))",
    "dblink": "SELECT COUNT(*) FROM dblink('dbname=test', 'SELECT 1') AS t(x INT)",
    "pg_sleep": "SELECT COUNT(*) FROM (SELECT pg_sleep(3600)) t",
    "COPY": "COPY (SELECT 1) TO PROGRAM 'touch /tmp/strava-elt-copy-to-program'",
}
DUCKDB_REACHING_OUT = {
    "read_csv": f"SELECT COUNT(*) FROM read_csv('{OUTSIDE}')",
    "read_text": f"SELECT COUNT(*) FROM read_text('{OUTSIDE}')",
    "getenv": "SELECT LENGTH(getenv('HOME'))",
    "reads a string as a table": f"SELECT COUNT(*) FROM '{OUTSIDE}'",
    "as a table, which DuckDB would read": f'SELECT COUNT(*) FROM strava_activity_data, "{OUTSIDE}"',
    "qualified function or method": "SELECT LENGTH('HOME'.getenv())",
}
COUNT = "SELECT COUNT(*) FROM strava_activity_data"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _reaching_out(env: Env) -> dict[str, str]:
    return POSTGRES_REACHING_OUT if env.warehouse == "postgres" else DUCKDB_REACHING_OUT


def _large_objects(env: Env) -> int:
    return int(env.query("SELECT COUNT(*) FROM pg_largeobject_metadata")[0][0]) if env.warehouse == "postgres" else 0


# --------------------------------------------------------------------------- the allowlist


def test_no_function_that_reaches_outside_is_allowed_on_any_dialect() -> None:
    for dialect, denied in guard.DENIED_BY_DIALECT.items():
        assert not denied & guard.allowed_functions(dialect), dialect
        assert not denied & guard.allowed_functions(None), dialect
        for name in sorted(denied):
            with pytest.raises(v.UnsafeCheckSQL, match=rf"calls {name}\(\), which reaches outside the data"):
                v.check_read_only(f"SELECT {name}(1)", "x.sql", dialect)


@pytest.mark.parametrize("dialect", [None, "duckdb", "postgresql", "redshift"])
def test_every_shipped_check_calls_only_allowed_functions(dialect: str | None) -> None:
    for check in v.load_checks():
        for path in (check.sql, check.compare_sql):
            if path is not None:
                v.check_read_only(path.read_text(encoding="utf-8"), path.name, dialect)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT foo(1)", "calls foo(), which is not on the list"),
        ("SELECT pg_catalog.lo_import('/etc/passwd')", "qualified function or method"),
        ("SELECT \"lo_import\"('/etc/passwd')", 'calls a quoted name ("lo_import"())'),
        ("SELECT lo_import /* hide */ ('/etc/passwd')", "calls lo_import()"),
        ("SELECT query_to_xml('DELETE FROM t', true, true, '')", "calls query_to_xml()"),
        ("SELECT * FROM t JOIN 'https://example.com/x.csv' u ON true", "reads a string as a table"),
        ("SELECT to_char(now(), 'YYYY')", "calls now()"),
    ],
)
def test_calls_off_the_list_are_refused(sql: str, reason: str) -> None:
    with pytest.raises(v.UnsafeCheckSQL) as caught:
        v.check_read_only(sql, "bad.sql")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*), 'a', 'b' FROM t WHERE name = 'x'",
        "SELECT EXTRACT(EPOCH FROM CAST('2020-01-01' AS TIMESTAMP)), TRIM(BOTH 'x' FROM 'xax')",
        "SELECT CAST(x AS NUMERIC(10, 2)), STDDEV_SAMP(y) OVER (PARTITION BY z) FROM {staging} s",
        "SELECT * FROM t AS u(a, b) WHERE a IN (1, 2) AND EXISTS (SELECT 1)",
        'SELECT COUNT(*) FROM "strava_activity_data"',
    ],
)
def test_ordinary_checks_pass(sql: str) -> None:
    v.check_read_only(sql, "good.sql")


def test_a_dialect_only_function_is_refused_on_the_others() -> None:
    v.check_read_only("SELECT age(x) FROM t", "pg.sql", "postgresql")
    with pytest.raises(v.UnsafeCheckSQL, match=r"calls age\(\)"):
        v.check_read_only("SELECT age(x) FROM t", "pg.sql", "duckdb")


# --------------------------------------------------------------------------- refused before they run, on the servers


def test_the_manifest_refuses_them_and_the_run_stops_before_anything_ran(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.run()
    before, objects = env.production(), _large_objects(env)
    for name, sql in _reaching_out(env).items():
        directory = write_manifest(
            tmp_path / name.replace(" ", "_"),
            [{"name": "outside", "severity": "warn", "sql": "outside.sql", "operator": "equals", "threshold": 0}],
            {"outside.sql": sql},
        )
        with pytest.raises(v.ValidationConfigError, match=r"outside\.sql") as caught:
            v.load_checks(directory)
        assert name in str(caught.value), caught.value
        monkeypatch.setenv("STRAVA_ELT_VALIDATION_DIR", str(directory))
        with pytest.raises(v.ValidationConfigError):
            env.run()  # pg_sleep(3600) would hang here: the guard's error comes first
    assert env.production() == before
    assert _large_objects(env) == objects  # no lo_import ran
    assert not Path("/tmp/strava-elt-copy-to-program").exists()


def test_a_file_changed_after_the_manifest_is_refused_when_it_runs(env: Env, tmp_path: Path) -> None:
    env.run()
    objects = _large_objects(env)
    with load_block(Warehouse, env.warehouse_block).engine() as engine:
        for name, sql in _reaching_out(env).items():
            path = tmp_path / "late.sql"
            path.write_text(sql, encoding="utf-8")
            result = v.run_check(engine, v.Check("late", "test", "halt", "equals", sql=path, threshold=0))
            assert result.halts
            assert result.detail.startswith("check could not run: UnsafeCheckSQL: late.sql"), result.detail
            assert name in result.detail
    assert _large_objects(env) == objects


def test_the_validate_command_refuses_them_before_connecting(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    env.run()
    objects = _large_objects(env)
    for i, (name, sql) in enumerate(_reaching_out(env).items()):
        path = tmp_path / f"adhoc_{i}.sql"
        path.write_text(sql, encoding="utf-8")
        assert main(["validate", str(path), "0", "equals", "warn", "--warehouse-block", env.warehouse_block]) == 1
        err = capsys.readouterr().err
        assert "ValidationConfigError" in err and name in err, err
    assert _large_objects(env) == objects


# --------------------------------------------------------------------------- the checks role (PostgreSQL)


@pytest.mark.parametrize("warehouse", [pytest.param("postgres", marks=pytest.mark.postgres)])  # DuckDB: next test
def test_the_checks_role_reads_only_the_projects_tables(env: Env, tmp_path: Path) -> None:
    from flows.cli import main

    env.run()
    role = f"strava_elt_checks_{uuid.uuid4().hex[:8]}"
    block = load_block(Warehouse, env.warehouse_block)
    with block.engine() as engine, engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE outside_secret (x INT)")  # in the same schema, not the project's
    try:
        assert main(["setup", "postgres", "--url", _url(env), "--schema", _schema(env), "--warehouse-block",
                     env.warehouse_block, "--checks-role", role]) == 0  # fmt: skip
        block = load_block(Warehouse, env.warehouse_block)
        assert block.checks_role == role
        secret, production = tmp_path / "secret.sql", tmp_path / "production.sql"
        secret.write_text("SELECT COUNT(*) FROM outside_secret", encoding="utf-8")
        production.write_text(COUNT, encoding="utf-8")
        with block.engine() as engine:
            as_role = v.run_check(engine, v.Check("s", "t", "halt", "equals", sql=secret, threshold=0), role=role)
            as_loader = v.run_check(engine, v.Check("s", "t", "halt", "equals", sql=secret, threshold=0))
            reads = v.run_check(engine, v.Check("p", "t", "halt", "equals", sql=production, threshold=450), role=role)
            with v.read_only_connection(engine, role) as conn:
                assert conn.exec_driver_sql("SELECT current_user").scalar() == role
        assert as_role.halts and "permission denied for table outside_secret" in as_role.detail, as_role.detail
        assert as_loader.outcome == v.PASSED
        assert reads.outcome == v.PASSED, reads.detail
        # A whole run gates as the role: its staging table is granted by the run, production read.
        env.emu.add_activities(2)
        summary = env.run()
        assert summary["inserted"] == 2
        assert all(c["outcome"] != v.FAILED or "permission" not in c["detail"] for c in summary["checks"])
        assert env.query(
            "SELECT COUNT(*) FROM information_schema.role_table_grants WHERE grantee = ? AND table_name = ?",
            [role, "outside_secret"],
        ) == [(0,)]
    finally:
        with load_block(Warehouse, env.warehouse_block).engine() as engine, engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("warehouse", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_checks_role_reads_the_enrichment_tables_from_setup_and_an_enrichment_batch_passes_as_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup before any run: the tables are made and granted up front; the enrichment's checks then run as the role."""
    from flows.cli import main
    from tasks.entities import store

    role = f"strava_elt_checks_{uuid.uuid4().hex[:8]}"
    try:
        assert main(["setup", "postgres", "--url", _url(env), "--schema", _schema(env), "--warehouse-block",
                     env.warehouse_block, "--checks-role", role]) == 0  # fmt: skip
        readable = {
            table: env.query("SELECT has_table_privilege(?, ?, 'SELECT')", [role, f"{_schema(env)}.{table}"])[0][0]
            for table in roles.ENRICHMENT_TABLES
        }
        assert len(readable) >= 10 and all(readable.values()), readable  # detail ... zones, enrichment state

        seen: list[tuple[str | None, v.CheckResult]] = []
        real = store.run_check

        def recorded(engine: sa.Engine, check: v.Check, **kwargs: Any) -> v.CheckResult:
            result = real(engine, check, **kwargs)
            seen.append((kwargs.get("role"), result))
            return result

        monkeypatch.setattr(store, "run_check", recorded)
        summary = env.run(enrich=True, enrich_max_requests=40)
        enrichment = summary["enrichment"]
        assert enrichment["details"] > 0 and enrichment["streams"] > 0, enrichment
        assert seen and {r for r, _ in seen} == {role}  # every entity check of every batch, as the role
        assert not [c.detail for _, c in seen if "permission" in c.detail]
        halts = [c for _, c in seen if c.severity == "halt"]
        assert halts and {c.outcome for c in halts} == {v.PASSED}, [(c.name, c.detail) for c in halts]
        with load_block(Warehouse, env.warehouse_block).engine() as engine:
            with v.read_only_connection(engine, role) as conn:  # the channel the checks read through
                assert conn.exec_driver_sql("SELECT current_user").scalar() == role
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM strava_enrichment_state").scalar() > 0
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM strava_activity_streams").scalar() > 0
    finally:
        with load_block(Warehouse, env.warehouse_block).engine() as engine, engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')


def _url(env: Env) -> str:
    from tests.conftest import split_pg_url

    assert env.pg_url is not None
    return split_pg_url(env.pg_url)[0]


def _schema(env: Env) -> str:
    from tests.conftest import split_pg_url

    assert env.pg_url is not None
    return split_pg_url(env.pg_url)[1]


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_duckdb_refuses_a_checks_role(env: Env) -> None:
    with load_block(Warehouse, env.warehouse_block).engine() as engine:
        with pytest.raises(ValueError, match="a checks role is for PostgreSQL and Redshift"):
            with v.read_only_connection(engine, "strava_elt_checks"):
                pass


def test_redshift_runs_the_checks_as_the_checks_user() -> None:
    engine = sa.create_engine("redshift+redshift_connector://etl:pw@cluster.example:5439/dev")
    assert (
        str(roles.set_role_sql(engine, "strava_elt_checks"))
        .strip()
        .endswith("SET LOCAL SESSION AUTHORIZATION strava_elt_checks")
    )
    from tasks import warehouse as wh

    for name in (
        "create_redshift.sql",
        "exists_redshift.sql",
        "grant_select.sql",
        "grant_usage.sql",
        "set_redshift.sql",
    ):
        text = wh.render(
            wh.read_sql(f"checks_role/{name}"), engine.dialect.identifier_preparer, role="r", schema="s", table="t"
        )
        sqlglot.parse_one(text.replace(":role", "'r'"), read="redshift")  # Redshift's grammar accepts it


# --------------------------------------------------------------------------- concurrent grants (PostgreSQL)


class Grants:
    """A fresh schema (the ``pg_url`` fixture), a checks role and sessions named so the test sees who waits."""

    def __init__(self, pg_url: str) -> None:
        self.url = pg_url
        self.tag = uuid.uuid4().hex[:8]
        self.role = f"strava_elt_checks_{self.tag}"
        self.admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            self.schema = str(conn.exec_driver_sql("SELECT current_schema()").scalar())
            conn.exec_driver_sql(f'CREATE ROLE "{self.role}" NOLOGIN')
            conn.exec_driver_sql("CREATE TABLE strava_activity_data (x INT)")  # a project table

    def engine(self, name: str) -> sa.Engine:
        """An engine whose sessions show ``application_name`` ``<name>-<tag>`` in pg_stat_activity."""
        return sa.create_engine(self.url, connect_args={"application_name": f"{name}-{self.tag}"})

    def wait_until_blocked(self, name: str, timeout: float = 20.0) -> str:
        """Wait until session ``name`` waits on a lock; return what it waits on (``advisory``, ``transactionid``...)."""
        deadline = time.monotonic() + timeout
        with self.admin.connect() as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    sa.text(
                        "SELECT wait_event FROM pg_stat_activity "
                        "WHERE application_name = :name AND wait_event_type = 'Lock'"
                    ),
                    {"name": f"{name}-{self.tag}"},
                ).first()
                if row is not None:
                    return str(row[0])
                time.sleep(0.02)
        raise AssertionError(f"session {name} never waited on a lock")

    def holds(self, table: str) -> bool:
        with self.admin.connect() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT has_table_privilege(:role, :table, 'SELECT')"),
                    {"role": self.role, "table": f'"{self.schema}"."{table}"'},
                ).scalar()
            )

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{self.role}"')
            conn.exec_driver_sql(f'DROP ROLE "{self.role}"')
        self.admin.dispose()


@pytest.fixture
def grants(pg_url: str) -> Iterator[Grants]:
    made = Grants(pg_url)
    try:
        yield made
    finally:
        made.close()


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.postgres
def test_two_sessions_granting_one_table_at_once_is_the_race(grants: Grants) -> None:
    """Plain GRANTs: the second waits for the first's transaction, then fails when it commits."""
    grant = f'GRANT SELECT ON "{grants.schema}".strava_activity_data TO "{grants.role}"'
    first, second = grants.engine("first"), grants.engine("second")
    with first.connect() as conn:
        conn.exec_driver_sql(grant)  # SQLAlchemy's transaction stays open until commit
        thread, out = _in_thread(lambda: _plain_grant(second, grant))
        assert grants.wait_until_blocked("second") in ("transactionid", "tuple")
        conn.commit()
    thread.join(30)
    assert "tuple concurrently updated" in str(out.get("error")), out


def _plain_grant(engine: sa.Engine, grant: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(grant)


@pytest.mark.postgres
def test_the_runs_grants_wait_for_each_other_and_grant_once(grants: Grants) -> None:
    first, second = grants.engine("first"), grants.engine("second")
    with first.connect() as conn:
        assert roles.grant_checks_role(conn, grants.role, ["strava_activity_data"]) == ["strava_activity_data"]
        # the first run's transaction is still open: the second waits on the lock, not on the table's row
        thread, out = _in_thread(lambda: roles.ensure_checks_grants(second, grants.role))
        assert grants.wait_until_blocked("second") == "advisory"
        conn.commit()
    thread.join(30)
    assert out == {"result": []}  # it read the privilege again under the lock: nothing left to grant
    assert grants.holds("strava_activity_data")


@pytest.mark.postgres
def test_a_grant_racing_a_session_outside_the_lock_is_retried_once(
    grants: Grants, caplog: pytest.LogCaptureFixture
) -> None:
    """Another session (an operator, another tool) grants on the table without the project's lock."""
    grant = f'GRANT SELECT ON "{grants.schema}".strava_activity_data TO "{grants.role}"'
    outsider, run = grants.engine("outsider"), grants.engine("run")
    with outsider.connect() as conn:
        conn.exec_driver_sql(grant)
        thread, out = _in_thread(lambda: roles.ensure_checks_grants(run, grants.role))
        assert grants.wait_until_blocked("run") in ("transactionid", "tuple")
        conn.commit()
    thread.join(30)
    assert out == {"result": []}, out  # the first attempt failed on the race; the retry found it granted
    assert grants.holds("strava_activity_data")
    assert any("raced another session (tuple concurrently updated)" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_a_run_finding_every_privilege_held_takes_no_lock(grants: Grants) -> None:
    with grants.engine("setup").begin() as conn:
        roles.grant_checks_role(conn, grants.role, ["strava_activity_data"])
    with grants.engine("holder").connect() as holder:
        holder.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('strava_elt.checks_role'))")
        started = time.monotonic()
        with grants.engine("run").begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            assert roles.grant_checks_role(conn, grants.role, ["strava_activity_data"]) == []
        assert time.monotonic() - started < 5
        holder.rollback()


@pytest.mark.postgres
def test_parallel_runs_grant_each_new_table_once_and_none_fails(grants: Grants) -> None:
    """Eight sessions at once, three times over new tables (a first parallel round; models rebuilt)."""
    engines = [grants.engine(f"run{i}") for i in range(8)]
    for round_ in range(3):
        tables = [f"model_{round_}_{i}" for i in range(4)]
        with grants.admin.connect() as conn:
            for table in tables:
                conn.exec_driver_sql(f"CREATE TABLE {table} (x INT)")
        barrier = threading.Barrier(len(engines))

        def run(engine: sa.Engine, tables: list[str] = tables, barrier: threading.Barrier = barrier) -> list[str]:
            barrier.wait(30)
            return roles.ensure_checks_grants(engine, grants.role, tables)

        started = [_in_thread(lambda e=e: run(e)) for e in engines]  # type: ignore[misc]
        for thread, _ in started:
            thread.join(60)
        outs = [out for _, out in started]
        assert [o for o in outs if "error" in o] == []
        granted = [t for o in outs for t in o["result"]]
        assert sorted(granted) == sorted([*tables, *(["strava_activity_data"] if round_ == 0 else [])])
        assert all(grants.holds(t) for t in tables)
