"""The knobs tests turn on one athlete: data, deletions, raw JSON, tokens (``AthleteView``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from emulator.app import EmulatorApp
from emulator.athlete import start_epoch
from emulator.record import STREAM_KEYS, activity_streams, detailed_activity
from emulator.state import DEFAULT_SCOPE, AthleteState
from emulator.wire import aware, copy_activity

__all__ = ["AthleteKnobs", "AthleteView", "event_updates"]


class AthleteKnobs:
    """The knobs on one athlete's data and tokens, shared by :class:`AthleteView` and the emulator."""

    _app: EmulatorApp

    @property
    def _st(self) -> AthleteState:
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
            return [copy_activity(st.store[i]) for _, i in reversed(st.sorted())]

    def activity(self, activity_id: int) -> dict[str, Any]:
        """One current activity (a copy); KeyError if unknown, deleted or another athlete's."""
        with self._app._lock:
            st = self._st
            if activity_id in st.deleted:
                raise KeyError(activity_id)
            return copy_activity(st.store[activity_id])

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
            now = aware(app.clock())
            new = st.generator.more(n, after, next_id, start_date, now)
            app._unique_ids(new)
            for activity in new:
                st.store[activity["id"]] = activity
                st.starts[activity["id"]] = start_epoch(activity)
                app._emit(st, "activity", activity["id"], "create", {})
            st.order = None
            return [copy_activity(a) for a in new]

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
            updates = event_updates(activity, fields)
            activity.update(fields)
            raw = st.raw_fields.get(activity_id, {})
            for name in fields:
                raw.pop(name, None)
            if "start_date" in fields:
                st.starts[activity_id] = start_epoch(activity)
                st.order = None
            if updates:
                app._emit(st, "activity", activity_id, "update", updates)
            return copy_activity(activity)

    def remove_fields(self, activity_id: int, *names: str) -> dict[str, Any]:
        """Drop fields from an activity (an optional field Strava leaves out); return a copy."""
        with self._app._lock:
            if "id" in names or "start_date" in names:
                raise ValueError("an activity keeps its id and start_date")
            activity = self._st.store[activity_id]
            for name in names:
                activity.pop(name, None)
            return copy_activity(activity)

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

    # --- the whole record -----------------------------------------------------------

    def activity_detail(self, activity_id: int, include_all_efforts: bool = True) -> dict[str, Any]:
        """The DetailedActivity ``GET /activities/{id}`` answers now (KeyError if unknown or deleted)."""
        with self._app._lock:
            st = self._st
            if activity_id in st.deleted:
                raise KeyError(activity_id)
            summary = st.store[activity_id]
            gear_id = summary.get("gear_id")
            gear = st.gear_summary(str(gear_id)) if gear_id else None
            overrides = st.detail_overrides.get(activity_id)
            return detailed_activity(st.seed, summary, gear, overrides, include_all_efforts)

    def activity_streams(self, activity_id: int) -> dict[str, list[Any]]:
        """Every generated channel of an activity at full resolution (knobs from :meth:`set_stream` not applied)."""
        with self._app._lock:
            st = self._st
            if activity_id in st.deleted:
                raise KeyError(activity_id)
            summary = copy_activity(st.store[activity_id])
        return {key: list(data) for key, data in activity_streams(st.seed, summary).items()}

    def modify_detail(self, activity_id: int, **fields: Any) -> dict[str, Any]:
        """Set fields only the detail has (``description``, ``calories``, ``device_name``...; any key).

        The summary and the listing are unchanged, and no event is sent (Strava sends none for
        a description). Returns the detail as ``GET /activities/{id}`` now answers it.
        """
        with self._app._lock:
            st = self._st
            if activity_id not in st.store:
                raise KeyError(activity_id)
            if "id" in fields:
                raise ValueError("an activity's id cannot change")
            st.detail_overrides.setdefault(activity_id, {}).update(fields)
        return self.activity_detail(activity_id)

    def set_stream(self, activity_id: int, key: str, data: list[Any] | None) -> None:
        """Send stream ``key`` of an activity as ``data``, verbatim, at any resolution (None: leave it out).

        For hostile values: ``set_stream(i, "heartrate", [1e20] * n)``, a channel shorter than the
        others, ``set_stream(i, "latlng", [[51.5], "x"])``. :meth:`clear_streams` ends them.
        """
        if key not in STREAM_KEYS:
            raise ValueError(f"unknown stream type {key!r}; use one of {list(STREAM_KEYS)}")
        if data is not None:
            json.dumps(data, allow_nan=True)  # JSON values only
        with self._app._lock:
            st = self._st
            if activity_id not in st.store:
                raise KeyError(activity_id)
            st.stream_overrides.setdefault(activity_id, {})[key] = None if data is None else list(data)

    def clear_streams(self, activity_id: int) -> None:
        """Forget what :meth:`set_stream` set for an activity."""
        with self._app._lock:
            self._st.stream_overrides.pop(activity_id, None)

    def gear_detail(self, gear_id: str) -> dict[str, Any]:
        """The DetailedGear ``GET /gear/{id}`` answers now (KeyError for gear not the athlete's)."""
        with self._app._lock:
            detail = self._st.gear_detail(gear_id)
        if detail is None:
            raise KeyError(gear_id)
        return detail

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

    def authorization_code(self, code: str | None = None, scope: str = DEFAULT_SCOPE) -> str:
        """Register a one-time code granting this athlete (``authorization_code`` grant); return it.

        The default code is ``emulator-code`` for the first athlete, ``emulator-code-<k>`` for athlete k.
        ``scope`` is what the athlete grants with it (comma-separated, as Strava's redirect
        reports it); tokens from this grant and later refreshes carry it. Without
        ``activity:read_all`` private activities are hidden; without ``activity:read`` or
        ``activity:read_all`` the activity routes answer 401.
        """
        with self._app._lock:
            st = self._st
            code = code if code is not None else ("emulator-code" if st.index == 0 else f"emulator-code-{st.index}")
            owner = self._app._codes.get(code)
            if owner is not None and owner is not st:
                raise ValueError(f"code {code!r} is already registered for athlete {owner.athlete_id}; pick another")
            self._app._codes[code] = st
            self._app._code_scopes[code] = scope
        return code

    def issue_access_token(self, scope: str | None = None) -> str:
        """Issue a valid access token for this athlete directly, bypassing OAuth (for tests).

        ``scope``: the token's scope (default: what the athlete granted, ``read,activity:read_all``
        unless an authorization code said otherwise).
        """
        with self._app._lock:
            return self._app._new_access_token(self._st, scope)


def event_updates(activity: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, str]:
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


class AthleteView(AthleteKnobs):
    """The knobs on one athlete of a :class:`StravaEmulator` (from :meth:`StravaEmulator.for_athlete`)."""

    def __init__(self, app: EmulatorApp, state: AthleteState) -> None:
        self._app = app
        self._state = state

    @property
    def _st(self) -> AthleteState:
        return self._state

    def __repr__(self) -> str:
        return f"AthleteView(athlete_id={self._state.athlete_id})"
