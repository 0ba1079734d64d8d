"""The webhook receiver: Strava's validation GET, event POSTs, dedupe, a slow Prefect API (and its real front)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prefect.events import Event
from pydantic import SecretStr
from starlette.testclient import TestClient

from tasks.webhooks.front import FrontLimits, ReceiverFront, RejectLog
from tasks.webhooks.receiver import (
    MAX_BODY_BYTES,
    ReceiverConfig,
    SeenEvents,
    StravaEvent,
    build_app,
    event_id,
    prefect_event,
)

TOKEN = "a-long-random-verify-token"
SUBSCRIPTION = 120_001
ATHLETE = 1234567


def strava_event(**overrides: Any) -> dict[str, Any]:
    return {
        "aspect_type": "create",
        "event_time": 1_793_000_000,
        "object_id": 9_000_000_123,
        "object_type": "activity",
        "owner_id": ATHLETE,
        "subscription_id": SUBSCRIPTION,
        "updates": {},
        **overrides,
    }


class Sink:
    """Collects emitted events; ``hold`` blocks the emitter like an unresponsive Prefect API."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.released = threading.Event()
        self.released.set()
        self.arrived = threading.Event()

    async def emit(self, event: Event) -> None:
        self.arrived.set()
        while not self.released.is_set():
            await asyncio.sleep(0.01)
        self.events.append(event)

    def wait(self, count: int, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


def config(sink: Sink, **overrides: Any) -> ReceiverConfig:
    async def athletes() -> set[int]:
        return {ATHLETE}

    return ReceiverConfig(
        verify_token=SecretStr(TOKEN),
        application="strava-app",
        emit=sink.emit,
        athletes=athletes,
        subscription_id=SUBSCRIPTION,
        **overrides,
    )


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def client(sink: Sink) -> Iterator[TestClient]:
    with TestClient(build_app(config(sink))) as test_client:
        _ready(test_client)
        yield test_client


def _ready(test_client: TestClient) -> None:
    """Wait until the background refresher has read the roster (the first POST would get 503)."""
    for _ in range(200):
        if test_client.app.state.receiver.athletes is not None:  # type: ignore[attr-defined]
            return
        time.sleep(0.01)
    raise AssertionError("the receiver never read the roster")


def test_the_validation_get_echoes_the_challenge_only_for_the_verify_token(client: TestClient) -> None:
    ok = client.get("/", params={"hub.mode": "subscribe", "hub.challenge": "c-123", "hub.verify_token": TOKEN})
    assert ok.status_code == 200 and ok.json() == {"hub.challenge": "c-123"}
    wrong = client.get("/", params={"hub.mode": "subscribe", "hub.challenge": "c-123", "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and "c-123" not in wrong.text
    assert client.get("/", params={"hub.challenge": "c-123", "hub.verify_token": TOKEN}).status_code == 400
    assert TOKEN not in wrong.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({k: v for k, v in strava_event().items() if k != "owner_id"}).encode(), "owner_id"),
        (json.dumps(strava_event(object_id="9000")).encode(), "object_id"),
        (json.dumps(strava_event(owner_id=True)).encode(), "owner_id"),
        (json.dumps(strava_event(aspect_type="rename")).encode(), "aspect_type"),
        (json.dumps(strava_event(object_type="club")).encode(), "object_type"),
        (json.dumps(strava_event(updates=["title"])).encode(), "updates"),
        (json.dumps(strava_event(updates={"title": {"nested": 1}})).encode(), "updates"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused(client: TestClient, sink: Sink, body: bytes, reason: str) -> None:
    answer = client.post("/", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and reason in answer.json()["error"]
    assert sink.events == []


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient, sink: Sink) -> None:
    big = json.dumps(strava_event(updates={"title": "x" * MAX_BODY_BYTES})).encode()
    assert client.post("/", content=big).status_code == 413
    # chunked, without a Content-Length: counted as it streams
    assert client.post("/", content=iter([big[:3000], big[3000:]])).status_code == 413
    assert sink.events == []


def test_an_unknown_owner_or_subscription_is_acknowledged_and_ignored(client: TestClient, sink: Sink) -> None:
    stranger = client.post("/", json=strava_event(owner_id=999))
    assert stranger.status_code == 200 and stranger.json() == {"status": "ignored", "reason": "unknown athlete"}
    other = client.post("/", json=strava_event(subscription_id=SUBSCRIPTION + 1))
    assert other.status_code == 200 and other.json()["reason"] == "unknown subscription"
    assert client.post("/", json=strava_event()).json() == {"status": "queued"}
    assert [e.payload["owner_id"] for e in sink.wait(1)] == [ATHLETE]


def test_each_strava_event_gives_one_prefect_event_and_retries_are_dropped(client: TestClient, sink: Sink) -> None:
    create = strava_event()
    update = strava_event(aspect_type="update", updates={"title": "Morning run"}, event_time=1_793_000_100)
    delete = strava_event(aspect_type="delete", event_time=1_793_000_200)
    deauthorize = strava_event(
        object_type="athlete", object_id=ATHLETE, aspect_type="update", updates={"authorized": "false"}
    )
    answers = [client.post("/", json=e).json()["status"] for e in (create, create, update, delete, deauthorize, update)]
    assert answers == ["queued", "duplicate", "queued", "queued", "queued", "duplicate"]
    events = sink.wait(4)
    assert [e.event for e in events] == [
        "strava.activity.create",
        "strava.activity.update",
        "strava.activity.delete",
        "strava.athlete.deauthorize",
    ]
    first = events[1]
    assert first.resource.id == f"strava.athlete.{ATHLETE}"
    assert first.related[0].id == "strava.application.strava-app"
    assert first.payload["updates"] == {"title": "Morning run"} and first.payload["object_id"] == 9_000_000_123
    assert first.payload["subscription_id"] == SUBSCRIPTION and first.payload["event_time"] == 1_793_000_100
    # the id is derived from the event: the Prefect server drops a resend after a receiver restart too
    assert first.id == event_id(StravaEvent.parse(json.dumps(update).encode()))
    assert len({e.id for e in events}) == 4


def test_a_different_update_of_the_same_activity_is_a_new_event(client: TestClient, sink: Sink) -> None:
    client.post("/", json=strava_event(aspect_type="update", updates={"title": "A"}))
    client.post("/", json=strava_event(aspect_type="update", updates={"title": "B"}))
    assert len(sink.wait(2)) == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"aspect_type": "update", "updates": {"title": "Morning run", "type": "Ride"}},
        {"aspect_type": "delete"},
        {"object_type": "athlete", "object_id": ATHLETE, "aspect_type": "update", "updates": {"authorized": "false"}},
    ],
)
def test_the_prefect_event_built_without_revalidation_is_what_full_validation_gives(overrides: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    event = StravaEvent.parse(json.dumps(strava_event(**overrides)).encode())
    occurred = datetime(2026, 10, 1, 6, 30, 15, 123456, tzinfo=UTC)
    built = prefect_event(event, "strava-app", occurred)
    validated = Event.model_validate(built.model_dump(mode="json"))
    assert validated == built
    assert validated.model_dump_json() == built.model_dump_json()
    assert type(validated.occurred) is type(built.occurred) and built.occurred == occurred
    assert built.resource.id == f"strava.athlete.{ATHLETE}" and built.related[0].role == "strava-application"
    assert built.id == event_id(event) and built.follows is None
    # each event has its own payload: changing one changes no other
    other = prefect_event(event, "strava-app", occurred)
    other.payload["updates"]["x"] = "y"
    assert "x" not in built.payload["updates"] and "x" not in event.updates


def test_the_dedupe_cache_is_bounded_and_forgets_after_its_ttl() -> None:
    seen = SeenEvents(ttl_seconds=10, max_items=3)
    assert seen.first_time("a", now=0) and not seen.first_time("a", now=5)
    assert seen.first_time("a", now=11)  # expired
    for key in "bcd":
        seen.first_time(key, now=12)
    assert len(seen._seen) <= 3


@contextmanager
def front_serving(
    app: Any, limits: FrontLimits | None = None, rejects: RejectLog | None = None
) -> Iterator[ReceiverFront]:
    """``app`` behind the receiver's front (what ``strava-elt webhook serve`` runs) on a free port, in a thread.

    The front runs on its own loop in a daemon thread; :attr:`ReceiverFront.loop` is that loop.
    """
    loop = asyncio.new_event_loop()
    front = ReceiverFront(app, limits or FrontLimits(), rejects)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(front.start("127.0.0.1", 0))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "the front did not start"
    try:
        yield front
    finally:
        asyncio.run_coroutine_threadsafe(front.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def served(sink: Sink) -> Iterator[str]:
    """The receiver behind its real front (as ``strava-elt webhook serve`` serves it) on a free port."""
    with front_serving(build_app(config(sink))) as front:
        try:
            yield f"http://127.0.0.1:{front.port}/"
        finally:
            sink.released.set()  # before the front stops: its shutdown drains the queue


def test_over_real_http_the_answer_does_not_wait_for_a_stuck_prefect_api(served: str, sink: Sink) -> None:
    sink.released.clear()  # the Prefect API does not answer
    with httpx.Client(timeout=2.0) as http:  # Strava's deadline for the callback's answer
        for _ in range(100):  # until the roster is read
            first = http.post(served, json=strava_event())
            if first.status_code != 503:
                break
            time.sleep(0.02)
        assert first.status_code == 200 and first.json() == {"status": "queued"}
        assert sink.arrived.wait(5)  # the emitter holds the first event, stuck
        later = [http.post(served, json=strava_event(object_id=9_000_000_200 + i)) for i in range(3)]
        assert [r.status_code for r in later] == [200, 200, 200]
        assert sink.events == []  # every answer came while the emitter was still stuck
        check = http.get(served, params={"hub.mode": "subscribe", "hub.challenge": "x", "hub.verify_token": TOKEN})
        assert check.json() == {"hub.challenge": "x"}
    sink.released.set()
    assert len(sink.wait(4)) == 4


def test_the_prefect_server_keeps_one_event_per_strava_event() -> None:
    """Two sends of one event (a receiver restarted between Strava's attempts) are stored once."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter, EventResourceFilter

    from tasks.webhooks.receiver import prefect_event
    from tasks.webhooks.serve import emit_to_prefect

    owner = uuid.uuid4().int % 10**9
    event = StravaEvent.parse(json.dumps(strava_event(owner_id=owner)).encode())
    asyncio.run(emit_to_prefect(prefect_event(event, "strava-app")))
    asyncio.run(emit_to_prefect(prefect_event(event, "strava-app")))
    query = EventFilter(
        id=EventIDFilter(id=[event_id(event)]), resource=EventResourceFilter(id=[f"strava.athlete.{owner}"])
    )
    found: list[Any] = []
    with get_client(sync_client=True) as client:
        for _ in range(100):
            found = client.read_events(filter=query, limit=50).events
            if found:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the second send has had time to be stored, were it stored
        found = client.read_events(filter=query, limit=50).events
    assert len(found) == 1 and found[0].event == "strava.activity.create"


def test_a_full_queue_answers_503_and_strava_s_retry_then_passes(sink: Sink) -> None:
    sink.released.clear()  # the Prefect API does not answer: the queue fills
    with TestClient(build_app(config(sink, queue_size=2, batch_size=1))) as test_client:
        _ready(test_client)
        first = test_client.post("/", json=strava_event(object_id=1))
        assert first.json() == {"status": "queued"}
        assert sink.arrived.wait(5)  # the emitter holds the first, the queue has room for two
        answers = [test_client.post("/", json=strava_event(object_id=i)).status_code for i in (2, 3, 4)]
        assert answers == [200, 200, 503]
        sink.released.set()
        sink.wait(3)
        retry = test_client.post("/", json=strava_event(object_id=4))  # not taken for a duplicate
        assert retry.json() == {"status": "queued"}
        assert sorted(e.payload["object_id"] for e in sink.wait(4)) == [1, 2, 3, 4]


def test_a_burst_through_one_long_lived_client_is_stored_exactly_once() -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter

    from tasks.webhooks.serve import PrefectEmitter

    owner = uuid.uuid4().int % 10**9
    emitter = PrefectEmitter()

    async def athletes() -> set[int]:
        return {owner}

    app = build_app(
        ReceiverConfig(
            verify_token=SecretStr(TOKEN),
            application="strava-app",
            emit=emitter.emit,
            emit_batch=emitter.emit_batch,
            close=emitter.close,
            athletes=athletes,
            subscription_id=SUBSCRIPTION,
        )
    )
    with TestClient(app) as test_client:
        _ready(test_client)
        answers = [
            test_client.post("/", json=strava_event(owner_id=owner, object_id=10_000 + i % 150)).json()["status"]
            for i in range(300)  # every event twice: Strava's retries
        ]
    assert answers.count("queued") == 150 and answers.count("duplicate") == 150
    # and a second delivery of the whole burst after a restart is dropped by Prefect (fixed ids)
    again = PrefectEmitter()
    events = [
        prefect_event(StravaEvent.parse(json.dumps(strava_event(owner_id=owner, object_id=10_000 + i)).encode()), "a")
        for i in range(150)
    ]
    asyncio.run(_emit_and_close(again, events))
    query = EventFilter(resource=EventResourceFilter(id=[f"strava.athlete.{owner}"]))
    with get_client(sync_client=True) as client:
        for _ in range(300):
            page = client.read_events(filter=query, limit=50)
            if page.total >= 150:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # were a resend stored twice, it would be by now
        page = client.read_events(filter=query, limit=50)
        ids = {str(e.id) for e in page.events}
        while page.next_page is not None:
            page = client.read_events_page(page.next_page)
            ids |= {str(e.id) for e in page.events}
    assert page.total == 150 and len(ids) == 150


async def _emit_and_close(emitter: Any, events: list[Event]) -> None:
    await emitter.emit_batch(events)
    await emitter.close()


@pytest.mark.parametrize("trouble", ["fails", "hangs"])
def test_an_events_client_that_cannot_open_at_startup_does_not_stop_the_receiver(
    sink: Sink, trouble: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def warm() -> None:
        if trouble == "fails":
            raise ConnectionRefusedError("Prefect API down")
        await asyncio.sleep(3600)

    started = time.monotonic()
    with TestClient(build_app(config(sink, warm=warm, warm_seconds=0.5))) as test_client:
        assert time.monotonic() - started < 10  # bounded by warm_seconds, not by the client
        _ready(test_client)
        assert test_client.post("/", json=strava_event()).json() == {"status": "queued"}
        assert len(sink.wait(1)) == 1  # the emitter sends it when it can
    assert any("Opening the Prefect events client at startup failed" in r.getMessage() for r in caplog.records)


def test_settle_heap_freezes_what_startup_left() -> None:
    import gc

    from tasks.webhooks.front import settle_heap

    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # Prefect, pydantic and the app: out of every collection's walk
    finally:
        gc.unfreeze()
