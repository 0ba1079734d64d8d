"""The shipped deployments played on the emulator's fake clock: the weekly run, then ``enrich`` until done.

Shared by tests/test_enrich_days.py (1/10 scale) and bench/enrich_days.py (full scale). The
schedules are read from prefect.yaml (the ``weekly`` and ``enrich`` deployments) and turned
into times by Prefect's own cron schedule, so the play follows what a deployment would do.
Each tick of ``enrich`` is one run of the deployment's flow (``enrich_activities``) at that
moment of the fake clock. Once a run sends nothing because the day (not the window) bounds
what it may spend, every later run of that day would plan the same and send nothing too: by
default the day's further ticks are passed over, so the play jumps to the next day's first
tick; ``every_tick=True`` runs them all (bench/enrich_days.py --every-tick).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tasks.enrich import budget as enrich_budget
from tasks.enrich.result import EnrichResult
from tests.conftest import Env
from tests.strava_support import FakeClock

ROOT = Path(__file__).resolve().parents[1]


def deployment_schedule(name: str) -> tuple[str, str]:
    """The cron and timezone of the first schedule of prefect.yaml's deployment ``name``."""
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = [d for d in project["deployments"] if d["name"] == name]
    schedule = deployment["schedules"][0]
    return str(schedule["cron"]), str(schedule.get("timezone", "UTC"))


def ticks(name: str, start: datetime, end: datetime) -> list[datetime]:
    """The times deployment ``name`` runs in ``[start, end)``, as Prefect's scheduler computes them."""
    from prefect.server.schemas.schedules import CronSchedule

    cron, timezone = deployment_schedule(name)
    dates = asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(n=10_000, start=start, end=end))
    return [datetime.fromtimestamp(d.timestamp(), tz=UTC) for d in dates if d < end]


def weekly_start(after: datetime) -> datetime:
    """The ``weekly`` deployment's first run at or after ``after`` (Sunday 00:00 UTC as shipped)."""
    return ticks("weekly", after, after + timedelta(days=8))[0]


def api_requests(env: Env) -> int:
    """Requests to the API (the token endpoint is not rate limited, and not counted by the client)."""
    return sum(count for route, count in env.emu.route_counts().items() if route != "token")


@dataclass
class Played:
    """What the play saw: the weekly run, each enrichment run, the requests per UTC day."""

    start: datetime
    weekly: dict[str, Any]
    finished: datetime | None = None
    runs: int = 0
    """Runs of ``enrich`` played (passed-over ticks not counted)."""
    passed_over: int = 0
    """Ticks of a day whose enrichment budget was spent, not run (each would send nothing)."""
    per_day: dict[str, int] = field(default_factory=dict)
    """Requests the enrichment runs sent, per UTC day (the weekly run's are in ``weekly``)."""
    results: list[tuple[datetime, EnrichResult, float]] = field(default_factory=list)
    """Each run: its tick, its result, its wall time in seconds."""
    limit_hits: list[str] = field(default_factory=list)
    """Each time the plan met a limit: a 429 (usage past a limit), a governor wait, a partial run."""

    @property
    def days(self) -> int:
        return len(self.per_day)


def _over_limit(env: Env, window: int, daily: int) -> str | None:
    """Why the emulator's read usage says a request was refused (a 429 counts, and reports limit + 1)."""
    used_window, used_day = env.emu.usage["read"]
    if used_window > window or used_day > daily:
        return f"read usage {used_window}/{window} a window, {used_day}/{daily} a day"
    return None


def _day_spent(env: Env, limits: tuple[int, int]) -> bool:
    """The day, not the window, bounds what a run may spend (the reserves as they are now: a test scales them).

    Called after a run that sent nothing: every later run of the day plans the same (no window
    holds less than a fresh one) from the same queue, so it sends nothing either.
    """
    window, daily = limits
    used_window, used_day = env.emu.usage["read"]
    day_part = daily - used_day - enrich_budget.DAILY_RESERVE
    return day_part <= window - used_window - enrich_budget.WINDOW_RESERVE


def play(
    env: Env,
    clock: FakeClock,
    start: datetime,
    *,
    limits: tuple[int, int],
    max_days: int = 7,
    every_tick: bool = False,
    on_run: Callable[[datetime, EnrichResult, int], None] | None = None,
) -> Played:
    """The weekly run at ``start``, then the ``enrich`` deployment's ticks until the history is enriched.

    ``limits``: the emulator's read limits (a window, a day), to tell a 429 from the usage.
    ``on_run(tick, result, requests)`` is called after each run (a bench prints progress).
    Stops when the history is enriched, or after ``max_days`` UTC days.
    """
    from flows.enrich import enrich_activities

    window, daily = limits
    clock.set(start)
    played = Played(start, env.run())
    end = start + timedelta(days=max_days)
    skip_until: datetime | None = None
    for tick in ticks("enrich", start, end):
        if skip_until is not None and tick < skip_until:
            played.passed_over += 1
            continue
        clock.set(tick)
        slept = len(clock.slept)
        before = api_requests(env)
        began = time.perf_counter()
        result = enrich_activities(**env.params())
        wall = time.perf_counter() - began
        spent = api_requests(env) - before
        if spent != result.requests:
            raise AssertionError(f"{tick}: the run says {result.requests} requests, the emulator saw {spent}")
        day = tick.date().isoformat()
        played.per_day[day] = played.per_day.get(day, 0) + spent
        played.runs += 1
        played.results.append((tick, result, wall))
        if on_run is not None:
            on_run(tick, result, spent)
        over = _over_limit(env, window, daily)
        if over is not None:
            played.limit_hits.append(f"{tick:%Y-%m-%d %H:%M}: 429 ({over})")
        if len(clock.slept) > slept:
            played.limit_hits.append(f"{tick:%Y-%m-%d %H:%M}: the governor waited {sum(clock.slept[slept:]):.0f} s")
        if result.partial_reason is not None:
            played.limit_hits.append(f"{tick:%Y-%m-%d %H:%M}: {result.partial_reason}")
        if result.total and result.enriched == result.total:
            played.finished = clock()
            return played
        if not every_tick and spent == 0 and _day_spent(env, limits):
            # The day's enrichment budget is spent: its further ticks would send nothing.
            skip_until = datetime.combine(tick.date() + timedelta(days=1), datetime.min.time(), UTC)
    return played
