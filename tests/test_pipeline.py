"""The spine end to end: emulator over HTTP -> local lake -> DuckDB and PostgreSQL, through real Prefect flows."""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blocks import StravaCredentials
from blocks.loading import MissingBlockError
from tasks import warehouse as wh
from tasks.insight.notify import PostCommitError
from tests.conftest import WAREHOUSES, Env, make_env, warehouse_pg_url

LIST_PATH = "/api/v3/athlete/activities"


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    """Every test here runs on DuckDB and on PostgreSQL (marked ``postgres``)."""
    return str(request.param)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_matches_emulator(env: Env) -> None:
    """Production holds every live emulator activity exactly once, with its newest values."""
    prod = env.production()
    live = {a["id"]: a for a in env.emu.activities}
    active = {i: r for i, r in prod.items() if r["deleted_at"] is None}
    assert set(active) == set(live)
    for activity_id, activity in live.items():
        row = active[activity_id]
        assert row["name"] == activity["name"]
        assert row["kudos_count"] == activity["kudos_count"]
        assert row["start_date"] == _ts(activity["start_date"])
    count, distinct = env.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM strava_activity_data")[0]
    assert count == distinct
    newest = max(_ts(a["start_date"]) for a in env.emu.activities)
    assert env.watermark() == newest


@pytest.mark.parametrize("n", [400, 450])
def test_first_load_costs_one_list_call_per_200_activities(
    tmp_path: Path, n: int, request: pytest.FixtureRequest, warehouse: str
) -> None:
    for env in make_env(tmp_path, pg_url=warehouse_pg_url(request, warehouse), activities=n):
        summary = env.run()
        list_calls = env.emu.request_count(LIST_PATH)
        # Pages of 200 until a short page: N//200 + 1 calls, within the ceil(N/200) + 1 budget.
        assert list_calls == n // 200 + 1 <= math.ceil(n / 200) + 1
        assert env.emu.request_count("/api/v3/athlete") == 1
        assert summary["requests"] == list_calls + 1
        assert summary["extracted"] == summary["inserted"] == n
        assert_matches_emulator(env)


def test_second_run_is_incremental_and_changes_nothing(env: Env) -> None:
    env.run()
    env.emu.reset_counts()
    summary = env.run()
    assert env.emu.request_count(LIST_PATH) == 1  # the lookback window fits one page
    assert summary["inserted"] == 0
    assert summary["updated"] == 0
    assert 0 < summary["extracted"] < 200
    assert summary["unchanged"] == summary["extracted"]
    assert_matches_emulator(env)


def test_late_upload_inside_lookback_and_kudos_change_are_picked_up(env: Env) -> None:
    env.run()
    newest = max(_ts(a["start_date"]) for a in env.emu.activities)
    late = env.emu.add_activities(1, start_date=newest - timedelta(days=5))[0]
    new = env.emu.add_activities(2)
    added = {late["id"], *(a["id"] for a in new)}
    target = next(
        a
        for a in env.emu.activities
        if a["id"] not in added and timedelta(0) <= newest - _ts(a["start_date"]) < timedelta(days=7)
    )
    env.emu.modify_activity(target["id"], kudos_count=target["kudos_count"] + 11, name="Renamed | run")

    summary = env.run()
    assert summary["inserted"] == 3
    assert summary["updated"] == 1
    prod = env.production()
    assert late["id"] in prod and all(a["id"] in prod for a in new)
    assert prod[target["id"]]["kudos_count"] == target["kudos_count"] + 11
    assert prod[target["id"]]["name"] == "Renamed | run"
    assert_matches_emulator(env)


def test_rotated_refresh_token_is_saved_and_used_by_the_next_run(env: Env) -> None:
    initial = StravaCredentials.load(env.strava_block).refresh_token.get_secret_value()
    env.run()
    saved = StravaCredentials.load(env.strava_block).refresh_token.get_secret_value()
    assert saved != initial
    assert saved == env.emu.current_refresh_token
    env.emu.expire_access_tokens()
    env.run()  # would fail with the old, now rejected, refresh token
    assert StravaCredentials.load(env.strava_block).refresh_token.get_secret_value() == env.emu.current_refresh_token


def test_nasty_names_round_trip_byte_exact(env: Env) -> None:
    from emulator.athlete import NASTY_NAMES

    env.run()
    names = {row[0] for row in env.query("SELECT name FROM strava_activity_data")}
    emulator_names = {a["name"] for a in env.emu.activities}
    assert names == emulator_names
    for nasty in NASTY_NAMES:
        if nasty in emulator_names:
            assert nasty in names
    assert sum(1 for n in NASTY_NAMES if n in names) >= 10


def test_raw_pages_and_typed_file_land_in_the_lake(env: Env) -> None:
    summary = env.run()
    athlete = env.emu.athlete["id"]
    run_dir = env.lake_dir / "raw" / "activities" / f"athlete_id={athlete}" / f"run={summary['run_key']}"
    pages = sorted(run_dir.glob("page-*.json.gz"))
    assert len(pages) == summary["pages"]
    ids = [a["id"] for p in pages for a in json.loads(gzip.decompress(p.read_bytes()))]
    assert sorted(ids) == sorted(a["id"] for a in env.emu.activities)
    staging = (
        env.lake_dir
        / "staging"
        / "activities"
        / f"athlete_id={athlete}"
        / f"run={summary['run_key']}"
        / "activities.parquet"
    )
    assert staging.exists()
    secrets = [env.emu.client_secret, env.emu.current_refresh_token]
    for path in [*pages, staging]:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        assert not any(s.encode() in data for s in secrets)


def test_schema_columns_and_types(env: Env) -> None:
    env.run()
    types = dict(
        env.query(
            "SELECT column_name, UPPER(data_type) FROM information_schema.columns "
            "WHERE table_name = 'strava_activity_data' AND table_schema = current_schema()"
        )
    )
    assert types["id"] == "BIGINT"
    assert types["upload_id"] == ("VARCHAR" if env.warehouse == "duckdb" else "TEXT")
    assert types["start_date"] == "TIMESTAMP WITH TIME ZONE"
    assert types["start_date_local"] == ("TIMESTAMP" if env.warehouse == "duckdb" else "TIMESTAMP WITHOUT TIME ZONE")
    for col in ("map_summary_polyline", "start_lat", "start_lng", "end_lat", "end_lng", "athlete_id", "extracted_at"):
        assert col in types
    assert max(r[0] for r in env.query("SELECT id FROM strava_activity_data")) > 2**32
    indoor = env.query("SELECT COUNT(*) FROM strava_activity_data WHERE trainer AND start_lat IS NULL")[0][0]
    assert indoor >= 0


def test_unknown_fields_do_not_break_the_load(env: Env) -> None:
    env.run()
    newest = max(_ts(a["start_date"]) for a in env.emu.activities)
    added = env.emu.add_activities(1, start_date=newest + timedelta(hours=1))[0]
    env.emu.modify_activity(added["id"], brand_new_field={"nested": [1, 2]}, kudos_count=None, sport_type="Hoverboard")
    summary = env.run()
    assert summary["inserted"] == 1
    assert "brand_new_field" in summary["new_fields"]
    assert "Hoverboard" in summary["new_sport_types"]
    row = env.production()[added["id"]]
    assert row["kudos_count"] is None and row["sport_type"] == "Hoverboard"


def test_models_are_built_and_exclude_deleted(env: Env) -> None:
    summary = env.run()
    assert summary["models"]["activity_summary_monthly"] > 0
    assert summary["models"]["weekly_kudos_change"] > 0
    runs_sql = "SELECT COUNT(*) FROM strava_activity_data WHERE sport_type IN ('Run','TrailRun','VirtualRun')"
    runs = env.query(runs_sql)[0][0]
    assert env.query("SELECT SUM(activity_count) FROM activity_summary_monthly")[0][0] == runs


def test_deleted_activity_is_marked_and_unmarked_when_it_reappears(env: Env) -> None:
    env.run()
    newest = max(_ts(a["start_date"]) for a in env.emu.activities)
    victim = next(a for a in env.emu.activities if newest - _ts(a["start_date"]) < timedelta(days=5))
    env.emu.delete_activity(victim["id"])
    summary = env.run()
    assert summary["deleted"] == 1
    assert env.production()[victim["id"]]["deleted_at"] is not None
    env.emu.restore_activity(victim["id"])
    summary = env.run()
    assert summary["undeleted"] == 1
    assert env.production()[victim["id"]]["deleted_at"] is None
    assert_matches_emulator(env)


def test_missing_block_names_the_block_and_the_fix(env: Env) -> None:
    with pytest.raises(MissingBlockError, match="no-such-block.*strava-elt setup"):
        env.run(strava_block="no-such-block")


class Boom(RuntimeError):
    """The crash a test injects."""


def _crash_after_landing(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise Boom("crash after landing")

    monkeypatch.setattr(wh, "prepare_staging", explode)


def _crash_after_staging(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise Boom("crash after staging")

    monkeypatch.setattr(wh.merge_staging, "fn", explode)


def _crash_during_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.warehouse import dialects  # the merge's statements are read there

    real = dialects.read_sql

    def read_sql(relative: str) -> str:
        if relative == "load/merge_insert.sql":  # the delete has already run in this transaction
            raise Boom("crash during the merge")
        return real(relative)

    monkeypatch.setattr(dialects, "read_sql", read_sql)


def _crash_before_watermark(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.state import watermark

    def explode(*_: Any, **__: Any) -> None:
        raise Boom("crash after the merge committed")

    monkeypatch.setattr(watermark.advance_watermark, "fn", explode)


@pytest.mark.parametrize(
    "inject", [_crash_after_landing, _crash_after_staging, _crash_during_merge, _crash_before_watermark]
)
def test_crash_then_rerun_loads_everything_exactly_once(env: Env, monkeypatch: pytest.MonkeyPatch, inject: Any) -> None:
    env.run()
    before = env.production()
    mark = env.watermark()
    newest = max(_ts(a["start_date"]) for a in env.emu.activities)
    env.emu.add_activities(4)
    late = env.emu.add_activities(1, start_date=newest - timedelta(days=2))[0]
    changed = next(
        a for a in env.emu.activities if a["id"] in before and newest - _ts(a["start_date"]) < timedelta(days=7)
    )
    env.emu.modify_activity(changed["id"], kudos_count=changed["kudos_count"] + 3)

    with monkeypatch.context() as patch:
        inject(patch)
        with pytest.raises((Boom, PostCommitError)) as caught:
            env.run()
    if inject is _crash_before_watermark:  # after the commit: the run says what completed
        assert "watermark failed: Boom: crash after the merge committed" in str(caught.value)
    assert env.watermark() == mark
    after_crash = env.production()
    if inject is not _crash_before_watermark:
        assert after_crash == before  # production untouched by the failed run
    assert not env.query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_name LIKE 'stg_%' AND table_schema = current_schema()"
    )

    summary = env.run()
    assert late["id"] in env.production()
    assert_matches_emulator(env)
    if inject is not _crash_before_watermark:
        assert summary["inserted"] == 5
