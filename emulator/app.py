"""The emulated application's state and accounting: athletes, tokens, rate budget, records, events.

The HTTP server (:mod:`emulator.server`) dispatches requests to the routes
(:mod:`emulator.routes`), which read and change this state under :attr:`EmulatorApp._lock`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from emulator.athlete import AthleteGenerator, default_end, set_activity_id
from emulator.push import PushDeliverer, PushDelivery
from emulator.state import AthleteState, Subscription
from emulator.wire import aware, bearer_token, page_of, pair, utcnow

__all__ = ["FAILURE_KINDS", "TOKEN_LIFETIME", "EmulatorApp", "Failure", "RecordedRequest"]

FAILURE_KINDS = frozenset({"500", "502", "503", "html", "timeout", "429", "expire_tokens"})
"""What :meth:`StravaEmulator.fail_requests` can inject."""

TOKEN_LIFETIME = 21_600  # six hours, as Strava
_SECRET_PARAMS = frozenset({"client_secret", "refresh_token", "code", "access_token"})


class RecordedRequest(NamedTuple):
    """One request as the emulator saw it (secrets redacted)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Failure:
    """An injected failure waiting for its requests."""

    path: str
    kind: str
    times: int
    page: int | None


class EmulatorApp:
    """One Strava API application and the athletes who authorised it (see :class:`StravaEmulator`)."""

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
        self._app: EmulatorApp = self
        self.client_id = str(client_id)
        self.client_secret = client_secret
        self.seed = seed
        self.clock: Callable[[], datetime] = clock or utcnow
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
        self._end = end if end is not None else default_end(aware(self.clock()))
        # auth: access token -> (athlete, expires_at); every token ever issued -> athlete id
        self._access_tokens: dict[str, tuple[AthleteState, int]] = {}
        self._token_athletes: dict[str, int] = {}
        self._codes: dict[str, AthleteState] = {}
        self._code_scopes: dict[str, str] = {}
        self._token_scopes: dict[str, str] = {}
        self._token_counter = 0
        # athletes
        self._athletes: list[AthleteState] = []
        self._by_id: dict[int, AthleteState] = {}
        self._activity_ids: set[int] = set()
        for k, count in enumerate(counts):
            self._add_athlete(count, seed + k, athlete_id if k == 0 else None)
        # rate limits: one budget for the application
        self._read_limits = pair(read_limits)
        self._overall_limits = pair(overall_limits)
        self._windows = (-1, -1)
        self._read_usage = [0, 0]
        self._overall_usage = [0, 0]
        # failures and records
        self._failures: list[Failure] = []
        self._requests: list[RecordedRequest] = []
        self._request_routes: list[str | None] = []
        self._request_athletes: list[int | None] = []
        # push subscriptions
        self._subscription: Subscription | None = None
        self._subscription_counter = 0
        self._deliverer = PushDeliverer(
            self.clock, lambda: self.push_retry_delay_seconds, lambda: self.push_timeout_seconds
        )

    @property
    def _st(self) -> AthleteState:
        return self._athletes[0]

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
            self._failures.append(Failure(urlsplit(path).path, kind, int(times), page))

    def request_count(self, path: str | None = None, athlete_id: int | None = None, route: str | None = None) -> int:
        """How many requests arrived (any method, query ignored).

        Only to ``path`` if given; only with a Bearer token of ``athlete_id`` if given (token
        requests and requests without a known token belong to no athlete); only to the route
        named ``route`` if given (see :meth:`route_counts`).
        """
        with self._lock:
            wanted = None if path is None else urlsplit(path).path
            return sum(
                1
                for r, owner, name in zip(self._requests, self._request_athletes, self._request_routes, strict=True)
                if (wanted is None or r.path == wanted)
                and (athlete_id is None or owner == athlete_id)
                and (route is None or name == route)
            )

    def route_counts(self) -> dict[str, int]:
        """Requests per route name.

        Names: ``token``, ``push``, ``athlete``, ``activities``, ``activity``, ``streams``,
        ``gear``, ``stats``, ``zones``; ``"None"`` for paths no route serves.
        """
        with self._lock:
            counts: dict[str, int] = {}
            for name in self._request_routes:
                counts[str(name)] = counts.get(str(name), 0) + 1
            return counts

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in order (Authorization and secret parameters redacted)."""
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()
            self._request_routes.clear()
            self._request_athletes.clear()

    # --- rate limits ----------------------------------------------------------------

    def set_limits(self, read: tuple[int, int] | None = None, overall: tuple[int, int] | None = None) -> None:
        """Change the application's (15-minute, daily) limits; usage is kept."""
        with self._lock:
            if read is not None:
                self._read_limits = pair(read)
            if overall is not None:
                self._overall_limits = pair(overall)

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
            return {"read": pair(self._read_usage), "overall": pair(self._overall_usage)}

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

    def _add_athlete(self, activities: int, seed: int, athlete_id: int | None) -> AthleteState:
        generator = AthleteGenerator(seed, athlete_id)
        while generator.athlete_id in self._by_id:
            generator = AthleteGenerator(seed, generator.athlete_id + 1)
        index = len(self._athletes)
        token = self._refresh_token_base if index == 0 else f"{self._refresh_token_base}-{index}"
        history = generator.history(activities, self._end)
        self._unique_ids(history)
        state = AthleteState(index, generator, history, self._end, token)
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

    def _emit(self, st: AthleteState, object_type: str, object_id: int, aspect: str, updates: dict[str, str]) -> None:
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
        return int(aware(self.clock()).timestamp())

    def _new_token(self, kind: str) -> str:
        self._token_counter += 1
        material = f"strava-emulator:{self.seed}:{kind}:{self._token_counter}"
        return hashlib.sha1(material.encode(), usedforsecurity=False).hexdigest()

    def _new_access_token(self, st: AthleteState, scope: str | None = None) -> str:
        token = self._new_token("access")
        self._token_scopes[token] = st.scope if scope is None else scope
        self._access_tokens[token] = (st, self._now() + TOKEN_LIFETIME)
        self._token_athletes[token] = st.athlete_id
        return token

    def _drop_access_tokens(self, st: AthleteState) -> None:
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

    def _record(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], route: str | None = None
    ) -> None:
        redacted = {k: ("***" if k in _SECRET_PARAMS else v) for k, v in query.items()}
        shown = dict(headers)
        for name in shown:
            if name.lower() == "authorization":
                scheme = shown[name].split(" ", 1)[0] if shown[name] else ""
                shown[name] = f"{scheme} ***".strip()
        self._requests.append(RecordedRequest(method, path, redacted, shown))
        self._request_routes.append(route)
        token = bearer_token(headers)
        self._request_athletes.append(self._token_athletes.get(token) if token else None)

    def _take_failure(self, path: str, query: Mapping[str, str]) -> str | None:
        for failure in self._failures:
            if failure.path != path or failure.times <= 0:
                continue
            if failure.page is not None and failure.page != page_of(query):
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            return failure.kind
        return None

    def _authorized(self, headers: Mapping[str, str]) -> AthleteState | None:
        """The athlete of a valid Bearer token, or None."""
        grant = self._access_tokens.get(bearer_token(headers))
        if grant is None or self._now() >= grant[1]:
            return None
        return grant[0]

    def _scope(self, headers: Mapping[str, str]) -> str:
        """The scope of the Bearer token (granted when it was issued)."""
        return self._token_scopes.get(bearer_token(headers), "")
