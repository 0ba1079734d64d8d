"""Helpers for the Strava client tests: one fake clock for the emulator and the governor."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest

from tasks import strava as strava_tasks

LIST_PATH = "/api/v3/athlete/activities"
ATHLETE_PATH = "/api/v3/athlete"


def ts(value: str) -> datetime:
    """Parse Strava's ``...Z`` timestamps."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeClock:
    """A UTC clock shared by the emulator, the governor and the retry loop.

    It moves only when set, advanced or slept on; ``slept`` records every sleep.
    """

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    @property
    def now(self) -> datetime:
        return self()

    @now.setter
    def now(self, moment: datetime) -> None:
        self.set(moment)

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock on by it."""
        with self._lock:
            self.slept.append(seconds)
            self._now += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._now += timedelta(**delta)

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


def use_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Make the extract flow's client pace with ``clock`` and sleep with ``clock.sleep``."""

    def open_client(credentials: Any, log: Any = None) -> strava_tasks.StravaClient:
        return strava_tasks.StravaClient(credentials, clock=clock, sleep=clock.sleep, log=log)

    monkeypatch.setattr(strava_tasks, "open_client", open_client)
