"""The heatmap of routes: summary polylines decoded, the privacy radius applied, rasterised.

Everything happens here, in Python, when the dashboard is rendered: the page receives a grid
of how many activities crossed each cell, never a coordinate of a track. Points within the
privacy radius of a frequent start or end point (and of the activity's own start and end) are
removed before anything is rasterised, after every segment has been cut into steps of at most
a quarter of the radius, so no drawn line crosses a hidden disc.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "GRID_HEIGHT",
    "GRID_WIDTH",
    "PRIVACY_RADIUS_M",
    "Heatmap",
    "HeatmapStore",
    "PolylineError",
    "apply_privacy",
    "decode_polyline",
    "frequent_endpoints",
    "heatmap_data",
    "inputs_key",
    "render_heatmap",
    "thin_track",
]

PRIVACY_RADIUS_M = 200.0
"""Default privacy radius in metres (Prefect Variable ``strava_privacy_radius_m`` overrides; 0 = off)."""
MIN_VISITS = 2
"""A start or end point is frequent when this many activities start or end within the radius of it."""
MAX_STEP_M = 20_000.0
"""A step between two points longer than this (a GPS jump, a ferry) is not drawn, nor sampled."""
COARSE = 0.01
"""Degrees: a step shorter than this with both ends away from every hidden area is kept without sampling."""
THIN_STEP_M = 25.0
"""A stream's track keeps a point every this many metres (a grid cell is 60 m or more wide)."""
GRID_WIDTH = 480
GRID_HEIGHT = 300
_EARTH_M = 6_371_008.8
_M_PER_DEG = math.pi * _EARTH_M / 180

Point = tuple[float, float]


class PolylineError(ValueError):
    """A summary polyline that is not a whole Google-encoded polyline."""


_VALUE = re.compile(r"[_-~]*[?-^]")
"""One encoded value: characters with the continuation bit (``_`` to ``~``), then one without (``?`` to ``^``)."""


class _Values(dict[str, int]):
    """Encoded value -> signed integer, kept for the short ones (a few thousand: a step's deltas)."""

    def __missing__(self, token: str) -> int:
        result = 0
        for shift, char in enumerate(token):
            result |= ((ord(char) - 63) & 0x1F) << (5 * shift)
        value = ~(result >> 1) if result & 1 else result >> 1
        if len(token) <= 3:
            self[token] = value
        return value


_VALUES = _Values()


def decode_polyline(encoded: str, precision: int = 5) -> list[Point]:
    """Decode a Google encoded polyline into (lat, lng) pairs.

    The values are split by a regular expression and summed with ``accumulate`` (the points
    are the same as decoding character by character, which runs only for a text that is not a
    whole polyline on the globe, to say why).

    Raises:
        PolylineError: The text ends inside a value, holds a character outside the alphabet,
            or decodes to a latitude/longitude out of range.

    """
    tokens = _VALUE.findall(encoded)
    if len(tokens) % 2 or sum(map(len, tokens)) != len(encoded):
        return _decode_checked(encoded, precision)
    values = list(map(_VALUES.__getitem__, tokens))
    lats, lngs = list(accumulate(values[0::2])), list(accumulate(values[1::2]))
    top = 10**precision
    if lats and (max(lats) > 90 * top or min(lats) < -90 * top or max(lngs) > 180 * top or min(lngs) < -180 * top):
        return _decode_checked(encoded, precision)  # off the globe: raises
    factor = 10.0**precision
    return [(lat / factor, lng / factor) for lat, lng in zip(lats, lngs, strict=True)]


def _decode_checked(encoded: str, precision: int = 5) -> list[Point]:
    """:func:`decode_polyline` character by character, raising :class:`PolylineError` where the text goes wrong."""
    factor = 10.0**precision
    points: list[Point] = []
    index, lat, lng, length = 0, 0, 0, len(encoded)
    while index < length:
        deltas = [0, 0]
        for k in range(2):
            shift = result = 0
            while True:
                if index >= length:
                    raise PolylineError(f"polyline ends inside a value at character {index}")
                byte = ord(encoded[index]) - 63
                index += 1
                if not 0 <= byte < 64:
                    raise PolylineError(f"polyline holds {encoded[index - 1]!r} at character {index - 1}")
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            deltas[k] = ~(result >> 1) if result & 1 else result >> 1
        lat += deltas[0]
        lng += deltas[1]
        point = (lat / factor, lng / factor)
        if abs(point[0]) > 90 or abs(point[1]) > 180:
            raise PolylineError(f"polyline point {len(points)} is off the globe: {point}")
        points.append(point)
    return points


def _metres(a: Point, b: Point) -> float:
    """Distance in metres, equirectangular (exact enough over a few kilometres)."""
    x = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(b[0] - a[0], x) * _M_PER_DEG


class _Hidden:
    """The cells of a fine grid (squares of ``radius_m / 4``) that lie near a private point.

    A cell is hidden when its centre is within ``radius_m`` plus 2.5 cell sizes of a private
    point. A point in a cell that is not hidden is then more than the radius plus 1.79 cells
    from every private point, so a step of at most one cell between two kept points never
    enters a disc. Private points sharing a cell are marked once (the margin covers them).
    """

    def __init__(self, centres: Iterable[Point], radius_m: float) -> None:
        self.size = radius_m / 4
        self.dlat = self.size / _M_PER_DEG
        self.cells: set[tuple[int, int]] = set()
        self._cos: dict[int, float] = {}
        reach = radius_m + 2.5 * self.size
        span = math.ceil(reach / self.size) + 1
        done: set[tuple[int, int]] = set()
        for c in centres:
            key = self.key(c)
            if key in done:
                continue
            done.add(key)
            for iy in range(key[0] - span, key[0] + span + 1):
                band = self.band_cos(iy)
                ix0 = math.floor(c[1] * band / self.dlat)
                wide = math.ceil(span * max(1.0, self.band_cos(key[0]) / band)) + 1
                for ix in range(ix0 - wide, ix0 + wide + 1):
                    centre = ((iy + 0.5) * self.dlat, (ix + 0.5) * self.dlat / band)
                    if _metres(c, centre) <= reach:
                        self.cells.add((iy, ix))
        self.tight = all(self.dlat / self.band_cos(iy) <= 2 * COARSE for iy, _ in self.cells)
        """Every hidden cell is 2 ``COARSE`` wide or less: a point in none of :attr:`coarse` is in none of them."""
        self.coarse: set[tuple[int, int]] = set()
        """Cells of ``COARSE`` degrees within two cells of a hidden cell's centre: elsewhere a short step is safe."""
        for iy, ix in self.cells:
            band = self.band_cos(iy)
            cy, cx = math.floor((iy + 0.5) * self.dlat / COARSE), math.floor((ix + 0.5) * self.dlat / band / COARSE)
            self.coarse.update((cy + dy, cx + dx) for dy in range(-2, 3) for dx in range(-2, 3))

    def band_cos(self, iy: int) -> float:
        found = self._cos.get(iy)
        if found is None:
            found = self._cos[iy] = max(math.cos(math.radians((iy + 0.5) * self.dlat)), 0.01)
        return found

    def key(self, p: Point) -> tuple[int, int]:
        iy = math.floor(p[0] / self.dlat)
        return iy, math.floor(p[1] * self.band_cos(iy) / self.dlat)


def frequent_endpoints(tracks: Sequence[Sequence[Point]], radius_m: float, min_visits: int = MIN_VISITS) -> list[Point]:
    """Every start or end point that at least ``min_visits`` activities start or end within ``radius_m`` of.

    Endpoints are grouped around leaders (the first endpoint not within the radius of an
    earlier leader); every endpoint of a group that ``min_visits`` different activities reach
    is returned (one loop's start and end count once), so the hidden area covers all of them,
    not only the leader.
    """
    endpoints = [(n, p) for n, t in enumerate(tracks) if t for p in (t[0], t[-1])]
    leaders: list[Point] = []
    members: list[list[Point]] = []
    visitors: list[set[int]] = []
    index: dict[tuple[int, int], list[int]] = {}
    cell = radius_m / _M_PER_DEG  # degrees; a degree of longitude is cos(lat) as long, hence the wider search
    for n, p in endpoints:
        ky, kx = math.floor(p[0] / cell), math.floor(p[1] / cell)
        wide = math.ceil(1 / max(math.cos(math.radians(abs(p[0]) + cell)), 0.01))
        found = None
        for dy in (-1, 0, 1):
            for dx in range(-wide, wide + 1):
                for i in index.get((ky + dy, kx + dx), ()):
                    if found is None and _metres(p, leaders[i]) <= radius_m:
                        found = i
        if found is None:
            index.setdefault((ky, kx), []).append(len(leaders))
            leaders.append(p)
            members.append([p])
            visitors.append({n})
        else:
            members[found].append(p)
            visitors[found].add(n)
    return [p for group, who in zip(members, visitors, strict=True) if len(who) >= min_visits for p in group]


def apply_privacy(tracks: Sequence[Sequence[Point]], radius_m: float) -> tuple[list[list[Point]], int]:
    """Tracks with every point near a private point removed; pieces split where points went.

    Private points: the frequent start and end points (:func:`frequent_endpoints`) and each
    track's own start and end. Segments are first cut into steps of at most ``radius_m / 4``.
    Returns the kept pieces (each of two points or more) and how many points were removed.
    ``radius_m`` 0 (or less) returns the tracks as they are.
    """
    if radius_m <= 0:
        return [piece for t in tracks if len(t) >= 2 for piece in _split_jumps(t)], 0
    frequent = _Hidden(frequent_endpoints(tracks, radius_m), radius_m)
    pieces: list[list[Point]] = []
    removed = 0
    for track in tracks:
        if len(track) >= 2:
            kept, gone = _private_pieces(track, frequent, radius_m)
            pieces += kept
            removed += gone
    return pieces, removed


@dataclass(frozen=True)
class Heatmap:
    """A grid of cells, each counting the activities whose kept route crosses it."""

    width: int
    height: int
    bounds: tuple[float, float, float, float]
    """West, south, east, north of the grid, in degrees."""
    cells: list[int]
    """Flat pairs: the cell index's step from the previous cell (row-major), its count."""
    max_count: int
    tracks: int
    """Activities drawn (with a route in the frame)."""
    elsewhere: int
    """Activities with a route outside the frame."""
    unreadable: int
    """Polylines that could not be decoded (left out)."""
    removed_points: int
    """Points removed by the privacy radius (after densifying)."""
    radius_m: float
    from_streams: int = 0
    """Tracks given as points (from the activities' streams) rather than as polylines."""

    def as_dict(self) -> dict[str, object]:
        return {
            "width": self.width,
            "height": self.height,
            "bounds": [round(b, 5) for b in self.bounds],
            "cells": self.cells,
            "max": self.max_count,
            "tracks": self.tracks,
            "elsewhere": self.elsewhere,
            "unreadable": self.unreadable,
            "removedPoints": self.removed_points,
            "radiusM": self.radius_m,
            "fromStreams": self.from_streams,
        }


def thin_track(track: Sequence[Point], min_step_m: float = THIN_STEP_M) -> list[Point]:
    """The track with a point kept only when it is ``min_step_m`` or more from the last kept one (and the last).

    A stream's one sample a second is far finer than a grid cell; thinning first keeps the
    privacy pass and the rasterising as cheap as for a summary polyline.
    """
    if len(track) < 3:
        return list(track)
    kept = [track[0]]
    lat0, lng0 = track[0]
    for lat, lng in track[1:-1]:
        dy = (lat - lat0) * _M_PER_DEG
        dx = (lng - lng0) * _M_PER_DEG * math.cos(math.radians(lat))
        if dx * dx + dy * dy >= min_step_m * min_step_m:
            kept.append((lat, lng))
            lat0, lng0 = lat, lng
    kept.append(track[-1])
    return kept


def _frame(
    starts: Counter[tuple[int, int]],
    near: Callable[[Point], tuple[float, float, float, float]],
    width: int,
    height: int,
) -> tuple[float, float, float, float]:
    """The busiest 0.5° cell's routes, padded to the grid's aspect (in metres, not degrees).

    ``starts``: how many pieces start in each 0.5° cell, in the pieces' order; ``near``: given
    the centre of the busiest one, the least and greatest latitude and longitude of the points
    within 0.5° of latitude and 0.75° of longitude of it.
    """
    (cell_lat, cell_lng), _ = starts.most_common(1)[0]
    south, north, west, east = near(((cell_lat + 0.5) / 2, (cell_lng + 0.5) / 2))
    mid_lat, mid_lng = (south + north) / 2, (west + east) / 2
    scale = math.cos(math.radians(mid_lat)) or 1.0
    half_h = max((north - south) / 2, 0.002) * 1.05
    half_w = max((east - west) / 2 * scale, 0.002) * 1.05
    aspect = width / height
    half_w, half_h = max(half_w, half_h * aspect), max(half_h, half_w / aspect)
    return (mid_lng - half_w / scale, mid_lat - half_h, mid_lng + half_w / scale, mid_lat + half_h)


def _cells_of(piece: Sequence[Point], bounds: tuple[float, float, float, float], width: int, height: int) -> set[int]:
    """The grid cells a piece passes through (each segment stepped at under a cell)."""
    west, south, east, north = bounds
    fx, fy = width / (east - west), height / (north - south)
    cells: set[int] = set()
    px = [((lng - west) * fx, (north - lat) * fy) for lat, lng in piece]
    x0, y0 = px[0]
    if 0 <= x0 < width and 0 <= y0 < height:
        cells.add(int(y0) * width + int(x0))
    for x1, y1 in px[1:]:
        steps = math.ceil(max(abs(x1 - x0), abs(y1 - y0)) * 2)
        if steps <= 1:
            if 0 <= x1 < width and 0 <= y1 < height:
                cells.add(int(y1) * width + int(x1))
        else:
            sx, sy = (x1 - x0) / steps, (y1 - y0) / steps
            for k in range(1, steps + 1):
                x, y = x0 + sx * k, y0 + sy * k
                if 0 <= x < width and 0 <= y < height:
                    cells.add(int(y) * width + int(x))
        x0, y0 = x1, y1
    return cells


def _routes(
    streams: Sequence[Sequence[Point]], polylines: Sequence[str | None], usable: Sequence[int], wanted: bytearray
) -> Iterator[tuple[int, list[Point]]]:
    """The routes ``wanted`` (by index: the stream tracks, then the ``usable`` polylines), decoded one at a time."""
    for n, track in enumerate(streams):
        if wanted[n]:
            yield n, list(track)
    for n, position in enumerate(usable, len(streams)):
        if wanted[n]:
            yield n, decode_polyline(polylines[position] or "")


def render_heatmap(
    polylines: Iterable[str | None],
    radius_m: float = PRIVACY_RADIUS_M,
    width: int = GRID_WIDTH,
    height: int = GRID_HEIGHT,
    tracks_from_streams: Iterable[Sequence[Point]] = (),
) -> Heatmap:
    """Decode, hide the private points, and count activities per cell over the busiest area.

    ``tracks_from_streams``: routes already as (lat, lng) points (an activity's streams), drawn
    like the polylines (the same privacy radius first); pass each activity once, either way.

    Memory does not grow with the routes' points: no route is kept decoded. The polylines are
    decoded once to find the frequent endpoints (only each route's ends are kept), once to cut
    the kept pieces (only each piece's 0.5° start cell and extent are kept, a few numbers), and
    once more to count the cells; the few routes with a piece across the frame's edge are cut
    once more in between. The result is the same as keeping every piece.
    """
    streams = [t for t in tracks_from_streams if len(t) >= 2]
    from_streams = len(streams)
    encoded = polylines if isinstance(polylines, Sequence) else list(polylines)
    unreadable = 0
    ends: list[tuple[Point, Point]] = []
    for track in streams:
        ends.append((track[0], track[-1]))
    usable = array("q")  # the polylines that decode to two points or more, by position
    for position, text in enumerate(encoded):
        if not text:
            continue
        try:
            track = decode_polyline(text)
        except PolylineError:
            unreadable += 1
            continue
        if len(track) >= 2:
            ends.append((track[0], track[-1]))
            usable.append(position)
    empty_bounds = (0.0, 0.0, 1.0, 1.0)
    if not ends:
        return Heatmap(width, height, empty_bounds, [], 0, 0, 0, unreadable, 0, radius_m, from_streams)
    frequent = _Hidden(frequent_endpoints(ends, radius_m) if radius_m > 0 else (), max(radius_m, 1.0))
    every = bytearray(b"\x01") * len(ends)
    del ends
    drawable = bytearray(len(every))  # the routes with a kept piece
    removed = 0
    starts: Counter[tuple[int, int]] = Counter()
    extents = array("d")  # per piece, in order: south, north, west, east
    owners = array("q")  # per piece: its route's index
    for n, track in _routes(streams, encoded, usable, every):
        pieces, gone = _private_pieces(track, frequent, radius_m)
        removed += gone
        drawable[n] = bool(pieces)
        for piece in pieces:
            starts[(math.floor(piece[0][0] * 2), math.floor(piece[0][1] * 2))] += 1
            lats, lngs = [q[0] for q in piece], [q[1] for q in piece]
            extents.extend((min(lats), max(lats), min(lngs), max(lngs)))
            owners.append(n)
    if not owners:
        return Heatmap(width, height, empty_bounds, [], 0, 0, 0, unreadable, removed, radius_m, from_streams)

    def near(centre: Point) -> tuple[float, float, float, float]:
        """The extent of the points near ``centre``, as ``min``/``max`` over every piece's points in order give it."""
        clat, clng = centre
        across: set[int] = set()  # routes with a piece partly near: cut again, their points tested one by one
        for k in range(len(owners)):
            south, north, west, east = extents[4 * k : 4 * k + 4]
            # x - c (rounded) grows with x: the least and greatest points bound every point's test
            inside = south - clat >= -0.5 and north - clat <= 0.5 and west - clng >= -0.75 and east - clng <= 0.75
            outside = south - clat > 0.5 or north - clat < -0.5 or west - clng > 0.75 or east - clng < -0.75
            if not inside and not outside:
                across.add(owners[k])
        partly: dict[int, tuple[float, float, float, float] | None] = {}
        if across:
            k = 0
            for n, track in _routes(streams, encoded, usable, bytearray(n in across for n in range(len(every)))):
                while owners[k] != n:
                    k += 1
                for piece in _private_pieces(track, frequent, radius_m)[0]:
                    points = [q for q in piece if abs(q[0] - clat) <= 0.5 and abs(q[1] - clng) <= 0.75]
                    lats, lngs = [q[0] for q in points], [q[1] for q in points]
                    partly[k] = (min(lats), max(lats), min(lngs), max(lngs)) if points else None
                    k += 1
        found: list[float] | None = None
        for k in range(len(owners)):
            if owners[k] in across:
                extent = partly[k]
            else:
                south, north, west, east = extents[4 * k : 4 * k + 4]
                inside = south - clat >= -0.5 and north - clat <= 0.5 and west - clng >= -0.75 and east - clng <= 0.75
                extent = (south, north, west, east) if inside else None
            if extent is None:
                continue
            if found is None:
                found = list(extent)
                continue
            # as min() and max() over every point: a later equal value does not replace an earlier one
            if extent[0] < found[0]:
                found[0] = extent[0]
            if extent[1] > found[1]:
                found[1] = extent[1]
            if extent[2] < found[2]:
                found[2] = extent[2]
            if extent[3] > found[3]:
                found[3] = extent[3]
        assert found is not None  # the busiest cell's pieces start within 0.25° of its centre
        return found[0], found[1], found[2], found[3]

    bounds = _frame(starts, near, width, height)
    counts = array("q", bytes(8 * width * height))  # per cell of the grid, row-major
    drawn = elsewhere = 0
    for _, track in _routes(streams, encoded, usable, drawable):  # per activity: a cell counts it once
        pieces, _ = _private_pieces(track, frequent, radius_m)
        cells: set[int] = set()
        for piece in pieces:
            cells |= _cells_of(piece, bounds, width, height)
        if cells:
            drawn += 1
            for cell in cells:
                counts[cell] += 1
        elif pieces:
            elsewhere += 1
    flat: list[int] = []
    previous = 0
    for cell, count in enumerate(counts):
        if count:
            flat += [cell - previous, count]
            previous = cell
    return Heatmap(
        width,
        height,
        bounds,
        flat,
        max(counts, default=0),
        drawn,
        elsewhere,
        unreadable,
        removed,
        radius_m,
        from_streams,
    )


class HeatmapStore(Protocol):
    """Where a rendered heatmap is kept for the next dashboard of the same routes (the lake)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, data: dict[str, Any]) -> None: ...


@functools.cache
def _code_digest() -> bytes:
    """The digest of the module's source: a change to how the heatmap is made invalidates every stored one."""
    return hashlib.sha256(Path(__file__).read_bytes()).digest()


def inputs_key(
    polylines: Sequence[str | None],
    radius_m: float,
    width: int = GRID_WIDTH,
    height: int = GRID_HEIGHT,
    tracks: Sequence[Sequence[Point]] = (),
    tracks_key: str | None = None,
) -> str:
    """A digest of everything :func:`render_heatmap` reads: polylines and stream tracks in order, radius, grid, code.

    ``tracks_key``: a digest that stands for the tracks (the ids and sample counts they were made
    from, ``curves.tracks_key``), used instead of their points.
    """
    digest = hashlib.sha256(_code_digest())
    digest.update(f"{float(radius_m)!r}|{width}|{height}|{len(polylines)}|{len(tracks)}".encode())
    for encoded in polylines:
        digest.update(b"\x00" + (encoded or "").encode())
    if tracks_key is not None:
        digest.update(b"\x02" + tracks_key.encode())
        return digest.hexdigest()
    for track in tracks:
        digest.update(b"\x01" + repr([tuple(p) for p in track]).encode())
    return digest.hexdigest()


def heatmap_data(
    polylines: Sequence[str | None],
    radius_m: float = PRIVACY_RADIUS_M,
    store: HeatmapStore | None = None,
    tracks: Sequence[Sequence[Point]] | Callable[[], Sequence[Sequence[Point]]] = (),
    tracks_key: str | None = None,
) -> dict[str, Any]:
    """``render_heatmap(polylines, radius_m).as_dict()``, or the stored one made from the same inputs.

    Rendering decodes and walks every route (about 0.6 s for 1,000 routes, 10 s for 15,000 on
    a quiet 2-core machine), on every run although an incremental run mostly changes none of
    them. With a ``store``, the heatmap made from exactly these inputs (:func:`inputs_key`) is
    reused; any change to a route, the radius or this module makes a new one. ``tracks``: routes
    from streams, as (lat, lng) points (:func:`render_heatmap`'s ``tracks_from_streams``);
    ``tracks_key``: what stands for them in the key (:func:`inputs_key`); with it, ``tracks`` may be
    a function that reads them, called only when the heatmap is drawn.
    """

    def points() -> Sequence[Sequence[Point]]:
        return tracks() if callable(tracks) else tracks

    if store is None:
        return render_heatmap(polylines, radius_m, tracks_from_streams=points()).as_dict()
    key = inputs_key(polylines, radius_m, tracks=() if tracks_key else points(), tracks_key=tracks_key)
    found = store.get(key)
    if found is not None:
        return found
    data = render_heatmap(polylines, radius_m, tracks_from_streams=points()).as_dict()
    store.put(key, data)
    return data


def _split_jumps(track: Sequence[Point]) -> list[list[Point]]:
    """The track in pieces, cut at every step longer than ``MAX_STEP_M``."""
    pieces: list[list[Point]] = []
    current: list[Point] = [track[0]]
    for a, b in zip(track, track[1:], strict=False):
        if _metres(a, b) > MAX_STEP_M:
            if len(current) >= 2:
                pieces.append(current)
            current = []
        current.append(b)
    if len(current) >= 2:
        pieces.append(current)
    return pieces


def _private_pieces(track: Sequence[Point], hidden: _Hidden, radius_m: float) -> tuple[list[list[Point]], int]:
    """One track's kept pieces: every step of it (at most ``radius_m / 4`` long) outside the hidden cells.

    ``hidden`` holds the frequent endpoints' cells; the track's own start and end are hidden
    here too (a step within ``radius_m`` plus one step of them is dropped).

    A short step far from every hidden area and from the route's own ends is kept as it is,
    and its end is not tested again when the hidden cells fit the coarse margin
    (:attr:`_Hidden.tight`): it is more than the radius from the own ends (the margin of 1.5
    ``COARSE`` is more than the step) and in no hidden cell (its coarse cell is not near one).
    """
    if radius_m <= 0:
        return _split_jumps(track), 0
    (lat_a, lng_a), (lat_b, lng_b) = track[0], track[-1]
    own_reach = (radius_m + hidden.size) / _M_PER_DEG
    own_reach2 = own_reach * own_reach
    scale = math.cos(math.radians(track[0][0])) ** 2
    cells = hidden.cells
    pieces: list[list[Point]] = []
    current: list[Point] = []
    removed = 0
    coarse = hidden.coarse
    tight = hidden.tight
    own_far = (own_reach + 1.5 * COARSE) ** 2  # a short step is under 1.42 COARSE long
    band_cos = hidden.band_cos
    dlat = hidden.dlat
    floor = math.floor
    cos_of = hidden._cos.get  # band_cos once computed, without a Python call

    def hidden_at(lat: float, lng: float) -> bool:
        iy = floor(lat / dlat)
        return (
            (lat - lat_a) ** 2 + (lng - lng_a) ** 2 * scale <= own_reach2
            or (lat - lat_b) ** 2 + (lng - lng_b) ** 2 * scale <= own_reach2
            or (iy, floor(lng * band_cos(iy) / dlat)) in cells
        )

    first = track[0]
    if hidden_at(first[0], first[1]):
        removed += 1
    else:
        current.append(first)
    for a, b in zip(track, track[1:], strict=False):
        if (
            abs(b[0] - a[0]) < COARSE
            and abs(b[1] - a[1]) < COARSE
            and (floor(a[0] / COARSE), floor(a[1] / COARSE)) not in coarse
            and (floor(b[0] / COARSE), floor(b[1] / COARSE)) not in coarse
            and min(
                (a[0] - lat_a) ** 2 + (a[1] - lng_a) ** 2 * scale, (a[0] - lat_b) ** 2 + (a[1] - lng_b) ** 2 * scale
            )
            > own_far
        ):
            # a short step far from every hidden area and from the route's own ends
            if tight or not hidden_at(b[0], b[1]):
                current.append(b)
            else:
                removed += 1
                if len(current) >= 2:
                    pieces.append(current)
                current = []
            continue
        length = _metres(a, b)
        if length > MAX_STEP_M:  # a jump: not drawn
            if len(current) >= 2:
                pieces.append(current)
            current = []
            samples: Iterable[Point] = (b,)
        else:
            steps = max(1, math.ceil(length / hidden.size))
            dy, dx = (b[0] - a[0]) / steps, (b[1] - a[1]) / steps
            samples = [(a[0] + dy * k, a[1] + dx * k) for k in range(1, steps + 1)]
        for p in samples:
            lat, lng = p
            iy = floor(lat / dlat)
            band = cos_of(iy) or band_cos(iy)
            if (
                (lat - lat_a) ** 2 + (lng - lng_a) ** 2 * scale <= own_reach2
                or (lat - lat_b) ** 2 + (lng - lng_b) ** 2 * scale <= own_reach2
                or (iy, floor(lng * band / dlat)) in cells
            ):  # as hidden_at
                removed += 1
                if len(current) >= 2:
                    pieces.append(current)
                current = []
            else:
                current.append(p)
    if len(current) >= 2:
        pieces.append(current)
    return pieces, removed
