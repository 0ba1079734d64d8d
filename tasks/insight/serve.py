"""A small read-only HTTP server for a local lake's pages: the dashboards and the index page.

``strava-elt dashboard --serve`` runs it on 127.0.0.1 so the Prefect UI's dashboard links open
in a browser (a browser refuses ``file://`` links from a web page). It serves only files under
the lake's folder: ``GET`` and ``HEAD`` only, no directory listings, any ``..`` segment
refused (also percent-encoded), a symlink out of the folder refused, ``/`` is ``index.html``,
and each connection has a timeout so a slow client cannot hold a thread.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["ALLOWED_SUFFIXES", "CONNECTION_TIMEOUT_SECONDS", "LakeServer", "serving"]

CONNECTION_TIMEOUT_SECONDS = 10.0
"""How long a connection may sit idle (reading the request, sending the answer) before it is closed."""
ALLOWED_SUFFIXES = frozenset({".html", ".json", ".css", ".js", ".png", ".svg", ".txt"})
"""What the server hands out: pages and their assets, never the lake's raw pages or staging files."""
_CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: LakeServer
    timeout = CONNECTION_TIMEOUT_SECONDS  # StreamRequestHandler: a socket timeout per connection
    server_version = "strava-elt-lake"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _refuse(self, status: HTTPStatus) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(self, *, body: bool) -> None:
        target = self.server.resolve(self.path)
        if isinstance(target, HTTPStatus):
            self._refuse(target)
            return
        size = target.stat().st_size
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"{kind}; charset=utf-8" if kind.startswith("text/") else kind)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            with target.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the server is a viewer, not a service with an access log."""


class LakeServer(ThreadingHTTPServer):
    """The read-only server over ``root`` (the local lake's folder)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root.resolve(strict=True)
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the lake's root."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://127.0.0.1:{port}"

    def resolve(self, raw_path: str) -> Path | HTTPStatus:
        """The file a request path names under the root, or the status that refuses it."""
        path = urlsplit(raw_path).path
        if not path.startswith("/"):
            return HTTPStatus.BAD_REQUEST
        segments = [unquote(s) for s in path.split("/")[1:]]
        if any(s in ("..", ".") or "/" in s or "\\" in s or "\x00" in s for s in segments):
            return HTTPStatus.BAD_REQUEST  # no way up, however it is spelled
        if segments in ([], [""]):
            segments = ["index.html"]
        target = self.root.joinpath(*segments)
        try:
            real = target.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError, RuntimeError, OSError):
            return HTTPStatus.NOT_FOUND
        if not real.is_relative_to(self.root) or not real.is_file():
            return HTTPStatus.NOT_FOUND  # a directory (no listings), or a symlink out of the lake
        if real.suffix.lower() not in ALLOWED_SUFFIXES:
            return HTTPStatus.NOT_FOUND
        return real


@contextmanager
def serving(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[LakeServer]:
    """Serve ``root`` in a background thread while the block runs; stop and close it after."""
    server = LakeServer(root, host, port)
    thread = threading.Thread(target=server.serve_forever, name="strava-elt-lake-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
