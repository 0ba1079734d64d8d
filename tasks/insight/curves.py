"""Mean-maximal curves from the streams: the best power, heart rate and pace held for 5 s ... 2 h.

Computed in Python when the dashboard is rendered, from one athlete's stream samples (read with
``athlete_id`` in the WHERE), not as a SQL model: a window of N seconds over samples that are
not one a second apart (smart recording, pauses) needs a frame by time, ``RANGE BETWEEN ...
PRECEDING``, which Redshift does not have, and ten durations x three channels of windows over
every sample cost far more in a warehouse than one pass here (docs/insight.md, "Mean-maximal
curves", has the figures). The vector work is pyarrow's (a dependency of the load already).

For each activity the samples are laid out one a second: a sample's value holds until the next
sample, unless the next comes more than :data:`MAX_GAP_S` later (a pause: the seconds between
have no value, and no window spans them). The best mean over every window of N seconds with a
value in each second is the activity's best for N; the curve is the best over the activities of
the scope: all time, this calendar year and the last 90 days up to the reference date.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from tasks import warehouse as wh

__all__ = [
    "CP_DURATIONS",
    "DURATIONS",
    "ActivityStreams",
    "activity_bests",
    "best_means",
    "critical_power",
    "curves",
    "read_streams",
]

DURATIONS: tuple[int, ...] = (5, 10, 30, 60, 300, 600, 1200, 1800, 3600, 7200)
"""The curve's durations in seconds: 5 s, 10 s, 30 s, 1 min, 5 min, 10 min, 20 min, 30 min, 1 h, 2 h."""
CP_DURATIONS: tuple[int, int] = (180, 720)
"""The two bests the critical-power estimate uses: 3 and 12 minutes."""
MAX_GAP_S = 30
"""A sample holds its value until the next one, unless the next comes later than this (a pause)."""
RECENT_DAYS = 90
RUNS = frozenset({"Run", "TrailRun", "VirtualRun"})
"""Pace is a runner's figure: its curve is over these sports only."""
SCOPES = ("all", "year", "recent")
CHANNELS = ("watts", "heartrate", "speed")


@dataclass
class ActivityStreams:
    """One activity's samples, in order (values None where the channel has no reading)."""

    activity_id: int
    day: date
    sport_type: str | None
    time: list[int] = field(default_factory=list)
    watts: list[float | None] = field(default_factory=list)
    heartrate: list[float | None] = field(default_factory=list)
    speed: list[float | None] = field(default_factory=list)
    track: list[tuple[float, float]] = field(default_factory=list)
    """(lat, lng) of the samples that have both."""


def read_streams(conn: sa.Connection, athlete_id: int) -> Iterator[ActivityStreams]:
    """The athlete's live activities with streams, newest first (nothing without the streams table)."""
    if not sa.inspect(conn).has_table("strava_activity_streams"):
        return
    result = conn.execute(sa.text(wh.read_sql("dashboard/activity_streams.sql")), {"athlete_id": athlete_id})
    current: ActivityStreams | None = None
    for activity_id, day, sport, time, lat, lng, heartrate, watts, speed in result:
        if current is None or current.activity_id != activity_id:
            if current is not None:
                yield current
            current = ActivityStreams(int(activity_id), _day(day), sport)
        if time is None:
            continue
        current.time.append(int(time))
        current.watts.append(watts)
        current.heartrate.append(heartrate if heartrate else None)  # 0: no reading
        current.speed.append(speed)
        if lat is not None and lng is not None:
            current.track.append((float(lat), float(lng)))
    if current is not None:
        yield current


def _day(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value  # type: ignore[no-any-return]


def _per_second(times: Sequence[int], values: Sequence[float | None]) -> tuple[list[float], list[int]]:
    """The values laid out one a second from the first sample, and whether each second has one (1/0)."""
    if not times:
        return [], []
    start = times[0]
    out: list[float] = []
    valid: list[int] = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        at = t - start
        if at < len(out):  # a repeated or backwards time: that second is already laid out
            continue
        if at > len(out):  # seconds nobody covered (after a pause)
            gap = at - len(out)
            out.extend(itertools.repeat(0.0, gap))
            valid.extend(itertools.repeat(0, gap))
        nxt = times[i + 1] - start if i + 1 < len(times) else at + 1
        span = nxt - at if 0 < nxt - at <= MAX_GAP_S else 1
        ok = v is not None
        out.extend(itertools.repeat(float(v) if ok else 0.0, span))  # type: ignore[arg-type]
        valid.extend(itertools.repeat(1 if ok else 0, span))
    return out, valid


def best_means(times: Sequence[int], values: Sequence[float | None], durations: Iterable[int]) -> dict[int, float]:
    """The best mean value held over each duration (seconds) in one activity; a duration it cannot fill is absent."""
    out, valid = _per_second(times, values)
    if not out:
        return {}
    sums = pa.array(list(itertools.accumulate(out, initial=0.0)), pa.float64())
    counts = pa.array(list(itertools.accumulate(valid, initial=0)), pa.int64())
    n = len(out)
    best: dict[int, float] = {}
    for d in durations:
        if d > n:
            continue
        window = pc.subtract(sums[d:], sums[: n + 1 - d])
        full = pc.equal(pc.subtract(counts[d:], counts[: n + 1 - d]), d)
        top = pc.max(pc.filter(window, full)).as_py()
        if top is not None:
            best[d] = top / d
    return best


def activity_bests(activity: ActivityStreams) -> dict[str, dict[int, float]]:
    """Per channel (watts, heartrate, speed in m/s; speed for runs only), the activity's best means."""
    durations = (*DURATIONS, *CP_DURATIONS)
    found = {
        "watts": best_means(activity.time, activity.watts, durations),
        "heartrate": best_means(activity.time, activity.heartrate, DURATIONS),
        "speed": best_means(activity.time, activity.speed, DURATIONS) if activity.sport_type in RUNS else {},
    }
    return {k: v for k, v in found.items() if v}


def critical_power(p3: float | None, p12: float | None) -> dict[str, float] | None:
    """The 2-parameter critical power from the 3- and 12-minute bests (None when either is missing).

    Work done is linear in time, W = CP * t + W': from (180 s, 180 * P3) and (720 s, 720 * P12),
    CP = (720 * P12 - 180 * P3) / (720 - 180) and W' = (P3 - CP) * 180 (joules).
    """
    if not p3 or not p12 or p12 >= p3:
        return None
    t3, t12 = CP_DURATIONS
    cp = (t12 * p12 - t3 * p3) / (t12 - t3)
    return {"cp_w": round(cp, 1), "w_prime_j": round((p3 - cp) * t3), "p3_w": round(p3, 1), "p12_w": round(p12, 1)}


def curves(activities: Iterable[ActivityStreams], reference: date) -> dict[str, Any]:
    """The curves per channel and scope, and the critical power per scope, as the dashboard draws them.

    ``reference``: the day the scopes end (the run's day): ``year`` is its calendar year up to it,
    ``recent`` the :data:`RECENT_DAYS` days up to it (inclusive); activities after it count in ``all`` only.
    """
    recent_from = reference - timedelta(days=RECENT_DAYS - 1)
    best: dict[str, dict[str, dict[int, float]]] = {c: {s: {} for s in SCOPES} for c in CHANNELS}
    count = 0
    for activity in activities:
        bests = activity_bests(activity)
        if not bests:
            continue
        count += 1
        scopes = ["all"]
        if activity.day <= reference:
            if activity.day.year == reference.year:
                scopes.append("year")
            if activity.day >= recent_from:
                scopes.append("recent")
        for channel, values in bests.items():
            for scope in scopes:
                held = best[channel][scope]
                for d, v in values.items():
                    if v > held.get(d, float("-inf")):
                        held[d] = v
    digits = {"watts": 1, "heartrate": 1, "speed": 3}
    return {
        "durations": list(DURATIONS),
        "reference": reference.isoformat(),
        "activities": count,
        "channels": {
            channel: {
                scope: [
                    None if d not in best[channel][scope] else round(best[channel][scope][d], digits[channel])
                    for d in DURATIONS
                ]
                for scope in SCOPES
            }
            for channel in CHANNELS
        },
        "criticalPower": {
            scope: critical_power(*(best["watts"][scope].get(d) for d in CP_DURATIONS)) for scope in SCOPES
        },
    }
