"""The heatmap from streams: a second-by-second track thinned, the privacy radius applied as to polylines."""

from __future__ import annotations

import math

from emulator.athlete import encode_polyline
from tasks.insight import heatmap
from tests.test_heatmap import HOME, _cell_of, loop_from, metres, offset, through_home


def dense(track: list[heatmap.Point], every_m: float = 3.0) -> list[heatmap.Point]:
    """The track with a point every ``every_m`` metres, as a stream recorded once a second."""
    out: list[heatmap.Point] = []
    for a, b in zip(track, track[1:], strict=False):
        steps = max(1, math.ceil(metres(a, b) / every_m))
        out += [(a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps) for k in range(steps)]
    return [*out, track[-1]]


def test_thin_track_keeps_a_point_every_25_m_and_both_ends() -> None:
    track = dense([offset(0, 0), offset(0, 1000)], every_m=1.0)
    thin = heatmap.thin_track(track)
    assert thin[0] == track[0] and thin[-1] == track[-1]
    gaps = [metres(a, b) for a, b in zip(thin[:-1], thin[1:-1], strict=False)]
    assert all(24.9 <= g <= 27 for g in gaps), (min(gaps), max(gaps))
    assert 38 <= len(thin) <= 42


def test_stream_tracks_get_the_privacy_radius_before_drawing() -> None:
    """Tracks from streams start and end at home like the polylines of the other activities: home stays empty."""
    streams = [dense(loop_from(offset(n, e))) for n, e in ((0, 0), (30, 30), (-20, 50))]
    polylines = [encode_polyline(loop_from(offset(10, -40))), encode_polyline(through_home())]
    shown = heatmap.render_heatmap(
        polylines, 200, tracks_from_streams=[heatmap.thin_track(t) for t in streams]
    ).as_dict()
    assert shown["tracks"] == 5 and shown["fromStreams"] == 3 and shown["removedPoints"] > 0
    width, height, bounds, flat = shown["width"], shown["height"], shown["bounds"], shown["cells"]
    cells, index = set(), 0
    for i in range(0, len(flat), 2):
        index += flat[i]
        cells.add((index % width, index // width))
    metres_per_cell = (bounds[2] - bounds[0]) * math.cos(math.radians(HOME[0])) * 111_195 / width
    hx, hy = _cell_of(HOME, bounds, width, height)
    reach = math.floor(200 / metres_per_cell) - 1
    assert reach >= 2
    assert [(x, y) for x, y in cells if math.hypot(x - hx, y - hy) <= reach] == []
