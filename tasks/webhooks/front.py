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

The application is any ASGI app (the receiver of :mod:`~tasks.webhooks.receiver`); it
gets the body already read, so it never waits on the client and never sees a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import resource
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import h11

from tasks.webhooks.receiver import MAX_BODY_BYTES, RejectLog

__all__ = [
    "FrontLimits",
    "ReceiverFront",
    "RejectLog",
    "default_max_connections",
    "raise_file_limit",
    "run",
    "settle_heap",
]

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


def settle_heap() -> None:
    """Collect once, then move every object alive now out of the collector's reach (``gc.freeze``).

    A server process holds several hundred thousand long-lived objects (Prefect, pydantic, the
    app); each full collection walks all of them, and one during a flood held the loop for
    100-300 ms (the answers' p99). Frozen, they are never walked again: a full collection walks
    only what the process made since. Call it once, after startup (the app and its clients ready).
    """
    gc.collect()
    gc.freeze()


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
    backlog: int = 4096
    """The listen queue: connections the kernel completes before the front accepts them."""

    def cap(self) -> int:
        return self.max_connections if self.max_connections is not None else default_max_connections()


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


class _Client:
    """One client connection: its socket, when it came, what it sent so far."""

    __slots__ = ("sock", "peer", "fd", "started", "buf", "conn", "request", "body", "reading")

    def __init__(self, sock: socket.socket, started: float, peer: Any = None) -> None:
        self.sock = sock
        self.peer = peer
        self.fd = sock.fileno()
        self.started = started
        self.buf = bytearray()
        self.conn: h11.Connection | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.reading = True


class ReceiverFront:
    """Serves an ASGI app on one host and port with :class:`FrontLimits` (see the module's docstring).

    Plain non-blocking sockets on the running loop's selector: a connection costs a socket, a
    small object and a selector entry until its request is whole (h11 parses it once the
    headers' end has arrived); deadlines are one sweep over the connections in arrival order.
    """

    def __init__(self, app: ASGIApp, limits: FrontLimits | None = None, rejects: RejectLog | None = None) -> None:
        self.app = app
        self.limits = limits or FrontLimits()
        self.rejects = rejects or RejectLog()
        self.cap = self.limits.cap()
        self.clients: dict[int, _Client] = {}
        self.reading: OrderedDict[int, _Client] = OrderedDict()
        """Connections still reading their request, oldest first (the deadline and eviction order)."""
        self.listener: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lifespan_task: asyncio.Task[Any] | None = None
        self.lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.port = 0

    # -- accepting
    def _on_accept(self) -> None:
        assert self.listener is not None and self.loop is not None
        now = self.loop.time()
        for _ in range(1024):
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors (EMFILE, ENFILE) or an aborted handshake
                self.rejects.note(f"accept failed ({errno.errorcode.get(exc.errno or 0, exc.errno)})")
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting()
                return
            sock.setblocking(False)
            client = _Client(sock, now, addr)
            if len(self.clients) >= self.cap and not self._evict(now):
                self.rejects.note("refused at the connection cap")
                self._send_and_close(
                    client, _plain(503, "too many connections; retry", [(b"retry-after", b"1")]), known=False
                )
                continue
            self.clients[client.fd] = client
            self.reading[client.fd] = client
            self.loop.add_reader(client.fd, self._on_read, client)

    def _pause_accepting(self) -> None:
        assert self.listener is not None and self.loop is not None
        self.loop.remove_reader(self.listener.fileno())
        self.loop.call_later(0.1, self.loop.add_reader, self.listener.fileno(), self._on_accept)

    def _evict(self, now: float) -> bool:
        """Close the oldest unfinished request if it is older than ``evict_after``; True when one was."""
        oldest = next(iter(self.reading.values()), None)
        if oldest is None or now - oldest.started < self.limits.evict_after:
            return False
        self.rejects.note("evicted at the connection cap (the oldest unfinished request)")
        self._send_and_close(oldest, _plain(408, "request not complete in time"))
        return True

    # -- reading
    def _on_read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if client.buf or client.conn is not None:
                self.rejects.note("closed before its request was complete")
            self._close(client)
            return
        limits = self.limits
        if client.conn is None:
            client.buf += data
            if b"\r\n\r\n" not in client.buf:
                if len(client.buf) > limits.max_header_bytes:
                    self._reject(client, 431, "request headers too large", "headers too large")
                return
            client.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
            data, client.buf = bytes(client.buf), bytearray()
        try:
            client.conn.receive_data(data)
            self._advance(client)
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:
                self._reject(client, 431, "request headers too large", "headers too large")
            else:
                self._reject(client, 400, "malformed HTTP request", "malformed HTTP request")

    def _advance(self, client: _Client) -> None:
        assert client.conn is not None
        limit = self.limits.max_body_bytes
        while client.reading:
            event = client.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                client.request = event
                declared = dict(event.headers).get(b"content-length")
                if declared is not None and int(declared) > limit:
                    self._reject(client, 413, f"body larger than {limit} bytes", "body too large")
                    return
            elif isinstance(event, h11.Data):
                client.body += event.data
                if len(client.body) > limit:
                    self._reject(client, 413, f"body larger than {limit} bytes", "body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                client.reading = False
                self.reading.pop(client.fd, None)
                assert self.loop is not None
                self.loop.remove_reader(client.fd)
                self._spawn(self._answer(client))
                return
            else:  # ConnectionClosed
                self.rejects.note("closed before its request was complete")
                self._close(client)
                return

    def _sweep(self) -> None:
        """Close every connection whose request is not whole after the deadline (oldest first)."""
        assert self.loop is not None
        deadline = self.limits.request_deadline
        cutoff = self.loop.time() - deadline
        while self.reading:
            oldest = next(iter(self.reading.values()))
            if oldest.started > cutoff:
                break
            where = "body" if oldest.request is not None else "headers"
            self._reject(
                oldest, 408, "request not complete in time", f"request {where} not complete within {deadline:g} s"
            )

    # -- answering and closing
    def _reject(self, client: _Client, status: int, message: str, kind: str) -> None:
        self.rejects.note(kind)
        self._send_and_close(client, _plain(status, message))

    def _send_and_close(self, client: _Client, data: bytes, known: bool = True) -> None:
        """Send a small answer (it fits the socket's buffer; what does not is dropped) and close."""
        try:
            client.sock.send(data)
        except OSError:
            pass
        self._close(client, known)

    def _close(self, client: _Client, known: bool = True) -> None:
        if known and self.clients.pop(client.fd, None) is not None:
            self.reading.pop(client.fd, None)
            if client.reading and self.loop is not None:
                self.loop.remove_reader(client.fd)
        client.reading = False
        sock = client.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)  # what the client sent unread would turn the close into a reset
        except OSError:
            pass
        sock.close()

    def _spawn(self, coro: Any) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, client: _Client) -> None:
        request = client.request
        assert request is not None
        status, headers, body = 500, [(b"content-type", b"application/json")], b'{"error": "internal error"}'
        try:
            async with asyncio.timeout(self.limits.app_deadline):  # no task of its own, unlike wait_for
                status, headers, body = await self.call_app(request, bytes(client.body), client.peer)
        except Exception as exc:  # noqa: BLE001 - counted and logged once per interval; the client gets a 500
            self.rejects.note(f"application error ({type(exc).__name__})")
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"OK" if status < 400 else b"Error"))]
        lines += [n + b": " + v for n, v in headers if n.lower() not in (b"content-length", b"connection")]
        lines += [b"content-length: %d" % len(body), b"connection: close"]
        self._send_and_close(client, b"\r\n".join(lines) + b"\r\n\r\n" + body)

    # -- the application
    async def call_app(
        self, request: h11.Request, body: bytes, peer: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the ASGI app on one buffered request from ``peer`` (accept's address); return (status, headers, body)."""
        path, _, query = request.target.partition(b"?")
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
        assert self.loop is not None
        await self.lifespan_in.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.lifespan_task = self.loop.create_task(self.app(scope, self.lifespan_in.get, self.lifespan_out.put))
        message = await self.lifespan_out.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the receiver did not start: {message.get('message', message['type'])}")

    # -- serving
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start the application and listen; return the port."""
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(self._loop_error)
        await self._lifespan()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(self.limits.backlog)
        listener.setblocking(False)
        self.listener = listener
        self.port = int(listener.getsockname()[1])
        self.loop.add_reader(listener.fileno(), self._on_accept)
        self._spawn(self._every(min(0.25, self.limits.request_deadline / 4), self._sweep))
        self._spawn(self._every(self.limits.report_interval, lambda: self.rejects.flush(self.limits.report_interval)))
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
        if self.listener is not None and self.loop is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
        for client in list(self.clients.values()):
            self._close(client)
        for task in list(self.tasks):
            task.cancel()
        if self.lifespan_task is not None:
            await self.lifespan_in.put({"type": "lifespan.shutdown"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lifespan_out.get(), timeout=15.0)
            self.lifespan_task.cancel()
        self.rejects.flush(self.limits.report_interval)

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            action()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Errors of the event loop itself: counted, not a traceback each."""
        exc = context.get("exception")
        self.rejects.note(f"server error: {type(exc).__name__ if exc else context.get('message', '?')}")


def run(app: ASGIApp, host: str, port: int, limits: FrontLimits | None = None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (``strava-elt webhook serve``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_file_limit()

    async def main() -> None:
        front = ReceiverFront(app, limits)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await front.start(host, port)
        settle_heap()
        started = time.monotonic()
        try:
            await stopping.wait()
        finally:
            logger.info("Receiver stopping after %.0f s", time.monotonic() - started)
            await front.stop()

    asyncio.run(main())
