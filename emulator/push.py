"""Strava's webhook side of the emulator: callback validation and event delivery, stdlib only.

The deliverer owns a queue, one background thread and its own lock; it never takes the
emulator's lock, so a slow callback can hold up neither the API server nor the knobs.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["MAX_ATTEMPTS", "PushAttempt", "PushDelivery"]

MAX_ATTEMPTS = 3
"""Attempts per event in all (Strava: "retried up to a total of three attempts")."""

# Callbacks are local test servers: never route them through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class PushAttempt:
    """One POST of an event to the callback."""

    monotonic: float
    """``time.monotonic()`` when the POST started (for latency measurements)."""
    at: datetime
    """The emulator's clock when the POST started."""
    status: int | None
    """The callback's HTTP status; None when it gave no answer in time (or refused the connection)."""
    error: str | None
    """Why the attempt failed, or None when the callback answered 200 in time."""


@dataclass
class PushDelivery:
    """One event and what became of its delivery."""

    event: dict[str, Any]
    """The JSON body POSTed, as Strava sends it."""
    callback_url: str
    attempts: list[PushAttempt] = field(default_factory=list)
    status: str = "pending"
    """``pending``, ``delivered`` (a 200 within the deadline) or ``failed`` (three attempts failed)."""

    @property
    def delivered(self) -> bool:
        """Whether the callback acknowledged the event with a 200 in time."""
        return self.status == "delivered"


def _call(request: urllib.request.Request, timeout: float) -> tuple[int | None, bytes, str | None]:
    """Send ``request``; return (status, body, error), failing an answer later than ``timeout``."""
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, body = int(response.status), response.read(65_536)
    except urllib.error.HTTPError as exc:
        status, body = int(exc.code), b""
    except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
        return None, b"", f"{type(exc).__name__}: {exc}"
    if time.monotonic() - started > timeout:
        return None, b"", f"no answer within {timeout:g} s"
    return status, body, None if status == 200 else f"HTTP {status}"


def validate_callback(callback_url: str, verify_token: str, challenge: str, timeout: float) -> str | None:
    """Strava's validation GET; return None when the challenge is echoed, else the error code."""
    parts = urlsplit(callback_url)
    params = urlencode({"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token})
    query = f"{parts.query}&{params}" if parts.query else params
    url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))
    status, body, _ = _call(urllib.request.Request(url, method="GET"), timeout)
    if status != 200:
        return "GET to callback URL does not return 200"
    try:
        echoed = json.loads(body.decode("utf-8")).get("hub.challenge")
    except (ValueError, AttributeError):
        echoed = None
    return None if echoed == challenge else "callback URL does not echo hub.challenge"


class PushDeliverer:
    """A queue of events and one thread POSTing them, with Strava's retries."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        retry_delay: Callable[[], float],
        timeout: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._retry_delay = retry_delay
        self._timeout = timeout
        self._queue: queue.Queue[PushDelivery | None] = queue.Queue()
        self._records: list[PushDelivery] = []
        self._pending = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread (once)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="strava-emulator-push", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (events not yet delivered are dropped); joins for at most ``timeout``."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        with self._changed:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    item.status = "failed"
                    self._pending -= 1
            self._changed.notify_all()

    def submit(self, event: dict[str, Any], callback_url: str) -> None:
        """Queue one event; returns at once."""
        delivery = PushDelivery(event, callback_url)
        with self._changed:
            self._records.append(delivery)
            self._pending += 1
        self._queue.put(delivery)

    def records(self) -> list[PushDelivery]:
        """Snapshots of every delivery so far, in order of emission."""
        with self._changed:
            return [replace(d, event=dict(d.event), attempts=list(d.attempts)) for d in self._records]

    def wait(self, timeout: float) -> bool:
        """Block until every queued event is delivered or given up; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            self._deliver(delivery)
            with self._changed:
                self._pending -= 1
                self._changed.notify_all()

    def _deliver(self, delivery: PushDelivery) -> None:
        body = json.dumps(delivery.event).encode("utf-8")
        for number in range(1, MAX_ATTEMPTS + 1):
            if number > 1 and self._stopping.wait(self._retry_delay()):
                break
            request = urllib.request.Request(
                delivery.callback_url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "StravaEmulator/1.0"},
            )
            started, at = time.monotonic(), self._clock()
            status, _, error = _call(request, self._timeout())
            with self._changed:
                delivery.attempts.append(PushAttempt(started, at, status, error))
                if error is None:
                    delivery.status = "delivered"
                    return
        with self._changed:
            delivery.status = "failed"
