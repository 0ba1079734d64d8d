"""Checks are read-only, proven: one query or nothing, and a read-only transaction on the server.

A check file ``DELETE FROM strava_activity_data; COMMIT; SELECT 0`` once emptied production
through ``strava-elt validate``. These tests run that file (and a data-modifying CTE) through
every way a check runs, on DuckDB and PostgreSQL, and count production afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from tasks import quality as v
from tests.conftest import WAREHOUSES, Env
from tests.test_validation import write_manifest

EMPTY_PRODUCTION = "DELETE FROM strava_activity_data; COMMIT; SELECT 0"
DELETING_CTE = "WITH d AS (DELETE FROM strava_activity_data RETURNING 1) SELECT COUNT(*) FROM d"
COUNT = "SELECT COUNT(*) FROM strava_activity_data"


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------- the tokenizer


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (EMPTY_PRODUCTION, "more than one statement"),
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("SELECT 1 /* ; */ ; -- x\n DROP TABLE t", "more than one statement"),
        (DELETING_CTE, "uses DELETE"),
        ("WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM u", "uses UPDATE"),
        ("SELECT * INTO copy_of_t FROM t", "uses INTO"),
        ("SELECT * FROM t FOR UPDATE", "uses UPDATE"),
        ("DROP TABLE strava_activity_data", "starts with 'DROP'"),
        ("PRAGMA database_size", "starts with 'PRAGMA'"),
        ("EXPLAIN ANALYZE DELETE FROM t", "starts with 'EXPLAIN'"),
        ("SELECT set_config('search_path', 'elsewhere', false)", "calls set_config()"),
        ("SELECT 1delete", "uses DELETE"),  # PostgreSQL < 15 reads this as SELECT 1 delete
        ("SELECT 'open", "unterminated string"),
        ('SELECT "open', "unterminated"),
        ("SELECT 1 /* open", "unterminated /* comment"),
        ("SELECT $x$ open", "unterminated $x$ string"),
        ("-- nothing but a comment", "holds no statement"),
        # Strings and comments that one server ends where another does not: every reading must pass.
        ("SELECT E'\\\\'; DELETE FROM t; --'", "more than one statement"),  # E'\\' is one backslash
        ("SELECT E'\\'; DELETE FROM t; --'", None),  # one string: \' escapes the quote
        ("SELECT '\\' , ' ; DELETE FROM t; -- '", "backslashes escaping quotes"),
        ("SELECT 1 /* /* */ ; DELETE FROM t; */", "comments that do not nest"),
        ("SELECT 1 /* /* */ ' */ ; DELETE FROM t; -- '", "more than one statement"),
    ],
)
def test_sql_that_is_not_one_read_only_query_is_refused(sql: str, reason: str | None) -> None:
    if reason is None:
        v.check_read_only(sql, "fine.sql")
        return
    with pytest.raises(v.UnsafeCheckSQL, match="^bad.sql .*") as caught:
        v.check_read_only(sql, "bad.sql")
    assert reason in str(caught.value)
    assert "one read-only query" in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1;",
        "SELECT 1; -- the end\n/* really */",
        "VALUES (1)",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT updated_at, deleted_at, created, settings, intomax, commit_count FROM t",
        'SELECT \'DELETE FROM t; COMMIT\' AS "update", t.set, "drop" FROM t',
        "SELECT replace(name, 'a', 'b'), 1e-5, x::text, :param, $1 FROM t",
        "SELECT $$ ; DROP $$ AS a, $tag$ it's $tag$ AS b, a$b$ FROM t",
        "SELECT 1 /* DELETE /* nested */ */ -- ; COMMIT",
        "with recent as (select * from {staging}) select count(*) from recent",
    ],
)
def test_read_only_queries_pass_whole_words_only(sql: str) -> None:
    v.check_read_only(sql, "good.sql")


def test_every_shipped_check_file_passes() -> None:
    for check in v.load_checks():  # load_checks refuses an unsafe file: this loads them all
        for path in (check.sql, check.compare_sql):
            if path is not None:
                v.check_read_only(path.read_text(encoding="utf-8"), path.name)


def test_a_refused_file_refuses_the_whole_manifest(tmp_path: Path) -> None:
    directory = write_manifest(
        tmp_path,
        [
            {"name": "fine", "severity": "warn", "sql": "fine.sql", "operator": "equals", "threshold": 0},
            {"name": "evil", "severity": "warn", "sql": "fine.sql", "compare_sql": "evil.sql", "operator": "equals"},
        ],
        {"fine.sql": "SELECT 0", "evil.sql": EMPTY_PRODUCTION},
    )
    with pytest.raises(v.ValidationConfigError, match=r"#2 \(evil\): .*evil\.sql holds more than one statement"):
        v.load_checks(directory)


# --------------------------------------------------------------------------- the server's read-only transaction


def test_the_transaction_itself_is_read_only(env: Env) -> None:
    """Below the tokenizer: the connection checks run on refuses a data-modifying CTE by itself."""
    env.run()
    with load_block(Warehouse, env.warehouse_block).engine() as engine:
        with pytest.raises(sa.exc.DBAPIError, match="read-only") as caught, v.read_only_connection(engine) as conn:
            conn.exec_driver_sql(DELETING_CTE)
        if env.warehouse == "postgres":
            assert "cannot execute" in str(caught.value) and "in a read-only transaction" in str(caught.value)
        with v.read_only_connection(engine) as conn:  # reading is fine, and the session is usable again
            assert conn.exec_driver_sql(COUNT).scalar() == 450
    assert env.query(COUNT)[0][0] == 450


def test_a_check_built_around_the_manifest_is_refused_when_it_runs(env: Env, tmp_path: Path) -> None:
    """A file changed after the manifest was read: the run-time guard fails that check alone."""
    env.run()
    evil = tmp_path / "evil.sql"
    evil.write_text(DELETING_CTE, encoding="utf-8")
    check = v.Check("evil", "test", "halt", "equals", sql=evil, threshold=0)
    with load_block(Warehouse, env.warehouse_block).engine() as engine:
        result = v.run_check(engine, check)
    assert result.halts
    assert result.detail.startswith("check could not run: UnsafeCheckSQL: evil.sql uses DELETE")
    assert env.query(COUNT)[0][0] == 450


# --------------------------------------------------------------------------- every way in, production counted


def test_validate_command_refuses_and_production_stays(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    env.run()
    block = ["--warehouse-block", env.warehouse_block]
    for name, text, reason in (
        ("empty_production.sql", EMPTY_PRODUCTION, "holds more than one statement"),
        ("deleting_cte.sql", DELETING_CTE, "uses DELETE"),
    ):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        for severity in ("warn", "halt"):
            assert main(["validate", str(path), "0", "equals", severity, *block]) == 1
            err = capsys.readouterr().err
            assert "ValidationConfigError" in err and f"{path} {reason}" in err, err
        assert env.query(COUNT)[0][0] == 450
    # As the second script, too.
    count = tmp_path / "count.sql"
    count.write_text(COUNT, encoding="utf-8")
    assert main(["validate", str(count), str(tmp_path / "empty_production.sql"), "equals", "warn", *block]) == 1
    assert "empty_production.sql holds more than one statement" in capsys.readouterr().err
    assert env.query(COUNT)[0][0] == 450


def test_a_manifest_check_that_writes_stops_the_run_before_the_merge(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.run()
    before = env.production()
    mark = env.watermark()
    env.emu.add_activities(3)
    directory = write_manifest(
        tmp_path / "evil",
        [{"name": "sneaky", "severity": "warn", "sql": "sneaky.sql", "operator": "equals", "threshold": 0}],
        {"sneaky.sql": EMPTY_PRODUCTION},
    )
    monkeypatch.setenv("STRAVA_ELT_VALIDATION_DIR", str(directory))
    with pytest.raises(v.ValidationConfigError, match=r"\(sneaky\): .*sneaky\.sql holds more than one statement"):
        env.run()
    assert env.production() == before  # neither emptied nor merged
    assert env.watermark() == mark
