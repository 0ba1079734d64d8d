"""The receiver's HTTP front: an asyncio server that no slow or hostile client can starve.

uvicorn reads a request for as long as the client takes and keeps every connection it is
offered: drip-fed headers or bodies hold file descriptors until the process runs out, and each
failure logs a traceback. This front reads each request whole before the application sees it,
with:

- a **request deadline** (:attr:`FrontLimits.request_deadline`): headers and body must arrive
  within a few seconds of the connection, else ``408`` and the connection is closed;
- a **connection cap** (:attr:`FrontLimits.max_connections`, below the file limit): at the cap,
  the connection that has waited longest for its request gives its place to the new one when it
  is older than :attr:`FrontLimits.evict_after` (a slow client loses to a prompt one); when
  every connection is younger, the new one is refused cleanly with ``503`` and ``Retry-After``;
- **bounded sizes**: headers (``431``) and body (``413``, declared or streamed);
- a **bounded log**: each class of rejected client is counted and reported as one line per
  interval (:class:`RejectLog`), never one line or traceback per connection; a client that
  disconnects mid-request is counted the same way;
- one request per connection (``Connection: close``): Strava's POSTs come one per connection.

The application is any ASGI app (the Starlette receiver of :mod:`~tasks.webhooks.receiver`); it
gets the body already read, so it never waits on the client and never sees a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import h11

from tasks.webhooks.receiver import MAX_BODY_BYTES

__all__ = ["FrontLimits", "ReceiverFront", "RejectLog", "default_max_connections", "raise_file_limit", "run"]

logger = logging.getLogger(__name__)

_FD_RESERVE = 200
"""File descriptors kept out of the cap: the listener, the Prefect client, logs, refusals in flight."""

ASGIApp = Callable[..., Any]


def raise_file_limit() -> int:
    """Raise this process's soft file limit to its hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


def default_max_connections() -> int:
    """The cap the file limit allows: the soft limit minus a reserve (at least 64)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, int(soft) - _FD_RESERVE)


@dataclass(frozen=True)
class FrontLimits:
    """What the front allows a client (``strava-elt webhook serve`` options of the same names)."""

    request_deadline: float = 5.0
    """Seconds from the connection to the end of its request (headers and body); then 408."""
    max_connections: int | None = None
    """Open connections at most; None: the file limit minus a reserve (:func:`default_max_connections`)."""
    evict_after: float = 1.0
    """At the cap, the oldest unfinished request older than this is closed to admit a new connection."""
    max_header_bytes: int = 8192
    max_body_bytes: int = MAX_BODY_BYTES
    app_deadline: float = 10.0
    """Seconds the application may take to answer (it does no I/O per request; a safety net)."""
    report_interval: float = 60.0
    """Seconds between the log's summary lines of rejected clients."""

    def cap(self) -> int:
        return self.max_connections if self.max_connections is not None else default_max_connections()


class RejectLog:
    """Counts rejected clients by class and logs one line per class per interval."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self.log = log
        self.counts: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()

    def note(self, kind: str) -> None:
        """Count one client of class ``kind`` (a short phrase, no client data)."""
        self.counts[kind] += 1
        self.totals[kind] += 1

    def flush(self, interval: float) -> int:
        """Log one line per class counted since the last flush; return the number of lines."""
        counts, self.counts = self.counts, Counter()
        for kind, count in sorted(counts.items()):
            self.log.warning("Receiver: %s client(s) in the last %.0f s: %s", count, interval, kind)
        return len(counts)


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def _plain(status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A complete HTTP/1.1 answer with a small JSON body, closing the connection."""
    body = b'{"error": "' + message.encode() + b'"}'
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    head += [name + b": " + value for name, value in extra or []]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_READING, _ANSWERING, _DONE = 0, 1, 2


class _Connection(asyncio.Protocol):
    """One client connection: read one request within the deadline, answer it, close."""

    __slots__ = ("front", "transport", "conn", "body", "started", "timer", "state", "got_bytes", "headers_done", "request")

    def __init__(self, front: ReceiverFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=front.limits.max_header_bytes)
        self.body = bytearray()
        self.started = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.state = _READING
        self.got_bytes = False
        self.headers_done = False
        self.request: h11.Request | None = None

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.started = self.front.loop.time()
        if not self.front.admit(self):
            return
        self.timer = self.front.loop.call_later(self.front.limits.request_deadline, self.expire)

    def data_received(self, data: bytes) -> None:
        if self.state != _READING:
            return
        self.got_bytes = True
        try:
            self.conn.receive_data(data)
            self._advance()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431 or (status == 400 and not self.headers_done and "too long" in str(exc).lower()):
                self.reject(431, "request headers too large", "headers too large")
            else:
                self.reject(400, "malformed HTTP request", "malformed HTTP request")

    def eof_received(self) -> bool | None:
        if self.state == _READING:
            self.front.rejects.note("closed before its request was complete")
            self.finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == _READING and self.got_bytes:
            self.front.rejects.note("closed before its request was complete")
        self.state = _DONE
        if self.timer is not None:
            self.timer.cancel()
        self.front.forget(self)

    # -- reading
    def _advance(self) -> None:
        limits = self.front.limits
        while self.state == _READING:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request = event
                self.headers_done = True
                declared = dict(event.headers).get(b"content-length")
                if declared is not None and int(declared) > limits.max_body_bytes:
                    self.reject(413, f"body larger than {limits.max_body_bytes} bytes", "body too large")
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > limits.max_body_bytes:
                    self.reject(413, f"body larger than {limits.max_body_bytes} bytes", "body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self.state = _ANSWERING
                if self.timer is not None:
                    self.timer.cancel()
                self.front.answering(self)
                self.front.spawn(self.answer())
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.front.rejects.note("closed before its request was complete")
                self.finish()
                return

    def expire(self) -> None:
        """The request deadline passed before the request was complete."""
        if self.state != _READING:
            return
        where = "body" if self.headers_done else "headers"
        deadline = self.front.limits.request_deadline
        self.reject(408, "request not complete in time", f"request {where} not complete within {deadline:g} s")

    def reject(self, status: int, message: str, kind: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer ``status`` and close, counting the client under ``kind``."""
        self.front.rejects.note(kind)
        self.state = _DONE
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_plain(status, message, extra))
        self.finish()

    def finish(self) -> None:
        self.state = _DONE
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()
        self.front.forget(self)

    # -- answering
    async def answer(self) -> None:
        request = self.request
        assert request is not None and self.transport is not None
        status, headers, body = 500, [(b"content-type", b"application/json")], b'{"error": "internal error"}'
        try:
            status, headers, body = await asyncio.wait_for(
                self.front.call_app(request, bytes(self.body), self.transport), self.front.limits.app_deadline
            )
        except Exception as exc:  # noqa: BLE001 - counted and logged once per interval; the client gets a 500
            self.front.rejects.note(f"application error ({type(exc).__name__})")
        if self.transport.is_closing():
            self.finish()
            return
        try:
            out = [(n, v) for n, v in headers if n.lower() not in (b"content-length", b"connection")]
            out += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
            data = self.conn.send(h11.Response(status_code=status, headers=out)) or b""
            data += self.conn.send(h11.Data(data=body)) or b""
            data += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(data)
        except h11.LocalProtocolError:
            self.front.rejects.note("answer not sendable")
        self.finish()


class ReceiverFront:
    """Serves an ASGI app on one host and port with :class:`FrontLimits` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: FrontLimits | None = None, rejects: RejectLog | None = None) -> None:
        self.app = app
        self.limits = limits or FrontLimits()
        self.rejects = rejects or RejectLog()
        self.cap = self.limits.cap()
        self.connections: set[_Connection] = set()
        self.reading: OrderedDict[_Connection, None] = OrderedDict()
        """Connections still reading their request, oldest first (the eviction order)."""
        self.loop = asyncio.get_event_loop_policy().get_event_loop()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lifespan_task: asyncio.Task[Any] | None = None
        self.lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.port = 0

    # -- connections
    def admit(self, connection: _Connection) -> bool:
        """Take ``connection`` in, evicting the oldest slow request at the cap, or refuse it (503)."""
        if len(self.connections) >= self.cap:
            oldest = next(iter(self.reading), None)
            if oldest is not None and self.loop.time() - oldest.started >= self.limits.evict_after:
                oldest.reject(
                    408, "request not complete in time", "evicted at the connection cap (oldest unfinished request)"
                )
            else:
                connection.reject(503, "too many connections; retry", "refused at the connection cap", [
                    (b"retry-after", b"1")
                ])
                return False
        self.connections.add(connection)
        self.reading[connection] = None
        return True

    def answering(self, connection: _Connection) -> None:
        self.reading.pop(connection, None)

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        self.reading.pop(connection, None)

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the application
    async def call_app(
        self, request: h11.Request, body: bytes, transport: asyncio.Transport
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the ASGI app on one buffered request; return (status, headers, body)."""
        target = request.target
        path, _, query = target.partition(b"?")
        peer = transport.get_extra_info("peername")
        scope: MutableMapping[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(),
            "method": request.method.decode("latin-1"),
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(n.lower(), v) for n, v in request.headers],
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": ("127.0.0.1", self.port),
            "state": {},
        }
        sent = False
        answer: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never a disconnect: the request is whole
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
                answer["headers"] = [(bytes(n), bytes(v)) for n, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return answer["status"], answer["headers"], bytes(answer["body"])

    async def _lifespan(self) -> None:
        await self.lifespan_in.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.lifespan_task = self.loop.create_task(self.app(scope, self.lifespan_in.get, self.lifespan_out.put))
        message = await self.lifespan_out.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the receiver did not start: {message.get('message', message['type'])}")

    # -- serving
    async def start(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> int:
        """Start the application and listen; return the port."""
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(self._loop_error)
        await self._lifespan()
        self.server = await self.loop.create_server(lambda: _Connection(self), host, port, backlog=backlog)
        self.port = int(self.server.sockets[0].getsockname()[1])
        self.spawn(self._report())
        logger.info(
            "Receiver listening on %s:%s (request deadline %g s, at most %s connections)",
            host,
            self.port,
            self.limits.request_deadline,
            self.cap,
        )
        return self.port

    async def stop(self) -> None:
        """Stop listening, close the connections, run the application's shutdown."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.finish()
        for task in list(self.tasks):
            task.cancel()
        if self.lifespan_task is not None:
            await self.lifespan_in.put({"type": "lifespan.shutdown"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lifespan_out.get(), timeout=15.0)
            self.lifespan_task.cancel()
        self.rejects.flush(self.limits.report_interval)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.limits.report_interval)
            self.rejects.flush(self.limits.report_interval)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own errors (an accept out of file descriptors...): counted, not a traceback each."""
        exc = context.get("exception")
        self.rejects.note(f"server error: {type(exc).__name__ if exc else context.get('message', '?')}")


def run(app: ASGIApp, host: str, port: int, limits: FrontLimits | None = None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (``strava-elt webhook serve``)."""
    raise_file_limit()

    async def main() -> None:
        front = ReceiverFront(app, limits)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await front.start(host, port)
        started = time.monotonic()
        try:
            await stopping.wait()
        finally:
            logger.info("Receiver stopping after %.0f s", time.monotonic() - started)
            await front.stop()

    asyncio.run(main())
