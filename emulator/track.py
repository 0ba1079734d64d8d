"""GPS tracks that follow roads: straight blocks on a street grid with turns, stdlib only.

A route is a path on a grid rotated by a random angle: blocks of 120 to 700 metres (longer on
long routes), a turn
left or right (or straight on) at each corner, never back the way it came, and a walk home
along the grid when the distance left is what it takes to get back. The summary polyline
encodes the corners (with a vertex at least every 250 m); the latlng stream interpolates along
the same corners once a second, with a metre or two of GPS noise.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence

__all__ = ["METRES_PER_DEGREE", "grid_route", "path_lengths", "point_at"]

METRES_PER_DEGREE = 111_320.0
_MAX_GAP = 250.0  # metres between polyline vertices on a long straight (less on short routes)


def grid_route(rng: random.Random, lat: float, lng: float, metres: float) -> list[tuple[float, float]]:
    """A route of about ``metres`` on a street grid that starts and ends at (lat, lng)."""
    metres = max(metres, 400.0)
    angle = rng.uniform(0, math.pi / 2)
    axes = [(math.cos(angle + k * math.pi / 2), math.sin(angle + k * math.pi / 2)) for k in range(4)]
    x = y = 0.0  # metres east and north of the start
    corners = [(0.0, 0.0)]
    left = metres
    heading = rng.randrange(4)
    longer = max(1.0, math.sqrt(metres / 15_000))  # long rides meet longer straights

    def home(px: float, py: float) -> float:
        # grid (Manhattan) distance back to the start, in the rotated frame
        u = px * axes[0][0] + py * axes[0][1]
        v = px * axes[1][0] + py * axes[1][1]
        return abs(u) + abs(v)

    while left - home(x, y) > 150.0:
        choices = [heading, (heading + 1) % 4, (heading + 3) % 4]
        rng.shuffle(choices)
        block = rng.uniform(120.0, 700.0) * longer
        for direction in choices:
            dx, dy = axes[direction]
            step = min(block, (left - home(x, y)) / 2)
            nx, ny = x + dx * step, y + dy * step
            if left - step >= home(nx, ny):
                x, y, left, heading = nx, ny, left - step, direction
                corners.append((x, y))
                break
        else:
            break
    # home along the grid: first one axis, then the other
    u = x * axes[0][0] + y * axes[0][1]
    v = x * axes[1][0] + y * axes[1][1]
    x -= u * axes[0][0]
    y -= u * axes[0][1]
    corners.append((x, y))
    corners.append((0.0, 0.0))
    del v
    m_lng = METRES_PER_DEGREE * math.cos(math.radians(lat))
    points: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:], strict=False):
        gap = math.hypot(x1 - x0, y1 - y0)
        pieces = max(1, math.ceil(gap / min(_MAX_GAP, metres / 16)))
        for k in range(pieces):
            t = k / pieces
            points.append((lat + (y0 + (y1 - y0) * t) / METRES_PER_DEGREE, lng + (x0 + (x1 - x0) * t) / m_lng))
    points.append((lat, lng))
    return [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]


def path_lengths(points: Sequence[tuple[float, float]]) -> list[float]:
    """Cumulative length in metres at each vertex (equirectangular; fine at city scale)."""
    out = [0.0]
    for (lat0, lng0), (lat1, lng1) in zip(points, points[1:], strict=False):
        m_lng = METRES_PER_DEGREE * math.cos(math.radians((lat0 + lat1) / 2))
        out.append(out[-1] + math.hypot((lat1 - lat0) * METRES_PER_DEGREE, (lng1 - lng0) * m_lng))
    return out


def point_at(points: Sequence[tuple[float, float]], lengths: Sequence[float], fraction: float) -> tuple[float, float]:
    """The point at ``fraction`` (0 to 1) of the path's length."""
    total = lengths[-1]
    if total <= 0 or len(points) == 1:
        return points[0]
    target = min(max(fraction, 0.0), 1.0) * total
    i = min(len(points) - 2, max(0, bisect_right(lengths, target) - 1))
    span = lengths[i + 1] - lengths[i]
    t = 0.0 if span <= 0 else (target - lengths[i]) / span
    (lat0, lng0), (lat1, lng1) = points[i], points[i + 1]
    return lat0 + (lat1 - lat0) * t, lng0 + (lng1 - lng0) * t
