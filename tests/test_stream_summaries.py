"""Per-activity stream summaries kept between runs: the same curves and heatmap, no sample read again."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from prefect.filesystems import LocalFileSystem

from tasks import warehouse as wh
from tasks.insight import curves, dashboard, heatmap
from tasks.insight.curves import ActivitySummary
from tasks.lake import Lake
from tests.conftest import EMULATOR_END
from tests.insight_support import emulator_warehouse, fill_enrichment
from tests.test_insight_models import load
from tests.test_models import engine  # noqa: F401 - the engine fixture (DuckDB, PostgreSQL)

__all__ = ["engine"]

REFERENCE = date(2024, 3, 31)


class MemoryStore:
    """A summary store in memory (the lake's is tested below): counts its writes."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[int, ActivitySummary]] = {}
        self.kept_tracks: dict[str, dict[int, list[heatmap.Point]]] = {}
        self.puts = 0

    def get(self, version: str) -> dict[int, ActivitySummary] | None:
        kept = self.kept.get(version)
        return None if kept is None else {k: ActivitySummary.from_json(v.as_json()) for k, v in kept.items()}

    def tracks(self, version: str) -> dict[int, list[heatmap.Point]] | None:
        return self.kept_tracks.get(version)

    def put(self, version: str, summaries: Mapping[int, ActivitySummary]) -> None:
        self.puts += 1
        self.kept = {version: {k: ActivitySummary.from_json(v.as_json()) for k, v in summaries.items()}}
        self.kept_tracks = {version: {k: list(v.track) for k, v in summaries.items() if v.track}}


@pytest.fixture
def samples_read(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The activity of every samples read (None: all the athlete's samples); the real read runs."""
    calls: list[int | None] = []
    real = curves._samples_table  # noqa: SLF001

    def counted(conn: sa.Connection, athlete_id: int, activity_id: int | None = None) -> pa.Table:
        calls.append(activity_id)
        return real(conn, athlete_id, activity_id)

    monkeypatch.setattr(curves, "_samples_table", counted)
    return calls


def direct(conn: sa.Connection, athlete: int, reference: date) -> tuple[dict[str, Any], list[list[heatmap.Point]]]:
    """Today's computation from every sample: the curves, and the heatmap's tracks in order."""
    tracks: dict[int, list[heatmap.Point]] = {}
    result = curves.curves(dashboard._keeping_tracks(curves.read_streams(conn, athlete), tracks), reference)  # noqa: SLF001
    return result, list(tracks.values())


def test_kept_summaries_give_the_same_curves_per_athlete(engine: sa.Engine, samples_read: list[int | None]) -> None:
    """Athletes 5 and 6: curves from kept summaries equal those from the samples; each keeps only its own."""
    load(engine, 5)
    load(engine, 6)
    stores = {5: MemoryStore(), 6: MemoryStore()}
    with engine.connect() as conn:
        for athlete, store in stores.items():
            expected, expected_tracks = direct(conn, athlete, REFERENCE)
            samples_read.clear()
            entries, made = curves.read_summaries(conn, athlete, store)
            assert samples_read == [a for a in made]  # two activities: read one by one
            assert curves.summary_curves(entries, made, REFERENCE) == expected
            samples_read.clear()
            entries, kept = curves.read_summaries(conn, athlete, store)  # the next run
            assert samples_read == [] and store.puts == 1
            assert curves.summary_curves(entries, kept, REFERENCE) == expected
            assert all(not s.track for s in kept.values())  # read back without: read when the heatmap is drawn
            assert curves.load_tracks(conn, athlete, entries, kept, store) == expected_tracks
            assert samples_read == []
    assert sorted(stores[5].kept[curves.summary_version()]) == [500_001, 500_002]
    assert not set(stores[5].kept[curves.summary_version()]) & set(stores[6].kept[curves.summary_version()])
    assert curves.summary_curves(entries, kept, REFERENCE)["channels"]["watts"]["all"][8] == 330.0  # 6: 1 h at 330 W


def test_new_samples_and_deleted_activities(engine: sa.Engine, samples_read: list[int | None]) -> None:
    """A changed sample count is summarised again alone; a deleted activity's summary goes; 6 is untouched."""
    load(engine, 5)
    load(engine, 6)
    store, other = MemoryStore(), MemoryStore()
    with engine.connect() as conn:
        curves.read_summaries(conn, 5, store)
        curves.read_summaries(conn, 6, other)
    before6 = other.kept
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM strava_activity_streams WHERE athlete_id = 5 AND activity_id = 500001 "
                "AND sample_index = (SELECT MAX(sample_index) FROM strava_activity_streams "
                "WHERE athlete_id = 5 AND activity_id = 500001)"
            )
        )
    samples_read.clear()
    with engine.connect() as conn:
        entries, kept = curves.read_summaries(conn, 5, store)
        assert samples_read == [500_001]
        expected, _ = direct(conn, 5, REFERENCE)
    assert curves.summary_curves(entries, kept, REFERENCE) == expected
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE strava_activity_data SET deleted_at = CURRENT_TIMESTAMP WHERE athlete_id = 5 AND id = 500002"
            )
        )
    samples_read.clear()
    with engine.connect() as conn:
        entries, kept = curves.read_summaries(conn, 5, store)
        curves.read_summaries(conn, 6, other)
        assert samples_read == []
        expected, _ = direct(conn, 5, REFERENCE)
    assert [e.activity_id for e in entries] == [500_001] and list(store.kept[curves.summary_version()]) == [500_001]
    assert curves.summary_curves(entries, kept, REFERENCE) == expected
    assert other.kept == before6 and other.puts == 1


def test_a_sport_changed_later_changes_the_pace_curve() -> None:
    """Speed bests are kept whatever the sport; the curve takes them for runs only, by today's sport."""
    run = curves.ActivityStreams(1, date(2024, 3, 1), "Run", list(range(10)), [None] * 10, [None] * 10, [4.0] * 10)
    summary = curves.summarise(run, 10)
    as_run = curves.StreamEntry(1, date(2024, 3, 1), "Run", 10)
    as_ride = curves.StreamEntry(1, date(2024, 3, 1), "Ride", 10)
    assert curves.summary_curves([as_run], {1: summary}, REFERENCE) == curves.curves([run], REFERENCE)
    run.sport_type = "Ride"
    assert curves.summary_curves([as_ride], {1: summary}, REFERENCE) == curves.curves([run], REFERENCE)
    assert curves.summary_curves([as_ride], {1: summary}, REFERENCE)["channels"]["speed"]["all"][0] is None


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sa.Engine, int]]:
    """The emulator's athlete (120 activities), the newest 30 with streams."""
    engine, emu = emulator_warehouse(tmp_path_factory.mktemp("sums") / "w.duckdb", activities=120, build=False)
    newest = sorted(emu.activities, key=lambda a: a["start_date"], reverse=True)[:30]
    fill_enrichment(engine, emu, [a["id"] for a in newest])
    yield engine, int(emu.athlete["id"])
    engine.dispose()


def test_an_unchanged_athlete_reads_no_sample_on_the_next_dashboard(
    streamed: tuple[sa.Engine, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, athlete = streamed
    lake = Lake(LocalFileSystem(basepath=str(tmp_path)))
    settings = dashboard.InsightSettings()
    at = EMULATOR_END + timedelta(days=1)

    def build() -> dict[str, Any]:
        return dashboard.collect_data(
            engine,
            [],
            athlete_id=athlete,
            generated_at=at,
            settings=settings,
            heatmap_store=dashboard.LakeHeatmapStore(lake, athlete),
            summary_store=dashboard.LakeSummaryStore(lake, athlete),
        )

    def first_kept(activity_id: int) -> bool:
        return bool(dashboard.LakeSummaryStore(lake, athlete).get(curves.summary_version())[activity_id].points)  # type: ignore[index]

    plain = dashboard.collect_data(engine, [], athlete_id=athlete, generated_at=at, settings=settings)
    first = build()
    with engine.connect() as conn:
        expected, tracks = direct(conn, athlete, at.date())
        with_tracks = {e.activity_id for e in curves.read_entries(conn, athlete) if first_kept(e.activity_id)}
        found = conn.execute(sa.text(wh.read_sql("dashboard/activity_routes.sql")), {"athlete_id": athlete})
        polylines = [str(r[1]) for r in found if int(r[0]) not in with_tracks]
    assert first == plain and first["curves"] == expected and first["curves"]["activities"] == 28  # 2: no channel
    drawn = heatmap.render_heatmap(polylines, settings.privacy_radius_m, tracks_from_streams=tracks).as_dict()
    assert first["heatmap"] == drawn and drawn["fromStreams"] == len(tracks) == 25  # 5 indoor: no track
    kept = json.loads(
        gzip.decompress((tmp_path / "dashboards" / f"athlete_id={athlete}" / "stream_summaries.json.gz").read_bytes())
    )
    assert len(kept["activities"]) == 30

    real_samples = curves._samples_table  # noqa: SLF001

    def no_samples(*args: Any, **kwargs: Any) -> pa.Table:
        raise AssertionError("a stream sample was read")

    monkeypatch.setattr(curves, "_samples_table", no_samples)
    real_render = heatmap.render_heatmap
    monkeypatch.setattr(heatmap, "render_heatmap", no_samples)
    assert build() == first

    # Another privacy radius: the heatmap is drawn again from the kept tracks, still no sample read.
    monkeypatch.setattr(heatmap, "render_heatmap", real_render)
    settings = dashboard.InsightSettings(150.0)
    monkeypatch.setattr(curves, "_samples_table", real_samples)
    plain = dashboard.collect_data(engine, [], athlete_id=athlete, generated_at=at, settings=settings)
    monkeypatch.setattr(curves, "_samples_table", no_samples)
    again = build()
    assert again == plain and again["heatmap"] != first["heatmap"] and again["curves"] == first["curves"]
