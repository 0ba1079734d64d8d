"""The heatmap: Google polylines decoded, the privacy radius applied before drawing, settings read."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from emulator.athlete import encode_polyline
from tasks.insight import dashboard, heatmap
from tasks.insight.heatmap import Point

HOME = (51.50000, -0.12000)
M_LAT = 1 / 111_195  # degrees of latitude per metre (the module's sphere)
M_LNG = M_LAT / math.cos(math.radians(HOME[0]))


def metres(a: Point, b: Point) -> float:
    x = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(b[0] - a[0], x) * math.pi * 6_371_008.8 / 180


def offset(north_m: float, east_m: float, origin: Point = HOME) -> Point:
    return (origin[0] + north_m * M_LAT, origin[1] + east_m * M_LNG)


def loop_from(start: Point, size_m: float = 3000) -> list[Point]:
    """A square loop of ``size_m`` a side from ``start``, a point every 250 m."""
    corners = [(0, 0), (size_m, 0), (size_m, size_m), (0, size_m), (0, 0)]
    points: list[Point] = []
    for (n0, e0), (n1, e1) in zip(corners, corners[1:], strict=False):
        steps = int(size_m / 250)
        points += [offset(n0 + (n1 - n0) * k / steps, e0 + (e1 - e0) * k / steps, start) for k in range(steps)]
    return [*points, start]


def through_home() -> list[Point]:
    """A straight route from 5 km west of home to 5 km east, passing right over it (points 1 km apart)."""
    return [offset(0, e) for e in range(-5000, 5001, 1000)]


def min_distance(pieces: list[list[Point]], centre: Point, step_m: float = 5.0) -> float:
    """The closest any drawn line comes to ``centre`` (every segment sampled every ``step_m``)."""
    best = math.inf
    for piece in pieces:
        for a, b in zip(piece, piece[1:], strict=False):
            steps = max(1, math.ceil(metres(a, b) / step_m))
            for k in range(steps + 1):
                p = (a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps)
                best = min(best, metres(p, centre))
    return best


# --------------------------------------------------------------------------- decoding


def test_decodes_googles_example() -> None:
    # The example of Google's "Encoded Polyline Algorithm Format" page.
    assert heatmap.decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == [
        (38.5, -120.2),
        (40.7, -120.95),
        (43.252, -126.453),
    ]
    assert heatmap.decode_polyline("") == []
    assert heatmap.decode_polyline("??") == [(0.0, 0.0)]


def test_decodes_what_the_emulator_encodes() -> None:
    points = [(51.5074, -0.1278), (51.50741, -0.12781), (-33.86882, 151.20929), (0.0, 179.99999)]
    assert heatmap.decode_polyline(encode_polyline(points)) == points


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("_p~iF~ps|U_", "ends inside a value"),
        ("_p~iF", "ends inside a value"),
        ("_p~iF ps|U", "holds ' '"),
        ("~~~~~~~~~~A??", "off the globe"),
    ],
)
def test_broken_polylines_are_refused(encoded: str, message: str) -> None:
    with pytest.raises(heatmap.PolylineError, match=message):
        heatmap.decode_polyline(encoded)


# --------------------------------------------------------------------------- privacy


def test_frequent_endpoints_are_those_several_activities_share() -> None:
    starts = [offset(0, 0), offset(40, -30), offset(-60, 20)]  # three starts within 200 m of home
    lone = offset(8000, 8000)
    tracks = [loop_from(s) for s in starts] + [loop_from(lone)]
    frequent = heatmap.frequent_endpoints(tracks, 200)
    assert sorted(frequent) == sorted(p for s in starts for p in (s, s))  # each loop ends where it starts
    assert lone not in frequent
    assert heatmap.frequent_endpoints(tracks, 200, min_visits=9) == []


def test_points_near_a_frequent_start_are_removed_from_every_route() -> None:
    """Loops from home make it frequent; a route that only passes over home loses those points too."""
    tracks = [loop_from(offset(0, 0)), loop_from(offset(30, 30)), through_home()]
    pieces, removed = heatmap.apply_privacy(tracks, 200)
    assert removed > 0
    assert min_distance(pieces, HOME) > 200
    # The passing route keeps its far parts, in two pieces (west and east of home).
    far_west, far_east = offset(0, -4000), offset(0, 4000)
    assert any(min_distance([p], far_west) < 1 for p in pieces)
    assert any(min_distance([p], far_east) < 1 for p in pieces)
    # Nothing more than the radius (plus its safety margin of 2.5 steps and a cell) is hidden.
    assert min_distance(pieces, HOME) < 200 + 3.5 * 50 + 50


def test_each_routes_own_start_and_end_are_hidden_even_when_not_frequent() -> None:
    start = offset(5000, 0)
    pieces, _ = heatmap.apply_privacy([loop_from(start)], 200)
    assert pieces and min_distance(pieces, start) > 200


def test_a_radius_of_zero_draws_everything() -> None:
    tracks = [loop_from(offset(0, 0)), loop_from(offset(30, 30)), through_home()]
    pieces, removed = heatmap.apply_privacy(tracks, 0)
    assert removed == 0 and pieces == tracks
    assert min_distance(pieces, HOME) < 1


def _cell_of(point: Point, bounds: list[float], width: int, height: int) -> tuple[int, int]:
    west, south, east, north = bounds
    return int((point[1] - west) / (east - west) * width), int((north - point[0]) / (north - south) * height)


def test_the_heatmap_grid_has_nothing_near_home() -> None:
    tracks = [loop_from(offset(n, e)) for n, e in ((0, 0), (30, 30), (-20, 50), (10, -40))] + [through_home()]
    encoded = [encode_polyline(t) for t in tracks] + ["_p~iF~ps|U_", None, ""]
    shown = heatmap.render_heatmap(encoded, 200).as_dict()
    assert shown["tracks"] == 5 and shown["unreadable"] == 1 and shown["removedPoints"] > 0
    width, height, bounds = shown["width"], shown["height"], shown["bounds"]
    cells, index = set(), 0
    flat = shown["cells"]
    for i in range(0, len(flat), 2):
        index += flat[i]
        cells.add((index % width, index // width))
        assert flat[i + 1] >= 1
    metres_per_cell = (bounds[2] - bounds[0]) * math.cos(math.radians(HOME[0])) * 111_195 / width
    hx, hy = _cell_of(HOME, bounds, width, height)
    reach = math.floor(200 / metres_per_cell) - 1  # cells wholly inside the radius
    assert reach >= 2, metres_per_cell
    near = [(x, y) for x, y in cells if math.hypot(x - hx, y - hy) <= reach]
    assert near == []
    assert len(cells) > 100
    open_map = heatmap.render_heatmap(encoded, 0).as_dict()  # privacy off: home is drawn
    ox, oy = _cell_of(HOME, open_map["bounds"], width, height)
    index, drawn = 0, set()
    for i in range(0, len(open_map["cells"]), 2):
        index += open_map["cells"][i]
        drawn.add((index % width, index // width))
    assert (ox, oy) in drawn or (ox - 1, oy) in drawn or (ox, oy - 1) in drawn


def test_no_routes_make_an_empty_heatmap() -> None:
    shown = heatmap.render_heatmap([None, "", "_p~iF"]).as_dict()
    assert shown["cells"] == [] and shown["tracks"] == 0 and shown["unreadable"] == 1


# --------------------------------------------------------------------------- settings


def test_settings_parse_and_refuse_clearly() -> None:
    default = dashboard.InsightSettings.parse()
    assert default.privacy_radius_m == heatmap.PRIVACY_RADIUS_M == 200 and default.gear_thresholds_km == {}
    parsed = dashboard.InsightSettings.parse(0, {"b1": 5000, "g2": "800.5"})
    assert parsed.privacy_radius_m == 0 and parsed.gear_thresholds_km == {"b1": 5000.0, "g2": 800.5}
    assert dashboard.InsightSettings.parse("350", '{"g1": 700}').gear_thresholds_km == {"g1": 700.0}
    for bad in (-1, "near", True, 1e9, float("nan"), [200]):
        with pytest.raises(ValueError, match="strava_privacy_radius_m must be a number of metres"):
            dashboard.InsightSettings.parse(bad)
    for bad_object in ([1, 2], "not json", 5):
        with pytest.raises(ValueError, match="strava_gear_thresholds must be a JSON object"):
            dashboard.InsightSettings.parse(None, bad_object)
    for km in (0, -5, "lots", None):
        with pytest.raises(ValueError, match="the threshold of gear 'b1' must be a positive number"):
            dashboard.InsightSettings.parse(None, {"b1": km})


@pytest.fixture
def variables() -> Iterator[None]:
    from prefect.client.orchestration import get_client

    yield
    with get_client(sync_client=True) as client:
        for name in (dashboard.PRIVACY_RADIUS_VARIABLE, dashboard.GEAR_THRESHOLDS_VARIABLE):
            try:
                client.delete_variable_by_name(name)
            except Exception:  # noqa: BLE001, S110 - absent already
                pass


def test_settings_come_from_prefect_variables(variables: None) -> None:
    from tasks.state.variables import write_variable

    assert dashboard.read_settings() == dashboard.InsightSettings()
    write_variable(dashboard.PRIVACY_RADIUS_VARIABLE, 350)
    write_variable(dashboard.GEAR_THRESHOLDS_VARIABLE, {"b1": 5000})
    assert dashboard.read_settings() == dashboard.InsightSettings(350.0, {"b1": 5000.0})
    write_variable(dashboard.PRIVACY_RADIUS_VARIABLE, "off")
    with pytest.raises(ValueError, match="strava_privacy_radius_m"):
        dashboard.read_settings()


@pytest.mark.parametrize("radius", [0, 200])
def test_jumps_are_not_drawn(radius: float) -> None:
    """A step of more than 20 km (a GPS jump, a flight) is cut out, not sampled metre by metre."""
    far = (-33.86882, 151.20929)
    jumpy = [*loop_from(offset(0, 0)), far, offset(100, 100)] * 500  # 1,000 jumps across the globe
    pieces, _ = heatmap.apply_privacy([jumpy, loop_from(offset(30, 30))], radius)
    steps = [metres(a, b) for piece in pieces for a, b in zip(piece, piece[1:], strict=False)]
    assert steps and max(steps) <= heatmap.MAX_STEP_M
    shown = heatmap.render_heatmap([encode_polyline(jumpy)], radius).as_dict()
    assert shown["tracks"] == 1 and shown["cells"]
