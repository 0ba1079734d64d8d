"""The webhook receiver: Strava's callback, turned into Prefect events.

A small ASGI app, no framework (served by :mod:`~tasks.webhooks.front`, ``strava-elt webhook serve``):

- ``GET`` with ``hub.mode=subscribe`` echoes ``{"hub.challenge": ...}`` when ``hub.verify_token``
  matches (constant-time compare), else 403.
- ``POST`` bounds the body (:data:`MAX_BODY_BYTES`, else 413), checks its shape (else 400) and the
  subscription id, answers 200 at once and queues one Prefect event per Strava event; a
  background emitter sends them, so a slow Prefect API never holds up Strava's two seconds.
  Strava's retries of the same event are dropped (a TTL cache) and the Prefect event's id is
  derived from the event (uuid5), so the server deduplicates too. An owner who is not an athlete
  of the roster is answered 200 and ignored (logged): Strava must not retry forever.

Nothing here calls Strava: a forged POST costs nothing but a queue slot, and the reaction that
follows re-reads whatever it names with the athlete's own token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

from prefect.events import Event, RelatedResource, Resource
from pydantic import SecretStr, TypeAdapter

__all__ = [
    "EVENT_NAMES",
    "MAX_BODY_BYTES",
    "ReceiverApp",
    "ReceiverConfig",
    "StravaEvent",
    "build_app",
    "event_id",
    "prefect_event",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
"""Strava's events are a few hundred bytes; anything larger is refused before it is parsed."""

EVENT_NAMES = (
    "strava.activity.create",
    "strava.activity.update",
    "strava.activity.delete",
    "strava.athlete.deauthorize",
)
"""The Prefect events the receiver emits."""

_NAMESPACE = uuid.UUID("6f1c2b1e-4d0a-5e7b-9c3f-2a8d5e6b7c10")
"""uuid5 namespace of the events' ids (fixed: the same Strava event gives the same id everywhere)."""

Emit = Callable[[Event], Awaitable[None]]
"""Sends one event to Prefect (the receiver's background emitter calls it)."""

EmitBatch = Callable[[list[Event]], Awaitable[None]]
"""Sends a batch of events to Prefect over one long-lived client (preferred over :data:`Emit`)."""

Athletes = Callable[[], Awaitable[Collection[int]]]
"""The roster's athlete ids (read in the background, never on a request)."""


@dataclass(frozen=True)
class StravaEvent:
    """One event as Strava POSTs it, checked."""

    object_type: str
    object_id: int
    aspect_type: str
    owner_id: int
    subscription_id: int
    event_time: int
    updates: dict[str, str]

    @classmethod
    def parse(cls, body: bytes) -> StravaEvent:
        """Check the body's shape; ValueError says what is wrong."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValueError("body is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("body is not a JSON object")
        for name in ("object_id", "owner_id", "subscription_id", "event_time"):
            value = data.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value >= 2**63:
                raise ValueError(f"{name} must be a positive integer")
        object_type, aspect = data.get("object_type"), data.get("aspect_type")
        if object_type not in ("activity", "athlete"):
            raise ValueError("object_type must be activity or athlete")
        if aspect not in ("create", "update", "delete"):
            raise ValueError("aspect_type must be create, update or delete")
        updates = data.get("updates", {})
        if updates is None:
            updates = {}
        if not isinstance(updates, dict) or not all(isinstance(k, str) for k in updates):
            raise ValueError("updates must be an object")
        if any(isinstance(v, dict | list) for v in updates.values()):
            raise ValueError("updates must map names to plain values")
        return cls(
            object_type=object_type,
            object_id=int(data["object_id"]),
            aspect_type=aspect,
            owner_id=int(data["owner_id"]),
            subscription_id=int(data["subscription_id"]),
            event_time=int(data["event_time"]),
            updates={k: str(v) for k, v in sorted(updates.items())},
        )

    @property
    def name(self) -> str | None:
        """The Prefect event's name; None for an event the pipeline does not react to."""
        if self.object_type == "activity":
            return f"strava.activity.{self.aspect_type}"
        if self.aspect_type == "update" and self.updates.get("authorized") == "false":
            return "strava.athlete.deauthorize"
        return None

    @cached_property
    def key(self) -> str:
        """What makes two deliveries the same event (Strava's retries repeat it exactly)."""
        updates = json.dumps(self.updates, sort_keys=True, separators=(",", ":"))
        return (
            f"{self.subscription_id}:{self.owner_id}:{self.object_type}:{self.object_id}:"
            f"{self.aspect_type}:{self.event_time}:{updates}"
        )


def event_id(event: StravaEvent) -> uuid.UUID:
    """The Prefect event's id: the same for every delivery of one Strava event."""
    return uuid.uuid5(_NAMESPACE, event.key)


_OCCURRED_TYPE: Any = Event.model_fields["occurred"].annotation
_OCCURRED: TypeAdapter[datetime] = TypeAdapter(_OCCURRED_TYPE)
"""Prefect's own type of ``Event.occurred`` (it differs between Python versions), from a datetime."""


@lru_cache(maxsize=4096)
def _athlete_resource(owner_id: int) -> Resource:
    """The event's resource, validated once per athlete (the roster bounds how many there are)."""
    return Resource.model_validate(
        {"prefect.resource.id": f"strava.athlete.{owner_id}", "prefect.resource.name": f"Strava athlete {owner_id}"}
    )


@lru_cache(maxsize=64)
def _application_resource(application: str) -> RelatedResource:
    """The event's related resource, validated once per application."""
    return RelatedResource.model_validate(
        {
            "prefect.resource.id": f"strava.application.{application}",
            "prefect.resource.role": "strava-application",
            "prefect.resource.name": application,
        }
    )


def prefect_event(event: StravaEvent, application: str, occurred: datetime | None = None) -> Event:
    """The Prefect event for a Strava event (its name must not be None), received at ``occurred`` (now).

    Built without a second validation of the whole model: pydantic's validation of an ``Event``
    (its resources' label checks read Prefect's settings each time, ``occurred`` is converted)
    cost the receiver's loop about 0.1 ms an event, for values that are checked already: the
    Strava event by :meth:`StravaEvent.parse`, the resources once per athlete and application,
    ``occurred`` by Prefect's own type. ``tests/test_webhooks_receiver.py`` checks that a full
    validation of the result gives the same event.
    """
    name = event.name
    if name is None:
        raise ValueError(f"no Prefect event for {event.object_type} {event.aspect_type}")
    return Event.model_construct(
        id=event_id(event),
        occurred=_OCCURRED.validate_python(occurred or datetime.now(UTC)),
        event=name,
        resource=_athlete_resource(event.owner_id),
        related=[_application_resource(application)],
        payload={
            "application": application,
            "owner_id": event.owner_id,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "aspect_type": event.aspect_type,
            "updates": dict(event.updates),
            "event_time": event.event_time,
            "subscription_id": event.subscription_id,
        },
        follows=None,
    )


class RejectLog:
    """Counts rejected or ignored clients by class and logs one line per class per interval.

    A flood of bad or forged requests costs a counter each, never a log line each.
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logger
        self.counts: Counter[str] = Counter()

    def note(self, kind: str) -> None:
        """Count one client of class ``kind`` (a short phrase, no secret and no client data)."""
        self.counts[kind] += 1

    def flush(self, interval: float) -> int:
        """Log one line per class counted since the last flush; return the number of lines."""
        counts, self.counts = self.counts, Counter()
        for kind, count in sorted(counts.items()):
            self.log.warning("Receiver: %s request(s) in the last %.0f s: %s", count, interval, kind)
        return len(counts)


class SeenEvents:
    """A bounded TTL set of event keys: Strava's retries of one event pass once."""

    def __init__(self, ttl_seconds: float = 3600.0, max_items: int = 50_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_items = max_items
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str, now: float | None = None) -> bool:
        """Record ``key``; True unless it was recorded within the TTL."""
        now = time.monotonic() if now is None else now
        while self._seen and (
            len(self._seen) >= self.max_items or next(iter(self._seen.values())) < now - self.ttl_seconds
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: str) -> None:
        """Drop ``key`` (an event that was not queued after all: its retry must pass)."""
        self._seen.pop(key, None)


@dataclass
class ReceiverConfig:
    """What the receiver needs: the verify token, the application and where its facts come from."""

    verify_token: SecretStr
    application: str
    """The application block's name (in the events' payload and related resource)."""
    emit: Emit
    athletes: Athletes
    subscription_id: Callable[[], Awaitable[int | None]] | int | None = None
    """The subscription's id, or a function reading it once (``webhook list``); None: any."""
    roster_refresh_seconds: float = 60.0
    queue_size: int = 10_000
    """Events accepted but not emitted yet, at most; beyond it a POST is answered 503 (Strava retries)."""
    emit_attempts: int = 5
    emit_batch: EmitBatch | None = None
    """Sends what the queue holds (up to :attr:`batch_size`) at once; None: :attr:`emit` one by one."""
    batch_size: int = 500
    close: Callable[[], Awaitable[None]] | None = None
    """Called at shutdown, after the queue is drained (closes the long-lived events client)."""
    warm: Callable[[], Awaitable[None]] | None = None
    """Called once at startup, before the first request (opens the long-lived events client), so the
    first event does not pay the connection on the answering loop; a failure is logged, not fatal."""
    warm_seconds: float = 5.0
    """How long startup waits for :attr:`warm`; then the receiver serves and the emitter connects later."""
    report_interval: float = 60.0
    """Seconds between the log's summary lines of refused and ignored requests."""


Accepted = tuple[StravaEvent, datetime]
"""An event accepted and not emitted yet, with the time it arrived (its Prefect event is built by the emitter)."""

_BUILD_SLICE = 20
"""Events built (pydantic) between two yields to the loop, so answers interleave with the emitter's work."""


@dataclass
class _State:
    """The receiver's mutable state, shared by the handlers and the background tasks."""

    queue: asyncio.Queue[Accepted]
    seen: SeenEvents = field(default_factory=SeenEvents)
    athletes: frozenset[int] | None = None
    subscription_id: int | None = None
    emitted: list[str] = field(default_factory=list)
    """Names and ids of the events sent (the last 1,000; tests read them)."""
    rejects: RejectLog = field(default_factory=RejectLog)


Answer = tuple[int, bytes]
"""An HTTP status and its JSON body."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _json(status: int, content: Any) -> Answer:
    """A JSON answer, compact and UTF-8 (the bytes Starlette's JSON response wrote)."""
    return status, json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json_error(status: int, message: str) -> Answer:
    return _json(status, {"error": message})


class _Disconnected(Exception):
    """The client left before its body was read (never behind the front, which reads it whole)."""


async def _read_bounded(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit`` (read no further than that)."""
    declared = next((v for n, v in scope["headers"] if n == b"content-length"), None)
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


class ReceiverApp:
    """The receiver as a plain ASGI app: any path; ``GET``/``HEAD`` the validation GET, ``POST`` an event.

    No framework in between: the front (:mod:`~tasks.webhooks.front`) hands it a whole request,
    and a request costs its handler and two ``send`` calls (Starlette's routing, request and
    response objects cost the answering loop about as much as the handler did). Any other
    method: 405. ``state.receiver`` is the receiver's state (the tests read it).
    """

    def __init__(
        self,
        verify: Callable[[dict[str, str]], Answer],
        accept: Callable[[bytes], Answer],
        lifespan: Callable[[], AbstractAsyncContextManager[None]],
        state: _State,
    ) -> None:
        self._verify, self._accept, self._lifespan = verify, accept, lifespan
        self.state = SimpleNamespace(receiver=state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method in ("GET", "HEAD"):
            params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
            status, body = self._verify(params)
        elif method == "POST":
            try:
                given = await _read_bounded(scope, receive, MAX_BODY_BYTES)
            except _Disconnected:
                return
            if given is None:
                status, body = _json_error(413, f"body larger than {MAX_BODY_BYTES} bytes")
            else:
                status, body = self._accept(given)
        else:
            status, body = _json_error(405, "method not allowed: GET or POST")
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        context = self._lifespan()
        try:
            await context.__aenter__()
        except Exception as exc:  # noqa: BLE001 - told to the server, which refuses to start
            await send({"type": "lifespan.startup.failed", "message": str(exc) or type(exc).__name__})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await context.__aexit__(None, None, None)
        except Exception as exc:  # noqa: BLE001 - told to the server
            await send({"type": "lifespan.shutdown.failed", "message": str(exc) or type(exc).__name__})
            return
        await send({"type": "lifespan.shutdown.complete"})


def build_app(config: ReceiverConfig) -> ReceiverApp:
    """The receiver as an ASGI app; its lifespan runs the emitter and the roster refresher."""
    state = _State(queue=asyncio.Queue(maxsize=config.queue_size))
    if isinstance(config.subscription_id, int):
        state.subscription_id = config.subscription_id

    def verify(params: dict[str, str]) -> Answer:
        if params.get("hub.mode") != "subscribe" or "hub.challenge" not in params:
            return _json_error(400, "expected hub.mode=subscribe with hub.challenge")
        given = params.get("hub.verify_token", "").encode()
        if not hmac.compare_digest(given, config.verify_token.get_secret_value().encode()):
            state.rejects.note("validation GET refused: wrong verify token")
            return _json_error(403, "verify token does not match")
        return _json(200, {"hub.challenge": params["hub.challenge"]})

    def accept(body: bytes) -> Answer:
        try:
            event = StravaEvent.parse(body)
        except ValueError as exc:
            return _json_error(400, str(exc))
        expected = state.subscription_id
        if config.subscription_id is not None and expected is None:
            # Not read yet (Strava's list call failed): Strava retries a non-200.
            return _json_error(503, "subscription id not known yet; retry")
        if expected is not None and event.subscription_id != expected:
            state.rejects.note(f"event ignored: another subscription than {expected}")
            return _json(200, {"status": "ignored", "reason": "unknown subscription"})
        roster = state.athletes
        if roster is None:
            return _json_error(503, "roster not read yet; retry")
        if event.owner_id not in roster:
            state.rejects.note("event ignored: owner not an athlete of the roster")
            return _json(200, {"status": "ignored", "reason": "unknown athlete"})
        if event.name is None:
            return _json(200, {"status": "ignored", "reason": "not an event the pipeline reacts to"})
        if not state.seen.first_time(event.key):
            return _json(200, {"status": "duplicate"})
        try:
            # the Prefect event (a pydantic model, most of an event's cost) is built by the emitter
            state.queue.put_nowait((event, datetime.now(UTC)))
        except asyncio.QueueFull:
            state.seen.forget(event.key)  # Strava's retry must pass
            state.rejects.note("event refused with 503: the emission queue is full")
            return _json_error(503, "busy; retry")
        return _json(200, {"status": "queued"})

    async def send(batch: list[Event]) -> None:
        if config.emit_batch is not None:
            await config.emit_batch(batch)
            return
        for event in batch:
            await config.emit(event)

    async def build(accepted: list[Accepted]) -> list[Event]:
        events = []
        for i, (event, occurred) in enumerate(accepted, 1):
            events.append(prefect_event(event, config.application, occurred))
            if i % _BUILD_SLICE == 0:
                await asyncio.sleep(0)  # let the loop answer requests between slices
        return events

    async def emitter() -> None:
        while True:
            accepted = [await state.queue.get()]
            while len(accepted) < config.batch_size and not state.queue.empty():
                accepted.append(state.queue.get_nowait())
            batch = await build(accepted)
            for attempt in range(1, config.emit_attempts + 1):
                try:
                    await send(batch)
                    state.emitted = [*state.emitted, *(f"{e.event} {e.id}" for e in batch)][-1000:]
                    break
                except Exception as exc:  # noqa: BLE001 - logged; the next attempt or the next batch
                    # a resend is harmless: the events' ids are fixed and Prefect stores each once
                    logger.warning("Emitting %s events failed (attempt %s): %s", len(batch), attempt, exc)
                    await asyncio.sleep(min(2.0**attempt, 30.0))
            else:
                logger.error("Dropped %s events after %s attempts", len(batch), config.emit_attempts)
            for _ in accepted:
                state.queue.task_done()

    async def reporter() -> None:
        while True:
            await asyncio.sleep(config.report_interval)
            state.rejects.flush(config.report_interval)

    async def refresher() -> None:
        while True:
            try:
                if callable(config.subscription_id) and state.subscription_id is None:
                    state.subscription_id = await config.subscription_id()
                state.athletes = frozenset(await config.athletes())
            except Exception as exc:  # noqa: BLE001 - keep serving with what is known; try again
                logger.warning("Reading the roster or the subscription failed: %s", exc)
                await asyncio.sleep(min(5.0, config.roster_refresh_seconds))
                continue
            # No subscription yet (the receiver starts before `webhook subscribe`): look again soon.
            unknown = callable(config.subscription_id) and state.subscription_id is None
            await asyncio.sleep(min(2.0, config.roster_refresh_seconds) if unknown else config.roster_refresh_seconds)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        if config.warm is not None:
            try:
                await asyncio.wait_for(config.warm(), config.warm_seconds)
            except Exception as exc:  # noqa: BLE001 - serve anyway; the emitter connects on its first batch
                logger.warning("Opening the Prefect events client at startup failed: %s", exc or type(exc).__name__)
        tasks = [asyncio.create_task(f()) for f in (emitter, refresher, reporter)]
        try:
            yield
        finally:
            try:  # give queued events a moment to go out
                await asyncio.wait_for(state.queue.join(), timeout=5.0)
            except TimeoutError:
                logger.warning("Stopped with %s events not emitted", state.queue.qsize())
            for task in tasks:
                task.cancel()
            state.rejects.flush(config.report_interval)
            if config.close is not None:
                try:
                    await config.close()
                except Exception as exc:  # noqa: BLE001 - shutting down: say so, do not fail the stop
                    logger.warning("Closing the events client failed: %s", exc)

    # Any path: the callback URL's path is the deployer's choice (behind a proxy, /strava/webhook...).
    return ReceiverApp(verify, accept, lifespan, state)
