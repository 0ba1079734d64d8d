"""The emulator serves the whole activity record over real HTTP: detail, streams, gear, stats, zones."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from emulator import StravaEmulator
from emulator.athlete import decode_polyline
from emulator.record import BEST_EFFORTS, STREAM_KEYS
from tests.strava_support import FakeClock

END = datetime(2026, 6, 10, 7, 0, tzinfo=UTC)
ALL_KEYS = ",".join(STREAM_KEYS)


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide Prefect server: the emulator needs none."""
    yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 6, 11, 10, 5, 0, tzinfo=UTC))


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[StravaEmulator]:
    with StravaEmulator(activities=150, seed=7, clock=clock, end=END) as emulator:
        yield emulator


@pytest.fixture
def client(emu: StravaEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=10, verify=False) as plain:
        yield plain


@pytest.fixture
def auth(emu: StravaEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.issue_access_token()}"}


def listing(client: httpx.Client, auth: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        batch = client.get("/api/v3/athlete/activities", params={"per_page": 200, "page": page}, headers=auth).json()
        out.extend(batch)
        if len(batch) < 200:
            return out
        page += 1


def first(emu: StravaEmulator, predicate: Any) -> dict[str, Any]:
    return next(a for a in emu.activities if predicate(a))


def outdoor_run(a: dict[str, Any]) -> bool:
    return a["sport_type"] == "Run" and bool(a["start_latlng"]) and a["has_heartrate"] and not a["private"]


def get_streams(client: httpx.Client, auth: dict[str, str], activity_id: int, **params: str) -> httpx.Response:
    query = {"keys": ALL_KEYS, "key_by_type": "true", **params}
    return client.get(f"/api/v3/activities/{activity_id}/streams", params=query, headers=auth)


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (a[0] - b[0]) * 111_320
    dlng = (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlng)


# --- the detail ----------------------------------------------------------------------


def test_detail_agrees_with_the_listing_and_sums_up(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    summaries = {a["id"]: a for a in listing(client, auth)}
    run = first(emu, outdoor_run)
    response = client.get(f"/api/v3/activities/{run['id']}", params={"include_all_efforts": "true"}, headers=auth)
    assert response.status_code == 200
    detail = response.json()
    summary = summaries[run["id"]]
    for name in ("id", "name", "distance", "moving_time", "elapsed_time", "kudos_count", "start_date", "gear_id"):
        assert detail[name] == summary[name], name
    assert detail["resource_state"] == 3
    for name in ("description", "calories", "device_name", "photos", "gear", "laps", "splits_metric"):
        assert name in detail, name
    assert detail["gear"]["id"] == summary["gear_id"] and detail["gear"]["distance"] > 0
    assert detail["photos"]["count"] == summary["total_photo_count"]
    assert detail["calories"] > 0 and detail["device_name"]
    for parts in (detail["laps"], detail["splits_metric"], detail["splits_standard"]):
        assert len(parts) >= 2
        assert sum(p["distance"] for p in parts) == pytest.approx(summary["distance"], abs=0.05)
        assert sum(p["moving_time"] for p in parts) == summary["moving_time"]
        assert sum(p["elapsed_time"] for p in parts) == summary["elapsed_time"]
    assert [lap["lap_index"] for lap in detail["laps"]] == list(range(1, len(detail["laps"]) + 1))
    assert all(lap["activity"]["id"] == run["id"] for lap in detail["laps"])
    efforts = detail["best_efforts"]
    names = [name for name, metres in BEST_EFFORTS if metres <= summary["distance"]]
    assert [e["name"] for e in efforts] == names
    for effort in efforts:
        assert 0 < effort["elapsed_time"] <= summary["elapsed_time"] and effort["end_index"] > effort["start_index"]
        assert effort["pr_rank"] in (None, 1, 2, 3)
    segments = detail["segment_efforts"]
    assert segments and all("pr_rank" in e and e["segment"]["id"] > 0 for e in segments)
    # a shorter effort is never slower than a longer one
    times = [e["elapsed_time"] for e in efforts]
    assert times == sorted(times)


def test_detail_is_deterministic_by_seed(clock: FakeClock) -> None:
    def record(seed: int) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        with StravaEmulator(activities=40, seed=seed, clock=clock, end=END) as emu:
            run = first(emu, outdoor_run)
            return emu.activity_detail(run["id"]), emu.activity_streams(run["id"])

    assert record(11) == record(11)
    assert record(11) != record(12)


def test_updates_reach_the_detail(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    run = first(emu, outdoor_run)
    emu.modify_activity(run["id"], name="Renamed")
    emu.modify_detail(run["id"], description="Hills 😅", calories=1e20)
    detail = client.get(f"/api/v3/activities/{run['id']}", headers=auth).json()
    assert (detail["name"], detail["description"], detail["calories"]) == ("Renamed", "Hills 😅", 1e20)
    assert "description" not in emu.activity(run["id"])  # the summary keeps its shape


# --- streams -------------------------------------------------------------------------


def test_streams_are_consistent_with_the_activity(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    run = first(emu, outdoor_run)
    response = get_streams(client, auth, run["id"])
    assert response.status_code == 200
    streams = response.json()
    assert set(streams) == {"time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate"} | (
        {"cadence", "moving", "grade_smooth"} | ({"temp"} if "average_temp" in run else set())
    )
    n = run["elapsed_time"] + 1
    for key, stream in streams.items():
        assert len(stream["data"]) == n == stream["original_size"], key
        assert stream["series_type"] == "distance" and stream["resolution"] == "high"
    time, distance = streams["time"]["data"], streams["distance"]["data"]
    assert time[0] == 0 and time[-1] == run["elapsed_time"]
    assert distance[-1] == run["distance"] and distance == sorted(distance)
    assert sum(streams["moving"]["data"]) == run["moving_time"]
    heart = streams["heartrate"]["data"]
    assert 40 <= min(heart) and max(heart) <= run["max_heartrate"]
    assert sum(heart) / n == pytest.approx(run["average_heartrate"], abs=3)
    track = [tuple(p) for p in streams["latlng"]["data"]]
    assert all(len(p) == 2 for p in track)
    assert metres_between(track[0], tuple(run["start_latlng"])) < 15
    assert metres_between(track[-1], tuple(run["end_latlng"])) < 15
    # the summary polyline is a decimated version of the same track
    for vertex in decode_polyline(run["map"]["summary_polyline"]):
        assert min(metres_between(vertex, p) for p in track) < 25
    # heart rate follows effort: the faster half of the run beats the slower half
    speed = streams["velocity_smooth"]["data"]
    moving = [i for i in range(60, n) if streams["moving"]["data"][i]]
    moving.sort(key=lambda i: speed[i])
    slow, fast = moving[: len(moving) // 2], moving[len(moving) // 2 :]
    assert sum(heart[i] for i in fast) / len(fast) > sum(heart[i] for i in slow) / len(slow)


def test_laps_index_into_the_streams(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    run = first(emu, outdoor_run)
    detail = client.get(f"/api/v3/activities/{run['id']}", headers=auth).json()
    distance = get_streams(client, auth, run["id"], keys="distance").json()["distance"]["data"]
    for lap in detail["laps"]:
        assert distance[lap["end_index"]] - distance[lap["start_index"]] == pytest.approx(lap["distance"], abs=0.05)
    assert detail["laps"][-1]["end_index"] == len(distance) - 1


def test_only_the_channels_the_activity_has(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    indoor = first(emu, lambda a: a["trainer"] and not a["manual"] and not a["private"])
    streams = get_streams(client, auth, indoor["id"]).json()
    assert "latlng" not in streams and {"time", "distance"} <= set(streams)
    no_heart = first(emu, lambda a: not a["has_heartrate"] and not a["manual"] and not a["private"])
    assert "heartrate" not in get_streams(client, auth, no_heart["id"]).json()
    unpowered = first(emu, lambda a: a["type"] == "Ride" and a.get("device_watts") is False and not a["private"])
    assert "watts" not in get_streams(client, auth, unpowered["id"]).json()
    powered = first(emu, lambda a: a.get("device_watts") and not a["private"] and not a["manual"])
    watts = get_streams(client, auth, powered["id"]).json()["watts"]["data"]
    assert max(watts) <= powered["max_watts"] and min(watts) >= 0


def test_keys_resolution_and_list_form(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    run = first(emu, outdoor_run)
    low = get_streams(client, auth, run["id"], keys="heartrate,watts", resolution="low").json()
    assert set(low) == {"heartrate", "distance"}  # the series type comes too; a ride's channel does not
    assert len(low["distance"]["data"]) == 100 and low["distance"]["resolution"] == "low"
    assert (
        low["distance"]["data"][-1] == run["distance"] and low["distance"]["original_size"] == run["elapsed_time"] + 1
    )
    listed = client.get(
        f"/api/v3/activities/{run['id']}/streams", params={"keys": "time", "series_type": "time"}, headers=auth
    ).json()
    assert [s["type"] for s in listed] == ["time"] and listed[0]["series_type"] == "time"
    bad = get_streams(client, auth, run["id"], resolution="ultra")
    assert bad.status_code == 400


def test_hostile_streams_are_sent_verbatim(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    run = first(emu, outdoor_run)
    emu.set_stream(run["id"], "heartrate", [1e20, 150, 151])
    emu.set_stream(run["id"], "latlng", [[51.5], "x", [1, 2, 3]])
    emu.set_stream(run["id"], "temp", None)
    streams = get_streams(client, auth, run["id"]).json()
    assert streams["heartrate"]["data"] == [1e20, 150, 151]
    assert streams["latlng"]["data"] == [[51.5], "x", [1, 2, 3]]
    assert "temp" not in streams
    assert len(streams["time"]["data"]) == run["elapsed_time"] + 1  # channels of different lengths
    emu.clear_streams(run["id"])
    assert len(get_streams(client, auth, run["id"]).json()["heartrate"]["data"]) == run["elapsed_time"] + 1
    with pytest.raises(ValueError, match="unknown stream type"):
        emu.set_stream(run["id"], "power", [1])


def test_a_long_ride_at_one_sample_a_second(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    ride = max((a for a in emu.activities if not a["manual"] and not a["private"]), key=lambda a: a["elapsed_time"])
    assert ride["elapsed_time"] > 3 * 3600
    streams = get_streams(client, auth, ride["id"], keys="time,distance").json()
    assert streams["time"]["data"][-1] == ride["elapsed_time"] and streams["distance"]["data"][-1] == ride["distance"]


# --- deletes, budget, scope ----------------------------------------------------------


def test_deleted_activity_is_a_404(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    run = first(emu, outdoor_run)
    emu.delete_activity(run["id"])
    not_found = {"message": "Record Not Found", "errors": [{"resource": "Activity", "field": "id", "code": "invalid"}]}
    for path in (f"/api/v3/activities/{run['id']}", f"/api/v3/activities/{run['id']}/streams"):
        response = client.get(path, headers=auth)
        assert (response.status_code, response.json()) == (404, not_found)
    emu.restore_activity(run["id"])
    assert get_streams(client, auth, run["id"]).status_code == 200


def test_every_new_route_counts_in_the_one_budget(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    run = first(emu, outdoor_run)
    athlete_id = emu.athlete_id
    emu.set_limits(read=(5, 1000))
    paths = [
        f"/api/v3/activities/{run['id']}",
        f"/api/v3/activities/{run['id']}/streams",
        f"/api/v3/gear/{run['gear_id']}",
        f"/api/v3/athletes/{athlete_id}/stats",
        "/api/v3/athlete/zones",
    ]
    for number, path in enumerate(paths, start=1):
        response = client.get(path, headers=auth)
        assert response.status_code == 200, path
        assert response.headers["X-ReadRateLimit-Usage"] == f"{number},{number}"
    refused = client.get(f"/api/v3/activities/{run['id']}/streams", headers=auth)
    assert refused.status_code == 429 and refused.headers["X-ReadRateLimit-Usage"] == "6,6"
    assert emu.request_count(route="streams") == 2 and emu.request_count(route="gear") == 1
    assert emu.route_counts() == {"activity": 1, "streams": 2, "gear": 1, "stats": 1, "zones": 1}


def test_private_activities_need_read_all(client: httpx.Client, emu: StravaEmulator) -> None:
    private = first(emu, lambda a: a["private"] and not a["manual"])
    full = {"Authorization": f"Bearer {emu.issue_access_token()}"}
    public = {"Authorization": f"Bearer {emu.issue_access_token(scope='read,activity:read')}"}
    assert private["id"] in {a["id"] for a in listing(client, full)}
    seen = listing(client, public)
    assert private["id"] not in {a["id"] for a in seen} and not any(a["private"] for a in seen)
    assert len(seen) == sum(not a["private"] for a in emu.activities)
    for path in (f"/api/v3/activities/{private['id']}", f"/api/v3/activities/{private['id']}/streams"):
        assert client.get(path, headers=full).status_code == 200
        assert client.get(path, headers=public).status_code == 404
    bare = {"Authorization": f"Bearer {emu.issue_access_token(scope='read')}"}
    refused = client.get("/api/v3/athlete/activities", headers=bare)
    assert refused.status_code == 401
    assert refused.json()["errors"] == [
        {"resource": "AccessToken", "field": "activity:read_permission", "code": "missing"}
    ]
    assert client.get("/api/v3/athlete", headers=bare).status_code == 200


def test_the_scope_of_an_authorization_code_sticks_to_refreshes(client: httpx.Client, emu: StravaEmulator) -> None:
    code = emu.authorization_code(scope="read,activity:read")
    form = {"client_id": "12345", "client_secret": "emulator-secret"}
    granted = client.post("/oauth/token", data={**form, "grant_type": "authorization_code", "code": code}).json()
    refreshed = client.post(
        "/oauth/token", data={**form, "grant_type": "refresh_token", "refresh_token": granted["refresh_token"]}
    ).json()
    private = first(emu, lambda a: a["private"])
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert client.get(f"/api/v3/activities/{private['id']}", headers=headers).status_code == 404


# --- gear, stats, zones --------------------------------------------------------------


def test_gear_distance_grows_with_its_activities(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    run = first(emu, outdoor_run)
    gear_id = run["gear_id"]
    before = client.get(f"/api/v3/gear/{gear_id}", headers=auth).json()
    used = sum(a["distance"] for a in emu.activities if a["gear_id"] == gear_id)
    assert before["id"] == gear_id and before["resource_state"] == 3 and before["brand_name"]
    assert before["distance"] == pytest.approx(used, abs=0.1)
    added = emu.add_activities(6)
    grown = sum(a["distance"] for a in added if a["gear_id"] == gear_id)
    after = client.get(f"/api/v3/gear/{gear_id}", headers=auth).json()
    assert after["distance"] == pytest.approx(before["distance"] + grown, abs=0.1)
    assert client.get("/api/v3/gear/g1", headers=auth).status_code == 404


def test_stats_follow_the_activities(client: httpx.Client, emu: StravaEmulator, auth: dict) -> None:
    stats = client.get(f"/api/v3/athletes/{emu.athlete_id}/stats", headers=auth).json()
    runs = [a for a in emu.activities if a["type"] == "Run" and a["visibility"] == "everyone"]
    assert stats["all_run_totals"]["count"] == len(runs)
    assert stats["all_run_totals"]["distance"] == pytest.approx(sum(a["distance"] for a in runs), abs=0.5)
    assert stats["all_run_totals"]["moving_time"] == sum(a["moving_time"] for a in runs)
    for group in ("ride", "run", "swim"):
        recent, ytd, every = (stats[f"{p}_{group}_totals"] for p in ("recent", "ytd", "all"))
        assert recent["count"] <= ytd["count"] <= every["count"]
        assert "achievement_count" in recent
    assert stats["biggest_ride_distance"] == max(
        a["distance"] for a in emu.activities if a["type"] in ("Ride", "VirtualRide") and a["visibility"] == "everyone"
    )
    runs_before = stats["all_run_totals"]["count"]
    emu.delete_activity(runs[0]["id"])
    stats = client.get(f"/api/v3/athletes/{emu.athlete_id}/stats", headers=auth).json()
    assert stats["all_run_totals"]["count"] == runs_before - 1
    assert client.get(f"/api/v3/athletes/{emu.athlete_id + 1}/stats", headers=auth).status_code == 403


def test_zones(client: httpx.Client, auth: dict[str, str]) -> None:
    zones = client.get("/api/v3/athlete/zones", headers=auth).json()
    heart = zones["heart_rate"]["zones"]
    assert len(heart) == 5 and heart[0]["min"] == 0 and heart[-1]["max"] == -1
    assert all(a["max"] == b["min"] for a, b in zip(heart, heart[1:], strict=False))
    assert len(zones["power"]["zones"]) == 7


def test_the_record_is_confined_to_its_athlete(clock: FakeClock) -> None:
    with StravaEmulator(activities=30, seed=7, clock=clock, end=END, athletes=2) as emu:
        first_id, second_id = emu.athlete_ids
        second = emu.for_athlete(second_id)
        theirs = first(emu, outdoor_run)
        headers = {"Authorization": f"Bearer {second.issue_access_token()}"}
        with httpx.Client(base_url=emu.base_url, timeout=10) as client:
            for path in (f"/api/v3/activities/{theirs['id']}", f"/api/v3/activities/{theirs['id']}/streams"):
                assert client.get(path, headers=headers).status_code == 404
            assert client.get(f"/api/v3/gear/{theirs['gear_id']}", headers=headers).status_code == 404
            assert client.get(f"/api/v3/athletes/{first_id}/stats", headers=headers).status_code == 403
            own = next(a for a in second.activities if a["gear_id"])
            assert client.get(f"/api/v3/gear/{own['gear_id']}", headers=headers).status_code == 200
            assert client.get(f"/api/v3/activities/{own['id']}", headers=headers).json()["athlete"]["id"] == second_id
        assert emu.request_count(athlete_id=second_id, route="activity") == 2
