"""render_heatmap and decode_polyline give exactly what the straightforward code (kept here) gives.

``render_heatmap`` keeps no route decoded (it decodes the polylines again for each pass, and
keeps only each piece's start cell and extent), ``decode_polyline`` splits the values with a
regular expression and ``_private_pieces`` skips tests it can prove; the code below is the
module as it was before (every track decoded into a list, every kept piece kept, every point
near the busiest cell listed), and the outputs must be equal, value for value.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from emulator import StravaEmulator
from emulator.athlete import encode_polyline
from tasks.insight import heatmap
from tasks.insight.heatmap import Point
from tests.conftest import EMULATOR_END


def reference_decode(encoded: str, precision: int = 5) -> list[Point]:
    """Decode a Google encoded polyline into (lat, lng) pairs.

    Raises:
        heatmap.PolylineError: The text ends inside a value, holds a character outside the alphabet,
            or decodes to a latitude/longitude out of range.

    """
    factor = 10.0**precision
    points: list[Point] = []
    index, lat, lng, length = 0, 0, 0, len(encoded)
    while index < length:
        deltas = [0, 0]
        for k in range(2):
            shift = result = 0
            while True:
                if index >= length:
                    raise heatmap.PolylineError(f"polyline ends inside a value at character {index}")
                byte = ord(encoded[index]) - 63
                index += 1
                if not 0 <= byte < 64:
                    raise heatmap.PolylineError(f"polyline holds {encoded[index - 1]!r} at character {index - 1}")
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            deltas[k] = ~(result >> 1) if result & 1 else result >> 1
        lat += deltas[0]
        lng += deltas[1]
        point = (lat / factor, lng / factor)
        if abs(point[0]) > 90 or abs(point[1]) > 180:
            raise heatmap.PolylineError(f"polyline point {len(points)} is off the globe: {point}")
        points.append(point)
    return points


def reference_frame(pieces: Sequence[Sequence[Point]], width: int, height: int) -> tuple[float, float, float, float]:
    """The busiest 0.5° cell's routes, padded to the grid's aspect (in metres, not degrees)."""
    starts = Counter((math.floor(p[0][0] * 2), math.floor(p[0][1] * 2)) for p in pieces)
    (cell_lat, cell_lng), _ = starts.most_common(1)[0]
    centre = ((cell_lat + 0.5) / 2, (cell_lng + 0.5) / 2)
    near = [q for p in pieces for q in p if abs(q[0] - centre[0]) <= 0.5 and abs(q[1] - centre[1]) <= 0.75]
    lats, lngs = [q[0] for q in near], [q[1] for q in near]
    mid_lat, mid_lng = (min(lats) + max(lats)) / 2, (min(lngs) + max(lngs)) / 2
    scale = math.cos(math.radians(mid_lat)) or 1.0
    half_h = max((max(lats) - min(lats)) / 2, 0.002) * 1.05
    half_w = max((max(lngs) - min(lngs)) / 2 * scale, 0.002) * 1.05
    aspect = width / height
    half_w, half_h = max(half_w, half_h * aspect), max(half_h, half_w / aspect)
    return (mid_lng - half_w / scale, mid_lat - half_h, mid_lng + half_w / scale, mid_lat + half_h)


def reference_render(
    polylines: Iterable[str | None],
    radius_m: float = heatmap.PRIVACY_RADIUS_M,
    width: int = heatmap.GRID_WIDTH,
    height: int = heatmap.GRID_HEIGHT,
    tracks_from_streams: Iterable[Sequence[Point]] = (),
) -> heatmap.Heatmap:
    """Decode, hide the private points, and count activities per cell over the busiest area.

    ``tracks_from_streams``: routes already as (lat, lng) points (an activity's streams), drawn
    like the polylines (the same privacy radius first); pass each activity once, either way.
    """
    tracks: list[list[Point]] = [list(t) for t in tracks_from_streams if len(t) >= 2]
    from_streams = len(tracks)
    unreadable = 0
    for encoded in polylines:
        if not encoded:
            continue
        try:
            track = reference_decode(encoded)
        except heatmap.PolylineError:
            unreadable += 1
            continue
        if len(track) >= 2:
            tracks.append(track)
    empty_bounds = (0.0, 0.0, 1.0, 1.0)
    if not tracks:
        return heatmap.Heatmap(width, height, empty_bounds, [], 0, 0, 0, unreadable, 0, radius_m, from_streams)
    kept: list[list[list[Point]]] = []
    removed = 0
    frequent = heatmap._Hidden(heatmap.frequent_endpoints(tracks, radius_m) if radius_m > 0 else (), max(radius_m, 1.0))
    for track in tracks:  # per activity, so a cell counts an activity once however its pieces run
        pieces, gone = reference_pieces(track, frequent, radius_m)
        removed += gone
        kept.append(pieces)
    all_pieces = [p for pieces in kept for p in pieces]
    if not all_pieces:
        return heatmap.Heatmap(width, height, empty_bounds, [], 0, 0, 0, unreadable, removed, radius_m, from_streams)
    bounds = reference_frame(all_pieces, width, height)
    counts: Counter[int] = Counter()
    drawn = elsewhere = 0
    for pieces in kept:
        cells: set[int] = set()
        for piece in pieces:
            cells |= heatmap._cells_of(piece, bounds, width, height)
        if cells:
            drawn += 1
            counts.update(cells)
        elif pieces:
            elsewhere += 1
    flat: list[int] = []
    previous = 0
    for cell in sorted(counts):
        flat += [cell - previous, counts[cell]]
        previous = cell
    return heatmap.Heatmap(
        width,
        height,
        bounds,
        flat,
        max(counts.values(), default=0),
        drawn,
        elsewhere,
        unreadable,
        removed,
        radius_m,
        from_streams,
    )


def reference_pieces(track: Sequence[Point], hidden: heatmap._Hidden, radius_m: float) -> tuple[list[list[Point]], int]:
    """One track's kept pieces: every step of it (at most ``radius_m / 4`` long) outside the hidden cells.

    ``hidden`` holds the frequent endpoints' cells; the track's own start and end are hidden
    here too (a step within ``radius_m`` plus one step of them is dropped).
    """
    if radius_m <= 0:
        return heatmap._split_jumps(track), 0
    (lat_a, lng_a), (lat_b, lng_b) = track[0], track[-1]
    own_reach = (radius_m + hidden.size) / heatmap._M_PER_DEG
    own_reach2 = own_reach * own_reach
    scale = math.cos(math.radians(track[0][0])) ** 2
    cells = hidden.cells
    pieces: list[list[Point]] = []
    current: list[Point] = []
    removed = 0
    coarse = hidden.coarse
    own_far = (own_reach + 1.5 * heatmap.COARSE) ** 2  # a short step is under 1.42 heatmap.COARSE long
    samples: list[Point | None] = [track[0]]
    for a, b in zip(track, track[1:], strict=False):
        if (
            abs(b[0] - a[0]) < heatmap.COARSE
            and abs(b[1] - a[1]) < heatmap.COARSE
            and (math.floor(a[0] / heatmap.COARSE), math.floor(a[1] / heatmap.COARSE)) not in coarse
            and (math.floor(b[0] / heatmap.COARSE), math.floor(b[1] / heatmap.COARSE)) not in coarse
            and min(
                (a[0] - lat_a) ** 2 + (a[1] - lng_a) ** 2 * scale, (a[0] - lat_b) ** 2 + (a[1] - lng_b) ** 2 * scale
            )
            > own_far
        ):
            samples.append(b)  # a short step far from every hidden area and from the route's own ends
            continue
        length = heatmap._metres(a, b)
        if length > heatmap.MAX_STEP_M:
            samples += [None, b]  # a jump: not drawn
            continue
        steps = max(1, math.ceil(length / hidden.size))
        dy, dx = (b[0] - a[0]) / steps, (b[1] - a[1]) / steps
        samples.extend((a[0] + dy * k, a[1] + dx * k) for k in range(1, steps + 1))
    band_cos = hidden.band_cos
    dlat = hidden.dlat
    for p in samples:
        if p is None:
            if len(current) >= 2:
                pieces.append(current)
            current = []
            continue
        lat, lng = p
        iy = math.floor(lat / dlat)
        if (
            (lat - lat_a) ** 2 + (lng - lng_a) ** 2 * scale <= own_reach2
            or (lat - lat_b) ** 2 + (lng - lng_b) ** 2 * scale <= own_reach2
            or (iy, math.floor(lng * band_cos(iy) / dlat)) in cells
        ):
            removed += 1
            if len(current) >= 2:
                pieces.append(current)
            current = []
        else:
            current.append(p)
    if len(current) >= 2:
        pieces.append(current)
    return pieces, removed


@pytest.fixture(scope="module")
def routes() -> tuple[list[str | None], list[list[Point]]]:
    """The emulator's polylines (fixed seed), some broken or empty, and straight tracks across the frame's edge."""
    emu = StravaEmulator(activities=1500, seed=11, end=EMULATOR_END)
    polylines: list[str | None] = [a["map"]["summary_polyline"] for a in emu.activities]
    firsts = [heatmap.decode_polyline(p)[0] for p in polylines if p and len(heatmap.decode_polyline(p)) >= 2]
    busiest, _ = Counter((math.floor(q[0] * 2), math.floor(q[1] * 2)) for q in firsts).most_common(1)[0]
    home = next(q for q in firsts if (math.floor(q[0] * 2), math.floor(q[1] * 2)) == busiest)
    rng = random.Random(5)
    for k in range(0, len(polylines), 97):  # broken: cut inside a value, a stray character, off the globe
        polylines[k] = rng.choice([(polylines[k] or "x")[:-1] + "_", "_p~iF!~ps|U", None, "", "_ibE_seK_seK_seK"])
    tracks: list[list[Point]] = []
    for n in range(40):  # long straight routes from home out of the 1° frame and back, and GPS jumps
        bearing = rng.uniform(0, 2 * math.pi)
        far = rng.uniform(0.2, 1.5)
        line = [
            (home[0] + far * k / 60 * math.cos(bearing), home[1] + far * k / 60 * math.sin(bearing)) for k in range(61)
        ]
        if n % 5 == 0:
            line[30] = (line[30][0] + 1.0, line[30][1])
        tracks.append(line)
    polylines += [encode_polyline([(round(a, 5), round(b, 5)) for a, b in t]) for t in tracks[:20]]
    return polylines, tracks[20:]


@pytest.mark.parametrize("radius", [200.0, 0.0, 1000.0, 12_000.0])
def test_render_heatmap_equals_the_reference(
    routes: tuple[list[str | None], list[list[Point]]], radius: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    polylines, tracks = routes
    passes: list[int] = []
    routes_of = heatmap._routes

    def counted(*args: Any) -> Any:
        passes.append(sum(args[-1]))
        return routes_of(*args)

    monkeypatch.setattr(heatmap, "_routes", counted)
    got = heatmap.render_heatmap(polylines, radius, tracks_from_streams=tracks)
    assert len(passes) == 3 and 0 < passes[1] < passes[0]  # some routes cut again: a piece across the edge
    want = reference_render(polylines, radius, tracks_from_streams=tracks)
    assert got == want
    assert got.tracks > (100 if radius <= 1000 else 10) and got.unreadable > 0 and got.elsewhere > 0
    assert (got.removed_points > 0) == (radius > 0)


def test_render_heatmap_takes_a_generator_and_small_grids(routes: tuple[list[str | None], list[list[Point]]]) -> None:
    polylines, tracks = routes
    got = heatmap.render_heatmap((p for p in polylines[:300]), 200.0, 64, 40, (t for t in tracks))
    assert got == reference_render(polylines[:300], 200.0, 64, 40, tracks)


def test_private_pieces_equal_the_reference_also_when_the_hidden_cells_are_wide() -> None:
    emu = StravaEmulator(activities=400, seed=3, end=EMULATOR_END)
    tracks = [heatmap.decode_polyline(a["map"]["summary_polyline"]) for a in emu.activities]
    tracks = [t for t in tracks if len(t) >= 2]
    for radius in (200.0, 12_000.0):
        hidden = heatmap._Hidden(heatmap.frequent_endpoints(tracks, radius), radius)
        assert hidden.tight == (radius < 5000)
        for track in tracks:
            assert heatmap._private_pieces(track, hidden, radius) == reference_pieces(track, hidden, radius)


def test_decode_polyline_equals_the_reference() -> None:
    emu = StravaEmulator(activities=300, seed=8, end=EMULATOR_END)
    rng = random.Random(2)
    texts = [a["map"]["summary_polyline"] for a in emu.activities if a["map"]["summary_polyline"]]
    texts += ["", "??", "_p~iF~ps|U_ulLnnqC_mqNvxq`@", "_p~iF", "_p~iF~ps|", "_p~iF ~ps|U", "_ibE_seK", "~~~~~~~~~~?"]
    texts += ["".join(rng.choice("?@_`^~ABCxyz") for _ in range(rng.randint(1, 30))) for _ in range(300)]
    for precision in (5, 6):
        for text in texts:
            try:
                want: list[Point] | str = reference_decode(text, precision)
            except heatmap.PolylineError as exc:
                want = str(exc)
            try:
                got: list[Point] | str = heatmap.decode_polyline(text, precision)
            except heatmap.PolylineError as exc:
                got = str(exc)
            assert got == want, text
