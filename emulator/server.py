"""A Strava API v3 emulator over real HTTP, standard library only.

Speaks the parts of the protocol the pipeline uses, as Strava does: ``POST /oauth/token``
(refresh-token rotation, one-time authorization codes), ``GET /api/v3/athlete``,
``GET /api/v3/athlete/activities`` (``before``/``after``/``page``/``per_page``; oldest first
when only ``after`` is given), ``GET /api/v3/activities/{id}`` (DetailedActivity with laps,
splits, best and segment efforts), ``/activities/{id}/streams`` (StreamSet, 1 s),
``/gear/{id}``, ``/athletes/{id}/stats`` and ``/athlete/zones``; Bearer tokens that expire
after six hours by an injectable clock; the four rate-limit headers with 15-minute windows
reset at the quarter hour and daily ones at midnight UTC; Strava's error JSON; the Webhook
Events API (``/api/v3/push_subscriptions`` and event delivery to the callback). One
application, one or several athletes who authorised it, one rate budget. Tests steer it
in-process: add, change, delete and restore activities, inject failures, count requests.

    with StravaEmulator(activities=300, seed=7, athletes=3) as emu:
        httpx.post(f"{emu.base_url}/oauth/token", data={"client_id": emu.client_id, ...})
        second = emu.for_athlete(emu.athlete_ids[1])  # the same knobs, for that athlete

Rooms: this module is the HTTP server, its lifecycle, dispatch and fault injection;
:mod:`emulator.app` the application's state and accounting (athletes, tokens, rate budget,
records, events); :mod:`emulator.knobs` the per-athlete knobs; :mod:`emulator.routes` one
module per area (``oauth``, ``athlete``, ``activities``, ``push``); :mod:`emulator.athlete`
the synthetic athlete; :mod:`emulator.wire` responses and Strava's error JSON.

Choices where Strava is vague or the emulator simplifies:

- Every request to ``/api/v3`` counts against the overall budget (GETs and HEADs also
  against the read budget), 401s, 404s and 429s included, as Strava counts rejected requests
  too; a request is refused with 429 when, counted, it takes any usage past its limit (so a
  429 reports usage limit + 1). ``/oauth/token`` (also served as ``/api/v3/oauth/token``) is
  not rate limited and carries no rate-limit headers.
- The budget belongs to the application, as Strava's does: the requests of every athlete
  add up, and a 429 hits them all. :meth:`StravaEmulator.request_count` counts per athlete
  (``athlete_id=``: requests carrying a Bearer token ever issued to that athlete).
- Order of checks on the API: injected failure, rate limit (429), token (401), route (404),
  parameters (400).
- Injected failures are recorded and counted in :meth:`StravaEmulator.request_count` but not
  in the rate-limit usage; an injected 429 carries the current usage headers; an injected
  ``timeout`` sleeps :attr:`StravaEmulator.timeout_seconds`, then answers 504 (HTML). The
  ``expire_tokens`` kind is no failure of its own: it expires every access token (of every
  athlete), then the request is served (and counted) as usual, so it meets a token that just
  expired (401).
- ``per_page`` below 1 means the default 30, above 200 means 200; ``page`` below 1 means 1;
  a value that is not an integer (``before``, ``after``, ``page``, ``per_page``) is a 400.
- A wrong client id or secret is a 400 on ``/oauth/token`` (Strava's ``Application``
  error), not a 401.
- Every successful token grant issues a new access token and a new refresh token; the old
  refresh token is rejected from then on, older access tokens live out their six hours.
  Revoking (:meth:`StravaEmulator.revoke_refresh_token`) ends all that athlete's tokens; only
  an authorization code gets access back.
- Tokens are 40 hex digits derived from the seed and a counter: deterministic, not secret.

The whole record (:mod:`emulator.record`):

- Detail and streams are derived from the summary on each request, nothing is stored; a
  manual activity has no streams (404 ``Activity``/``streams``). Streams without ``keys``
  send every channel the activity has (Strava requires ``keys``; the emulator is lenient).
- Tokens carry the scope granted (``read,activity:read_all`` unless a knob says otherwise):
  without ``activity:read_all`` private activities are left out of the listing and their
  detail and streams are 404s; without ``activity:read`` the activity routes are 401
  (``AccessToken``/``activity:read_permission``/``missing``).
- Another athlete's stats are a 403 ``Forbidden`` (``Athlete``/``id``/``forbidden``); gear that
  is not the athlete's a 404 (``Gear``/``id``); stats count activities visible to everyone.

Several athletes:

- Athlete k is generated from ``seed + k`` (athlete 0 exactly as a one-athlete emulator with
  the same seed); every athlete's newest activity starts at ``end``. Activity ids never
  collide across athletes: an id another athlete already holds moves up to the next free
  integer (never for the first athlete). Athlete k's first refresh token is
  ``f"{refresh_token}-{k}"`` (k > 0), its default authorization code ``emulator-code-<k>``.
- An access token answers with its own athlete's data only. Another athlete's activity id
  on ``GET /activities/{id}`` is a 404 ``Record Not Found`` (``Activity``/``id``/``invalid``),
  as Strava answers for someone else's private activity; the listing never shows it.

Push subscriptions (https://developers.strava.com/docs/webhooks/):

- ``POST /api/v3/push_subscriptions`` (form, query or JSON parameters ``client_id``,
  ``client_secret``, ``callback_url``, ``verify_token``) GETs
  ``callback_url?hub.mode=subscribe&hub.challenge=<random>&hub.verify_token=<token>``
  with a deadline of :attr:`StravaEmulator.push_timeout_seconds` (2 s) and no emulator lock
  held; it must answer 200 with JSON ``{"hub.challenge": "<same>"}``. Else 400 with error
  ``PushSubscription``/``callback url`` and code ``GET to callback URL does not return 200``
  (an error status, a timeout, a refused connection) or ``callback URL does not echo
  hub.challenge`` (200 with another or no challenge). A second subscription is 400
  ``PushSubscription``/``""``/``already exists``; a missing ``callback_url`` or
  ``verify_token`` 400 ``missing``. Success: 201 ``{"id": <int>}``.
- ``GET /api/v3/push_subscriptions?client_id=&client_secret=`` lists it (0 or 1 items);
  ``DELETE /api/v3/push_subscriptions/{id}?client_id=&client_secret=`` answers 204, 404 for
  an unknown id. Wrong client credentials on any of them: 401 ``Authorization Error``
  (``Application``/``client_id`` or ``client_secret``/``invalid``), distinct from the 400s
  of a refused subscription. These endpoints authenticate the application, not an athlete:
  they are recorded but neither counted against the rate budget nor given rate headers.
- While a subscription exists and :attr:`StravaEmulator.emit_events` is true, the knobs
  queue events (the knob returns at once): one ``create`` per added activity; ``update``
  with ``{"title": ...}``, ``{"type": ...}`` (``type`` if given, else ``sport_type``) or
  ``{"private": "true"|"false"}`` when ``modify_activity`` changes those values (one event
  per call; other fields are silent, as on Strava); ``delete`` on the first deletion; and on
  ``revoke_refresh_token`` of an authorised athlete an ``athlete`` ``update`` with
  ``{"authorized": "false"}``. ``restore_activity``, ``remove_fields`` and the raw-JSON
  knobs emit nothing. ``event_time`` is the emulator's clock.
- One background thread POSTs them in order as JSON; an attempt fails without a 200 within
  2 s (error status, timeout, refused connection); three attempts in all,
  :attr:`StravaEmulator.push_retry_delay_seconds` apart (1 s by default: Strava does not
  document its delay; reports from the field speak of minutes). The thread never takes the
  emulator's lock; :meth:`StravaEmulator.stop` interrupts it (bounded join) and gives up
  undelivered events. Events queued before a subscription is deleted are still delivered.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulator.app import FAILURE_KINDS, EmulatorApp, RecordedRequest
from emulator.knobs import AthleteKnobs, AthleteView
from emulator.routes.oauth import TOKEN_PATHS, token
from emulator.routes.push import PUSH_ITEM_PATH, PUSH_PATH, push
from emulator.routes.table import route_api, route_name
from emulator.wire import Response, html_response, json_response, not_found, strava_error

__all__ = ["FAILURE_KINDS", "AthleteView", "RecordedRequest", "StravaEmulator", "serve_forever"]

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_HTML_504 = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: StravaEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on keep-alive clients, so that a stopped emulator serves nobody."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive connections
    wbufsize = -1  # headers and body leave in one write, flushed after each request
    server_version = "StravaEmulator/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet: no line per request on stderr."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.emulator._handle(self.command, self.path, dict(self.headers.items()), body)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class StravaEmulator(EmulatorApp, AthleteKnobs):
    """A deterministic, in-process Strava API v3 over real HTTP: one application, its athletes.

    The athlete knobs (``athlete``, ``activities``, ``add_activities``, ``revoke_refresh_token``
    ...) act on the first athlete; :meth:`for_athlete` gives the same knobs for any athlete.

    Args:
        activities: How many activities each synthetic athlete has, or one count per athlete.
        seed: Seed for every random choice (data and tokens); athlete k is drawn from ``seed + k``.
        client_id: The application's client id.
        client_secret: The application's client secret.
        refresh_token: The first athlete's initially valid refresh token; athlete k's is
            ``f"{refresh_token}-{k}"``.
        read_limits: The application's read budget (15 minutes, daily), ``X-ReadRateLimit-Limit``.
        overall_limits: The application's overall budget (15 minutes, daily), ``X-RateLimit-Limit``.
        clock: Returns the aware UTC "now" for rate windows, token expiry and event times.
        athlete_id: The first athlete's id; by default one drawn from the seed. It changes no
            other data: the same seed gives the same activities (and activity ids).
        end: Start (aware) of every athlete's newest activity; by default one day before
            ``clock()``, to the second. The history reaches back about four years for 1,500
            activities, at most about fifteen (larger athletes get busier days instead).
        athletes: How many athletes have authorised the application (a sequence of counts in
            ``activities`` sets it too).

    """

    _server: _Server | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread and return the base URL (port 0 picks a free port)."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="strava-emulator",
            daemon=True,
        )
        self._thread.start()
        self._deliverer.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and delivering (wakes requests sleeping in an injected timeout)."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._deliverer.stop(timeout=5)

    def __enter__(self) -> StravaEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port served on (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    # --- athletes -------------------------------------------------------------------

    def for_athlete(self, athlete_id: int) -> AthleteView:
        """The knobs on one athlete's data and tokens."""
        with self._lock:
            state = self._by_id.get(int(athlete_id))
        if state is None:
            raise KeyError(f"athlete {athlete_id} has not authorised this application; known: {self.athlete_ids}")
        return AthleteView(self, state)

    # --- dispatch -------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one HTTP request (called from the server threads)."""
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self._record(method, path, query, headers, route_name(method, path))
            failure = self._take_failure(path, query)
            if failure == "expire_tokens":
                self._access_tokens.clear()
                failure = None
        if failure is not None:
            return self._failure(failure)
        if path in TOKEN_PATHS:
            if method != "POST":
                return not_found()
            with self._lock:
                return token(self, query, headers, body)
        if path == PUSH_PATH or PUSH_ITEM_PATH.match(path):
            return push(self, method, path, query, headers, body)  # locks by itself: it calls out
        with self._lock:
            if not path.startswith("/api/v3/"):
                return not_found()
            allowed = self._count_usage(method)
            response = self._api(method, path, query, headers, allowed)
            response.headers.update(self._rate_headers())
            return response

    def _failure(self, kind: str) -> Response:
        if kind == "timeout":
            self._stopping.wait(self.timeout_seconds)
            return html_response(504, _HTML_504)
        if kind == "html":
            return html_response(502, _HTML_502)
        if kind == "429":
            with self._lock:
                self._roll_windows()
                response = json_response(
                    429, strava_error("Rate Limit Exceeded", "Application", "rate limit", "exceeded")
                )
                response.headers.update(self._rate_headers())
            return response
        messages = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}
        return json_response(int(kind), {"message": messages[kind], "errors": []})

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], allowed: bool
    ) -> Response:
        """An ``/api/v3`` request, counted: 429 past the budget, 401 without a valid token, then the route."""
        if not allowed:
            return json_response(429, strava_error("Rate Limit Exceeded", "Application", "rate limit", "exceeded"))
        st = self._authorized(headers)
        if st is None:
            return json_response(401, strava_error("Authorization Error", "Athlete", "access_token", "invalid"))
        return route_api(self, st, self._scope(headers), method, path, query)


def serve_forever(
    port: int = 8000, activities: int = 1500, seed: int = 42, host: str = "127.0.0.1", athletes: int = 1
) -> None:
    """Run an emulator until Ctrl-C (or SIGTERM), printing its URL, credentials and athletes."""
    # Ctrl-C stops it whatever the parent left: a process started with SIGINT ignored (a
    # background job, some test runners' workers) inherits that, and would never stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    emulator = StravaEmulator(activities=activities, seed=seed, athletes=athletes)
    base_url = emulator.start(host=host, port=port)
    try:
        _serve_until_interrupted(emulator, base_url, activities, seed, athletes)
    except KeyboardInterrupt:  # also one that lands while the banner is printed
        pass
    finally:
        emulator.stop()


def _serve_until_interrupted(
    emulator: StravaEmulator, base_url: str, activities: int, seed: int, athletes: int
) -> None:
    if athletes == 1:
        print(f"Strava API v3 emulator at {base_url} ({activities} activities, seed {seed})")
    else:
        print(f"Strava API v3 emulator at {base_url} ({athletes} athletes of {activities} activities, seed {seed}+k)")
    print(f"  API base:      {base_url}/api/v3")
    print(f"  token URL:     {base_url}/oauth/token")
    print(f"  client id:     {emulator.client_id}")
    print(f"  client secret: {emulator.client_secret}")
    if athletes == 1:
        print(f"  refresh token: {emulator.current_refresh_token}")
    else:
        for athlete_id in emulator.athlete_ids:
            view = emulator.for_athlete(athlete_id)
            print(f"  athlete {athlete_id}: refresh token {view.current_refresh_token}")
    print("Press Ctrl-C to stop.", flush=True)
    while True:
        time.sleep(3600)
