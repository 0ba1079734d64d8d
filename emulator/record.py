"""The whole activity record, derived on demand and deterministically from a summary and the seed.

Nothing here is kept between requests: streams are generated at one sample a second for each
request (a 1,234-activity athlete holds no samples in memory), and the detail's laps, splits,
best efforts and segment efforts are cut from the same streams, so they agree with them and
with the summary: laps and splits sum to the distance, the moving and the elapsed time; the
last ``distance`` sample is the activity's distance and ``time`` runs from 0 to ``elapsed_time``;
``latlng`` follows the summary's polyline (a street grid, :mod:`emulator.track`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.athlete import decode_polyline
from emulator.track import METRES_PER_DEGREE, path_lengths

__all__ = [
    "BEST_EFFORTS",
    "RESOLUTIONS",
    "STREAM_KEYS",
    "activity_streams",
    "detailed_activity",
    "has_streams",
    "stats_totals",
    "stream_set",
    "zones",
]

STREAM_KEYS = (
    "time",
    "distance",
    "latlng",
    "altitude",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "temp",
    "moving",
    "grade_smooth",
)
"""Every stream type Strava offers, in its order."""

RESOLUTIONS = {"low": 100, "medium": 1000, "high": 10_000}
"""Samples at most per ``resolution``; without one every sample is sent (one a second)."""

BEST_EFFORTS: tuple[tuple[str, float], ...] = (
    ("400m", 400.0),
    ("1/2 mile", 804.672),
    ("1k", 1000.0),
    ("1 mile", 1609.344),
    ("2 mile", 3218.688),
    ("5k", 5000.0),
    ("10k", 10000.0),
    ("15k", 15000.0),
    ("10 mile", 16093.44),
    ("20k", 20000.0),
    ("Half-Marathon", 21097.5),
    ("30k", 30000.0),
    ("Marathon", 42195.0),
    ("50k", 50000.0),
)
"""Strava's best-effort distances for runs."""

_FOOT = frozenset({"Run", "TrailRun", "Walk", "Hike"})
_RUNS = frozenset({"Run", "TrailRun"})
_BIKES = frozenset({"Ride", "GravelRide", "VirtualRide", "MountainBikeRide", "EBikeRide"})
_DESCRIPTIONS = (
    "Legs felt good today.",
    "Windy on the way out 💨",
    "With the club. Coffee after ☕",
    "Easy does it.",
    "New route, will do it again",
    'Splits: "even-ish" \\ happy',
)
_SEGMENT_NAMES = ("Hill", "Climb", "Sprint", "Drag", "Straight", "Loop", "Rise", "Bridge to Lights")
_STREETS = ("High Street", "Church Lane", "Park Road", "Station Road", "Mill Lane", "Victoria Road", "Canal Path")


def _rng(seed: int, activity_id: int, what: str) -> random.Random:
    return random.Random(f"strava-emulator:{what}:{seed}:{activity_id}")


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_streams(activity: Mapping[str, Any]) -> bool:
    """Whether Strava has streams for the activity (a manual entry has none)."""
    return not activity.get("manual") and int(activity.get("elapsed_time") or 0) > 0


_INPUTS = (
    "id",
    "elapsed_time",
    "moving_time",
    "distance",
    "sport_type",
    "type",
    "elev_low",
    "elev_high",
    "map",
    "has_heartrate",
    "average_heartrate",
    "max_heartrate",
    "average_cadence",
    "device_watts",
    "average_watts",
    "max_watts",
    "average_temp",
)
_RECENT = 2  # the streams of the last activities generated: a detail and then its streams cost one generation
_recent: OrderedDict[str, dict[str, list[Any]]] = OrderedDict()
_recent_lock = threading.Lock()


def activity_streams(seed: int, activity: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every channel the activity has, one sample a second, keyed by stream type (callers must not change them).

    ``latlng`` only with a polyline, ``altitude``/``grade_smooth`` only with an elevation,
    ``heartrate`` only with ``has_heartrate``, ``watts`` only with ``device_watts``,
    ``cadence`` with ``average_cadence``, ``temp`` with ``average_temp``. The streams of the
    last two activities are kept (keyed by every summary value they derive from), no more.
    """
    key = json.dumps([seed, *(activity.get(name) for name in _INPUTS)], sort_keys=True, default=str)
    with _recent_lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key]
    streams = _generate(seed, activity)
    with _recent_lock:
        _recent[key] = streams
        while len(_recent) > _RECENT:
            _recent.popitem(last=False)
    return streams


def _generate(seed: int, activity: Mapping[str, Any]) -> dict[str, list[Any]]:
    activity_id = int(activity["id"])
    rng = _rng(seed, activity_id, "streams")
    elapsed = max(1, int(activity["elapsed_time"]))
    moving_time = min(max(1, int(activity["moving_time"])), elapsed)
    metres = float(activity.get("distance") or 0.0)
    n = elapsed + 1
    # stops: elapsed - moving intervals in one to three blocks
    moving = [True] * n
    moving[0] = False
    stopped = elapsed - moving_time
    blocks = 1 + (stopped > 60) + (stopped > 600) if stopped > 0 else 0
    part = elapsed // max(1, blocks)
    left = stopped
    for b in range(blocks):
        size = left if b == blocks - 1 else stopped // blocks
        left -= size
        start = 1 + b * part + int(rng.random() * max(0, part - size))
        for i in range(start, min(n, start + size)):
            moving[i] = False
    # elevation as a smooth function of the fraction of distance covered
    low, high = activity.get("elev_low"), activity.get("elev_high")
    terrain = [(rng.uniform(0.3, 1.0) / j, j, rng.uniform(0, 2 * math.pi)) for j in range(1, 5)]
    span = sum(a for a, _, _ in terrain)
    steps = 1024  # shape and slope tabulated over the fraction of distance covered
    shape = [
        (sum(a * math.sin(2 * math.pi * j * k / steps + p) for a, j, p in terrain) + span) / (2 * span)
        for k in range(steps + 1)
    ]
    slope = [
        sum(a * 2 * math.pi * j * math.cos(2 * math.pi * j * k / steps + p) for a, j, p in terrain) / (2 * span)
        for k in range(steps + 1)
    ]
    relief = float(high) - float(low) if low is not None and high is not None else 0.0
    to_grade = relief / metres * 100 if metres > 0 else 0.0
    # speed per second: slower uphill, AR(1) noise; scaled so the distance is exact
    sport = str(activity.get("sport_type") or activity.get("type") or "")
    v0 = metres / moving_time
    climb_cost = 0.06 if sport in _BIKES else 0.03
    raw = [0.0] * n
    noise = 0.0
    done = 0
    grades = [0.0] * n
    random_ = rng.random
    for i in range(1, n):
        grade = to_grade * slope[done * steps // moving_time]
        grades[i] = grade
        if moving[i]:
            noise = 0.92 * noise + (random_() - 0.5) * 0.0866  # uniform, sd 0.025
            raw[i] = max(0.3, min(1.6, 1 - climb_cost * grade + noise))
            done += 1
    total = sum(raw)
    speed = [r * metres / total if total > 0 else 0.0 for r in raw]
    distance = [0.0] * n
    cum = 0.0
    for i in range(1, n):
        cum += speed[i]
        distance[i] = round(cum, 1)
    distance[-1] = round(metres, 1)
    out: dict[str, list[Any]] = {"time": list(range(n)), "distance": distance}
    window = 5
    smooth = [0.0] * n
    acc = 0.0
    for i in range(n):
        acc += speed[i] - (speed[i - window] if i >= window else 0.0)
        smooth[i] = round(acc / min(window, i + 1), 3) if moving[i] else 0.0
    fractions = [min(1.0, d / metres) if metres > 0 else 0.0 for d in distance]
    polyline = str((activity.get("map") or {}).get("summary_polyline") or "")
    if polyline:
        out["latlng"] = _along(decode_polyline(polyline), fractions, rng)
    if low is not None and high is not None:
        cells = [round(f * steps) for f in fractions]
        out["altitude"] = [round(float(low) + relief * shape[c], 1) for c in cells]
        grade_smooth = [round(to_grade * slope[c], 1) for c in cells]
    out["velocity_smooth"] = smooth
    effort = [(speed[i] / v0 if v0 > 0 else 1.0) + 0.02 * grades[i] if moving[i] else 0.0 for i in range(n)]
    if activity.get("has_heartrate") and activity.get("average_heartrate"):
        out["heartrate"] = _heartrate(rng, effort, moving, float(activity["average_heartrate"]), activity)
    if activity.get("average_cadence"):
        base = float(activity["average_cadence"])
        out["cadence"] = [max(0, round(base + (random_() - 0.5) * 8.7)) if moving[i] else 0 for i in range(n)]
    if activity.get("device_watts") and activity.get("average_watts"):
        out["watts"] = _watts(rng, effort, moving, grades, activity)
    if activity.get("average_temp") is not None:
        temp = float(activity["average_temp"])
        out["temp"] = [round(temp + 1.5 * math.sin(math.pi * i / n)) for i in range(n)]
    out["moving"] = moving
    if low is not None and high is not None:
        out["grade_smooth"] = grade_smooth
    return {key: out[key] for key in STREAM_KEYS if key in out}


def _along(points: Sequence[tuple[float, float]], fractions: Sequence[float], rng: random.Random) -> list[list[float]]:
    """Positions at ``fractions`` (ascending) of the path, with a metre or two of GPS noise."""
    lengths = path_lengths(points)
    total = lengths[-1]
    jitter = 5.2 / METRES_PER_DEGREE  # uniform, sd 1.5 m
    out = []
    k = 0
    last = len(points) - 2
    for f in fractions:
        target = f * total
        while k < last and lengths[k + 1] < target:
            k += 1
        span = lengths[k + 1] - lengths[k] if last >= 0 else 0.0
        t = 0.0 if span <= 0 else min(1.0, max(0.0, (target - lengths[k]) / span))
        (lat0, lng0), (lat1, lng1) = points[k], points[min(k + 1, len(points) - 1)]
        out.append(
            [
                round(lat0 + (lat1 - lat0) * t + (rng.random() - 0.5) * jitter, 6),
                round(lng0 + (lng1 - lng0) * t + (rng.random() - 0.5) * jitter, 6),
            ]
        )
    return out


def _heartrate(
    rng: random.Random, effort: Sequence[float], moving: Sequence[bool], average: float, activity: Mapping[str, Any]
) -> list[int]:
    """Heart rate that follows effort with a lag of about 20 s, averaging ``average``, never above the max."""
    ceiling = float(activity.get("max_heartrate") or average + 25)
    hr = average - 30
    values = []
    for e, on in zip(effort, moving, strict=True):
        target = average + 28 * (e - 1) if on else average - 25
        hr += (target - hr) / 20 + (rng.random() - 0.5) * 1.4
        values.append(hr)
    shift = average - sum(values) / len(values)
    return [int(max(45, min(ceiling, round(v + shift)))) for v in values]


def _watts(
    rng: random.Random, effort: Sequence[float], moving: Sequence[bool], grades: Sequence[float], activity: Any
) -> list[int]:
    """Power that rises with speed and grade, averaging ``average_watts`` while moving, capped at ``max_watts``."""
    average = float(activity["average_watts"])
    cap = float(activity.get("max_watts") or average * 3)
    raw = [
        max(0.0, (0.55 + 0.45 * e + 0.06 * g) * (1 + (rng.random() - 0.5) * 0.42)) if on else 0.0
        for e, on, g in zip(effort, moving, grades, strict=True)
    ]
    moving_raw = [r for r, on in zip(raw, moving, strict=True) if on]
    scale = average / (sum(moving_raw) / len(moving_raw)) if moving_raw and sum(moving_raw) > 0 else 0.0
    return [int(min(cap, round(r * scale))) for r in raw]


# --- the detail -----------------------------------------------------------------------


def _cuts(distance: Sequence[float], every: float) -> list[tuple[int, int]]:
    """(start, end) sample indices of consecutive stretches of ``every`` metres; the last is what is left."""
    n = len(distance)
    if every <= 0 or distance[-1] <= 0:
        return [(0, n - 1)]
    cuts = []
    start, target = 0, every
    for i in range(1, n):
        if distance[i] >= target and i < n - 1:
            cuts.append((start, i))
            start = i
            target += every
    if start < n - 1:
        cuts.append((start, n - 1))
    return cuts


def _stretch(streams: Mapping[str, list[Any]], start: int, end: int) -> dict[str, Any]:
    """Totals and averages of the samples between ``start`` and ``end``."""
    time, distance, moving = streams["time"], streams["distance"], streams["moving"]
    moving_time = sum(1 for i in range(start + 1, end + 1) if moving[i])
    metres = round(distance[end] - distance[start], 1)
    out: dict[str, Any] = {
        "elapsed_time": time[end] - time[start],
        "moving_time": moving_time,
        "distance": metres,
        "average_speed": round(metres / moving_time, 2) if moving_time else 0.0,
        "max_speed": max(streams["velocity_smooth"][start : end + 1], default=0.0),
    }
    if "altitude" in streams:
        altitude = streams["altitude"]
        out["elevation_difference"] = round(altitude[end] - altitude[start], 1)
        out["total_elevation_gain"] = round(
            sum(max(0.0, altitude[i] - altitude[i - 1]) for i in range(start + 1, end + 1)), 1
        )
    for key, name in (("heartrate", "heartrate"), ("cadence", "cadence"), ("watts", "watts")):
        values = [streams[key][i] for i in range(start + 1, end + 1) if moving[i]] if key in streams else []
        if values:
            out[f"average_{name}"] = round(sum(values) / len(values), 1)
            if key == "heartrate":
                out["max_heartrate"] = float(max(values))
    return out


def _effort_id(activity_id: int, kind: str, number: int) -> int:
    digest = hashlib.sha1(f"{activity_id}:{kind}:{number}".encode(), usedforsecurity=False).digest()
    return 10**11 + int.from_bytes(digest[:5], "big")


def _fastest(distance: Sequence[float], time: Sequence[int], metres: float) -> tuple[int, int] | None:
    """The quickest stretch of at least ``metres``: (start, end) indices, or None."""
    best: tuple[int, int] | None = None
    i = 0
    for j in range(len(distance)):
        while i + 1 < j and distance[j] - distance[i + 1] >= metres:
            i += 1
        if distance[j] - distance[i] >= metres and (best is None or time[j] - time[i] < time[best[1]] - time[best[0]]):
            best = (i, j)
    return best


def detailed_activity(
    seed: int,
    activity: Mapping[str, Any],
    gear: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
    include_all_efforts: bool = True,
) -> dict[str, Any]:
    """The DetailedActivity (resource_state 3) of a summary: the same values plus the nested record."""
    activity_id = int(activity["id"])
    rng = _rng(seed, activity_id, "detail")
    detail: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in activity.items()}
    detail["resource_state"] = 3
    detail["description"] = rng.choice(_DESCRIPTIONS) if rng.random() < 0.3 else None
    external = str(activity.get("external_id") or "")
    if activity.get("manual"):
        device = None
    elif external.startswith("garmin"):
        device = rng.choice(("Garmin Forerunner 255", "Garmin Edge 540", "Garmin fēnix 7"))
    elif external.startswith("zwift"):
        device = "Zwift"
    else:
        device = "Strava iPhone App"
    detail["device_name"] = device
    kilojoules = activity.get("kilojoules")
    if kilojoules:
        calories = float(kilojoules) * 1.05
    elif activity.get("distance"):
        calories = float(activity["distance"]) / 1000 * (62 if activity.get("sport_type") in _FOOT else 28)
    else:
        calories = int(activity.get("moving_time") or 0) / 60 * 6
    detail["calories"] = round(calories, 1)
    detail["embed_token"] = hashlib.sha1(f"embed:{activity_id}".encode(), usedforsecurity=False).hexdigest()
    detail["photos"] = {
        "primary": None,
        "use_primary_photo": False,
        "count": int(activity.get("total_photo_count") or 0),
    }
    detail["gear"] = dict(gear) if gear is not None else None
    detail["segment_leaderboard_opt_out"] = False
    detail["leaderboard_opt_out"] = False
    detail["available_zones"] = ["heartrate"] if activity.get("has_heartrate") else []
    athlete = {"id": activity["athlete"]["id"], "resource_state": 1}
    reference = {"id": activity_id, "resource_state": 1}
    start = _epoch(str(activity["start_date"]))
    local_shift = int(float(activity.get("utc_offset") or 0))
    sport = str(activity.get("sport_type") or "")
    laps: list[dict[str, Any]] = []
    splits_metric: list[dict[str, Any]] = []
    splits_standard: list[dict[str, Any]] = []
    best_efforts: list[dict[str, Any]] = []
    segment_efforts: list[dict[str, Any]] = []
    if has_streams(activity):
        streams = activity_streams(seed, activity)
        lap_length = 1000.0 if sport in _FOOT else 10_000.0 if sport in _BIKES else 0.0
        for number, (s, e) in enumerate(_cuts(streams["distance"], lap_length), start=1):
            stretch = _stretch(streams, s, e)
            lap = {
                "id": _effort_id(activity_id, "lap", number),
                "resource_state": 2,
                "name": f"Lap {number}",
                "activity": reference,
                "athlete": athlete,
                "start_date": _iso(start + s),
                "start_date_local": _iso(start + s + local_shift),
                "start_index": s,
                "end_index": e,
                "lap_index": number,
                "split": number,
                "pace_zone": None,
                "device_watts": bool(activity.get("device_watts")),
                **{k: v for k, v in stretch.items() if k != "elevation_difference"},
            }
            lap.setdefault("total_elevation_gain", 0.0)
            laps.append(lap)
        if sport in _FOOT:
            for unit, out in ((1000.0, splits_metric), (1609.34, splits_standard)):
                for number, (s, e) in enumerate(_cuts(streams["distance"], unit), start=1):
                    stretch = _stretch(streams, s, e)
                    split = {
                        "split": number,
                        "distance": stretch["distance"],
                        "elapsed_time": stretch["elapsed_time"],
                        "moving_time": stretch["moving_time"],
                        "elevation_difference": stretch.get("elevation_difference", 0.0),
                        "average_speed": stretch["average_speed"],
                        "average_grade_adjusted_speed": stretch["average_speed"],
                        "pace_zone": 0,
                    }
                    if "average_heartrate" in stretch:
                        split["average_heartrate"] = stretch["average_heartrate"]
                    out.append(split)
        if sport in _RUNS:
            for number, (name, metres) in enumerate(BEST_EFFORTS):
                found = _fastest(streams["distance"], streams["time"], metres)
                if found is None:
                    continue
                s, e = found
                stretch = _stretch(streams, s, e)
                best_efforts.append(
                    {
                        "id": _effort_id(activity_id, "best", number),
                        "resource_state": 2,
                        "name": name,
                        "activity": reference,
                        "athlete": athlete,
                        "elapsed_time": stretch["elapsed_time"],
                        "moving_time": stretch["moving_time"],
                        "start_date": _iso(start + s),
                        "start_date_local": _iso(start + s + local_shift),
                        "distance": round(metres, 1),
                        "start_index": s,
                        "end_index": e,
                        "pr_rank": None,
                        "achievements": [],
                    }
                )
        if "latlng" in streams and float(activity.get("distance") or 0) >= 1500:
            segment_efforts = _segment_efforts(activity, streams, reference, athlete, start, local_shift)
    ranked = best_efforts + segment_efforts
    order = list(range(len(ranked)))
    rng.shuffle(order)
    for position, index in enumerate(order):
        rank = (
            1 if position < int(activity.get("pr_count") or 0) else (rng.choice((2, 3)) if rng.random() < 0.1 else None)
        )
        ranked[index]["pr_rank"] = rank
        ranked[index]["achievements"] = [] if rank is None else [{"type_id": 3, "type": "pr", "rank": rank}]
    if not include_all_efforts:
        segment_efforts = [e for e in segment_efforts if e["pr_rank"] is not None]
    detail["laps"] = laps
    if sport in _FOOT:
        detail["splits_metric"] = splits_metric
        detail["splits_standard"] = splits_standard
    if sport in _RUNS:
        detail["best_efforts"] = best_efforts
    detail["segment_efforts"] = segment_efforts
    if detail.get("map"):
        detail["map"]["resource_state"] = 3
        detail["map"]["polyline"] = detail["map"].get("summary_polyline", "")
    detail.update(overrides or {})
    return detail


def _segment_efforts(
    activity: Mapping[str, Any],
    streams: Mapping[str, list[Any]],
    reference: dict[str, Any],
    athlete: dict[str, Any],
    start: int,
    local_shift: int,
) -> list[dict[str, Any]]:
    """Efforts on segments of the route: the same route meets the same segments (ids from the route)."""
    polyline = str(activity["map"]["summary_polyline"])
    route = random.Random(f"strava-emulator:segments:{polyline}")
    distance, latlng = streams["distance"], streams["latlng"]
    metres = distance[-1]
    count = min(6, 1 + int(metres // 6000))
    efforts = []
    kind = "Ride" if activity.get("sport_type") in _BIKES else "Run"
    for number in range(count):
        length = route.uniform(400, min(3000, metres / 3))
        begin = route.uniform(0, metres - length)
        s = next(i for i, d in enumerate(distance) if d >= begin)
        e = next((i for i in range(s, len(distance)) if distance[i] >= begin + length), len(distance) - 1)
        if e <= s:
            continue
        stretch = _stretch(streams, s, e)
        altitude = streams.get("altitude")
        grade = stretch.get("elevation_difference", 0.0) / max(1.0, stretch["distance"]) * 100
        segment_id = int.from_bytes(
            hashlib.sha1(f"{polyline}:{number}".encode(), usedforsecurity=False).digest()[:4], "big"
        )
        name = f"{route.choice(_STREETS)} {route.choice(_SEGMENT_NAMES)}"
        segment = {
            "id": segment_id,
            "resource_state": 2,
            "name": name,
            "activity_type": kind,
            "distance": stretch["distance"],
            "average_grade": round(grade, 1),
            "maximum_grade": round(max(streams.get("grade_smooth", [0.0])[s : e + 1], default=0.0), 1),
            "elevation_high": max(altitude[s : e + 1]) if altitude else None,
            "elevation_low": min(altitude[s : e + 1]) if altitude else None,
            "start_latlng": list(latlng[s]),
            "end_latlng": list(latlng[e]),
            "climb_category": 0,
            "city": activity.get("location_city"),
            "state": activity.get("location_state"),
            "country": activity.get("location_country"),
            "private": False,
            "hazardous": False,
            "starred": False,
        }
        effort = {
            "id": _effort_id(int(reference["id"]), "segment", number),
            "resource_state": 2,
            "name": name,
            "activity": reference,
            "athlete": athlete,
            "elapsed_time": stretch["elapsed_time"],
            "moving_time": stretch["moving_time"],
            "start_date": _iso(start + s),
            "start_date_local": _iso(start + s + local_shift),
            "distance": stretch["distance"],
            "start_index": s,
            "end_index": e,
            "device_watts": bool(activity.get("device_watts")),
            "segment": segment,
            "pr_rank": None,
            "achievements": [],
            "kom_rank": None,
            "hidden": False,
        }
        for key in ("average_heartrate", "max_heartrate", "average_cadence", "average_watts"):
            if key in stretch:
                effort[key] = stretch[key]
        efforts.append(effort)
    return efforts


def stream_set(
    streams: Mapping[str, list[Any]],
    keys: Sequence[str] | None,
    resolution: str | None,
    series_type: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The StreamSet for ``keys`` (all channels when None), keyed by type, downsampled to ``resolution``."""
    wanted = [k for k in STREAM_KEYS if keys is None or k in keys or k == series_type]
    channels: dict[str, list[Any]] = {k: streams[k] for k in wanted if k in streams}
    n = len(streams["time"])
    if resolution is not None and n > RESOLUTIONS[resolution]:
        limit = RESOLUTIONS[resolution]
        picks = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
        channels = {k: [v[i] for i in picks] for k, v in channels.items()}
    for key, data in (overrides or {}).items():
        if keys is not None and key not in keys and key != series_type:
            continue
        if data is None:
            channels.pop(key, None)
        else:
            channels[key] = list(data)
    label = resolution or "high"
    return {
        key: {"data": data, "series_type": series_type, "original_size": n, "resolution": label}
        for key, data in channels.items()
    }


def stats_totals(activities: Sequence[Mapping[str, Any]], now: int) -> dict[str, Any]:
    """ActivityStats over ``activities`` (visible to everyone only, as Strava): recent (4 weeks), ytd, all."""
    year_start = int(datetime(datetime.fromtimestamp(now, UTC).year, 1, 1, tzinfo=UTC).timestamp())
    recent_start = now - int(timedelta(days=28).total_seconds())
    groups = {"ride": _BIKES, "run": _RUNS, "swim": frozenset({"Swim"})}
    out: dict[str, Any] = {"biggest_ride_distance": 0.0, "biggest_climb_elevation_gain": 0.0}
    for period, since in (("recent", recent_start), ("ytd", year_start), ("all", None)):
        for group, sports in groups.items():
            chosen = [
                a
                for a in activities
                if a.get("sport_type") in sports
                and a.get("visibility", "everyone") == "everyone"
                and (since is None or since <= _epoch(str(a["start_date"])) <= now)
            ]
            totals: dict[str, Any] = {
                "count": len(chosen),
                "distance": round(sum(float(a.get("distance") or 0) for a in chosen), 1),
                "moving_time": sum(int(a.get("moving_time") or 0) for a in chosen),
                "elapsed_time": sum(int(a.get("elapsed_time") or 0) for a in chosen),
                "elevation_gain": round(sum(float(a.get("total_elevation_gain") or 0) for a in chosen), 1),
            }
            if period == "recent":
                totals["achievement_count"] = sum(int(a.get("achievement_count") or 0) for a in chosen)
            out[f"{period}_{group}_totals"] = totals
    rides = [a for a in activities if a.get("sport_type") in _BIKES and a.get("visibility", "everyone") == "everyone"]
    out["biggest_ride_distance"] = max((float(a.get("distance") or 0) for a in rides), default=0.0)
    out["biggest_climb_elevation_gain"] = max((float(a.get("total_elevation_gain") or 0) for a in rides), default=0.0)
    return out


def zones(max_heartrate: int, ftp: int) -> dict[str, Any]:
    """Heart-rate zones (Strava's default five, from the max) and power zones (seven, from the FTP)."""
    hr_edges = [0, round(max_heartrate * 0.65), round(max_heartrate * 0.81), round(max_heartrate * 0.89)]
    hr_edges.append(round(max_heartrate * 0.97))
    heart = [{"min": lo, "max": hi} for lo, hi in zip(hr_edges, hr_edges[1:], strict=False)]
    heart.append({"min": hr_edges[-1], "max": -1})
    power_edges = [0] + [round(ftp * share) for share in (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)]
    power = [{"min": lo, "max": hi} for lo, hi in zip(power_edges, power_edges[1:], strict=False)]
    power.append({"min": power_edges[-1], "max": -1})
    return {"heart_rate": {"custom_zones": False, "zones": heart}, "power": {"zones": power}}
