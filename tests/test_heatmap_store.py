"""The heatmap kept in the lake between runs: rendered once for the same routes, again for any change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.filesystems import LocalFileSystem

from emulator.athlete import encode_polyline
from tasks.insight import dashboard, heatmap
from tasks.lake import Lake
from tests.test_heatmap import HOME, loop_from, offset, through_home


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the heatmap's renders (the real one runs)."""
    calls: list[int] = []
    real = heatmap.render_heatmap

    def counted(
        polylines: Any, radius_m: float = heatmap.PRIVACY_RADIUS_M, *args: Any, **kwargs: Any
    ) -> heatmap.Heatmap:
        calls.append(1)
        return real(polylines, radius_m, *args, **kwargs)

    monkeypatch.setattr(heatmap, "render_heatmap", counted)
    return calls


def routes() -> list[str | None]:
    return [encode_polyline(loop_from(HOME)), encode_polyline(through_home()), None, encode_polyline(loop_from(HOME))]


def test_the_same_routes_are_rendered_once_across_runs(tmp_path: Path, renders: list[int]) -> None:
    lake = Lake(LocalFileSystem(basepath=str(tmp_path)))
    expected = json.loads(json.dumps(heatmap.render_heatmap(routes(), 200.0).as_dict()))
    renders.clear()

    first = heatmap.heatmap_data(routes(), 200.0, dashboard.LakeHeatmapStore(lake, 7))
    assert renders == [1] and first == expected
    stored = json.loads((tmp_path / "dashboards" / "athlete_id=7" / "heatmap.json").read_text())
    assert stored["key"] == heatmap.inputs_key(routes(), 200.0) and stored["heatmap"] == expected

    # The next run (a new store over the same lake): read back, not rendered.
    again = heatmap.heatmap_data(routes(), 200.0, dashboard.LakeHeatmapStore(lake, 7))
    assert renders == [1] and again == expected
    assert json.dumps(again, sort_keys=True) == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r, radius: (r, 150.0), id="radius"),
        pytest.param(
            lambda r, radius: ([*r, encode_polyline([offset(0, 0), offset(900, 900)])], radius), id="one more"
        ),
        pytest.param(lambda r, radius: (r[:-1], radius), id="one fewer"),
        pytest.param(lambda r, radius: ([r[1], r[0], *r[2:]], radius), id="order"),
    ],
)
def test_any_change_of_the_routes_or_the_radius_renders_again(tmp_path: Path, renders: list[int], change: Any) -> None:
    store = dashboard.LakeHeatmapStore(Lake(LocalFileSystem(basepath=str(tmp_path))), 7)
    heatmap.heatmap_data(routes(), 200.0, store)
    polylines, radius = change(routes(), 200.0)
    changed = heatmap.heatmap_data(polylines, radius, store)
    assert renders == [1, 1]
    assert changed == json.loads(json.dumps(heatmap.render_heatmap(polylines, radius).as_dict()))


def test_an_unreadable_or_foreign_file_is_rendered_again(tmp_path: Path, renders: list[int]) -> None:
    lake = Lake(LocalFileSystem(basepath=str(tmp_path)))
    store = dashboard.LakeHeatmapStore(lake, 7)
    path = tmp_path / "dashboards" / "athlete_id=7" / "heatmap.json"
    path.parent.mkdir(parents=True)
    for body in ("{not json", json.dumps({"key": heatmap.inputs_key(routes(), 200.0), "heatmap": [1, 2]})):
        path.write_text(body)
        assert heatmap.heatmap_data(routes(), 200.0, store)["tracks"] == 3
    assert len(renders) == 2
    assert json.loads(path.read_text())["key"] == heatmap.inputs_key(routes(), 200.0)  # rewritten
    other = dashboard.LakeHeatmapStore(lake, 8)  # another athlete's routes are kept apart
    heatmap.heatmap_data(routes(), 200.0, other)
    assert len(renders) == 3


def test_without_a_store_it_renders_every_time(renders: list[int]) -> None:
    heatmap.heatmap_data(routes(), 200.0)
    heatmap.heatmap_data(routes(), 200.0)
    assert renders == [1, 1]
