"""A Strava API v3 emulator over real HTTP, standard library only.

Speaks the parts of the protocol the pipeline uses, as Strava does: ``POST /oauth/token``
(refresh-token rotation, one-time authorization codes), ``GET /api/v3/athlete``,
``GET /api/v3/athlete/activities`` (``before``/``after``/``page``/``per_page``; oldest first
when only ``after`` is given) and ``GET /api/v3/activities/{id}``; Bearer tokens that expire
after six hours by an injectable clock; the four rate-limit headers with 15-minute windows
reset at the quarter hour and daily ones at midnight UTC; Strava's error JSON; the Webhook
Events API (``/api/v3/push_subscriptions`` and event delivery to the callback). One
application, one or several athletes who authorised it, one rate budget. Tests steer it
in-process: add, change, delete and restore activities, inject failures, count requests.

    with StravaEmulator(activities=300, seed=7, athletes=3) as emu:
        httpx.post(f"{emu.base_url}/oauth/token", data={"client_id": emu.client_id, ...})
        second = emu.for_athlete(emu.athlete_ids[1])  # the same knobs, for that athlete

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

import hashlib
import json
import re
import socket
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from emulator.athlete import (
    AthleteGenerator,
    created_at_for,
    default_end,
    set_activity_id,
    start_epoch,
)
from emulator.push import PushDeliverer, PushDelivery, validate_callback

__all__ = ["FAILURE_KINDS", "AthleteView", "RecordedRequest", "StravaEmulator", "serve_forever"]

FAILURE_KINDS = frozenset({"500", "502", "503", "html", "timeout", "429", "expire_tokens"})
"""What :meth:`StravaEmulator.fail_requests` can inject."""

TOKEN_LIFETIME = 21_600  # six hours, as Strava
_MAX_PER_PAGE = 200
_DEFAULT_PER_PAGE = 30
_SECRET_PARAMS = frozenset({"client_secret", "refresh_token", "code", "access_token"})
_TOKEN_PATHS = frozenset({"/oauth/token", "/api/v3/oauth/token"})  # Strava answers on both
_ACTIVITY_PATH = re.compile(r"^/api/v3/activities/(\d+)$")
_PUSH_PATH = "/api/v3/push_subscriptions"
_PUSH_ITEM_PATH = re.compile(r"^/api/v3/push_subscriptions/(\d+)$")

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_HTML_504 = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


class RecordedRequest(NamedTuple):
    """One request as the emulator saw it (secrets redacted)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    path: str
    kind: str
    times: int
    page: int | None


def _error(message: str, resource: str, field_name: str, code: str) -> dict[str, Any]:
    return {
        "message": message,
        "errors": [{"resource": resource, "field": field_name, "code": code}],
    }


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _html(status: int, text: str) -> _Response:
    return _Response(status, text.encode("utf-8"), "text/html")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """``moment`` with a time zone; a naive one is taken to be UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _copy(activity: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of an activity (its values are JSON: dicts, lists and scalars)."""
    out = dict(activity)
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = dict(value)
        elif isinstance(value, list):
            out[key] = list(value)
    return out


def _pair(values: tuple[int, int] | list[int]) -> tuple[int, int]:
    first, second = values
    return int(first), int(second)


def _start_of(entry: tuple[int, int]) -> int:
    return entry[0]


def _page_of(query: Mapping[str, str]) -> int:
    try:
        return max(1, int(query.get("page", "1")))
    except ValueError:
        return 1


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


class _AthleteState:
    """One athlete of the application: data, tokens and raw-JSON knobs (guarded by the emulator's lock)."""

    def __init__(
        self, index: int, generator: AthleteGenerator, history: list[dict[str, Any]], end: datetime, refresh_token: str
    ) -> None:
        self.index = index
        self.generator = generator
        self.seed = generator.seed
        self.store: dict[int, dict[str, Any]] = {a["id"]: a for a in history}
        self.starts: dict[int, int] = {a["id"]: start_epoch(a) for a in history}
        self.deleted: set[int] = set()
        self.order: list[tuple[int, int]] | None = None  # (start epoch, id), ascending
        oldest = min(self.starts.values(), default=int(end.timestamp()))
        self.created_at = created_at_for(oldest)
        self.refresh_token: str | None = refresh_token
        # raw JSON text sent in listings: fields per activity id, and extra items per page
        self.raw_fields: dict[int, dict[str, str]] = {}
        self.raw_items: list[tuple[int, int, str]] = []

    @property
    def athlete_id(self) -> int:
        return self.generator.athlete_id

    def sorted(self) -> list[tuple[int, int]]:
        if self.order is None:
            self.order = sorted((start, i) for i, start in self.starts.items() if i not in self.deleted)
        return self.order

    def summary(self) -> dict[str, Any]:
        """The SummaryAthlete Strava sends with an authorization-code grant."""
        newest = max(self.starts.values(), default=self.created_at)
        return self.generator.profile(self.created_at, newest)

    def detailed(self) -> dict[str, Any]:
        """The DetailedAthlete of ``GET /api/v3/athlete``."""
        newest = max(self.starts.values(), default=self.created_at)
        athlete = self.generator.profile(self.created_at, max(newest, self.created_at))
        distances: dict[str, float] = {}
        for i, activity in self.store.items():
            gear_id = activity.get("gear_id")
            if gear_id and i not in self.deleted:
                distances[gear_id] = distances.get(gear_id, 0.0) + float(activity["distance"])
        gear: dict[str, list[dict[str, Any]]] = {"shoe": [], "bike": []}
        for number, item in enumerate(self.generator.gear()):
            metres = round(distances.get(item.id, 0.0), 1)
            gear[item.kind].append(
                {
                    "id": item.id,
                    "primary": number in (0, len(self.generator.shoes)),
                    "name": item.name,
                    "nickname": None,
                    "resource_state": 2,
                    "retired": False,
                    "distance": metres,
                    "converted_distance": round(metres / 1000, 1),
                }
            )
        athlete.update(
            {
                "resource_state": 3,
                "blocked": False,
                "can_follow": True,
                "follower_count": 80 + self.seed % 200,
                "friend_count": 60 + self.seed % 150,
                "mutual_friend_count": 0,
                "athlete_type": 1,
                "date_preference": "%m/%d/%Y",
                "measurement_preference": "meters",
                "clubs": [],
                "postable_clubs_count": 0,
                "ftp": self.generator.ftp,
                "bikes": gear["bike"],
                "shoes": gear["shoe"],
                "is_winback_via_upload": False,
                "is_winback_via_view": False,
            }
        )
        return athlete


@dataclass
class _Subscription:
    id: int
    callback_url: str
    created_at: int


class _AthleteKnobs:
    """The knobs on one athlete's data and tokens, shared by :class:`AthleteView` and the emulator."""

    _app: StravaEmulator

    @property
    def _st(self) -> _AthleteState:
        raise NotImplementedError

    # --- data -----------------------------------------------------------------------

    @property
    def athlete_id(self) -> int:
        """The athlete's id."""
        return self._st.athlete_id

    @property
    def athlete(self) -> dict[str, Any]:
        """The athlete, as ``GET /api/v3/athlete`` returns it with the athlete's token."""
        with self._app._lock:
            return self._st.detailed()

    @property
    def activities(self) -> list[dict[str, Any]]:
        """Current (not deleted) activities, newest first, as deep copies."""
        with self._app._lock:
            st = self._st
            return [_copy(st.store[i]) for _, i in reversed(st.sorted())]

    def activity(self, activity_id: int) -> dict[str, Any]:
        """One current activity (a copy); KeyError if unknown, deleted or another athlete's."""
        with self._app._lock:
            st = self._st
            if activity_id in st.deleted:
                raise KeyError(activity_id)
            return _copy(st.store[activity_id])

    def add_activities(self, n: int, start_date: datetime | None = None) -> list[dict[str, Any]]:
        """Upload ``n`` new activities and return copies of them, oldest first.

        By default they start a few hours to days after the newest activity (closer together
        if that would pass the clock's now); with ``start_date`` (aware) the first starts
        there, e.g. a late upload inside a lookback. Emits one ``create`` event each.
        """
        app = self._app
        with app._lock:
            st = self._st
            newest = max(st.starts.values(), default=int(app.clock().timestamp()))
            after = datetime.fromtimestamp(newest, UTC)
            next_id = max(st.store, default=9_000_000_000) + 1
            now = _aware(app.clock())
            new = st.generator.more(n, after, next_id, start_date, now)
            app._unique_ids(new)
            for activity in new:
                st.store[activity["id"]] = activity
                st.starts[activity["id"]] = start_epoch(activity)
                app._emit(st, "activity", activity["id"], "create", {})
            st.order = None
            return [_copy(a) for a in new]

    def modify_activity(self, activity_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields of an activity (new keys are added as is); return a copy.

        A changed ``name``, ``type``/``sport_type`` or ``private`` emits one ``update`` event
        (``title``, ``type``, ``private``), as Strava; other fields change silently.
        """
        app = self._app
        with app._lock:
            st = self._st
            activity = st.store[activity_id]
            if "id" in fields and fields["id"] != activity_id:
                raise ValueError("an activity's id cannot change")
            updates = _event_updates(activity, fields)
            activity.update(fields)
            raw = st.raw_fields.get(activity_id, {})
            for name in fields:
                raw.pop(name, None)
            if "start_date" in fields:
                st.starts[activity_id] = start_epoch(activity)
                st.order = None
            if updates:
                app._emit(st, "activity", activity_id, "update", updates)
            return _copy(activity)

    def remove_fields(self, activity_id: int, *names: str) -> dict[str, Any]:
        """Drop fields from an activity (an optional field Strava leaves out); return a copy."""
        with self._app._lock:
            if "id" in names or "start_date" in names:
                raise ValueError("an activity keeps its id and start_date")
            activity = self._st.store[activity_id]
            for name in names:
                activity.pop(name, None)
            return _copy(activity)

    def delete_activity(self, activity_id: int) -> None:
        """Delete an activity: it disappears from every listing (emits a ``delete`` event)."""
        app = self._app
        with app._lock:
            st = self._st
            if activity_id not in st.store:
                raise KeyError(activity_id)
            if activity_id not in st.deleted:
                app._emit(st, "activity", activity_id, "delete", {})
            st.deleted.add(activity_id)
            st.order = None

    def restore_activity(self, activity_id: int) -> None:
        """Bring a deleted activity back, unchanged (no event: Strava has no undelete)."""
        with self._app._lock:
            st = self._st
            if activity_id not in st.store:
                raise KeyError(activity_id)
            st.deleted.discard(activity_id)
            st.order = None

    def set_raw_fields(self, activity_id: int, **fields: str) -> None:
        """Send fields of an activity in listings as the given raw JSON text, verbatim.

        For numbers Python cannot hold as they are: ``distance="1e999"`` (a client's JSON
        parser reads infinity), ``id="1180591620717411303424"`` (2**70; the emulator keeps
        the activity under its own id). :meth:`modify_activity` of a field ends its raw text.
        """
        for name, text in fields.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"raw JSON text for {name!r} must be a non-empty string")
            json.loads(text)  # raw, but JSON (Python's parser reads 1e999 as inf)
        with self._app._lock:
            st = self._st
            if activity_id not in st.store:
                raise KeyError(activity_id)
            st.raw_fields.setdefault(activity_id, {}).update(fields)

    def inject_items(self, raw: str, page: int = 1, position: int = 0) -> None:
        """Splice raw JSON items (e.g. ``'null, 1, "x"'``) into every listing of page ``page``.

        They go at ``position`` (0-based; past the end means last) until :meth:`clear_injected_items`.
        """
        json.loads(f"[{raw}]")
        with self._app._lock:
            self._st.raw_items.append((int(page), int(position), raw))

    def clear_injected_items(self) -> None:
        """Stop splicing the items of :meth:`inject_items` into listings."""
        with self._app._lock:
            self._st.raw_items.clear()

    # --- auth -----------------------------------------------------------------------

    @property
    def current_refresh_token(self) -> str:
        """The one refresh token Strava would accept now ("" after a revocation)."""
        with self._app._lock:
            return self._st.refresh_token or ""

    def expire_access_tokens(self) -> None:
        """Expire every access token of this athlete (the next API call with one gets 401)."""
        with self._app._lock:
            self._app._drop_access_tokens(self._st)

    def revoke_refresh_token(self) -> None:
        """The athlete deauthorizes the application: its refresh and access tokens stop working.

        Emits an ``athlete`` ``update`` event with ``{"authorized": "false"}`` (once).
        """
        app = self._app
        with app._lock:
            st = self._st
            if st.refresh_token is not None:
                app._emit(st, "athlete", st.athlete_id, "update", {"authorized": "false"})
            st.refresh_token = None
            app._drop_access_tokens(st)

    def authorization_code(self, code: str | None = None) -> str:
        """Register a one-time code granting this athlete (``authorization_code`` grant); return it.

        The default code is ``emulator-code`` for the first athlete, ``emulator-code-<k>`` for athlete k.
        """
        with self._app._lock:
            st = self._st
            code = code if code is not None else ("emulator-code" if st.index == 0 else f"emulator-code-{st.index}")
            owner = self._app._codes.get(code)
            if owner is not None and owner is not st:
                raise ValueError(f"code {code!r} is already registered for athlete {owner.athlete_id}; pick another")
            self._app._codes[code] = st
        return code

    def issue_access_token(self) -> str:
        """Issue a valid access token for this athlete directly, bypassing OAuth (for tests)."""
        with self._app._lock:
            return self._app._new_access_token(self._st)


def _event_updates(activity: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, str]:
    """What Strava's ``update`` event says about ``fields`` changing on ``activity`` (empty: no event)."""
    updates: dict[str, str] = {}
    if "name" in fields and fields["name"] != activity.get("name"):
        updates["title"] = str(fields["name"])
    for name in ("type", "sport_type"):
        if name in fields and fields[name] != activity.get(name):
            updates.setdefault("type", str(fields[name]))
    if "private" in fields and bool(fields["private"]) != bool(activity.get("private")):
        updates["private"] = "true" if fields["private"] else "false"
    return updates


class AthleteView(_AthleteKnobs):
    """The knobs on one athlete of a :class:`StravaEmulator` (from :meth:`StravaEmulator.for_athlete`)."""

    def __init__(self, app: StravaEmulator, state: _AthleteState) -> None:
        self._app = app
        self._state = state

    @property
    def _st(self) -> _AthleteState:
        return self._state

    def __repr__(self) -> str:
        return f"AthleteView(athlete_id={self._state.athlete_id})"


class StravaEmulator(_AthleteKnobs):
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

    def __init__(
        self,
        activities: int | Sequence[int] = 1500,
        seed: int = 42,
        client_id: str = "12345",
        client_secret: str = "emulator-secret",
        refresh_token: str = "emulator-refresh-token",
        read_limits: tuple[int, int] = (100, 1000),
        overall_limits: tuple[int, int] = (200, 2000),
        clock: Callable[[], datetime] | None = None,
        athlete_id: int | None = None,
        end: datetime | None = None,
        athletes: int = 1,
    ) -> None:
        if isinstance(activities, int):
            counts = [activities] * max(1, int(athletes))
        else:
            counts = [int(n) for n in activities]
            if not counts or (athletes != 1 and len(counts) != athletes):
                raise ValueError(
                    f"activities gives {len(counts)} counts for {athletes} athletes; give one count per athlete"
                )
        self._app = self
        self.client_id = str(client_id)
        self.client_secret = client_secret
        self.seed = seed
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.timeout_seconds = 5.0
        """How long an injected ``timeout`` failure sleeps before answering 504."""
        self.emit_events = True
        """Whether the knobs send webhook events (while a push subscription exists)."""
        self.push_retry_delay_seconds = 1.0
        """Pause between delivery attempts of one event (Strava does not document its own)."""
        self.push_timeout_seconds = 2.0
        """Deadline of the callback's answer, to the validation GET and to each event POST."""
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._refresh_token_base = refresh_token
        self._end = end if end is not None else default_end(_aware(self.clock()))
        # auth: access token -> (athlete, expires_at); every token ever issued -> athlete id
        self._access_tokens: dict[str, tuple[_AthleteState, int]] = {}
        self._token_athletes: dict[str, int] = {}
        self._codes: dict[str, _AthleteState] = {}
        self._token_counter = 0
        # athletes
        self._athletes: list[_AthleteState] = []
        self._by_id: dict[int, _AthleteState] = {}
        self._activity_ids: set[int] = set()
        for k, count in enumerate(counts):
            self._add_athlete(count, seed + k, athlete_id if k == 0 else None)
        # rate limits: one budget for the application
        self._read_limits = _pair(read_limits)
        self._overall_limits = _pair(overall_limits)
        self._windows = (-1, -1)
        self._read_usage = [0, 0]
        self._overall_usage = [0, 0]
        # failures and records
        self._failures: list[_Failure] = []
        self._requests: list[RecordedRequest] = []
        self._request_athletes: list[int | None] = []
        # push subscriptions
        self._subscription: _Subscription | None = None
        self._subscription_counter = 0
        self._deliverer = PushDeliverer(
            self.clock, lambda: self.push_retry_delay_seconds, lambda: self.push_timeout_seconds
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def _st(self) -> _AthleteState:
        return self._athletes[0]

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

    @property
    def athlete_ids(self) -> list[int]:
        """The athletes' ids, in the order they were added (the first athlete first)."""
        with self._lock:
            return [st.athlete_id for st in self._athletes]

    def add_athlete(self, activities: int = 1500, seed: int | None = None) -> int:
        """One more athlete authorises the application; return its id.

        Athlete k is drawn from ``seed`` (default: the emulator's seed + k); its refresh
        token is ``f"{refresh_token}-{k}"``.
        """
        with self._lock:
            k = len(self._athletes)
            return self._add_athlete(activities, self.seed + k if seed is None else seed, None).athlete_id

    def for_athlete(self, athlete_id: int) -> AthleteView:
        """The knobs on one athlete's data and tokens."""
        with self._lock:
            state = self._by_id.get(int(athlete_id))
        if state is None:
            raise KeyError(f"athlete {athlete_id} has not authorised this application; known: {self.athlete_ids}")
        return AthleteView(self, state)

    # --- failures and records -------------------------------------------------------

    def fail_requests(self, path: str, kind: str, times: int = 1, page: int | None = None) -> None:
        """Make the next ``times`` requests to ``path`` (and ``page``, if given) fail.

        ``kind``: ``"500"``, ``"502"``, ``"503"`` (JSON bodies), ``"html"`` (502 with an HTML
        page), ``"timeout"`` (sleep :attr:`timeout_seconds`, then 504), ``"429"``, or
        ``"expire_tokens"`` (every access token of every athlete expires just before the
        request is served: a token expiring mid-run, answered 401).
        """
        kind = str(kind)
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; use one of {sorted(FAILURE_KINDS)}")
        with self._lock:
            self._failures.append(_Failure(urlsplit(path).path, kind, int(times), page))

    def request_count(self, path: str | None = None, athlete_id: int | None = None) -> int:
        """How many requests arrived (any method, query ignored).

        Only to ``path`` if given; only with a Bearer token of ``athlete_id`` if given (token
        requests and requests without a known token belong to no athlete).
        """
        with self._lock:
            wanted = None if path is None else urlsplit(path).path
            return sum(
                1
                for r, owner in zip(self._requests, self._request_athletes, strict=True)
                if (wanted is None or r.path == wanted) and (athlete_id is None or owner == athlete_id)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in order (Authorization and secret parameters redacted)."""
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()
            self._request_athletes.clear()

    # --- rate limits ----------------------------------------------------------------

    def set_limits(self, read: tuple[int, int] | None = None, overall: tuple[int, int] | None = None) -> None:
        """Change the application's (15-minute, daily) limits; usage is kept."""
        with self._lock:
            if read is not None:
                self._read_limits = _pair(read)
            if overall is not None:
                self._overall_limits = _pair(overall)

    def reset_usage(self) -> None:
        """Zero the 15-minute and daily usage."""
        with self._lock:
            self._read_usage = [0, 0]
            self._overall_usage = [0, 0]

    @property
    def usage(self) -> dict[str, tuple[int, int]]:
        """The application's usage: ``{"read": (15min, daily), "overall": (15min, daily)}``."""
        with self._lock:
            self._roll_windows()
            return {"read": _pair(self._read_usage), "overall": _pair(self._overall_usage)}

    # --- push subscriptions ---------------------------------------------------------

    @property
    def subscription_id(self) -> int | None:
        """The application's push subscription id, or None."""
        with self._lock:
            return None if self._subscription is None else self._subscription.id

    def push_deliveries(self) -> list[PushDelivery]:
        """Every webhook event emitted so far, with its delivery attempts (snapshots)."""
        return self._deliverer.records()

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every emitted event is delivered or given up; False if ``timeout`` passed first."""
        return self._deliverer.wait(timeout)

    # --- internals ------------------------------------------------------------------

    def _add_athlete(self, activities: int, seed: int, athlete_id: int | None) -> _AthleteState:
        generator = AthleteGenerator(seed, athlete_id)
        while generator.athlete_id in self._by_id:
            generator = AthleteGenerator(seed, generator.athlete_id + 1)
        index = len(self._athletes)
        token = self._refresh_token_base if index == 0 else f"{self._refresh_token_base}-{index}"
        history = generator.history(activities, self._end)
        self._unique_ids(history)
        state = _AthleteState(index, generator, history, self._end, token)
        self._athletes.append(state)
        self._by_id[state.athlete_id] = state
        return state

    def _unique_ids(self, activities: list[dict[str, Any]]) -> None:
        """Move the ids of new activities off every id any athlete already has (none move for one athlete)."""
        for activity in activities:
            activity_id = activity["id"]
            while activity_id in self._activity_ids:
                activity_id += 1
            if activity_id != activity["id"]:
                set_activity_id(activity, activity_id)
            self._activity_ids.add(activity_id)

    def _emit(self, st: _AthleteState, object_type: str, object_id: int, aspect: str, updates: dict[str, str]) -> None:
        """Queue one webhook event, if a subscription exists and events are on (lock held)."""
        subscription = self._subscription
        if subscription is None or not self.emit_events:
            return
        event = {
            "aspect_type": aspect,
            "event_time": self._now(),
            "object_id": object_id,
            "object_type": object_type,
            "owner_id": st.athlete_id,
            "subscription_id": subscription.id,
            "updates": dict(updates),
        }
        self._deliverer.submit(event, subscription.callback_url)

    def _now(self) -> int:
        return int(_aware(self.clock()).timestamp())

    def _new_token(self, kind: str) -> str:
        self._token_counter += 1
        material = f"strava-emulator:{self.seed}:{kind}:{self._token_counter}"
        return hashlib.sha1(material.encode(), usedforsecurity=False).hexdigest()

    def _new_access_token(self, st: _AthleteState) -> str:
        token = self._new_token("access")
        self._access_tokens[token] = (st, self._now() + TOKEN_LIFETIME)
        self._token_athletes[token] = st.athlete_id
        return token

    def _drop_access_tokens(self, st: _AthleteState) -> None:
        self._access_tokens = {t: v for t, v in self._access_tokens.items() if v[0] is not st}

    def _roll_windows(self) -> None:
        now = self._now()
        quarter, day = now // 900, now // 86_400
        if quarter != self._windows[0]:
            self._read_usage[0] = self._overall_usage[0] = 0
        if day != self._windows[1]:
            self._read_usage[1] = self._overall_usage[1] = 0
        self._windows = (quarter, day)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "{},{}".format(*self._overall_limits),
            "X-RateLimit-Usage": "{},{}".format(*self._overall_usage),
            "X-ReadRateLimit-Limit": "{},{}".format(*self._read_limits),
            "X-ReadRateLimit-Usage": "{},{}".format(*self._read_usage),
        }

    def _count_usage(self, method: str) -> bool:
        """Count one API request; return False if it goes past a limit."""
        self._roll_windows()
        budgets = [(self._overall_usage, self._overall_limits)]
        if method in ("GET", "HEAD"):
            budgets.append((self._read_usage, self._read_limits))
        ok = True
        for usage, limits in budgets:
            usage[0] += 1
            usage[1] += 1
            ok = ok and usage[0] <= limits[0] and usage[1] <= limits[1]
        return ok

    def _record(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        redacted = {k: ("***" if k in _SECRET_PARAMS else v) for k, v in query.items()}
        shown = dict(headers)
        for name in shown:
            if name.lower() == "authorization":
                scheme = shown[name].split(" ", 1)[0] if shown[name] else ""
                shown[name] = f"{scheme} ***".strip()
        self._requests.append(RecordedRequest(method, path, redacted, shown))
        token = _bearer(headers)
        self._request_athletes.append(self._token_athletes.get(token) if token else None)

    def _take_failure(self, path: str, query: Mapping[str, str]) -> str | None:
        for failure in self._failures:
            if failure.path != path or failure.times <= 0:
                continue
            if failure.page is not None and failure.page != _page_of(query):
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            return failure.kind
        return None

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        """Answer one HTTP request (called from the server threads)."""
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self._record(method, path, query, headers)
            failure = self._take_failure(path, query)
            if failure == "expire_tokens":
                self._access_tokens.clear()
                failure = None
        if failure is not None:
            return self._failure(failure)
        if path in _TOKEN_PATHS:
            if method != "POST":
                return _json(404, _error("Record Not Found", "resource", "path", "invalid"))
            with self._lock:
                return self._token(query, headers, body)
        if path == _PUSH_PATH or _PUSH_ITEM_PATH.match(path):
            return self._push(method, path, query, headers, body)  # locks by itself: it calls out
        with self._lock:
            if not path.startswith("/api/v3/"):
                return _json(404, _error("Record Not Found", "resource", "path", "invalid"))
            allowed = self._count_usage(method)
            response = self._api(method, path, query, headers, allowed)
            response.headers.update(self._rate_headers())
            return response

    def _failure(self, kind: str) -> _Response:
        if kind == "timeout":
            self._stopping.wait(self.timeout_seconds)
            return _html(504, _HTML_504)
        if kind == "html":
            return _html(502, _HTML_502)
        if kind == "429":
            with self._lock:
                self._roll_windows()
                response = _json(429, _error("Rate Limit Exceeded", "Application", "rate limit", "exceeded"))
                response.headers.update(self._rate_headers())
            return response
        messages = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}
        return _json(int(kind), {"message": messages[kind], "errors": []})

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        allowed: bool,
    ) -> _Response:
        if not allowed:
            return _json(429, _error("Rate Limit Exceeded", "Application", "rate limit", "exceeded"))
        st = self._authorized(headers)
        if st is None:
            return _json(401, _error("Authorization Error", "Athlete", "access_token", "invalid"))
        if method == "GET" and path == "/api/v3/athlete":
            return _json(200, st.detailed())
        if method == "GET" and path == "/api/v3/athlete/activities":
            return self._list_activities(st, query)
        match = _ACTIVITY_PATH.match(path)
        if method == "GET" and match:
            activity_id = int(match.group(1))
            if activity_id not in st.store or activity_id in st.deleted:  # another athlete's too
                return _json(404, _error("Record Not Found", "Activity", "id", "invalid"))
            detailed = _copy(st.store[activity_id])
            detailed.update({"resource_state": 3, "description": None})
            return _json(200, detailed)
        return _json(404, _error("Record Not Found", "resource", "path", "invalid"))

    def _authorized(self, headers: Mapping[str, str]) -> _AthleteState | None:
        """The athlete of a valid Bearer token, or None."""
        grant = self._access_tokens.get(_bearer(headers))
        if grant is None or self._now() >= grant[1]:
            return None
        return grant[0]

    def _list_activities(self, st: _AthleteState, query: Mapping[str, str]) -> _Response:
        numbers: dict[str, int | None] = {}
        for name in ("before", "after", "page", "per_page"):
            raw = query.get(name)
            if raw is None:
                numbers[name] = None
                continue
            try:
                numbers[name] = int(raw)
            except ValueError:
                return _json(400, _error("Bad Request", "Application", name, "invalid"))
        before, after = numbers["before"], numbers["after"]
        page = max(1, numbers["page"] or 1)
        per_page = numbers["per_page"] or _DEFAULT_PER_PAGE
        per_page = _DEFAULT_PER_PAGE if per_page < 1 else min(per_page, _MAX_PER_PAGE)
        order = st.sorted()
        lo = 0 if after is None else bisect_right(order, after, key=_start_of)
        hi = len(order) if before is None else bisect_left(order, before, key=_start_of)
        start = (page - 1) * per_page
        if after is not None and before is None:  # oldest first, as Strava does
            ids = [i for _, i in order[lo + start : min(hi, lo + start + per_page)]]
        else:
            top = hi - start
            ids = [i for _, i in reversed(order[max(lo, top - per_page) : max(lo, top)])]
        items = [_activity_json(st.store[i], st.raw_fields.get(i)) for i in ids]
        for number, position, raw in st.raw_items:
            if number == page:
                items.insert(min(position, len(items)), raw)
        return _Response(200, ("[" + ",".join(items) + "]").encode("utf-8"))

    def _token(self, query: dict[str, str], headers: Mapping[str, str], body: bytes) -> _Response:
        params = _form(query, headers, body)
        if params is None:
            return _json(400, _error("Bad Request", "Application", "body", "invalid"))
        if params.get("client_id") != self.client_id:
            return _json(400, _error("Bad Request", "Application", "client_id", "invalid"))
        if params.get("client_secret") != self.client_secret:
            return _json(400, _error("Bad Request", "Application", "client_secret", "invalid"))
        grant = params.get("grant_type")
        if grant == "refresh_token":
            given = params.get("refresh_token")
            st = next((s for s in self._athletes if given and s.refresh_token == given), None)
            if st is None:
                return _json(400, _error("Bad Request", "RefreshToken", "refresh_token", "invalid"))
            return _json(200, self._issue_tokens(st))
        if grant == "authorization_code":
            code = params.get("code")
            st = self._codes.pop(code, None) if code else None
            if st is None:
                return _json(400, _error("Bad Request", "AuthorizationCode", "code", "invalid"))
            tokens = self._issue_tokens(st)
            tokens["athlete"] = st.summary()
            return _json(200, tokens)
        return _json(400, _error("Bad Request", "Application", "grant_type", "invalid"))

    def _issue_tokens(self, st: _AthleteState) -> dict[str, Any]:
        now = self._now()
        access = self._new_access_token(st)
        st.refresh_token = self._new_token("refresh")
        return {
            "token_type": "Bearer",
            "access_token": access,
            "expires_at": now + TOKEN_LIFETIME,
            "expires_in": TOKEN_LIFETIME,
            "refresh_token": st.refresh_token,
        }

    def _push(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response:
        """``/api/v3/push_subscriptions``: create (POST), list (GET), delete (DELETE /{id})."""
        params = _form(query, headers, body)
        if params is None:
            return _json(400, _error("Bad Request", "PushSubscription", "body", "invalid"))
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            field_name = "client_id" if params.get("client_id") != self.client_id else "client_secret"
            return _json(401, _error("Authorization Error", "Application", field_name, "invalid"))
        item = _PUSH_ITEM_PATH.match(path)
        if item is not None:
            if method != "DELETE":
                return _json(404, _error("Record Not Found", "resource", "path", "invalid"))
            with self._lock:
                if self._subscription is None or self._subscription.id != int(item.group(1)):
                    return _json(404, _error("Record Not Found", "PushSubscription", "id", "invalid"))
                self._subscription = None
            return _Response(204, b"")
        if method == "GET":
            with self._lock:
                subscription = self._subscription
                return _json(200, [] if subscription is None else [self._subscription_json(subscription)])
        if method != "POST":
            return _json(404, _error("Record Not Found", "resource", "path", "invalid"))
        for name in ("callback_url", "verify_token"):
            if not params.get(name):
                return _json(400, _error("Bad Request", "PushSubscription", name, "missing"))
        already = _error("Bad Request", "PushSubscription", "", "already exists")
        with self._lock:
            if self._subscription is not None:
                return _json(400, already)
            self._subscription_counter += 1
            challenge = self._new_token("challenge")[:20]
        refusal = validate_callback(
            params["callback_url"], params["verify_token"], challenge, self.push_timeout_seconds
        )  # no lock held: the callback may call the emulator
        if refusal is not None:
            return _json(400, _error("Bad Request", "PushSubscription", "callback url", refusal))
        with self._lock:
            if self._subscription is not None:
                return _json(400, already)
            subscription_id = 100_000 + self.seed % 1_000 * 100 + self._subscription_counter
            self._subscription = _Subscription(subscription_id, params["callback_url"], self._now())
        return _json(201, {"id": subscription_id})

    def _subscription_json(self, subscription: _Subscription) -> dict[str, Any]:
        created = _iso_utc(subscription.created_at)
        return {
            "id": subscription.id,
            "resource_state": 2,
            "application_id": int(self.client_id) if self.client_id.isdigit() else self.client_id,
            "callback_url": subscription.callback_url,
            "created_at": created,
            "updated_at": created,
        }


def _bearer(headers: Mapping[str, str]) -> str:
    """The Bearer token of ``headers``, or ""."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _iso_utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _form(query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> dict[str, str] | None:
    """Parameters from the query string and a form or JSON body; None for a body that is not an object."""
    params = dict(query)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "").lower()
    text = body.decode("utf-8", "replace")
    if "json" in content_type and text.strip():
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return None
        params.update({k: str(v) for k, v in payload.items()})
    elif text:
        params.update(parse_qsl(text, keep_blank_values=True))
    return params


def _activity_json(activity: dict[str, Any], raw: Mapping[str, str] | None) -> str:
    """An activity's JSON text, with the raw text of :meth:`StravaEmulator.set_raw_fields` spliced in."""
    if not raw:
        return json.dumps(activity, ensure_ascii=False)
    kept = {k: v for k, v in activity.items() if k not in raw}
    spliced = [json.dumps(kept, ensure_ascii=False)[1:-1], *(f"{json.dumps(k)}:{v}" for k, v in raw.items())]
    return "{" + ",".join(part for part in spliced if part) + "}"


def serve_forever(
    port: int = 8000, activities: int = 1500, seed: int = 42, host: str = "127.0.0.1", athletes: int = 1
) -> None:
    """Run an emulator until Ctrl-C, printing its URL, credentials and athletes."""
    emulator = StravaEmulator(activities=activities, seed=seed, athletes=athletes)
    base_url = emulator.start(host=host, port=port)
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
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
