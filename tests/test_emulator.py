"""The Strava API v3 emulator, over real HTTP with httpx."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from emulator import NASTY_NAMES, StravaEmulator
from emulator.athlete import AthleteGenerator, decode_polyline
from tests.strava_support import FakeClock

ACTIVITIES = "/api/v3/athlete/activities"
END = datetime(2026, 6, 10, 7, 0, tzinfo=UTC)
INDOOR = {"VirtualRide", "WeightTraining", "Yoga"}
SUMMARY_FIELDS = {
    "resource_state",
    "athlete",
    "name",
    "distance",
    "moving_time",
    "elapsed_time",
    "total_elevation_gain",
    "type",
    "sport_type",
    "workout_type",
    "id",
    "external_id",
    "upload_id",
    "start_date",
    "start_date_local",
    "timezone",
    "utc_offset",
    "location_city",
    "location_state",
    "location_country",
    "achievement_count",
    "kudos_count",
    "comment_count",
    "athlete_count",
    "photo_count",
    "total_photo_count",
    "map",
    "trainer",
    "commute",
    "manual",
    "private",
    "visibility",
    "flagged",
    "gear_id",
    "start_latlng",
    "end_latlng",
    "average_speed",
    "max_speed",
    "has_heartrate",
    "heartrate_opt_out",
    "display_hide_heartrate_option",
    "pr_count",
    "has_kudoed",
    "suffer_score",
    "from_accepted_tag",
}


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide Prefect server: the emulator needs none (saves ~15 s)."""
    yield


def http(base_url: str) -> httpx.Client:
    # Plain HTTP to localhost: skip loading the CA bundle (about 50 ms per client).
    return httpx.Client(base_url=base_url, timeout=5, verify=False)


@pytest.fixture(scope="module")
def default_history() -> list[dict[str, Any]]:
    """The default-sized athlete (1,500 activities, seed 42), newest first."""
    return AthleteGenerator(42).history(1500, END)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 6, 11, 10, 5, 0, tzinfo=UTC))


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[StravaEmulator]:
    with StravaEmulator(activities=300, seed=7, clock=clock, end=END) as emulator:
        yield emulator


@pytest.fixture
def client(emu: StravaEmulator) -> Iterator[httpx.Client]:
    with http(emu.base_url) as plain:
        yield plain


APP_FORM = {"client_id": "12345", "client_secret": "emulator-secret"}  # the emulator's default application


def token_request(client: httpx.Client, **form: str) -> httpx.Response:
    """POST ``/oauth/token`` as the emulator's default application, with the grant in ``form``."""
    return client.post("/oauth/token", data={**APP_FORM, **form})


def grant(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return token_request(client, grant_type="refresh_token", refresh_token=refresh_token)


def refresh(client: httpx.Client, emu: StravaEmulator, token: str | None = None) -> httpx.Response:
    return grant(client, token if token is not None else emu.current_refresh_token)


def exchange_code(client: httpx.Client, code: str) -> httpx.Response:
    return token_request(client, grant_type="authorization_code", code=code)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(client: httpx.Client, emu: StravaEmulator) -> dict[str, str]:
    response = refresh(client, emu)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


def list_all(client: httpx.Client, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        response = client.get(ACTIVITIES, params={**params, "page": page}, headers=auth)
        assert response.status_code == 200, response.text
        batch = response.json()
        out.extend(batch)
        if len(batch) < params.get("per_page", 30):
            return out
        page += 1


# --- OAuth ----------------------------------------------------------------------------


def test_refresh_returns_strava_shaped_tokens_and_rotates(
    client: httpx.Client, emu: StravaEmulator, clock: FakeClock
) -> None:
    first = refresh(client, emu, "emulator-refresh-token")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"token_type", "access_token", "expires_at", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 21600
    assert body["expires_at"] == int(clock.now.timestamp()) + 21600
    assert len(body["access_token"]) == 40 and int(body["access_token"], 16) >= 0
    assert body["refresh_token"] != "emulator-refresh-token"
    assert emu.current_refresh_token == body["refresh_token"]

    reused = refresh(client, emu, "emulator-refresh-token")
    assert reused.status_code == 400
    assert reused.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}],
    }
    second = refresh(client, emu, body["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (body["refresh_token"], "emulator-refresh-token")
    # An earlier access token stays valid until it expires.
    assert client.get("/api/v3/athlete", headers=bearer(body["access_token"])).status_code == 200


def test_wrong_client_credentials_and_grant_rejected(client: httpx.Client, emu: StravaEmulator) -> None:
    base = {**APP_FORM, "grant_type": "refresh_token", "refresh_token": emu.current_refresh_token}
    for change, field in (
        ({"client_secret": "nope"}, "client_secret"),
        ({"client_id": "999"}, "client_id"),
        ({"grant_type": "password"}, "grant_type"),
    ):
        response = client.post("/oauth/token", data={**base, **change})
        assert response.status_code == 400
        assert response.json()["message"] == "Bad Request"
        assert response.json()["errors"][0]["field"] == field
    # Failed attempts do not consume the refresh token.
    assert emu.current_refresh_token == "emulator-refresh-token"


def test_token_parameters_accepted_in_query_string_and_json(client: httpx.Client, emu: StravaEmulator) -> None:
    params = {**APP_FORM, "grant_type": "refresh_token", "refresh_token": emu.current_refresh_token}
    assert client.post("/oauth/token", params=params).status_code == 200
    params["refresh_token"] = emu.current_refresh_token
    assert client.post("/oauth/token", json=params).status_code == 200
    recorded = emu.requests[0]
    assert recorded.query["client_secret"] == "***"
    assert recorded.query["refresh_token"] == "***"


def test_token_endpoint_also_answers_under_api_v3(client: httpx.Client, emu: StravaEmulator) -> None:
    response = client.post(
        "/api/v3/oauth/token",
        data={**APP_FORM, "grant_type": "refresh_token", "refresh_token": emu.current_refresh_token},
    )
    assert response.status_code == 200
    assert "X-RateLimit-Usage" not in response.headers  # OAuth is not rate limited
    assert client.get("/oauth/token").status_code == 404  # POST only


def test_authorization_code_is_single_use(client: httpx.Client, emu: StravaEmulator) -> None:
    code = emu.authorization_code("abc123")
    first = exchange_code(client, code)
    assert first.status_code == 200
    body = first.json()
    assert body["athlete"]["id"] == emu.athlete["id"]
    assert body["athlete"]["resource_state"] == 2
    assert emu.current_refresh_token == body["refresh_token"]
    again = exchange_code(client, code)
    assert again.status_code == 400
    assert again.json()["errors"][0]["field"] == "code"
    assert client.get("/api/v3/athlete", headers=bearer(body["access_token"])).status_code == 200


def test_revoked_access_needs_a_new_authorization(
    client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]
) -> None:
    token = emu.current_refresh_token
    emu.revoke_refresh_token()
    assert client.get("/api/v3/athlete", headers=auth).status_code == 401
    assert refresh(client, emu, token).status_code == 400
    response = exchange_code(client, emu.authorization_code())
    assert response.status_code == 200
    assert refresh(client, emu).status_code == 200


# --- authorisation on the API ---------------------------------------------------------


AUTH_ERROR = {
    "message": "Authorization Error",
    "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}],
}


def test_401_without_wrong_or_query_string_token(
    client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]
) -> None:
    token = auth["Authorization"].split()[1]
    for headers, params in (
        ({}, {}),
        (bearer("0" * 40), {}),
        ({}, {"access_token": token}),
        ({"Authorization": token}, {}),
    ):
        response = client.get("/api/v3/athlete", headers=headers, params=params)
        assert response.status_code == 401
        assert response.json() == AUTH_ERROR
        assert "X-RateLimit-Usage" in response.headers
    assert client.get("/api/v3/athlete", headers=auth).status_code == 200


def test_access_token_expires_after_six_hours(
    client: httpx.Client, emu: StravaEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    clock.advance(hours=5, minutes=59)
    assert client.get("/api/v3/athlete", headers=auth).status_code == 200
    clock.advance(minutes=1)
    assert client.get("/api/v3/athlete", headers=auth).status_code == 401
    fresh = bearer(refresh(client, emu).json()["access_token"])
    assert client.get("/api/v3/athlete", headers=fresh).status_code == 200
    emu.expire_access_tokens()
    assert client.get(ACTIVITIES, headers=fresh).json() == AUTH_ERROR


def test_athlete_endpoint(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    athlete = client.get("/api/v3/athlete", headers=auth).json()
    assert athlete == emu.athlete
    assert athlete["resource_state"] == 3
    for key in ("id", "username", "firstname", "lastname", "city", "country", "sex", "premium", "created_at"):
        assert key in athlete
    gear_ids = {g["id"] for g in athlete["bikes"] + athlete["shoes"]}
    used = {a["gear_id"] for a in emu.activities if a["gear_id"]}
    assert used <= gear_ids
    assert athlete["created_at"] < emu.activities[-1]["start_date"]


# --- listing --------------------------------------------------------------------------


def test_per_page_default_and_cap(client: httpx.Client, auth: dict[str, str]) -> None:
    assert len(client.get(ACTIVITIES, headers=auth).json()) == 30
    assert len(client.get(ACTIVITIES, params={"per_page": 200}, headers=auth).json()) == 200
    assert len(client.get(ACTIVITIES, params={"per_page": 500}, headers=auth).json()) == 200
    assert len(client.get(ACTIVITIES, params={"per_page": 7}, headers=auth).json()) == 7


def test_default_order_is_newest_first(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    page = client.get(ACTIVITIES, params={"per_page": 50}, headers=auth).json()
    starts = [a["start_date"] for a in page]
    assert starts == sorted(starts, reverse=True)
    assert page == emu.activities[:50]
    assert page[0]["start_date"] == "2026-06-10T07:00:00Z"


def test_before_after_filters_and_order(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    everything = emu.activities
    pivot = everything[100]
    pivot_epoch = int(datetime.fromisoformat(pivot["start_date"]).timestamp())

    after = list_all(client, auth, after=pivot_epoch, per_page=40)
    assert [a["id"] for a in after] == [a["id"] for a in reversed(everything[:100])]  # oldest first

    before = list_all(client, auth, before=pivot_epoch, per_page=40)
    assert [a["id"] for a in before] == [a["id"] for a in everything[101:]]  # newest first

    low = int(datetime.fromisoformat(everything[150]["start_date"]).timestamp())
    both = list_all(client, auth, after=low, before=pivot_epoch, per_page=40)
    assert [a["id"] for a in both] == [a["id"] for a in everything[101:150]]  # newest first

    # Strictness: start_date == after or == before is excluded.
    assert pivot["id"] not in {a["id"] for a in after + before}


def test_pagination_returns_every_id_once(client: httpx.Client, auth: dict[str, str]) -> None:
    for params in ({}, {"after": 0}):
        ids = [a["id"] for a in list_all(client, auth, per_page=200, **params)]
        assert len(ids) == 300 == len(set(ids))
    beyond = client.get(ACTIVITIES, params={"per_page": 200, "page": 3}, headers=auth)
    assert beyond.status_code == 200 and beyond.json() == []


@pytest.mark.parametrize("params", [{"page": "x"}, {"per_page": "1.5"}, {"after": "yesterday"}, {"before": ""}])
def test_invalid_parameters_are_400(client: httpx.Client, auth: dict[str, str], params: dict[str, str]) -> None:
    response = client.get(ACTIVITIES, params=params, headers=auth)
    assert response.status_code == 400
    assert response.json()["message"] == "Bad Request"
    assert response.json()["errors"][0]["field"] == next(iter(params))


def test_unknown_path_is_404(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.get("/api/v3/athlete/nope", headers=auth)
    assert response.status_code == 404
    assert response.json() == {
        "message": "Record Not Found",
        "errors": [{"resource": "resource", "field": "path", "code": "invalid"}],
    }
    assert client.get("/elsewhere").status_code == 404


def test_activity_detail(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    activity = emu.activities[3]
    detail = client.get(f"/api/v3/activities/{activity['id']}", headers=auth).json()
    assert detail["id"] == activity["id"] and detail["resource_state"] == 3
    emu.delete_activity(activity["id"])
    assert client.get(f"/api/v3/activities/{activity['id']}", headers=auth).status_code == 404


# --- rate limits ----------------------------------------------------------------------


def usage(response: httpx.Response) -> tuple[str, str]:
    return response.headers["X-ReadRateLimit-Usage"], response.headers["X-RateLimit-Usage"]


def test_rate_limit_headers_count_and_reset(
    client: httpx.Client, emu: StravaEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    clock.now = datetime(2026, 6, 11, 23, 44, 0, tzinfo=UTC)
    emu.reset_usage()
    first = client.get(ACTIVITIES, headers=auth)
    assert first.headers["X-RateLimit-Limit"] == "200,2000"
    assert first.headers["X-ReadRateLimit-Limit"] == "100,1000"
    assert usage(first) == ("1,1", "1,1")
    assert usage(client.get("/api/v3/athlete", headers=auth)) == ("2,2", "2,2")
    assert usage(client.post("/api/v3/athlete", headers=auth)) == ("2,2", "3,3")  # not a read
    clock.advance(seconds=59)  # 23:44:59, same window
    assert usage(client.get(ACTIVITIES, headers=auth)) == ("3,3", "4,4")
    clock.advance(seconds=1)  # 23:45:00, a new 15-minute window, same day
    assert usage(client.get(ACTIVITIES, headers=auth)) == ("1,4", "1,5")
    clock.advance(minutes=15)  # 00:00:00, a new day
    fresh = bearer(refresh(client, emu).json()["access_token"])  # /oauth/token is not counted
    assert usage(client.get(ACTIVITIES, headers=fresh)) == ("1,1", "1,1")
    assert emu.usage == {"read": (1, 1), "overall": (1, 1)}


def test_429_past_the_limit_then_next_window(
    client: httpx.Client, emu: StravaEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    emu.set_limits(read=(3, 10), overall=(200, 2000))
    for _ in range(3):
        assert client.get(ACTIVITIES, headers=auth).status_code == 200
    refused = client.get(ACTIVITIES, headers=auth)
    assert refused.status_code == 429
    assert refused.json() == {
        "message": "Rate Limit Exceeded",
        "errors": [{"resource": "Application", "field": "rate limit", "code": "exceeded"}],
    }
    assert refused.headers["X-ReadRateLimit-Limit"] == "3,10"
    assert refused.headers["X-ReadRateLimit-Usage"] == "4,4"  # refused requests count too
    clock.advance(minutes=15)
    assert client.get(ACTIVITIES, headers=auth).status_code == 200
    emu.set_limits(read=(100, 5))
    assert client.get(ACTIVITIES, headers=auth).status_code == 429  # daily budget spent
    clock.advance(minutes=15)
    assert client.get(ACTIVITIES, headers=auth).status_code == 429
    emu.reset_usage()
    assert client.get(ACTIVITIES, headers=auth).status_code == 200


def test_overall_limit_counts_non_reads(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    emu.set_limits(overall=(2, 100))
    assert client.put("/api/v3/athlete", headers=auth).status_code == 404
    assert client.get(ACTIVITIES, headers=auth).status_code == 200
    assert client.get(ACTIVITIES, headers=auth).status_code == 429


# --- injected failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("500", 500),
        ("502", 502),
        ("503", 503),
        ("html", 502),
        ("429", 429),
    ],
)
def test_injected_failure_on_a_page_then_success(
    client: httpx.Client, emu: StravaEmulator, auth: dict[str, str], kind: str, status: int
) -> None:
    emu.fail_requests(ACTIVITIES, kind, times=2, page=2)
    params = {"per_page": 50}
    assert client.get(ACTIVITIES, params=params, headers=auth).status_code == 200  # page 1
    for _ in range(2):
        failed = client.get(ACTIVITIES, params={**params, "page": 2}, headers=auth)
        assert failed.status_code == status
        if kind == "html":
            assert failed.headers["Content-Type"].startswith("text/html")
            assert "<html>" in failed.text
        else:
            assert failed.headers["Content-Type"].startswith("application/json")
            assert "message" in failed.json()
        if kind == "429":
            assert failed.json()["message"] == "Rate Limit Exceeded"
            assert "X-RateLimit-Usage" in failed.headers
    ok = client.get(ACTIVITIES, params={**params, "page": 2}, headers=auth)
    assert ok.status_code == 200 and len(ok.json()) == 50
    assert emu.request_count(ACTIVITIES) == 4
    # Injected failures come before rate handling: only the two real requests count.
    assert ok.headers["X-ReadRateLimit-Usage"] == "2,2"


def test_injected_timeout(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    emu.timeout_seconds = 1.5
    emu.fail_requests(ACTIVITIES, "timeout")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get(ACTIVITIES, headers=auth, timeout=0.2)
    assert time.monotonic() - started < 1.4
    assert client.get(ACTIVITIES, headers=auth).status_code == 200
    assert emu.request_count(ACTIVITIES) == 2
    # A patient client sees the gateway give up.
    emu.timeout_seconds = 0.3
    emu.fail_requests(ACTIVITIES, "timeout")
    assert client.get(ACTIVITIES, headers=auth, timeout=2).status_code == 504


def test_injected_failure_on_oauth(client: httpx.Client, emu: StravaEmulator) -> None:
    emu.fail_requests("/oauth/token", "503")
    token = emu.current_refresh_token
    assert refresh(client, emu).status_code == 503
    assert emu.current_refresh_token == token
    assert refresh(client, emu).status_code == 200


def test_injected_token_expiry_answers_401_then_a_fresh_token_works(
    client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]
) -> None:
    emu.fail_requests(ACTIVITIES, "expire_tokens", page=2)
    assert client.get(ACTIVITIES, params={"page": 1}, headers=auth).status_code == 200
    expired = client.get(ACTIVITIES, params={"page": 2}, headers=auth)
    assert expired.status_code == 401
    assert expired.json()["message"] == "Authorization Error"
    assert "X-RateLimit-Usage" in expired.headers  # served as usual, so counted
    assert client.get(ACTIVITIES, params={"page": 2}, headers=auth).status_code == 401
    fresh = {"Authorization": f"Bearer {emu.issue_access_token()}"}
    assert client.get(ACTIVITIES, params={"page": 2}, headers=fresh).status_code == 200
    assert emu.usage["read"] == (4, 4)


def test_remove_fields(emu: StravaEmulator) -> None:
    target = emu.activities[3]
    changed = emu.remove_fields(target["id"], "average_heartrate", "kudos_count", "not_there")
    assert "kudos_count" not in changed and "average_heartrate" not in changed
    assert "kudos_count" not in emu.activity(target["id"])
    with pytest.raises(ValueError):
        emu.remove_fields(target["id"], "start_date")


def test_unknown_failure_kind_rejected(emu: StravaEmulator) -> None:
    with pytest.raises(ValueError, match="unknown failure kind"):
        emu.fail_requests(ACTIVITIES, "418")


# --- changing the data ----------------------------------------------------------------


def test_add_modify_delete_restore(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    newest = emu.activities[0]
    added = emu.add_activities(3)
    assert len(added) == 3
    assert all(a["start_date"] > newest["start_date"] for a in added)
    assert all(a["id"] > newest["id"] for a in added)
    page = client.get(ACTIVITIES, params={"per_page": 4}, headers=auth).json()
    assert [a["id"] for a in page] == [a["id"] for a in reversed(added)] + [newest["id"]]

    changed = emu.modify_activity(newest["id"], kudos_count=999, name="Renamed | ok")
    assert changed["kudos_count"] == 999
    listed = {a["id"]: a for a in client.get(ACTIVITIES, headers=auth).json()}
    assert listed[newest["id"]]["name"] == "Renamed | ok"

    emu.delete_activity(newest["id"])
    ids = [a["id"] for a in list_all(client, auth, per_page=200)]
    assert newest["id"] not in ids and len(ids) == 302
    with pytest.raises(KeyError):
        emu.activity(newest["id"])
    emu.restore_activity(newest["id"])
    assert emu.activity(newest["id"])["kudos_count"] == 999
    assert len(list_all(client, auth, per_page=200)) == 303


def test_added_activities_start_before_now_when_there_is_room(emu: StravaEmulator, clock: FakeClock) -> None:
    newest = emu.activities[0]["start_date"]
    added = emu.add_activities(10)  # the clock is a day and three hours past the newest
    starts = [a["start_date"] for a in added]
    assert starts == sorted(starts) and starts[0] > newest
    assert starts[-1] < clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_late_upload_inside_the_lookback(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    late_start = END - timedelta(days=3, hours=2)
    (late,) = emu.add_activities(1, start_date=late_start)
    assert late["start_date"] == "2026-06-07T05:00:00Z"
    assert late["id"] > max(a["id"] for a in emu.activities if a["id"] != late["id"])
    after = int((END - timedelta(days=7)).timestamp())
    listed = list_all(client, auth, after=after, per_page=200)
    starts = [a["start_date"] for a in listed]
    assert late["id"] in {a["id"] for a in listed} and starts == sorted(starts)


def test_copies_do_not_leak_state(emu: StravaEmulator) -> None:
    activity = emu.activities[0]
    activity["map"]["summary_polyline"] = "changed"
    activity["start_latlng"].append(0)
    assert emu.activity(activity["id"])["map"]["summary_polyline"] != "changed"
    assert len(emu.activities[0]["start_latlng"]) in (0, 2)


# --- request records ------------------------------------------------------------------


def test_request_counting_and_records(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    assert emu.request_count() == 1 and emu.request_count("/oauth/token") == 1
    emu.reset_counts()
    client.get(ACTIVITIES, params={"page": 1, "per_page": 200}, headers=auth)
    client.get(ACTIVITIES, params={"page": 2, "per_page": 200}, headers=auth)
    client.get("/api/v3/athlete", headers=auth)
    client.post("/api/v3/athlete/activities")
    assert emu.request_count() == 4
    assert emu.request_count(ACTIVITIES) == 3
    assert emu.request_count(ACTIVITIES + "?page=1") == 3  # the query is ignored
    assert emu.request_count("/api/v3/athlete") == 1
    method, path, query, headers = emu.requests[1]
    assert (method, path, query) == ("GET", ACTIVITIES, {"page": "2", "per_page": "200"})
    authorization = next(v for k, v in headers.items() if k.lower() == "authorization")
    assert authorization == "Bearer ***"
    assert auth["Authorization"].split()[1] not in repr(emu.requests)


def test_concurrent_requests_are_all_served(client: httpx.Client, emu: StravaEmulator, auth: dict[str, str]) -> None:
    statuses: list[int] = []

    def fetch(page: int) -> None:  # httpx clients are thread-safe
        response = client.get(ACTIVITIES, params={"page": page, "per_page": 10}, headers=auth)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=fetch, args=(p,)) for p in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert emu.usage["read"] == (20, 20)


# --- the synthetic athlete ------------------------------------------------------------


def test_same_seed_same_data_and_tokens(clock: FakeClock) -> None:
    one = StravaEmulator(activities=200, seed=3, clock=clock, end=END)
    two = StravaEmulator(activities=200, seed=3, clock=clock, end=END)
    other = StravaEmulator(activities=200, seed=4, clock=clock, end=END)
    assert one.activities == two.activities
    assert one.athlete == two.athlete
    assert one.activities != other.activities
    assert one.add_activities(5) == two.add_activities(5)
    assert one.issue_access_token() == two.issue_access_token()


def test_ids_are_64_bit_unique_and_grow_with_time(emu: StravaEmulator) -> None:
    activities = emu.activities
    ids = [a["id"] for a in activities]
    assert min(ids) > 2**32 and len(set(ids)) == len(ids)
    assert ids == sorted(ids, reverse=True)
    for activity in activities:
        assert activity["map"]["id"] == f"a{activity['id']}"
        if activity["upload_id"] is not None:
            assert activity["upload_id_str"] == str(activity["upload_id"])
            assert activity["upload_id"] > 2**32


def test_every_summary_field_is_present(emu: StravaEmulator) -> None:
    for activity in emu.activities:
        assert SUMMARY_FIELDS <= set(activity), SUMMARY_FIELDS - set(activity)
        assert activity["resource_state"] == 2
        assert activity["athlete"] == {"id": emu.athlete["id"], "resource_state": 1}
        assert activity["start_date"].endswith("Z") and activity["start_date_local"].endswith("Z")
        assert isinstance(activity["utc_offset"], float)
        assert activity["visibility"] in {"everyone", "followers_only", "only_me"}
        assert activity["private"] == (activity["visibility"] == "only_me")
        assert isinstance(activity["distance"], float)
        assert isinstance(activity["moving_time"], int)
        assert activity["elapsed_time"] >= activity["moving_time"]


def test_local_time_follows_uk_summer_time(emu: StravaEmulator) -> None:
    for activity in emu.activities:
        if activity["timezone"] != "(GMT+00:00) Europe/London":
            continue
        start = datetime.fromisoformat(activity["start_date"])
        local = datetime.fromisoformat(activity["start_date_local"].replace("Z", ""))
        offset = (local - start.replace(tzinfo=None)).total_seconds()
        assert offset == activity["utc_offset"]
        assert offset == (3600.0 if 4 <= start.month <= 9 else 0.0) or start.month in (3, 10)


def test_workout_types_and_sport_types(emu: StravaEmulator) -> None:
    sports = Counter(a["sport_type"] for a in emu.activities)
    assert {"Run", "Ride", "Swim", "WeightTraining"} <= set(sports)
    for activity in emu.activities:
        sport = activity["sport_type"]
        if sport in ("Run", "TrailRun"):
            assert activity["workout_type"] in (0, 1, 2, 3)
            assert activity["type"] == "Run"
        elif sport in ("Ride", "VirtualRide", "GravelRide"):
            assert activity["workout_type"] in (10, 11, 12)
        else:
            assert activity["workout_type"] is None


def test_indoor_activities_have_no_position(emu: StravaEmulator) -> None:
    indoor = outdoor = 0
    for activity in emu.activities:
        if activity["trainer"] or activity["sport_type"] in INDOOR:
            indoor += 1
            assert activity["start_latlng"] == [] and activity["end_latlng"] == []
            assert activity["map"]["summary_polyline"] == ""
        elif activity["start_latlng"]:
            outdoor += 1
            points = decode_polyline(activity["map"]["summary_polyline"])
            assert len(points) > 10
            start = activity["start_latlng"]
            assert abs(points[0][0] - start[0]) < 1e-4 and abs(points[0][1] - start[1]) < 1e-4
            assert activity["end_latlng"] and len(activity["end_latlng"]) == 2
    assert indoor > 10 and outdoor > 100


def test_heartrate_fields_only_with_heartrate(emu: StravaEmulator) -> None:
    with_hr = without = 0
    for activity in emu.activities:
        if activity["has_heartrate"]:
            with_hr += 1
            assert activity["max_heartrate"] >= activity["average_heartrate"] > 60
        else:
            without += 1
            assert "average_heartrate" not in activity and "max_heartrate" not in activity
    assert with_hr and without


def test_indoor_and_ride_specific_fields(emu: StravaEmulator) -> None:
    for activity in emu.activities:
        if activity["sport_type"] in ("Ride", "VirtualRide", "GravelRide"):
            assert {"average_watts", "kilojoules", "device_watts"} <= set(activity)
        else:
            assert "average_watts" not in activity
        if activity["sport_type"] == "VirtualRide":
            assert activity["device_watts"] is True and activity["trainer"] is True


def test_nasty_names_in_default_and_small_athletes(
    default_history: list[dict[str, Any]],
) -> None:
    for activities in (AthleteGenerator(42).history(50, END), default_history):
        assert set(NASTY_NAMES) <= {a["name"] for a in activities}
    assert any(len(n) == 255 for n in NASTY_NAMES)
    for needle in ("|", "\n", "\r\n", '"', "'", "\\", "\t", "🏃‍♀️", "🇬🇧", ",", "日本語", "Ελληνικά", "DROP TABLE"):
        assert any(needle in n for n in NASTY_NAMES), needle
    assert "" in NASTY_NAMES


def test_nasty_names_survive_the_wire(client: httpx.Client, auth: dict[str, str]) -> None:
    raw = b"".join(client.get(ACTIVITIES, params={"per_page": 200, "page": p}, headers=auth).content for p in (1, 2))
    assert "🏃‍♀️".encode() in raw  # UTF-8 on the wire, not \\u escapes
    names = {
        a["name"]
        for p in (1, 2)
        for a in json.loads(client.get(ACTIVITIES, params={"per_page": 200, "page": p}, headers=auth).text)
    }
    assert set(NASTY_NAMES) <= names


def test_weekly_pattern_and_holidays(default_history: list[dict[str, Any]]) -> None:
    activities = default_history
    weeks = Counter(datetime.fromisoformat(a["start_date"]).isocalendar()[:2] for a in activities[1:-1])
    first = datetime.fromisoformat(activities[-1]["start_date"])
    span_weeks = (END - first).days / 7
    assert 3.0 <= span_weeks / 52 <= 5.0  # about four years
    assert 6.0 <= len(activities) / span_weeks <= 8.0
    assert span_weeks - len(weeks) >= 2  # some weeks without any activity
    weekdays = Counter(datetime.fromisoformat(a["start_date_local"][:-1]).weekday() for a in activities)
    assert weekdays[1] > weekdays[4]  # Tuesday workouts and commutes beat Friday swims


def test_kudos_correlate_with_race_distance_weekend_and_photos(
    default_history: list[dict[str, Any]],
) -> None:
    activities = default_history
    runs = [a for a in activities if a["sport_type"] == "Run" and a["visibility"] == "everyone"]

    def mean(items: list[dict[str, Any]]) -> float:
        return statistics.fmean(a["kudos_count"] for a in items)

    races = [a for a in runs if a["workout_type"] == 1]
    easy = [a for a in runs if a["workout_type"] == 0]
    assert races and mean(races) > 1.5 * mean(easy)
    long_easy = [a for a in easy if a["distance"] > 9000]
    short_easy = [a for a in easy if a["distance"] < 7000]
    assert mean(long_easy) > mean(short_easy)
    weekend = [a for a in runs if datetime.fromisoformat(a["start_date"]).weekday() >= 5]
    weekday = [a for a in runs if datetime.fromisoformat(a["start_date"]).weekday() < 5]
    assert mean(weekend) > mean(weekday)
    with_photos = [a for a in activities if a["total_photo_count"] > 0]
    without = [a for a in activities if a["total_photo_count"] == 0]
    assert mean(with_photos) > mean(without)
    assert all(a["kudos_count"] == 0 for a in activities if a["visibility"] == "only_me")
    assert len({a["kudos_count"] for a in easy}) > 5  # noisy, not a formula


def test_a_large_history_is_generated_with_unique_ids() -> None:
    # How fast generation is belongs to bench/, not to a test (tests never assert timings).
    activities = AthleteGenerator(1).history(5000, END)
    assert len(activities) == 5000 == len({a["id"] for a in activities})
    assert activities[-1]["start_date"] > "2009"


def test_stopped_emulator_serves_nobody(clock: FakeClock) -> None:
    emulator = StravaEmulator(activities=20, clock=clock, end=END)
    with emulator, http(emulator.base_url) as plain:
        assert plain.get("/api/v3/athlete").status_code == 401  # a keep-alive connection
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            plain.get("/api/v3/athlete")
    assert emulator.start() != ""  # and it can start again
    emulator.stop()


def test_default_end_is_a_day_before_the_clock() -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, 123456, tzinfo=UTC)
    emulator = StravaEmulator(activities=20, clock=lambda: now)
    assert emulator.activities[0]["start_date"] == "2026-02-28T12:00:30Z"
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


@contextmanager
def emulator_command(*args: str, banner_lines: int) -> Iterator[tuple[subprocess.Popen[str], list[str], str]]:
    """``python -m emulator --port 0 ARGS``: the process, its banner lines, its base URL; killed if left running."""
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: nothing blocks on it, and a failure shows it
        process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", "0", *args], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(banner_lines)]
            yield process, banner, banner[0].split(" at ")[1].split()[0]
        except BaseException:
            stderr.seek(0)
            print(f"python -m emulator {' '.join(args)}: stderr:\n{stderr.read()}", file=sys.stderr)
            raise
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


INTERRUPTED_EXIT_SECONDS = 30
"""How long an interrupted emulator may take to stop: a bound, not a timing (0.06 s on a quiet machine)."""


def ignoring_sigint() -> None:
    """In the child before exec: SIGINT ignored, as a background job or a test runner's worker may leave it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_command_line_stops_on_ctrl_c_although_started_with_it_ignored() -> None:
    """An ignored SIGINT is inherited across exec; the emulator restores Ctrl-C (in CI it once never stopped)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--activities", "5"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=ignoring_sigint,  # noqa: PLW1509 - the point of the test; no threads in the child yet
    )
    try:
        assert process.stdout is not None
        assert "Strava API v3 emulator at" in process.stdout.readline()
        while "Ctrl-C" not in process.stdout.readline():
            pass
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=INTERRUPTED_EXIT_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_serves_until_interrupted() -> None:
    with emulator_command("--activities", "40", "--seed", "5", banner_lines=6) as (process, banner, base_url):
        values = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in banner[3:]}
        assert values["client id"] == "12345"
        with http(base_url) as plain:
            tokens = plain.post(
                "/oauth/token",
                data={
                    "client_id": values["client id"],
                    "client_secret": values["client secret"],
                    "grant_type": "refresh_token",
                    "refresh_token": values["refresh token"],
                },
            )
            activities = plain.get(ACTIVITIES, params={"per_page": 200}, headers=bearer(tokens.json()["access_token"]))
            assert len(activities.json()) == 40
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=INTERRUPTED_EXIT_SECONDS) == 0


# --- several athletes of one application ------------------------------------------------


@pytest.fixture
def trio(clock: FakeClock) -> Iterator[StravaEmulator]:
    with StravaEmulator(activities=[120, 80, 60], seed=7, clock=clock, end=END) as emulator:
        yield emulator


def test_athletes_have_distinct_data_and_the_first_is_the_single_athlete(
    trio: StravaEmulator, clock: FakeClock
) -> None:
    ids = trio.athlete_ids
    assert len(ids) == len(set(ids)) == 3 and ids[0] == trio.athlete_id
    views = [trio.for_athlete(i) for i in ids]
    assert [len(v.activities) for v in views] == [120, 80, 60]
    activity_ids = [{a["id"] for a in v.activities} for v in views]
    assert sum(map(len, activity_ids)) == len(set().union(*activity_ids))  # never collide
    assert [{a["athlete"]["id"] for a in v.activities} for v in views] == [{i} for i in ids]
    assert [v.current_refresh_token for v in views] == [
        "emulator-refresh-token",
        "emulator-refresh-token-1",
        "emulator-refresh-token-2",
    ]
    single = StravaEmulator(activities=120, seed=7, clock=clock, end=END)
    assert views[0].activities == single.activities == trio.activities
    assert views[0].athlete == single.athlete
    second = StravaEmulator(activities=80, seed=8, clock=clock, end=END)  # athlete k: seed + k
    assert views[1].athlete["id"] == second.athlete["id"]
    with pytest.raises(KeyError, match="has not authorised"):
        trio.for_athlete(1)
    with pytest.raises(ValueError, match="one count per athlete"):
        StravaEmulator(activities=[10, 10], athletes=3, clock=clock, end=END)
    assert len(StravaEmulator(activities=10, athletes=2, clock=clock, end=END).athlete_ids) == 2


def test_new_activities_never_take_another_athletes_id(clock: FakeClock) -> None:
    # Every athlete's newest activity starts at END: their ids can only differ by the
    # generator's last digit, so with five athletes some collide and must be moved.
    emulator = StravaEmulator(activities=5, athletes=5, seed=1, clock=clock, end=END)
    views = [emulator.for_athlete(i) for i in emulator.athlete_ids]
    newest = [v.activities[0] for v in views]
    assert {a["start_date"] for a in newest} == {"2026-06-10T07:00:00Z"}
    assert len({a["id"] for a in newest}) == 5
    assert all(a["map"]["id"] == f"a{a['id']}" for a in newest)
    added = [a["id"] for v in views for a in v.add_activities(3)]
    every = [a["id"] for v in views for a in v.activities]
    assert len(set(every)) == len(every) == 40 and set(added) <= set(every)


def test_tokens_are_confined_to_their_athlete(trio: StravaEmulator) -> None:
    ids = trio.athlete_ids
    views = [trio.for_athlete(i) for i in ids]
    with http(trio.base_url) as client:
        tokens = [grant(client, v.current_refresh_token).json() for v in views]
        for athlete_id, view, token in zip(ids, views, tokens, strict=True):
            auth = bearer(token["access_token"])
            assert client.get("/api/v3/athlete", headers=auth).json()["id"] == athlete_id
            listed = list_all(client, auth, per_page=200)
            assert [a["id"] for a in listed] == [a["id"] for a in view.activities]
            own = view.activities[0]["id"]
            assert client.get(f"/api/v3/activities/{own}", headers=auth).status_code == 200
        other = views[1].activities[0]["id"]
        response = client.get(f"/api/v3/activities/{other}", headers=bearer(tokens[0]["access_token"]))
        assert response.status_code == 404
        assert response.json()["message"] == "Record Not Found"
        with pytest.raises(KeyError):
            views[0].activity(other)
        assert trio.request_count("/api/v3/athlete", athlete_id=ids[1]) == 1
        assert trio.request_count(athlete_id=ids[2]) == 3  # /athlete, one page, one detail
        assert trio.request_count(athlete_id=ids[0]) == 4  # and the other's detail, refused
        assert trio.request_count("/oauth/token") == 3


def test_rotation_and_revocation_per_athlete(trio: StravaEmulator) -> None:
    first, second, third = (trio.for_athlete(i) for i in trio.athlete_ids)
    with http(trio.base_url) as client:
        old = second.current_refresh_token
        rotated = grant(client, old).json()["refresh_token"]
        assert second.current_refresh_token == rotated != old
        assert first.current_refresh_token == "emulator-refresh-token"  # untouched
        refused = grant(client, old)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "refresh_token"
        third_auth = bearer(grant(client, third.current_refresh_token).json()["access_token"])
        second_auth = bearer(grant(client, rotated).json()["access_token"])
        third.revoke_refresh_token()
        assert third.current_refresh_token == ""
        assert grant(client, "emulator-refresh-token-2").status_code == 400
        assert client.get("/api/v3/athlete", headers=third_auth).status_code == 401
        assert client.get("/api/v3/athlete", headers=second_auth).status_code == 200  # others unaffected
        second.expire_access_tokens()
        assert client.get("/api/v3/athlete", headers=second_auth).status_code == 401
        assert client.get("/api/v3/athlete", headers=bearer(first.issue_access_token())).status_code == 200


def test_authorization_code_grants_its_athlete(trio: StravaEmulator) -> None:
    ids = trio.athlete_ids
    third = trio.for_athlete(ids[2])
    third.revoke_refresh_token()
    code = third.authorization_code()
    assert code == "emulator-code-2" and trio.authorization_code() == "emulator-code"
    with pytest.raises(ValueError, match="already registered"):
        trio.for_athlete(ids[1]).authorization_code(code)
    with http(trio.base_url) as client:
        response = exchange_code(client, code)
        assert response.status_code == 200
        body = response.json()
        assert body["athlete"]["id"] == ids[2] and body["athlete"]["resource_state"] == 2
        assert body["refresh_token"] == third.current_refresh_token
        auth = bearer(body["access_token"])
        assert client.get("/api/v3/athlete", headers=auth).json()["id"] == ids[2]


def test_one_rate_budget_for_the_application(trio: StravaEmulator) -> None:
    first, second = (trio.for_athlete(i) for i in trio.athlete_ids[:2])
    trio.set_limits(read=(5, 1000))
    a_auth, b_auth = bearer(first.issue_access_token()), bearer(second.issue_access_token())
    with http(trio.base_url) as client:
        for _ in range(3):
            assert client.get("/api/v3/athlete", headers=a_auth).status_code == 200
        for _ in range(2):
            last = client.get("/api/v3/athlete", headers=b_auth)
            assert last.status_code == 200
        assert last.headers["X-ReadRateLimit-Usage"] == "5,5"  # the two athletes' requests add up
        assert client.get("/api/v3/athlete", headers=b_auth).status_code == 429
        assert client.get("/api/v3/athlete", headers=a_auth).status_code == 429  # the 429 hits both
    assert trio.usage["read"] == (7, 7)
    assert trio.request_count(athlete_id=first.athlete_id) == 4
    assert trio.request_count(athlete_id=second.athlete_id) == 3


def test_add_athlete_later(trio: StravaEmulator) -> None:
    new_id = trio.add_athlete(activities=25)
    assert trio.athlete_ids[-1] == new_id and len(trio.athlete_ids) == 4
    view = trio.for_athlete(new_id)
    assert len(view.activities) == 25
    assert view.current_refresh_token == "emulator-refresh-token-3"
    others = {a["id"] for i in trio.athlete_ids[:3] for a in trio.for_athlete(i).activities}
    assert not others & {a["id"] for a in view.activities}
    with http(trio.base_url) as client:
        auth = bearer(grant(client, view.current_refresh_token).json()["access_token"])
        assert client.get("/api/v3/athlete", headers=auth).json()["id"] == new_id


def test_command_line_serves_several_athletes() -> None:
    with emulator_command("--activities", "20", "--athletes", "3", banner_lines=8) as (process, banner, base_url):
        athletes = [line.split() for line in banner[5:8]]  # "athlete <id>: refresh token <token>"
        assert [words[0] for words in athletes] == ["athlete"] * 3
        assert [words[-1] for words in athletes][1:] == ["emulator-refresh-token-1", "emulator-refresh-token-2"]
        with http(base_url) as plain:
            for words in athletes:
                token = grant(plain, words[-1]).json()["access_token"]
                assert plain.get("/api/v3/athlete", headers=bearer(token)).json()["id"] == int(words[1].rstrip(":"))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=INTERRUPTED_EXIT_SECONDS) == 0
