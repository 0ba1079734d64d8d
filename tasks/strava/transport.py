"""The HTTP transport of every Strava request: an httpx client whose requests each have one deadline.

httpx's timeouts bound each socket operation, so a server dripping a byte every few seconds
never trips them; :class:`DeadlineTransport` cuts every read, write and TLS handshake to what
is left of the request's overall deadline. :func:`deadline_client` builds a client on it.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from typing import Any

import httpcore
import httpx


class _Deadline:
    """Each request's overall deadline: ``seconds`` after it starts, tracked per thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._local = threading.local()

    def start(self) -> None:
        """A request starts on this thread: its deadline is ``seconds`` from now."""
        self._local.at = time.monotonic() + self.seconds

    def remaining(self, timeout: float | None) -> float | None:
        """``timeout`` cut to what is left before the deadline; raise once it has passed."""
        at: float | None = getattr(self._local, "at", None)
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left if timeout is None else min(timeout, left)

    def expired(self) -> httpcore.ReadTimeout:
        """The error of a request past its deadline (httpx maps it to ``httpx.ReadTimeout``)."""
        return httpcore.ReadTimeout(f"no complete response within the request's deadline of {self.seconds:g} s")

    def passed(self) -> bool:
        """Whether the current request's deadline has passed."""
        at: float | None = getattr(self._local, "at", None)
        return at is not None and time.monotonic() >= at


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._stream.read(max_bytes, self._deadline.remaining(timeout))
        except httpcore.TimeoutException as exc:
            raise (self._deadline.expired() if self._deadline.passed() else exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._stream.write(buffer, self._deadline.remaining(timeout))
        except httpcore.TimeoutException as exc:
            raise (self._deadline.expired() if self._deadline.passed() else exc) from exc

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, self._deadline.remaining(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens connections whose streams keep the request's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend, deadline: _Deadline) -> None:
        self._backend = backend
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, self._deadline.remaining(timeout), local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """An httpx transport that bounds each request as a whole: connect, headers and body.

    httpx's timeouts bound each socket operation, so a server that drips a byte every few
    seconds never trips them. Here every operation's timeout is cut to what is left of the
    request's overall deadline; once it has passed, the next read raises ``httpx.ReadTimeout``
    (retried like any timeout). The deadline starts when the request is handed to the
    transport and also covers reading the body afterwards, on the same thread.
    """

    def __init__(self, deadline_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = _Deadline(deadline_seconds)
        # httpx builds its httpcore pool without a network_backend argument: wrap the pool's own.
        pool = self._pool
        if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
            raise TypeError("this httpx/httpcore version does not expose the pool's network backend")
        pool._network_backend = _DeadlineBackend(pool._network_backend, self._deadline)  # type: ignore[union-attr]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._deadline.start()
        return super().handle_request(request)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE``), built once per process.

    Building one reads the CA bundle: about 30 ms, which every client would pay again.
    """
    return httpx.create_ssl_context()


def deadline_client(deadline_seconds: float, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request must complete within ``deadline_seconds``."""
    transport = DeadlineTransport(deadline_seconds, verify=_tls_context())
    return httpx.Client(transport=transport, timeout=deadline_seconds, **kwargs)
