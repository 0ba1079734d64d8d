"""The emulator's push subscriptions and webhook event delivery, real HTTP both ways."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from emulator import StravaEmulator
from tests.strava_support import FakeClock

PUSH = "/api/v3/push_subscriptions"
END = datetime(2026, 6, 10, 7, 0, tzinfo=UTC)
CREDENTIALS = {"client_id": "12345", "client_secret": "emulator-secret"}


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide Prefect server: the emulator needs none."""
    yield


class Callback:
    """A tiny webhook receiver: records validation GETs and event POSTs, answers as scripted.

    ``get_mode``: ``echo`` (Strava's contract), ``wrong`` (200, another challenge), ``500``,
    ``slow`` (answers after ``slow_seconds``). ``post_statuses``: answers to the next POSTs
    (then 200). ``hold``: while set, POSTs wait for it to clear (at most 10 s).
    """

    def __init__(self) -> None:
        self.get_mode = "echo"
        self.post_statuses: list[int] = []
        self.slow_seconds = 1.0
        self.gets: list[dict[str, str]] = []
        self.posts: list[dict[str, Any]] = []
        self.hold = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _answer(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the emulator gave up waiting
                    pass

            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                with owner.lock:
                    owner.gets.append(query)
                if owner.get_mode == "slow":
                    time.sleep(owner.slow_seconds)
                if owner.get_mode == "500":
                    self._answer(500, {"error": "boom"})
                elif owner.get_mode == "wrong":
                    self._answer(200, {"hub.challenge": "something else"})
                else:
                    self._answer(200, {"hub.challenge": query.get("hub.challenge")})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.hold.is_set():
                    owner.released.wait(10)
                with owner.lock:
                    owner.posts.append(body)
                    status = owner.post_statuses.pop(0) if owner.post_statuses else 200
                self._answer(status, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/strava/webhook"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback() -> Iterator[Callback]:
    receiver = Callback()
    yield receiver
    receiver.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 6, 11, 10, 5, 0, tzinfo=UTC))


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[StravaEmulator]:
    with StravaEmulator(activities=[40, 30], seed=7, clock=clock, end=END) as emulator:
        emulator.push_retry_delay_seconds = 0.05
        emulator.push_timeout_seconds = 0.5
        yield emulator


@pytest.fixture
def client(emu: StravaEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=5, verify=False) as plain:
        yield plain


def subscribe(client: httpx.Client, url: str, verify_token: str = "let-me-in", **overrides: str) -> httpx.Response:
    return client.post(PUSH, data={**CREDENTIALS, "callback_url": url, "verify_token": verify_token, **overrides})


@pytest.fixture
def subscribed(client: httpx.Client, callback: Callback) -> int:
    response = subscribe(client, callback.url)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhook"


# --- subscriptions ----------------------------------------------------------------------


def test_create_list_delete(client: httpx.Client, emu: StravaEmulator, callback: Callback, clock: FakeClock) -> None:
    created = subscribe(client, callback.url)
    assert created.status_code == 201
    subscription_id = created.json()["id"]
    assert created.json() == {"id": subscription_id} and emu.subscription_id == subscription_id
    [validation] = callback.gets
    assert validation["hub.mode"] == "subscribe" and validation["hub.verify_token"] == "let-me-in"
    assert len(validation["hub.challenge"]) >= 8

    again = subscribe(client, callback.url)
    assert again.status_code == 400
    assert again.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "PushSubscription", "field": "", "code": "already exists"}],
    }
    assert len(callback.gets) == 1  # refused before calling out

    listed = client.get(PUSH, params=CREDENTIALS)
    assert listed.status_code == 200
    assert listed.json() == [
        {
            "id": subscription_id,
            "resource_state": 2,
            "application_id": 12345,
            "callback_url": callback.url,
            "created_at": "2026-06-11T10:05:00Z",
            "updated_at": "2026-06-11T10:05:00Z",
        }
    ]
    assert client.delete(f"{PUSH}/{subscription_id + 1}", params=CREDENTIALS).status_code == 404
    deleted = client.delete(f"{PUSH}/{subscription_id}", params=CREDENTIALS)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(PUSH, params=CREDENTIALS).json() == [] and emu.subscription_id is None
    assert client.delete(f"{PUSH}/{subscription_id}", params=CREDENTIALS).status_code == 404
    assert subscribe(client, callback.url).status_code == 201  # one at a time, again after a delete


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("wrong", "callback URL does not echo hub.challenge"),
        ("500", "GET to callback URL does not return 200"),
        ("slow", "GET to callback URL does not return 200"),
        ("refused", "GET to callback URL does not return 200"),
    ],
)
def test_callback_validation_refusals(
    client: httpx.Client, emu: StravaEmulator, callback: Callback, mode: str, code: str
) -> None:
    callback.get_mode = mode
    url = closed_port_url() if mode == "refused" else callback.url
    response = subscribe(client, url)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "PushSubscription", "field": "callback url", "code": code}],
    }
    assert emu.subscription_id is None and client.get(PUSH, params=CREDENTIALS).json() == []
    if mode != "refused":
        assert len(callback.gets) == 1


def test_wrong_credentials_and_missing_parameters(client: httpx.Client, callback: Callback, subscribed: int) -> None:
    wrong = {"client_id": "12345", "client_secret": "nope"}
    for response in (
        client.post(PUSH, data={**wrong, "callback_url": callback.url, "verify_token": "t"}),
        client.get(PUSH, params=wrong),
        client.get(PUSH, params={"client_id": "999", "client_secret": "emulator-secret"}),
        client.delete(f"{PUSH}/{subscribed}", params=wrong),
    ):
        assert response.status_code == 401
        assert response.json()["message"] == "Authorization Error"
        assert response.json()["errors"][0]["resource"] == "Application"
    assert len(client.get(PUSH, params=CREDENTIALS).json()) == 1  # the wrong delete deleted nothing
    client.delete(f"{PUSH}/{subscribed}", params=CREDENTIALS)
    missing = client.post(PUSH, data={**CREDENTIALS, "callback_url": callback.url})
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "verify_token"


def test_subscription_endpoints_do_not_use_the_rate_budget(
    client: httpx.Client, emu: StravaEmulator, callback: Callback, subscribed: int
) -> None:
    listed = client.get(PUSH, params=CREDENTIALS)
    assert "X-RateLimit-Usage" not in listed.headers
    assert emu.usage == {"read": (0, 0), "overall": (0, 0)}
    assert emu.request_count(PUSH) == 2
    assert "emulator-secret" not in repr(emu.requests)


# --- delivery ---------------------------------------------------------------------------


def test_events_have_strava_shape(emu: StravaEmulator, callback: Callback, subscribed: int, clock: FakeClock) -> None:
    first, second = (emu.for_athlete(i) for i in emu.athlete_ids)
    [added] = second.add_activities(1)
    old = first.activities[-1]["id"]
    first.modify_activity(old, name="Renamed 🏃")
    first.modify_activity(old, sport_type="TrailRun")
    first.modify_activity(old, private=True)
    first.modify_activity(old, kudos_count=99, name="Renamed 🏃")  # nothing Strava reports
    first.delete_activity(old)
    second.revoke_refresh_token()
    assert emu.wait_for_deliveries(timeout=10)
    now = int(clock().timestamp())
    expected = [
        ("activity", added["id"], "create", second.athlete_id, {}),
        ("activity", old, "update", first.athlete_id, {"title": "Renamed 🏃"}),
        ("activity", old, "update", first.athlete_id, {"type": "TrailRun"}),
        ("activity", old, "update", first.athlete_id, {"private": "true"}),
        ("activity", old, "delete", first.athlete_id, {}),
        ("athlete", second.athlete_id, "update", second.athlete_id, {"authorized": "false"}),
    ]
    assert callback.posts == [
        {
            "aspect_type": aspect,
            "event_time": now,
            "object_id": object_id,
            "object_type": object_type,
            "owner_id": owner,
            "subscription_id": subscribed,
            "updates": updates,
        }
        for object_type, object_id, aspect, owner, updates in expected
    ]
    deliveries = emu.push_deliveries()
    assert [d.event for d in deliveries] == callback.posts
    assert all(d.delivered and len(d.attempts) == 1 and d.attempts[0].status == 200 for d in deliveries)
    assert deliveries[0].attempts[0].at == clock() and deliveries[0].callback_url == callback.url


def test_one_create_per_added_activity(emu: StravaEmulator, callback: Callback, subscribed: int) -> None:
    added = emu.add_activities(3)
    assert emu.wait_for_deliveries(timeout=10)
    assert [(p["aspect_type"], p["object_id"]) for p in callback.posts] == [("create", a["id"]) for a in added]


def test_failing_twice_then_200_takes_three_attempts(emu: StravaEmulator, callback: Callback, subscribed: int) -> None:
    callback.post_statuses = [500, 503]
    emu.add_activities(1)
    assert emu.wait_for_deliveries(timeout=10)
    [delivery] = emu.push_deliveries()
    assert [a.status for a in delivery.attempts] == [500, 503, 200]
    assert delivery.status == "delivered" and len(callback.posts) == 3
    assert delivery.attempts[0].error == "HTTP 500" and delivery.attempts[2].error is None
    monotonic = [a.monotonic for a in delivery.attempts]
    assert monotonic == sorted(monotonic)


def test_failing_always_stops_at_three_attempts(emu: StravaEmulator, callback: Callback, subscribed: int) -> None:
    callback.post_statuses = [500] * 10
    emu.add_activities(1)
    assert emu.wait_for_deliveries(timeout=10)
    [delivery] = emu.push_deliveries()
    assert [a.status for a in delivery.attempts] == [500, 500, 500]
    assert delivery.status == "failed" and not delivery.delivered and len(callback.posts) == 3


def test_unreachable_callback_fails_after_three_attempts(
    client: httpx.Client, emu: StravaEmulator, callback: Callback, subscribed: int
) -> None:
    callback.close()  # the receiver goes away after subscribing
    emu.delete_activity(emu.activities[0]["id"])
    assert emu.wait_for_deliveries(timeout=10)
    [delivery] = emu.push_deliveries()
    assert delivery.status == "failed" and len(delivery.attempts) == 3
    assert all(a.status is None and a.error for a in delivery.attempts)


def test_no_events_without_subscription_or_with_emit_off(
    client: httpx.Client, emu: StravaEmulator, callback: Callback
) -> None:
    emu.add_activities(1)
    emu.modify_activity(emu.activities[0]["id"], name="Before subscribing")
    subscription_id = subscribe(client, callback.url).json()["id"]
    emu.emit_events = False
    emu.add_activities(2)
    emu.revoke_refresh_token()
    emu.emit_events = True
    client.delete(f"{PUSH}/{subscription_id}", params=CREDENTIALS)
    emu.delete_activity(emu.activities[0]["id"])
    assert emu.wait_for_deliveries(timeout=10)
    assert emu.push_deliveries() == [] and callback.posts == []


def test_delivery_never_blocks_the_knobs_or_the_api(
    client: httpx.Client, emu: StravaEmulator, callback: Callback, subscribed: int
) -> None:
    emu.push_timeout_seconds = 10.0
    callback.hold.set()  # the callback sits on the first POST until released
    emu.add_activities(2)  # returns although nothing was delivered yet
    assert not emu.wait_for_deliveries(timeout=0.2)
    assert [d.status for d in emu.push_deliveries()] == ["pending", "pending"]
    emu.modify_activity(emu.activities[0]["id"], name="While the callback is busy")
    auth = {"Authorization": f"Bearer {emu.issue_access_token()}"}
    assert client.get("/api/v3/athlete", headers=auth).status_code == 200
    callback.released.set()
    assert emu.wait_for_deliveries(timeout=10)
    assert [p["aspect_type"] for p in callback.posts] == ["create", "create", "update"]


def test_stop_ends_delivery(clock: FakeClock, callback: Callback) -> None:
    emulator = StravaEmulator(activities=10, seed=3, clock=clock, end=END)
    emulator.push_retry_delay_seconds = 30.0  # a stop must not wait for it
    emulator.start()
    with httpx.Client(base_url=emulator.base_url, timeout=5) as plain:
        assert subscribe(plain, callback.url).status_code == 201
    callback.post_statuses = [500]
    emulator.add_activities(1)
    deadline = time.monotonic() + 10
    while not emulator.push_deliveries()[0].attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    emulator.stop()  # interrupts the 30 s retry delay
    [delivery] = emulator.push_deliveries()
    assert delivery.status == "failed" and len(delivery.attempts) == 1
    assert emulator.wait_for_deliveries(timeout=0)
    assert not [t for t in threading.enumerate() if t.name == "strava-emulator-push" and t.is_alive()]
