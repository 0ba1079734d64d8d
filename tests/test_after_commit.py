"""After the commit, nothing half-written: what fails after the merge is said, and rebuilt next run.

Real failures, no mocks: a directory where the dashboard file must go (the write fails after
the merge committed), a view squatting on a model's table name (the models fail), and a file
size limit set with ``setrlimit`` that stops a lake write half-way, as a full disk would.
"""

from __future__ import annotations

import errno
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from prefect.artifacts import Artifact
from prefect.filesystems import LocalFileSystem

from flows.pipeline import strava_elt
from tasks import lake as lake_io
from tasks.insight.notify import SUMMARY_ARTIFACT_KEY, PostCommitError
from tests.conftest import WAREHOUSES, Env


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def write_sql(env: Env, sql: str) -> None:
    """One write in the test's warehouse, outside the pipeline (the pipeline's engines are closed)."""
    if env.pg_url is None:
        with duckdb.connect(str(env.duckdb_path)) as conn:
            conn.execute(sql)
        return
    import psycopg
    import sqlalchemy as sa

    conninfo = sa.make_url(env.pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def newest_start(env: Env) -> str:
    return env.query("SELECT MAX(start_date) FROM strava_activity_data")[0][0]


def test_a_dashboard_that_cannot_be_written_fails_the_run_after_the_load_then_the_next_run_rebuilds_it(
    env: Env,
) -> None:
    athlete = env.emu.athlete["id"]
    dashboard = env.lake_dir / "dashboards" / f"athlete_id={athlete}" / "dashboard.html"
    dashboard.mkdir(parents=True)  # a directory where the file must go: the write fails

    state = strava_elt(**env.params(), return_state=True)
    assert state.is_failed()
    message = str(state.message)
    mark = env.watermark()
    assert mark is not None
    # The state says exactly what completed, and what did not.
    assert f"loaded: 450 inserted, 0 updated, 0 marked deleted; watermark {mark.isoformat()}" in message
    assert "; dashboard failed: IsADirectoryError" in message and "models failed" not in message
    with pytest.raises(PostCommitError):
        state.result()
    # Production and the watermark agree: every activity, and the newest start_date loaded.
    assert set(env.production()) == {a["id"] for a in env.emu.activities}
    assert mark == newest_start(env)
    assert env.query("SELECT COUNT(*) FROM activity_summary_monthly")[0][0] > 0  # models did build
    report = Artifact.get(SUMMARY_ARTIFACT_KEY)
    assert report is not None and "FAILED after the merge committed: PostCommitError: loaded: 450 inserted" in str(
        report.data
    )

    dashboard.rmdir()
    summary = strava_elt(**env.params())  # an ordinary run: nothing new, everything rebuilt
    assert summary["status"] == "complete" and summary["inserted"] == 0
    assert dashboard.is_file() and b"<html" in dashboard.read_bytes()[:500].lower()
    assert env.watermark() == mark


def test_models_that_fail_skip_the_dashboard_and_the_next_run_rebuilds_both(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    dashboard = env.lake_dir / "dashboards" / f"athlete_id={athlete}" / "dashboard.html"
    before = dashboard.read_bytes()
    added = env.emu.add_activities(2)
    # A view squatting on a model's name: rebuilding that table fails.
    write_sql(env, "DROP TABLE activity_summary_monthly")
    write_sql(env, "CREATE VIEW activity_summary_monthly AS SELECT 1 AS one")

    state = strava_elt(**env.params(), return_state=True)
    assert state.is_failed()
    message = str(state.message)
    mark = env.watermark()
    assert "loaded: 2 inserted" in message and f"watermark {mark.isoformat()}" in message  # type: ignore[union-attr]
    assert "models failed: " in message and "dashboard failed: not rebuilt (the models failed)" in message
    assert {a["id"] for a in added} <= set(env.production())
    assert mark == newest_start(env)
    assert dashboard.read_bytes() == before  # the previous dashboard, whole

    write_sql(env, "DROP VIEW activity_summary_monthly")
    summary = strava_elt(**env.params())
    assert summary["status"] == "complete" and summary["inserted"] == 0
    assert summary["models"]["activity_summary_monthly"] > 0
    assert dashboard.read_bytes() != before  # rebuilt with the two new activities
    assert env.watermark() == mark


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_write_that_fails_half_way_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    lake = lake_io.Lake(LocalFileSystem(basepath=str(tmp_path / "lake")))
    key = "dashboards/athlete_id=7/dashboard.html"
    old, new = b"<html>old</html>" * 100, b"<html>new</html>" * 4000  # 1.6 kB, then 64 kB
    written = lake.write(key, old)
    target = tmp_path / "lake" / key
    assert written == str(target.resolve()) and target.read_bytes() == old

    with file_size_limit(16 * 1024), pytest.raises(OSError) as caught:
        lake.write(key, new)
    assert caught.value.errno == errno.EFBIG
    assert target.read_bytes() == old  # the previous dashboard, whole
    assert [p.name for p in target.parent.iterdir()] == ["dashboard.html"]  # no temporary file left

    # What writing in place did before: the same failure leaves a truncated file behind.
    with file_size_limit(16 * 1024), pytest.raises(OSError):
        lake.block.write_path(key, new, _sync=True)
    assert 0 < target.stat().st_size < len(new)

    lake.write(key, new)
    assert target.read_bytes() == new
    with pytest.raises(ValueError, match="outside the lake's base path"):
        lake.write("../escape.html", new)
