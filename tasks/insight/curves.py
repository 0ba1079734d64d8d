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

import functools
import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from tasks import warehouse as wh

__all__ = [
    "CP_DURATIONS",
    "DURATIONS",
    "ActivityStreams",
    "ActivitySummary",
    "StreamEntry",
    "SummaryStore",
    "activity_bests",
    "best_means",
    "critical_power",
    "curves",
    "read_entries",
    "read_streams",
    "read_summaries",
    "summarise",
    "summary_curves",
    "tracks_key",
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


Values: TypeAlias = Sequence[float | None] | pa.Array  # noqa: UP040 - Python 3.11
"""A channel's values in sample order: a list (None: no reading) or an Arrow array (null: none)."""


@dataclass
class ActivityStreams:
    """One activity's samples, in order (values None/null where the channel has no reading)."""

    activity_id: int
    day: date
    sport_type: str | None
    time: Sequence[int] | pa.Array = field(default_factory=list)
    watts: Values = field(default_factory=list)
    heartrate: Values = field(default_factory=list)
    speed: Values = field(default_factory=list)
    track: list[tuple[float, float]] = field(default_factory=list)
    """(lat, lng) of every :data:`TRACK_STEP`-th sample that has both (the heatmap's route)."""


TRACK_STEP = 10
"""The heatmap takes every 10th sample of a stream's track (at one a second: 10 s, well under a grid cell)."""
_STREAM_COLUMNS = (
    "activity_id",
    "activity_date",
    "sport_type",
    "time",
    "lat",
    "lng",
    "heartrate",
    "watts",
    "velocity_smooth",
)


def _samples_table(conn: sa.Connection, athlete_id: int, activity_id: int | None = None) -> pa.Table:
    """The athlete's samples (``dashboard/activity_streams.sql``) as an Arrow table.

    ``activity_id``: that activity's only (``dashboard/activity_stream_of.sql``).
    Where the dialect hands the result over as Arrow (DuckDB) it is used; elsewhere the rows
    are gathered into columns.
    """
    params: dict[str, Any] = {"athlete_id": athlete_id}
    if activity_id is None:
        sql = wh.read_sql("dashboard/activity_streams.sql")
    else:
        sql = wh.read_sql("dashboard/activity_stream_of.sql")
        params["activity_id"] = activity_id
    table = wh.dialect_for(conn.engine).read_arrow(conn, sql, params)
    if table is not None:
        return table
    rows = conn.execute(sa.text(sql), params).all()
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in _STREAM_COLUMNS]
    types = (
        pa.int64(),
        pa.date32(),
        pa.string(),
        pa.int64(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
    )
    return pa.table([pa.array(list(c), t) for c, t in zip(columns, types, strict=True)], names=list(_STREAM_COLUMNS))


def read_streams(conn: sa.Connection, athlete_id: int, activity_id: int | None = None) -> Iterator[ActivityStreams]:
    """The athlete's live activities with streams, newest first (nothing without the streams table).

    ``activity_id``: that one activity only.
    """
    if not sa.inspect(conn).has_table("strava_activity_streams"):
        return
    table = _samples_table(conn, athlete_id, activity_id)
    if table.num_rows == 0:
        return
    ids = table.column("activity_id").combine_chunks()
    cuts = pc.indices_nonzero(pc.not_equal(ids[1:], ids[:-1])).to_pylist()
    starts = [0, *(c + 1 for c in cuts)]
    ends = [*starts[1:], table.num_rows]
    for begin, stop in zip(starts, ends, strict=True):
        part = table.slice(begin, stop - begin)
        heartrate = part.column("heartrate").combine_chunks().cast(pa.float64())
        heartrate = pc.if_else(pc.greater(heartrate, 0), heartrate, None)  # 0: no reading
        lat = part.column("lat").combine_chunks()[::TRACK_STEP].to_pylist()
        lng = part.column("lng").combine_chunks()[::TRACK_STEP].to_pylist()
        yield ActivityStreams(
            int(ids[begin].as_py()),
            _day(part.column("activity_date")[0].as_py()),
            part.column("sport_type")[0].as_py(),
            part.column("time").combine_chunks().cast(pa.int64()),
            part.column("watts").combine_chunks().cast(pa.float64()),
            heartrate,
            part.column("velocity_smooth").combine_chunks().cast(pa.float64()),
            [(a, b) for a, b in zip(lat, lng, strict=True) if a is not None and b is not None],
        )


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


def _seconds(times: Sequence[int] | pa.Array, values: Values) -> tuple[pa.Array, pa.Array]:
    """Cumulative sums (from 0) of the per-second values and of the seconds that have one.

    Samples one a second apart (the usual stream) are used as they are, in Arrow; otherwise they
    are laid out second by second first (:func:`_per_second`).
    """
    t = times if isinstance(times, pa.Array) else pa.array(times, pa.int64())
    v = values if isinstance(values, pa.Array) else pa.array(values, pa.float64())
    v = pc.if_else(pc.is_nan(v), None, v) if len(v) else v
    n = len(t)
    consecutive = n < 2 or (t[n - 1].as_py() - t[0].as_py() == n - 1 and pc.min(pc.pairwise_diff(t)).as_py() == 1)
    if consecutive:
        filled = pc.fill_null(v, 0.0)
        valid = pc.cast(pc.is_valid(v), pa.int64())
    else:
        out, ok = _per_second(t.to_pylist(), v.to_pylist())
        filled, valid = pa.array(out, pa.float64()), pa.array(ok, pa.int64())
    zero_f, zero_i = pa.array([0.0], pa.float64()), pa.array([0], pa.int64())
    return (
        pa.concat_arrays([zero_f, pc.cumulative_sum(filled)]),
        pa.concat_arrays([zero_i, pc.cumulative_sum(valid)]),
    )


def best_means(times: Sequence[int] | pa.Array, values: Values, durations: Iterable[int]) -> dict[int, float]:
    """The best mean value held over each duration (seconds) in one activity; a duration it cannot fill is absent."""
    if len(times) == 0:
        return {}
    if isinstance(values, pa.Array) and values.null_count == len(values):
        return {}  # the channel is not recorded in this activity (no watts on a run, say)
    sums, counts = _seconds(times, values)
    n = len(sums) - 1
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
    return _curves_of(((a.day, activity_bests(a)) for a in activities), reference)


def _curves_of(activities: Iterable[tuple[date, dict[str, dict[int, float]]]], reference: date) -> dict[str, Any]:
    """:func:`curves` from each activity's day and bests (:func:`activity_bests`)."""
    recent_from = reference - timedelta(days=RECENT_DAYS - 1)
    best: dict[str, dict[str, dict[int, float]]] = {c: {s: {} for s in SCOPES} for c in CHANNELS}
    count = 0
    for day, bests in activities:
        if not bests:
            continue
        count += 1
        scopes = ["all"]
        if day <= reference:
            if day.year == reference.year:
                scopes.append("year")
            if day >= recent_from:
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


# --- Per-activity summaries, kept between runs --------------------------------------------------
#
# Streams are immutable once loaded: an activity's bests and thinned track are computed once, when
# its samples are new, and kept (the lake: ``LakeStreamSummaryStore`` in dashboard.py). A run reads
# only each live activity's sample count (``dashboard/activity_stream_counts.sql``) and the samples
# of the activities whose kept summary is missing or was made from another count.

READ_ONE_BY_ONE = 50
"""Up to this many activities to summarise: read one query each; more: one read of every sample."""


@dataclass(frozen=True)
class StreamEntry:
    """A live activity with streams: its day and sport now (editable on Strava) and its sample count."""

    activity_id: int
    day: date
    sport_type: str | None
    samples: int


@dataclass
class ActivitySummary:
    """What the dashboard needs of one activity's samples: the best means per channel and the thinned track.

    ``bests``: watts (with the critical-power durations), heart rate and speed, speed whatever the
    sport (the sport can change later; :func:`summary_curves` keeps it for runs only).
    """

    samples: int
    bests: dict[str, dict[int, float]]
    track: list[tuple[float, float]]
    """Empty when read back from a store: the tracks are kept apart and read only when the heatmap is drawn."""
    points: int = -1
    """The track's length (-1: ``len(track)``)."""

    def __post_init__(self) -> None:
        if self.points < 0:
            self.points = len(self.track)

    def as_json(self) -> dict[str, Any]:
        """The summary without its track (:meth:`SummaryStore.tracks` keeps those)."""
        return {
            "n": self.samples,
            "b": {c: {str(d): v for d, v in values.items()} for c, values in self.bests.items()},
            "p": self.points,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActivitySummary:
        bests = {str(c): {int(d): float(v) for d, v in values.items()} for c, values in data["b"].items()}
        return cls(int(data["n"]), bests, [], int(data["p"]))


class SummaryStore(Protocol):
    """Where the athlete's activity summaries are kept between runs (the lake), under a code version.

    ``get`` returns them without their tracks; ``tracks`` returns those (read only when the heatmap is drawn).
    """

    def get(self, version: str) -> dict[int, ActivitySummary] | None: ...

    def tracks(self, version: str) -> dict[int, list[tuple[float, float]]] | None: ...

    def put(self, version: str, summaries: Mapping[int, ActivitySummary]) -> None: ...


@functools.cache
def summary_version() -> str:
    """The digest of this module's and the heatmap's source: a change to either makes every summary again."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(__file__).with_name("heatmap.py").read_bytes())
    return digest.hexdigest()


def summarise(activity: ActivityStreams, samples: int) -> ActivitySummary:
    """One activity's summary from its samples (``samples``: the count it was made from)."""
    from tasks.insight import heatmap

    bests = {
        "watts": best_means(activity.time, activity.watts, (*DURATIONS, *CP_DURATIONS)),
        "heartrate": best_means(activity.time, activity.heartrate, DURATIONS),
        "speed": best_means(activity.time, activity.speed, DURATIONS),
    }
    track = heatmap.thin_track(activity.track) if len(activity.track) >= 2 else []
    return ActivitySummary(samples, {k: v for k, v in bests.items() if v}, [(a, b) for a, b in track])


def read_entries(conn: sa.Connection, athlete_id: int) -> list[StreamEntry]:
    """The athlete's live activities with streams and their sample counts, newest first (no sample value read)."""
    if not sa.inspect(conn).has_table("strava_activity_streams"):
        return []
    found = conn.execute(sa.text(wh.read_sql("dashboard/activity_stream_counts.sql")), {"athlete_id": athlete_id})
    return [StreamEntry(int(r[0]), _day(r[1]), r[2], int(r[3])) for r in found]


def read_summaries(
    conn: sa.Connection, athlete_id: int, store: SummaryStore | None = None
) -> tuple[list[StreamEntry], dict[int, ActivitySummary]]:
    """The athlete's activities with streams (newest first) and each one's summary.

    Kept summaries made from the same sample count are reused; the others are made from the
    activity's samples (read one activity at a time up to :data:`READ_ONE_BY_ONE` of them) and
    kept. A summary of an activity no longer live (deleted, streams gone) is dropped.
    """
    entries = read_entries(conn, athlete_id)
    version = summary_version()
    kept = (store.get(version) if store is not None else None) or {}
    summaries = {
        e.activity_id: kept[e.activity_id]
        for e in entries
        if e.activity_id in kept and kept[e.activity_id].samples == e.samples
    }
    missing = {e.activity_id: e.samples for e in entries if e.activity_id not in summaries}
    if missing:
        for activity_id, samples in missing.items():  # no usable sample (no time): an empty summary
            summaries[activity_id] = ActivitySummary(samples, {}, [])
        if len(missing) > READ_ONE_BY_ONE:
            source: Iterable[ActivityStreams] = read_streams(conn, athlete_id)
        else:
            source = itertools.chain.from_iterable(read_streams(conn, athlete_id, a) for a in missing)
        for activity in source:
            if activity.activity_id in missing:
                summaries[activity.activity_id] = summarise(activity, missing[activity.activity_id])
    if store is not None and (missing or summaries.keys() != kept.keys()):
        if any(s.points and not s.track for s in summaries.values()):  # kept ones: their tracks go along
            load_tracks(conn, athlete_id, entries, summaries, store)
        store.put(version, {e.activity_id: summaries[e.activity_id] for e in entries})
    return entries, summaries


def load_tracks(
    conn: sa.Connection,
    athlete_id: int,
    entries: Sequence[StreamEntry],
    summaries: dict[int, ActivitySummary],
    store: SummaryStore | None,
) -> list[list[tuple[float, float]]]:
    """The thinned tracks in ``entries``' order, filling in the summaries read back without them.

    From the store; any it does not hold (a lost file) are made again from the samples.
    """
    wanting = [e for e in entries if summaries[e.activity_id].points and not summaries[e.activity_id].track]
    if wanting:
        kept = (store.tracks(summary_version()) if store is not None else None) or {}
        lost = {}
        for e in wanting:
            track = kept.get(e.activity_id)
            if track is not None and len(track) == summaries[e.activity_id].points:
                summaries[e.activity_id].track = track
            else:
                lost[e.activity_id] = e.samples
        source = (
            read_streams(conn, athlete_id)
            if len(lost) > READ_ONE_BY_ONE
            else (itertools.chain.from_iterable(read_streams(conn, athlete_id, a) for a in lost))
        )
        for activity in source if lost else ():
            if activity.activity_id in lost:
                summaries[activity.activity_id] = summarise(activity, lost[activity.activity_id])
    return [summaries[e.activity_id].track for e in entries if summaries[e.activity_id].points]


def summary_curves(
    entries: Sequence[StreamEntry], summaries: Mapping[int, ActivitySummary], reference: date
) -> dict[str, Any]:
    """:func:`curves` from the kept summaries: the same figures as from the samples themselves."""

    def bests(entry: StreamEntry) -> dict[str, dict[int, float]]:
        found = summaries[entry.activity_id].bests
        return {c: v for c, v in found.items() if v and (c != "speed" or entry.sport_type in RUNS)}

    return _curves_of(((e.day, bests(e)) for e in entries), reference)


def tracks_key(entries: Sequence[StreamEntry], summaries: Mapping[int, ActivitySummary]) -> str:
    """A digest standing for the stream tracks (in order): the ids and sample counts they come from, and the code."""
    digest = hashlib.sha256(summary_version().encode())
    for e in entries:
        if summaries[e.activity_id].points:
            digest.update(f"|{e.activity_id}:{e.samples}".encode())
    return digest.hexdigest()
