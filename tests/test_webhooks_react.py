"""Reactions to webhook events against the emulator and DuckDB: events are hints, the API is the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.react import strava_elt_react
from tests.conftest import Env
from tests.roster_support import Roster, athlete_credentials, make_roster


def hint(
    emu_athlete: int, object_id: int, aspect: str, updates: dict[str, str] | None = None, t: int = 1
) -> dict[str, Any]:
    return {
        "object_type": "activity",
        "object_id": object_id,
        "aspect_type": aspect,
        "owner_id": emu_athlete,
        "event_time": 1_793_000_000 + t,
        "updates": updates or {},
    }


def react(env: Env, *events: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return strava_elt_react(
        athlete_id=env.emu.athlete["id"],
        strava_block=env.strava_block,
        lake_block=env.lake_block,
        warehouse_block=env.warehouse_block,
        events=list(events),
        **overrides,
    )


def oldest_id(env: Env) -> int:
    return min(env.emu.activities, key=lambda a: a["start_date"])["id"]


def test_a_new_activity_is_loaded_by_an_incremental_run(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    [new] = env.emu.add_activities(1)
    env.emu.reset_counts()
    summary = react(env, hint(athlete, new["id"], "create"))
    assert summary["incremental"]["inserted"] == 1
    assert summary["requests"] == 0  # no single-activity read: the incremental read covers the summary
    assert env.production()[new["id"]]["name"] == new["name"]
    # The same run loads the new activity's detail and streams: 2 requests, within the allowance.
    assert summary["enriched"] == {"requests": 2, "details": 1, "streams": 1, "enriched": 1}
    assert env.emu.request_count(f"/api/v3/activities/{new['id']}") == 1
    assert env.emu.request_count(f"/api/v3/activities/{new['id']}/streams") == 1
    assert summary["spent_today"] == summary["incremental"]["requests"] + 2
    state = env.query(
        "SELECT detail_at IS NOT NULL, streams_outcome FROM strava_enrichment_state "
        "WHERE athlete_id = ? AND activity_id = ?",
        [athlete, new["id"]],
    )
    assert state in ([(True, "loaded")], [(True, "none")])


def test_an_old_activity_renamed_is_upserted_alone_with_one_request(env: Env) -> None:
    env.run()
    athlete, old = env.emu.athlete["id"], oldest_id(env)
    before = env.production()
    env.emu.modify_activity(old, name="Renamed two years later")
    summary = react(env, hint(athlete, old, "update", {"title": "Renamed two years later"}))
    assert summary["requests"] == 1  # GET /activities/{id}, nothing else
    assert summary["upserted"] == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert "incremental" not in summary
    after = env.production()
    assert after[old]["name"] == "Renamed two years later"
    assert {k: v["row_hash"] for k, v in after.items() if k != old} == {
        k: v["row_hash"] for k, v in before.items() if k != old
    }
    assert env.watermark() is not None


def test_a_deletion_confirmed_by_a_404_is_marked_and_a_forged_one_changes_nothing(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    ids = sorted(a["id"] for a in env.emu.activities)
    deleted, kept = ids[0], ids[1]
    env.emu.delete_activity(deleted)
    summary = react(env, hint(athlete, deleted, "delete"))
    assert summary["marked_deleted"] == 1 and summary["requests"] == 1
    forged = react(env, hint(athlete, kept, "delete"))
    assert forged["requests"] == 1 and "marked_deleted" not in forged
    rows = env.production()
    assert rows[deleted]["deleted_at"] is not None
    assert rows[kept]["deleted_at"] is None
    assert sum(1 for r in rows.values() if r["deleted_at"] is not None) == 1


def test_events_naming_another_athletes_or_no_activity_cost_one_request_each_and_change_nothing(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    before = env.production()
    summary = react(env, hint(athlete, 1, "create"), hint(athlete, 2, "update", {"title": "x"}, t=2))
    assert summary["requests"] == 2  # the ids the incremental read did not bring, read once each
    after = env.production()
    assert {k: v["row_hash"] for k, v in after.items()} == {k: v["row_hash"] for k, v in before.items()}


def test_a_burst_for_one_activity_reads_it_once(env: Env) -> None:
    env.run()
    athlete, old = env.emu.athlete["id"], oldest_id(env)
    env.emu.modify_activity(old, name="Third name")
    summary = react(
        env,
        hint(athlete, old, "update", {"title": "First name"}, t=1),
        hint(athlete, old, "update", {"title": "Second name"}, t=2),
        hint(athlete, old, "update", {"title": "Third name"}, t=3),
    )
    assert summary["requests"] == 1
    assert env.production()[old]["name"] == "Third name"


def test_a_recent_change_goes_through_the_incremental_run(env: Env) -> None:
    env.run()
    athlete = env.emu.athlete["id"]
    newest = max(env.emu.activities, key=lambda a: a["start_date"])
    env.emu.modify_activity(newest["id"], name="Renamed today")
    summary = react(env, hint(athlete, newest["id"], "update", {"title": "Renamed today"}))
    assert summary["incremental"]["updated"] >= 1
    assert env.production()[newest["id"]]["name"] == "Renamed today"


@pytest.fixture
def roster(tmp_path: Path) -> Iterator[Roster]:
    yield from make_roster(tmp_path, athletes=2, activities=40)


def test_a_deauthorization_confirmed_by_strava_marks_the_athlete_revoked(roster: Roster) -> None:
    gone, stays = roster.athlete_ids
    for athlete_id in (gone, stays):
        roster.run(athlete_id)
    roster.emu.for_athlete(gone).revoke_refresh_token()
    deauthorize = {
        "object_type": "athlete",
        "object_id": gone,
        "aspect_type": "update",
        "updates": {"authorized": "false"},
    }
    common = {
        "application": roster.application_block,
        "lake_block": roster.lake_block,
        "warehouse_block": roster.warehouse_block,
    }
    summary = strava_elt_react(athlete_id=gone, events=[deauthorize], **common)
    assert summary["status"] == "revoked"
    revoked = athlete_credentials(roster, gone)
    assert revoked.status == "revoked" and revoked.revoked_at and "deauthorized" in (revoked.revoked_reason or "")
    # A forged deauthorization for an athlete who still authorises the application changes nothing.
    forged = {**deauthorize, "object_id": stays}
    assert "status" not in strava_elt_react(athlete_id=stays, events=[forged], **common)
    assert athlete_credentials(roster, stays).status == "active"
    # Later events for the revoked athlete cost nothing.
    later = strava_elt_react(athlete_id=gone, events=[hint(gone, 1, "create")], **common)
    assert later == {"athlete_id": gone, "events": 1, "requests": 0, "status": "revoked"}


def test_forged_floods_cost_at_most_the_cap_plus_the_incremental_read_and_what_is_over_is_kept(env: Env) -> None:
    """2,000 forged creates and 2,000 forged updates of old activities: the cap, the incremental pages, no more."""
    from tasks.state.variables import read_variable

    env.run()
    athlete = env.emu.athlete["id"]
    old = oldest_id(env)
    env.emu.modify_activity(old, name="Renamed for real")
    # (the fields a reaction reads: 4,000 whole payloads exceed a flow run's 512 KB of parameters)
    forged_creates = [
        {"object_type": "activity", "object_id": 7_000_000_000 + i, "aspect_type": "create"} for i in range(2000)
    ]
    forged_updates = [{"object_type": "activity", "object_id": 100 + i, "aspect_type": "update"} for i in range(1999)]
    real_update = hint(athlete, old, "update", {"title": "Renamed for real"}, t=5000)
    env.emu.reset_counts()
    summary = react(env, *forged_creates, *forged_updates, real_update, max_activity_requests=20, daily_requests=60)
    single_reads = sum(
        1 for r in env.emu.requests if r.path.startswith("/api/v3/activities/") and r.path.count("/") == 4
    )
    incremental = summary["incremental"]["requests"]
    assert single_reads == summary["requests"] == 20
    assert incremental <= 3  # /athlete and the list page(s) of the lookback window
    assert env.emu.request_count(athlete_id=athlete) <= 20 + incremental
    assert summary["spent_today"] == 20 + incremental
    # what is over the cap is kept, not dropped: more than fits by name, so a full read is due
    assert summary["full_read_due"] is True
    kept = read_variable(f"strava_react_deferred_{athlete}")
    assert kept["full_read_due"] is True
    # the real rename of an old activity is among what is owed; the next reaction pays it with a full read
    env.emu.reset_counts()
    again = react(env, hint(athlete, old, "update", {"title": "Renamed for real"}, t=6000), daily_requests=1000)
    assert again["incremental"]["full_read"] is True and again["full_read_due"] is False
    assert env.production()[old]["name"] == "Renamed for real"
    # the day's allowance holds across reactions: a spent athlete's next flood makes no request
    env.emu.reset_counts()
    spent = react(env, *forged_creates[:50], max_activity_requests=20, daily_requests=again["spent_today"])
    assert env.emu.request_count(athlete_id=athlete) == 0 and spent["requests"] == 0
    # and the next weekly run still loads the athlete
    env.emu.add_activities(2)
    assert env.run()["inserted"] == 2
