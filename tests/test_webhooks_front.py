"""The receiver's front over real sockets: deadlines, the connection cap, quiet disconnects, a bounded log."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tasks.webhooks.front import FrontLimits, ReceiverFront, RejectLog
from tasks.webhooks.receiver import build_app
from tests.test_webhooks_receiver import TOKEN, Sink, config, front_serving, strava_event


class Served:
    def __init__(self, front: ReceiverFront, loop: asyncio.AbstractEventLoop, sink: Sink) -> None:
        self.front, self.loop, self.sink = front, loop, sink

    @property
    def port(self) -> int:
        return self.front.port

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return sock

    def call(self, fn: Any) -> Any:
        """Run ``fn`` on the front's loop and return its result."""
        done: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_call(fn), self.loop)  # type: ignore[assignment]
        return done.result(timeout=30)


async def _call(fn: Any) -> Any:
    return fn()


@contextmanager
def serve(limits: FrontLimits) -> Iterator[Served]:
    sink = Sink()
    with front_serving(build_app(config(sink)), limits, RejectLog(logging.getLogger("test.front"))) as front:
        assert front.loop is not None
        served = Served(front, front.loop, sink)
        _wait_for_roster(served)
        yield served


def _wait_for_roster(served: Served) -> None:
    for _ in range(500):
        answer = request(served, post(strava_event(object_id=1)))
        if b" 503 " not in answer.split(b"\r\n", 1)[0]:
            return
        threading.Event().wait(0.02)
    raise AssertionError("the receiver never read the roster")


def post(event: dict[str, Any]) -> bytes:
    body = json.dumps(event).encode()
    return b"POST /strava HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def request(served: Served, raw: bytes) -> bytes:
    with served.connect() as sock:
        sock.sendall(raw)
        return read_all(sock)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def test_a_valid_challenge_and_event_are_answered_and_the_connection_closed() -> None:
    with serve(FrontLimits()) as served:
        query = f"hub.mode=subscribe&hub.challenge=c-1&hub.verify_token={TOKEN}"
        answer = request(served, f"GET /strava?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status(answer) == 200 and answer.endswith(b'{"hub.challenge":"c-1"}')
        assert b"connection: close" in answer.lower()
        queued = request(served, post(strava_event()))
        assert status(queued) == 200 and queued.endswith(b'{"status":"queued"}')


@pytest.mark.parametrize(
    "partial",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Drip: a",  # headers never end
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n{",  # the declared body never comes
    ],
)
def test_a_drip_fed_request_is_closed_after_the_deadline(partial: bytes) -> None:
    with serve(FrontLimits(request_deadline=0.5)) as served, served.connect() as sock:
        sock.sendall(partial)
        answer = read_all(sock)  # the server closes it: this returns instead of waiting forever
        assert status(answer) == 408
        assert served.call(lambda: len(served.front.clients)) == 0


def test_beyond_the_cap_a_connection_is_refused_cleanly_while_a_slow_one_is_evicted() -> None:
    limits = FrontLimits(max_connections=3, evict_after=3600)
    with serve(limits) as served:
        held = [served.connect() for _ in range(3)]
        for sock in held:
            sock.sendall(b"POST / HTTP/1.1\r\n")
        while served.call(lambda: len(served.front.clients)) < 3:
            threading.Event().wait(0.01)
        with served.connect() as extra:
            answer = read_all(extra)
        assert status(answer) == 503 and b"retry-after: 1" in answer.lower()
        assert served.call(lambda: len(served.front.clients)) == 3
        for sock in held:
            sock.close()
    # at the cap, a request that has waited longer than evict_after gives its place to a new one
    with serve(FrontLimits(max_connections=2, evict_after=0)) as served:
        slow = served.connect()
        slow.sendall(b"POST / HTTP/1.1\r\n")
        other = served.connect()
        other.sendall(b"POST / HTTP/1.1\r\n")
        while served.call(lambda: len(served.front.clients)) < 2:
            threading.Event().wait(0.01)
        assert status(request(served, post(strava_event(object_id=77)))) == 200
        assert status(read_all(slow)) == 408
        slow.close()
        other.close()


def test_a_disconnect_mid_body_logs_no_traceback_and_bad_clients_cost_one_line_per_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.front")
    with serve(FrontLimits(report_interval=3600)) as served:
        for i in range(300):
            with served.connect() as sock:
                kind = i % 3
                if kind == 0:  # disconnects mid-body
                    sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n{"aspect')
                elif kind == 1:  # not HTTP
                    sock.sendall(b"\x16\x03\x01 hello\r\n\r\n")
                    read_all(sock)
                else:  # a body over the limit
                    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n")
                    read_all(sock)
        # the front still answers a real client
        assert status(request(served, post(strava_event(object_id=5)))) == 200
        for _ in range(3000):  # the last disconnects are seen by the server a moment later
            if served.call(lambda: served.front.rejects.counts["closed before its request was complete"]) >= 100:
                break
            threading.Event().wait(0.01)
        lines = served.call(lambda: served.front.rejects.flush(60))
    records = [r for r in caplog.records if r.name == "test.front"]
    assert lines == 3 and len(records) == 3
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)
    text = "\n".join(r.getMessage() for r in records)
    assert "100 request(s)" in text and "closed before its request was complete" in text
    assert "malformed HTTP request" in text and "body too large" in text
