"""Every row, check, model, dashboard and watermark belongs to its (warehouse, athlete).

Two emulated athletes (different seeds, ids and credentials) share one warehouse and one lake;
one athlete meets a second, empty warehouse; a future-dated activity; a DuckDB file another
process holds. Real flows, the emulator over HTTP, DuckDB files and PostgreSQL schemas.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.artifacts import Artifact
from prefect.variables import Variable

from emulator import StravaEmulator
from tasks import warehouse as wh
from tasks.insight import notify
from tasks.state import watermark as wm
from tests.conftest import PG_URL, WAREHOUSES, Env, make_env, split_pg_url, warehouse_pg_url

LIST_PATH = "/api/v3/athlete/activities"
ATHLETE_A, ATHLETE_B = 3_100_000_001, 3_100_000_002


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    """Every warehouse test here runs on DuckDB and on PostgreSQL (marked ``postgres``)."""
    return str(request.param)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _newest(emu: StravaEmulator) -> datetime:
    return max(_ts(a["start_date"]) for a in emu.activities)


def rows_of(env: Env, athlete_id: int) -> dict[int, dict[str, Any]]:
    """The athlete's rows in production (deleted ones too)."""
    return {i: r for i, r in env.production().items() if r["athlete_id"] == athlete_id}


def assert_exact(env: Env) -> None:
    """The athlete's live rows are exactly its emulator's activities, with their newest values."""
    athlete = env.emu.athlete["id"]
    live = {i: r for i, r in rows_of(env, athlete).items() if r["deleted_at"] is None}
    expected = {a["id"]: a for a in env.emu.activities}
    assert set(live) == set(expected), (len(live), len(expected))
    for activity_id, activity in expected.items():
        assert live[activity_id]["name"] == activity["name"]
        assert live[activity_id]["kudos_count"] == activity["kudos_count"]
        assert live[activity_id]["start_date"] == _ts(activity["start_date"])
    # The watermark: the newest start_date loaded (a deleted activity's too), never past the run.
    now = datetime.now(UTC)
    mark = env.watermark()
    assert (
        mark is not None
        and max(t for t in map(_ts, (a["start_date"] for a in expected.values())) if t <= now) <= mark <= now
    )


def second_athlete(env: Env, tmp_path: Path, **emulator: Any) -> Iterator[Env]:
    """Another athlete, with its own emulator and StravaCredentials block, in ``env``'s warehouse and lake."""
    from tasks.setup import setup_emulator_blocks

    emu = StravaEmulator(**emulator)
    emu.start()
    suffix = uuid.uuid4().hex[:10]
    names = (f"strava-b-{suffix}", f"unused-lake-{suffix}", f"unused-warehouse-{suffix}")
    setup_emulator_blocks(tmp_path / "athlete-b", emu, names)  # only its Strava block is used
    try:
        yield Env(emu, env.home, names[0], env.lake_block, env.warehouse_block, pg_url=env.pg_url)
    finally:
        emu.stop()


def dashboard_data(env: Env, athlete_id: int) -> tuple[str, dict[str, Any]]:
    page = (env.lake_dir / "dashboards" / f"athlete_id={athlete_id}" / "dashboard.html").read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S)
    assert match
    return page, json.loads(match.group(1))


# --------------------------------------------------------------------------- two athletes, one warehouse and lake


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest, warehouse: str) -> Iterator[tuple[Env, Env]]:
    """Athletes A (450 activities, seed 42) and B (300, seed 7; own client and tokens): one warehouse, one lake."""
    pg = warehouse_pg_url(request, warehouse)
    for a in make_env(tmp_path, pg_url=pg, activities=450, seed=42, athlete_id=ATHLETE_A):
        for b in second_athlete(
            a, tmp_path, activities=300, seed=7, athlete_id=ATHLETE_B, client_id="67890",
            client_secret="secret-b", refresh_token="refresh-b",
        ):  # fmt: skip
            yield a, b


def figures(env: Env, title: str, summary: dict[str, Any]) -> str:
    """One line of the two-athlete test's figures: the run's counts, then rows per athlete."""
    rows = {x: list(rows_of(env, x).values()) for x in (ATHLETE_A, ATHLETE_B)}
    live = {x: sum(r["deleted_at"] is None for r in rows[x]) for x in rows}
    deleted = {x: len(rows[x]) - live[x] for x in rows}
    return (
        f"{title:<32} {summary['inserted']:>3} inserted, {summary['deleted']} marked deleted | live rows "
        f"A {live[ATHLETE_A]}, B {live[ATHLETE_B]}; marked deleted A {deleted[ATHLETE_A]}, B {deleted[ATHLETE_B]}"
    )


def test_two_athletes_share_one_warehouse_and_lake(
    pair: tuple[Env, Env], tmp_path: Path, warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    a, b = pair
    assert not {x["id"] for x in a.emu.activities} & {x["id"] for x in b.emu.activities}
    lines: list[str] = []

    def step(title: str, summary: dict[str, Any]) -> None:
        lines.append(figures(a, title, summary))

    first_a = a.run()
    step("A first load", first_a)
    first_b = b.run()
    step("B first load", first_b)
    assert (first_a["inserted"], first_b["inserted"]) == (450, 300)
    assert_exact(a)
    assert_exact(b)
    assert a.warehouse_id == b.warehouse_id  # one warehouse, two watermarks
    assert wm.variable_name(a.warehouse_id, ATHLETE_A) != wm.variable_name(b.warehouse_id, ATHLETE_B)

    # A: new uploads and a kudos change; B untouched by A's run.
    b_before = rows_of(a, ATHLETE_B)
    added = {x["id"] for x in a.emu.add_activities(2)}
    changed = max((x for x in a.emu.activities if x["id"] not in added), key=lambda x: x["start_date"])
    a.emu.modify_activity(changed["id"], kudos_count=changed["kudos_count"] + 5)
    summary = a.run()
    step("A incremental (+2, 1 changed)", summary)
    assert (summary["inserted"], summary["updated"]) == (2, 1)
    assert_exact(a)
    assert rows_of(a, ATHLETE_B) == b_before

    # B: a deletion inside the lookback.
    a_before = rows_of(a, ATHLETE_A)
    victim = max(b.emu.activities, key=lambda x: x["start_date"])
    b.emu.delete_activity(victim["id"])
    summary = b.run()
    step("B incremental (1 deleted)", summary)
    assert summary["deleted"] == 1 and rows_of(a, ATHLETE_B)[victim["id"]]["deleted_at"] is not None
    assert_exact(b)
    assert rows_of(a, ATHLETE_A) == a_before

    # A: a full refresh marks deletions across A's whole history (its oldest activity, far
    # outside any lookback, was deleted), and only A's.
    b_before = rows_of(a, ATHLETE_B)
    oldest = min(a.emu.activities, key=lambda x: x["start_date"])
    a.emu.delete_activity(oldest["id"])
    summary = a.run(full_refresh=True)
    step("A full refresh (oldest deleted)", summary)
    assert summary["deleted"] == 1 and summary["extracted"] == 451
    assert rows_of(a, ATHLETE_A)[oldest["id"]]["deleted_at"] is not None
    assert_exact(a)
    assert rows_of(a, ATHLETE_B) == b_before

    # B's next incremental run after A's full refresh (the run that lost 447 rows before).
    a_before = rows_of(a, ATHLETE_A)
    b.emu.add_activities(1)
    summary = b.run()
    step("B incremental (+1)", summary)
    assert (summary["inserted"], summary["deleted"]) == (1, 0)
    assert_exact(b)
    assert rows_of(a, ATHLETE_A) == a_before
    assert_exact(a)

    # The stats history: each athlete's observations carry its id and cover its activities.
    history = dict(
        a.query("SELECT athlete_id, COUNT(DISTINCT activity_id) FROM strava_activity_stats_history GROUP BY 1")
    )
    assert history == {ATHLETE_A: 452, ATHLETE_B: 301}  # deleted activities keep their history
    strays = a.query(
        "SELECT COUNT(*) FROM strava_activity_stats_history AS h JOIN strava_activity_data AS p "
        "ON p.id = h.activity_id WHERE p.athlete_id <> h.athlete_id"
    )[0][0]
    assert strays == 0

    # Models grouped per athlete.
    live_counts = {ATHLETE_A: len(a.emu.activities), ATHLETE_B: len(b.emu.activities)}
    yearly = dict(a.query("SELECT athlete_id, SUM(activity_count) FROM activity_summary_yearly GROUP BY 1"))
    assert {k: int(v) for k, v in yearly.items()} == live_counts
    calendar = dict(a.query("SELECT athlete_id, SUM(activity_count) FROM activity_calendar_daily GROUP BY 1"))
    assert {k: int(v) for k, v in calendar.items()} == live_counts
    loads = a.query("SELECT DISTINCT athlete_id FROM weekly_training_load ORDER BY 1")
    assert [r[0] for r in loads] == [ATHLETE_A, ATHLETE_B]

    # Each dashboard shows its athlete only.
    for who, env in ((ATHLETE_A, a), (ATHLETE_B, b)):
        page, data = dashboard_data(a, who)
        assert data["athleteId"] == who and f"dashboard · athlete {who}" in page
        assert data["kpis"]["activities"] == live_counts[who]
        names = {n if len(n) <= 80 else n[:79] + "…" for n in (x["name"] for x in env.emu.activities)}
        assert {row[6] for row in data["activities"]["rows"]} <= names

    # The CLI needs --athlete-id when the warehouse holds both, and lists them.
    out = tmp_path / "dash.html"
    capsys.readouterr()
    assert main(["dashboard", "--warehouse-block", a.warehouse_block, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"2 athletes ({ATHLETE_A}, {ATHLETE_B}); pass --athlete-id" in err
    argv = ["dashboard", "--warehouse-block", a.warehouse_block, "--out", str(out)]
    assert main([*argv, "--athlete-id", str(ATHLETE_B)]) == 0
    assert f"athlete {ATHLETE_B}" in out.read_text(encoding="utf-8")

    # An ad-hoc check sees :athlete_id when given.
    count = tmp_path / "count.sql"
    count.write_text(
        "SELECT COUNT(*) FROM strava_activity_data WHERE deleted_at IS NULL "
        "AND athlete_id = CAST(:athlete_id AS BIGINT)",
        encoding="utf-8",
    )
    check = ["validate", str(count), str(live_counts[ATHLETE_B]), "equals", "halt"]
    check += ["--warehouse-block", a.warehouse_block]
    assert main([*check, "--athlete-id", str(ATHLETE_B)]) == 0
    assert main([*check, "--athlete-id", str(ATHLETE_A)]) == 1

    with capsys.disabled():
        print(f"\ntwo athletes, one {warehouse} warehouse and lake:")
        for line in lines:
            print("  " + line)


# --------------------------------------------------------------------------- the watermark per (warehouse, athlete)


def _second_warehouse(env: Env, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A Warehouse block for an empty warehouse of the same kind as ``env``'s: a new DuckDB file or PG schema."""
    from pydantic import SecretStr

    from blocks import Warehouse

    name = f"warehouse-2-{uuid.uuid4().hex[:10]}"
    if env.pg_url is None:
        Warehouse(url=SecretStr(f"duckdb:///{tmp_path / 'warehouse-2.duckdb'}")).save(name, overwrite=True)
        return name
    import psycopg

    url, _ = split_pg_url(env.pg_url)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conninfo = sa.engine.make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    request.addfinalizer(drop)
    Warehouse(url=SecretStr(url), schema_name=schema).save(name, overwrite=True)
    return name


def test_an_empty_warehouse_gets_the_whole_history_and_so_does_an_emptied_one(
    env: Env, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    athlete = env.emu.athlete["id"]
    assert env.run()["inserted"] == 450
    first_id = env.warehouse_id

    # The same athlete pointed at a new, empty warehouse: no watermark there, every activity.
    other = _second_warehouse(env, tmp_path, request)
    env.emu.reset_counts()
    summary = env.run(warehouse_block=other)
    assert summary["inserted"] == summary["extracted"] == 450
    assert env.emu.request_count(LIST_PATH) == 450 // 200 + 1  # the whole history, from the first page
    assert summary["warehouse_id"] != first_id
    assert "no watermark yet" in summary["full_read_reason"]
    assert wm.read_watermark(summary["warehouse_id"], athlete) == env.watermark() == _newest(env.emu)

    # Warehouse 1 again, incremental: one list page.
    env.emu.reset_counts()
    summary = env.run()
    assert env.emu.request_count(LIST_PATH) == 1 and "full_read_reason" not in summary

    # Emptying the athlete's rows in warehouse 1: the next run reads everything again.
    engine = _engine(env)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM strava_activity_data WHERE athlete_id = :a"), {"a": athlete})
    engine.dispose()
    env.emu.reset_counts()
    summary = env.run()
    assert summary["inserted"] == 450 and env.emu.request_count(LIST_PATH) == 3
    assert "holds no live activity" in summary["full_read_reason"]
    assert_exact(env)

    # Fewer rows than the watermark recorded (some rows lost): read everything again.
    engine = _engine(env)
    with engine.begin() as conn:
        oldest = conn.execute(sa.text("SELECT MIN(id) FROM strava_activity_data")).scalar()
        conn.execute(sa.text("DELETE FROM strava_activity_data WHERE id = :i"), {"i": oldest})
    engine.dispose()
    summary = env.run()
    assert summary["inserted"] == 1 and "fewer than the 450" in summary["full_read_reason"]
    assert_exact(env)


def _engine(env: Env) -> sa.Engine:
    if env.pg_url is None:
        return sa.create_engine(f"duckdb:///{env.duckdb_path}")
    return sa.create_engine(env.pg_url)


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_an_old_per_athlete_watermark_is_adopted_only_where_the_athletes_rows_are(
    env: Env, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    athlete = env.emu.athlete["id"]
    env.run()
    legacy = wm.legacy_variable_name(athlete)
    Variable.unset(wm.variable_name(env.warehouse_id, athlete))
    Variable.set(legacy, {"start_date": _newest(env.emu).isoformat().replace("+00:00", "Z")}, overwrite=True)
    try:
        env.emu.reset_counts()
        summary = env.run()  # warehouse 1 holds the athlete's rows: adopted, incremental
        assert env.emu.request_count(LIST_PATH) == 1 and "full_read_reason" not in summary
        assert env.watermark() == _newest(env.emu)
        assert f"Adopting Variable {legacy}" in caplog.text

        other = _second_warehouse(env, tmp_path, request)
        summary = env.run(warehouse_block=other)  # an empty warehouse: the old Variable is ignored
        assert summary["inserted"] == 450 and "no watermark yet" in summary["full_read_reason"]
        assert f"Ignoring Variable {legacy}" in caplog.text
    finally:
        Variable.unset(legacy)


# --------------------------------------------------------------------------- the watermark never passes the run


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_a_future_dated_activity_is_loaded_and_later_uploads_still_are(env: Env) -> None:
    env.run()
    newest = _newest(env.emu)
    future = env.emu.add_activities(1, start_date=datetime(2099, 1, 1, 8, 0, tzinfo=UTC))[0]

    summary = env.run()
    assert summary["inserted"] == 1 and future["id"] in env.production()
    assert summary["future_dated"] == {"count": 1, "ids": [future["id"]]}
    mark = env.watermark()
    assert mark is not None and newest <= mark <= datetime.now(UTC)
    published = Artifact.get(notify.SUMMARY_ARTIFACT_KEY)  # the run's report, as published
    report = str(published.data if published else "")
    assert "**Future-dated activities:** 1 " in report and str(future["id"]) in report

    # Later uploads, dated before the run (after the old newest): the next run still loads them.
    later = env.emu.add_activities(3, start_date=newest + timedelta(hours=2))
    summary = env.run()
    assert summary["inserted"] == 3 and all(x["id"] in env.production() for x in later)
    assert summary["future_dated"]["ids"] == [future["id"]]  # re-read, unchanged
    assert env.watermark() <= datetime.now(UTC)  # type: ignore[operator]
    assert_exact(env)

    # A watermark already past the run (left by an older release) is not trusted: whole history.
    name = wm.variable_name(env.warehouse_id, env.emu.athlete["id"])
    Variable.set(name, {"start_date": "2099-01-01T08:00:00Z", "rows": 454}, overwrite=True)
    env.emu.reset_counts()
    summary = env.run()
    assert "lies after this run" in summary["full_read_reason"]
    assert env.emu.request_count(LIST_PATH) == 454 // 200 + 1
    assert env.watermark() <= datetime.now(UTC)  # type: ignore[operator]
    assert_exact(env)


# --------------------------------------------------------------------------- the warehouse before the API budget

HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_a_locked_duckdb_file_fails_the_run_before_any_strava_request(env: Env) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(env.duckdb_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(wh.WarehouseLocked) as caught:
            env.run()
        message = str(caught.value)
        assert str(env.duckdb_path) in message and "another process holds it" in message
        assert f"PID {holder.pid}" in message and "Nothing was read from Strava" in message
        assert env.emu.request_count() == 0
    finally:
        holder.kill()
        holder.wait()
    assert env.run()["inserted"] == 450  # the lock released, the same run works


# --------------------------------------------------------------------------- migration of the history table


def test_a_history_table_from_before_athlete_scope_is_migrated(
    tmp_path: Path, request: pytest.FixtureRequest, warehouse: str
) -> None:
    url = f"duckdb:///{tmp_path / 'old.duckdb'}" if warehouse == "duckdb" else request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    try:
        old = sa.MetaData()
        from tasks.warehouse import schema

        production = schema.activity_table(old)
        current = schema.stats_history_table(sa.MetaData()).columns
        before = [sa.Column(c.name, c.type) for c in current if c.name != "athlete_id"]
        history = sa.Table(schema.STATS_HISTORY_TABLE, old, *before)
        old.create_all(engine)
        seen = datetime(2025, 1, 2, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(production.insert(), [{"id": 11, "athlete_id": 5}, {"id": 12, "athlete_id": 6}])
            conn.execute(
                history.insert(),
                [{"activity_id": 11, "observed_at": seen}, {"activity_id": 12, "observed_at": seen},
                 {"activity_id": 13, "observed_at": seen}],
            )  # fmt: skip
        first = wh.ensure_tables(engine)
        assert wh.ensure_tables(engine) == first and re.fullmatch(r"[0-9a-f]{32}", first)  # idempotent
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT activity_id, athlete_id FROM strava_activity_stats_history ORDER BY activity_id")
            ).all()
        assert [tuple(r) for r in rows] == [(11, 5), (12, 6), (13, None)]  # 13: no such activity
    finally:
        engine.dispose()


def test_a_concurrent_runs_staging_table_is_left_alone_a_crashed_ones_swept(env: Env) -> None:
    """Another athlete's run loading now has a young staging table: only a day-old one is a leftover."""
    from blocks.loading import load_block
    from blocks.warehouse import Warehouse

    now = datetime.now(UTC)
    crashed = wh.staging_name((now - timedelta(days=2)).strftime(wh.RUN_KEY_TIME_FORMAT) + "_deadbeef")
    loading = wh.staging_name((now - timedelta(minutes=5)).strftime(wh.RUN_KEY_TIME_FORMAT) + "_0badcafe")
    with load_block(Warehouse, env.warehouse_block).engine() as engine:
        wh.ensure_tables(engine)
        with engine.begin() as conn:
            for name in (crashed, loading):
                conn.execute(sa.text(f"CREATE TABLE {name} (id BIGINT)"))  # noqa: S608 - test names
    env.run()
    tables = {r[0] for r in env.query("SELECT table_name FROM information_schema.tables")}
    assert loading in tables  # a run loading at the same time keeps its table
    assert crashed not in tables
