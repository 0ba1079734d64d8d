"""The Strava client end to end: the pipeline against the emulator over HTTP, fake clocks where time matters.

Rate-limit waits at the quarter hour and at midnight, a 429 storm, retried 5xx/HTML/timeouts,
a token expiring mid-run, a revoked refresh token, lookback updates, kudos history, schema
drift and the full reconcile.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blocks import StravaCredentials
from blocks.loading import load_block
from tasks.strava.errors import RefreshTokenRejected
from tests.conftest import WAREHOUSES, Env, make_env, warehouse_pg_url
from tests.strava_support import ATHLETE_PATH, LIST_PATH, FakeClock, ts, use_clock

TOKEN_PATH = "/oauth/token"
HEX_TOKEN = re.compile(r"\b[0-9a-f]{40}\b")


def at(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 5, day, hh, mm, ss, tzinfo=UTC)


def clocked_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: datetime, **emulator: Any) -> Iterator[Env]:
    """A 450-activity athlete whose emulator and governor share one fake clock (``env.emu.clock``)."""
    clock = FakeClock(start)
    use_clock(monkeypatch, clock)
    yield from make_env(tmp_path, clock=clock, **emulator)


def assert_production_matches(env: Env) -> None:
    """Every live emulator activity once in production, newest values, watermark at the newest."""
    prod = env.production()
    live = {a["id"]: a for a in env.emu.activities}
    assert {i for i, r in prod.items() if r["deleted_at"] is None} == set(live)
    for activity_id, activity in live.items():
        assert prod[activity_id]["kudos_count"] == activity["kudos_count"]
        assert prod[activity_id]["name"] == activity["name"]
    assert env.watermark() == max(ts(a["start_date"]) for a in live.values())


def on_quarter_hour_plus_margin(moment: datetime) -> bool:
    return moment.minute % 15 == 0 and moment.second == 1


# --- rate limits ---------------------------------------------------------------------------


def test_waits_for_the_quarter_hour_when_the_window_budget_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for env in clocked_env(tmp_path, monkeypatch, at(14, 10, 44, 50), read_limits=(2, 1000)):
        clock = env.emu.clock
        assert isinstance(clock, FakeClock)
        with caplog.at_level(logging.INFO):
            summary = env.run()
        # /athlete and page 1 spend the 2-request window; the governor waits until 10:45 (+1 s margin).
        assert clock.slept == [pytest.approx(11)]
        assert clock() == at(14, 10, 45, 1)
        assert "15-minute read budget spent (2/2); waiting 11 s until 10:45:00 UTC" in caplog.text
        assert env.emu.request_count(LIST_PATH) == 3  # no request refused: waited, not 429ed
        assert summary["requests"] == 4 and summary["status"] == "complete"
        assert_production_matches(env)


def test_waits_for_midnight_utc_when_the_daily_budget_is_spent_just_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for env in clocked_env(tmp_path, monkeypatch, at(14, 23, 59, 50), read_limits=(100, 2)):
        clock = env.emu.clock
        assert isinstance(clock, FakeClock)
        with caplog.at_level(logging.INFO):
            summary = env.run()
        assert clock.slept == [pytest.approx(11)]
        assert clock() == at(15, 0, 0, 1)
        assert "daily read budget spent (2/2); waiting 11 s until midnight UTC (2025-05-15 00:00 UTC)" in caplog.text
        assert env.emu.request_count(LIST_PATH) == 3
        assert summary["status"] == "complete"
        assert_production_matches(env)


def test_429_storm_waits_as_the_headers_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for env in clocked_env(tmp_path, monkeypatch, at(14, 10, 44, 50)):
        clock = env.emu.clock
        assert isinstance(clock, FakeClock)
        env.emu.fail_requests(LIST_PATH, "429", times=3, page=2)
        with caplog.at_level(logging.INFO):
            summary = env.run()
        # Each 429 waits for the next window reset (never a fixed sleep): 10:45, 11:00, 11:15.
        assert clock.slept == [pytest.approx(11), pytest.approx(900), pytest.approx(900)]
        assert clock() == at(14, 11, 15, 1)
        assert on_quarter_hour_plus_margin(clock())
        assert caplog.text.count("HTTP 429 Rate Limit Exceeded: 15-minute budget reported as not spent") == 3
        assert env.emu.request_count(LIST_PATH) == 3 + 3
        assert summary["requests"] == 1 + 6 and summary["status"] == "complete"
        assert_production_matches(env)


# --- retries and auth ----------------------------------------------------------------------


def test_5xx_html_and_timeout_are_retried_then_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for env in clocked_env(tmp_path, monkeypatch, at(14, 9, 0)):
        clock = env.emu.clock
        assert isinstance(clock, FakeClock)
        block = load_block(StravaCredentials, env.strava_block)
        block.timeout_seconds = 0.5
        block.save(env.strava_block, overwrite=True)
        env.emu.timeout_seconds = 3.0
        env.emu.fail_requests(LIST_PATH, "500", times=2, page=1)
        env.emu.fail_requests(LIST_PATH, "html", times=1, page=2)
        env.emu.fail_requests(LIST_PATH, "timeout", times=1, page=3)

        summary = env.run()
        # 3 pages + 2 + 1 + 1 failures reached the emulator; the timed-out one never answered the client.
        assert env.emu.request_count(LIST_PATH) == 3 + 4
        assert summary["requests"] == 1 + 6
        # One backoff sleep per failure, exponential with jitter (base 1 s): short, never a window wait.
        assert len(clock.slept) == 4
        assert all(0.5 <= s <= 3.0 for s in clock.slept)
        assert summary["extracted"] == summary["inserted"] == 450
        assert_production_matches(env)


def test_token_expiring_mid_run_is_refreshed_once_and_the_rotation_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for env in clocked_env(tmp_path, monkeypatch, at(14, 9, 0)):
        env.emu.fail_requests(LIST_PATH, "expire_tokens", page=2)
        with caplog.at_level(logging.DEBUG):
            summary = env.run()
        assert env.emu.client_secret not in caplog.text and not HEX_TOKEN.search(caplog.text)
        assert env.emu.request_count(TOKEN_PATH) == 2  # the first token, then one refresh after the 401
        assert env.emu.request_count(LIST_PATH) == 3 + 1  # page 2 again after the refresh
        assert summary["requests"] == 1 + 4
        saved = load_block(StravaCredentials, env.strava_block).refresh_token.get_secret_value()
        assert saved == env.emu.current_refresh_token
        assert_production_matches(env)


def test_revoked_refresh_token_is_a_clear_fatal_error_and_touches_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.run()
    before = env.production()
    mark = env.watermark()
    secrets = [env.emu.client_secret, env.emu.current_refresh_token]
    env.emu.add_activities(3)
    env.emu.revoke_refresh_token()

    with caplog.at_level(logging.DEBUG), pytest.raises(RefreshTokenRejected) as info:
        env.run()
    message = str(info.value)
    assert "Strava API 400 on POST /oauth/token" in message
    assert "Strava rejected the refresh token (revoked, or an older one: tokens rotate)" in message
    assert "Run `strava-elt auth --client-id ...` to authorise again." in message
    assert env.emu.request_count(ATHLETE_PATH) == 1  # the second run never reached the API
    assert env.production() == before
    assert env.watermark() == mark
    assert "RefreshTokenRejected" in caplog.text  # Prefect logged the failure...
    texts = {"error": message, "logs": caplog.text}
    for path in env.lake_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            texts[str(path)] = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("latin-1")
    for where, text in texts.items():  # ...with no secret, in the error, the logs or the lake
        assert not any(secret in text for secret in secrets), where
        assert not HEX_TOKEN.search(text), where


# --- lookback, history, drift, reconcile ---------------------------------------------------


@pytest.fixture(params=WAREHOUSES)
def any_warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _history_rows(env: Env, activity_id: int | None = None) -> int:
    if activity_id is None:
        return int(env.query("SELECT COUNT(*) FROM strava_activity_stats_history")[0][0])
    sql = "SELECT COUNT(*) FROM strava_activity_stats_history WHERE activity_id = ?"
    return int(env.query(sql, [activity_id])[0][0])


def test_lookback_updates_mutable_fields_and_history_only_grows_on_change(
    tmp_path: Path, request: pytest.FixtureRequest, any_warehouse: str
) -> None:
    for env in make_env(tmp_path, pg_url=warehouse_pg_url(request, any_warehouse), activities=250):
        env.run()
        assert _history_rows(env) == 250  # first observation of every activity
        total_kudos = env.query("SELECT SUM(total_kudos) FROM weekly_kudos_change")[0][0]

        summary = env.run()  # nothing changed at Strava
        assert summary["extracted"] > 0 and summary["updated"] == 0
        assert _history_rows(env) == 250

        newest = max(ts(a["start_date"]) for a in env.emu.activities)
        recent = [a for a in env.emu.activities if newest - ts(a["start_date"]) < timedelta(days=10)]
        social, other = recent[0], recent[1]
        env.emu.modify_activity(
            social["id"],
            kudos_count=social["kudos_count"] + 5,
            comment_count=social["comment_count"] + 2,
            achievement_count=social["achievement_count"] + 1,
        )
        new_type = "Ride" if other["type"] != "Ride" else "Run"
        env.emu.modify_activity(
            other["id"],
            name="Renamed later",
            type=new_type,
            sport_type=new_type,
            private=not other["private"],
            visibility="only_me",
        )
        summary = env.run()
        assert summary["updated"] == 2 and summary["inserted"] == 0
        assert _history_rows(env) == 251  # one row, for the activity whose counts changed
        assert _history_rows(env, social["id"]) == 2
        assert _history_rows(env, other["id"]) == 1
        prod = env.production()
        assert (prod[social["id"]]["kudos_count"], prod[social["id"]]["comment_count"]) == (
            social["kudos_count"] + 5,
            social["comment_count"] + 2,
        )
        assert prod[social["id"]]["achievement_count"] == social["achievement_count"] + 1
        row = prod[other["id"]]
        assert (row["name"], row["type"], row["sport_type"]) == ("Renamed later", new_type, new_type)
        assert (row["private"], row["visibility"]) == (not other["private"], "only_me")
        assert env.query("SELECT SUM(total_kudos) FROM weekly_kudos_change")[0][0] == total_kudos + 5


def test_schema_drift_never_fails_a_page(tmp_path: Path) -> None:
    for env in make_env(tmp_path, activities=250):
        env.run()
        newest = max(ts(a["start_date"]) for a in env.emu.activities)
        sport, field, missing, wrong = env.emu.add_activities(4, start_date=newest + timedelta(hours=1))
        env.emu.modify_activity(sport["id"], sport_type="Hoverboard", type="Hoverboard")
        env.emu.modify_activity(field["id"], brand_new_field={"nested": [1, 2]}, another_new="x")
        env.emu.remove_fields(missing["id"], "average_heartrate", "max_heartrate", "kudos_count", "map", "gear_id")
        env.emu.modify_activity(wrong["id"], distance="12.3 km", moving_time=None, kudos_count="lots", trainer="no")

        summary = env.run()
        assert summary["status"] == "complete" and summary["inserted"] == 4
        assert summary["new_sport_types"] == ["Hoverboard"]
        assert set(summary["new_fields"]) == {"brand_new_field", "another_new"}
        assert summary["unfit_values"] == {"distance": 1, "kudos_count": 1, "trainer": 1}
        prod = env.production()
        assert prod[sport["id"]]["sport_type"] == "Hoverboard"
        assert prod[field["id"]]["name"] == field["name"]
        assert prod[missing["id"]]["kudos_count"] is None and prod[missing["id"]]["map_id"] is None
        assert prod[missing["id"]]["distance"].hex() == float(missing["distance"]).hex()  # exact: DOUBLE everywhere
        bad = prod[wrong["id"]]
        assert bad["distance"] is None and bad["moving_time"] is None and bad["kudos_count"] is None
        assert bad["name"] == wrong["name"] and bad["elapsed_time"] == wrong["elapsed_time"]
        # The raw page keeps what the table does not know.
        raw = b"".join(
            gzip.decompress(p.read_bytes())
            for p in (env.lake_dir / "raw").rglob(f"run={summary['run_key']}/page-*.json.gz")
        )
        assert b"brand_new_field" in raw and b"12.3 km" in raw


def test_full_refresh_rereads_everything_and_reconciles_old_deletions(tmp_path: Path) -> None:
    for env in make_env(tmp_path, activities=450):
        env.run()
        oldest = env.emu.activities[-2:]
        gone, changed = oldest
        env.emu.delete_activity(gone["id"])
        env.emu.modify_activity(changed["id"], kudos_count=changed["kudos_count"] + 4, name="Edited years later")

        summary = env.run()  # incremental: the lookback window does not reach years back
        assert summary["deleted"] == 0 and summary["updated"] == 0
        assert env.production()[gone["id"]]["deleted_at"] is None

        env.emu.reset_counts()
        summary = env.run(full_refresh=True)
        assert env.emu.request_count(LIST_PATH) == 449 // 200 + 1  # every id once, pages of 200
        assert summary["extracted"] == 449
        assert summary["deleted"] == 1 and summary["updated"] == 1
        prod = env.production()
        assert prod[gone["id"]]["deleted_at"] is not None
        assert prod[changed["id"]]["name"] == "Edited years later"
        assert_production_matches(env)
        # Kept in production, but excluded from the models' summaries.
        assert len(prod) == 450
        assert env.query("SELECT SUM(activity_count) FROM activity_summary_yearly")[0][0] == 449


def test_shared_strava_api_limit_takes_one_slot_per_request(env: Env) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="strava-api", limit=1000, slot_decay_per_second=0.0001)
        )
        try:
            summary = env.run()
            limit = client.read_global_concurrency_limit_by_name("strava-api")
        finally:
            client.delete_global_concurrency_limit_by_name("strava-api")
    assert summary["requests"] == 4
    assert limit.active_slots == 4  # every API request (not /oauth/token) took a slot of the shared budget


# --- the pages ------------------------------------------------------------------------------


def test_iter_activity_pages_stops_on_a_short_page_and_refuses_a_repeated_one(tmp_path: Path) -> None:
    from tasks.strava import PaginationLoopError, StravaClient

    for env in make_env(tmp_path, activities=400):
        credentials = load_block(StravaCredentials, env.strava_block)
        with StravaClient(credentials) as client:
            pages = client.iter_activity_pages(0, per_page=200)
            assert (pages.number, pages.has_more) == (1, True)
            first = next(pages)
            assert len(pages.fresh(first)) == 200 and pages.number == 2
            with pytest.raises(PaginationLoopError, match="page 1 with only activities already read"):
                pages.fresh(first)  # the same activities again: a loop, not new pages
            sizes = [len(page) for page in pages]
        # 400 activities: two full pages, then the empty one that proves the end (ceil(400/200) + 1).
        assert sizes == [200, 0] and not pages.has_more
        assert env.emu.request_count(LIST_PATH) == 3 and client.requests == 3
        oldest_first = env.emu.activities[::-1]  # the emulator lists its store newest first
        assert [a["id"] for a in first] == [a["id"] for a in oldest_first[:200]]
