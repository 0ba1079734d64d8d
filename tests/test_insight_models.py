"""The enrichment models (42_ onward) on known data: best efforts, segment PRs, time in zones, load, CTL.

A small history of athlete 5, whose figures are worked out by hand below, is built on DuckDB and
PostgreSQL with athlete 6 beside it (other values, other zones, the same days): every figure of
athlete 5 must come out as computed by hand, and the same as when athlete 5 is alone.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tasks import warehouse as wh
from tasks.entities import catalog
from tasks.warehouse import schema
from tests.test_models import as_date, build_all, engine, fetch  # noqa: F401 - the engine fixture

__all__ = ["engine"]

FTP_W = {5: 200, 6: 300}
"""Each athlete's FTP: their power zone 4 ends at 1.05 x FTP (210 W, 315 W)."""
HR_ZONES = {5: (0, 120, 150, 170, 185), 6: (0, 100, 130, 160, 180)}


def _activity(athlete: int, activity_id: int, local: str, sport: str, **extra: Any) -> dict[str, Any]:
    start = datetime.fromisoformat(local)
    return {
        "id": activity_id,
        "athlete_id": athlete,
        "name": f"{sport} {activity_id}",
        "sport_type": sport,
        "distance": 10_000.0,
        "moving_time": 3600,
        "start_date": (start - timedelta(hours=1)).replace(tzinfo=UTC),
        "start_date_local": start,
        "deleted_at": None,
        **extra,
    }


def _samples(athlete: int, activity_id: int, times: list[int], **channels: list[Any]) -> list[dict[str, Any]]:
    return [
        {"athlete_id": athlete, "activity_id": activity_id, "sample_index": i, "time": t}
        | {k: v[i] for k, v in channels.items()}
        for i, t in enumerate(times)
    ]


def history(athlete: int) -> dict[str, list[dict[str, Any]]]:
    """One athlete's activities, streams, zones, best and segment efforts (ids offset per athlete).

    Athlete 5 (athlete 6 has other watts and heart rates on the same days):
    - A, Mon 2024-03-04, ride: 3600 samples a second at 200 W and 140 bpm; moving 3600 s.
    - E, Mon 2024-03-04, run without streams: suffer_score 25.
    - B, Wed 2024-03-06, run: 150 bpm at 0..899 s, a 61 s pause, 960..1859 s, then one sample
      at 190 bpm (time 1860: the athlete's highest heart rate, counted nowhere).
    - C, Sat 2024-03-09, swim without streams: suffer_score 40.
    - D, Mon 2024-03-11, yoga: no load (the newest activity: the CTL series ends that day).
    """
    base = 100_000 * athlete
    watts, bpm = (200, 140) if athlete == 5 else (330, 160)
    activities = [
        _activity(athlete, base + 1, "2024-03-04 07:00", "Ride"),
        _activity(athlete, base + 5, "2024-03-04 18:00", "Run", suffer_score=25.0),
        _activity(athlete, base + 2, "2024-03-06 07:00", "Run"),
        _activity(athlete, base + 3, "2024-03-09 07:00", "Swim", suffer_score=40.0),
        _activity(athlete, base + 4, "2024-03-11 07:00", "Yoga"),
        # best and segment efforts' activities
        _activity(athlete, base + 11, "2024-01-01 08:00", "Run"),
        _activity(athlete, base + 12, "2024-02-01 08:00", "Run"),
        _activity(athlete, base + 13, "2024-03-01 08:00", "Run"),
        _activity(athlete, base + 14, "2024-03-02 08:00", "Run"),
        _activity(athlete, base + 15, "2024-02-15 08:00", "Run", deleted_at=datetime(2024, 5, 1, tzinfo=UTC)),
    ]
    times_b = [*range(0, 900), *range(960, 1861)]
    streams = [
        *_samples(athlete, base + 1, list(range(3600)), watts=[watts] * 3600, heartrate=[bpm] * 3600),
        *_samples(athlete, base + 2, times_b, heartrate=[150 + (athlete - 5) * 5] * (len(times_b) - 1) + [190]),
    ]
    ftp = FTP_W[athlete]
    power_edges = [0] + [round(ftp * s) for s in (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)]
    zones = [
        {"athlete_id": athlete, "kind": "power", "zone": i + 1, "min": lo, "max": hi}
        for i, (lo, hi) in enumerate(zip(power_edges, [*power_edges[1:], None], strict=True))
    ]
    edges = HR_ZONES[athlete]
    zones += [
        {"athlete_id": athlete, "kind": "heart_rate", "zone": i + 1, "min": lo, "max": hi}
        for i, (lo, hi) in enumerate(zip(edges, [*edges[1:], None], strict=True))
    ]
    shift = 0 if athlete == 5 else -30

    def best(n: int, activity: int, name: str, distance: float, seconds: int) -> dict[str, Any]:
        return {
            "id": base + 500 + n,
            "activity_id": base + activity,
            "athlete_id": athlete,
            "name": name,
            "distance": distance,
            "elapsed_time": seconds + shift,
            "moving_time": seconds + shift,
        }

    best_efforts = [
        best(1, 11, "5k", 5000.0, 1500),
        best(2, 11, "1k", 1000.0, 280),
        best(3, 12, "5k", 5000.0, 1550),  # slower: no record
        best(4, 13, "5k", 5000.0, 1450),  # a record, by 50 s
        best(5, 13, "1k", 1000.0, 300),
        best(6, 14, "5k", 5000.0, 1450),  # equal: no record
        best(7, 15, "5k", 5000.0, 1000),  # a deleted activity: counts nowhere
    ]

    def effort(n: int, activity: int, segment: int, seconds: int, start: str, hidden: bool = False) -> dict[str, Any]:
        return {
            "id": base + 700 + n,
            "activity_id": base + activity,
            "athlete_id": athlete,
            "segment_id": segment,
            "segment_name": f"Hill {segment} </b>",
            "segment_distance": 800.0,
            "elapsed_time": seconds + shift,
            "start_date": datetime.fromisoformat(start).replace(tzinfo=UTC),
            "hidden": hidden,
        }

    segment_efforts = [
        effort(1, 11, 77, 300, "2024-01-01 07:10"),
        effort(2, 12, 77, 290, "2024-02-01 07:10"),  # PR
        effort(3, 12, 77, 295, "2024-02-01 07:40"),  # same activity, slower
        effort(4, 13, 77, 200, "2024-03-01 07:10", hidden=True),  # hidden by Strava: left out
        effort(5, 13, 77, 280, "2024-03-01 07:20"),  # PR
        effort(6, 14, 78, 100, "2024-03-02 07:10"),
    ]
    return {
        schema.ACTIVITY_TABLE: activities,
        catalog.STREAMS.table: streams,
        catalog.ZONES.table: zones,
        catalog.BEST_EFFORTS.table: best_efforts,
        catalog.SEGMENT_EFFORTS.table: segment_efforts,
    }


def load(engine: sa.Engine, athlete: int) -> None:
    wh.ensure_tables(engine)
    metadata = sa.MetaData()
    tables = {schema.ACTIVITY_TABLE: schema.activity_table(metadata)}
    for spec in (catalog.STREAMS, catalog.ZONES, catalog.BEST_EFFORTS, catalog.SEGMENT_EFFORTS):
        tables[spec.table] = spec.table_of(metadata)
    metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        for name, rows in history(athlete).items():
            columns = [c.name for c in tables[name].columns]
            conn.execute(tables[name].insert(), [{c: r.get(c) for c in columns} for r in rows])


MODELS = ("best_effort_progression", "segment_pr_history", "time_in_zones_weekly", "activity_load", "fitness_daily")


@pytest.fixture
def alone(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Athlete 5's rows of each model when built alone."""
    load(engine, 5)
    build_all(engine)
    return {name: fetch(engine, name) for name in MODELS}


@pytest.fixture
def both(engine: sa.Engine, alone: dict[str, list[dict[str, Any]]]) -> sa.Engine:
    load(engine, 6)
    build_all(engine)
    return engine


def mine(engine: sa.Engine, table: str, athlete: int = 5) -> list[dict[str, Any]]:
    return [r for r in fetch(engine, table) if r["athlete_id"] == athlete]


def test_another_athlete_changes_none_of_the_rows(both: sa.Engine, alone: dict[str, list[dict[str, Any]]]) -> None:
    for name in MODELS:
        key = lambda r: repr(list(r.values()))  # noqa: E731
        assert sorted(mine(both, name), key=key) == sorted(alone[name], key=key), name
        assert mine(both, name, 6), f"{name}: athlete 6 has rows too"


def test_best_effort_progression_by_hand(both: sa.Engine) -> None:
    got = {(r["effort_name"], r["pr_number"]): r for r in mine(both, "best_effort_progression")}
    assert set(got) == {("5k", 1), ("5k", 2), ("1k", 1)}
    first, second, one_k = got[("5k", 1)], got[("5k", 2)], got[("1k", 1)]
    assert (first["elapsed_s"], first["previous_best_s"], first["is_current"]) == (1500, None, False)
    assert (second["elapsed_s"], second["previous_best_s"], second["improvement_s"]) == (1450, 1500, 50)
    assert second["is_current"] and as_date(second["activity_date"]) == date(2024, 3, 1)
    assert second["effort_count"] == 4  # the deleted activity's effort is not one
    assert float(second["pace_min_per_km"]) == pytest.approx(1450 / 5 / 60, abs=0.005)
    assert (one_k["elapsed_s"], one_k["is_current"], one_k["effort_count"]) == (280, True, 2)
    assert [r["effort_name"] for r in mine(both, "best_effort_progression")][0] == "1k"  # shortest first


def test_segment_pr_history_by_hand(both: sa.Engine) -> None:
    got = {(r["segment_id"], r["pr_number"]): r for r in mine(both, "segment_pr_history")}
    assert set(got) == {(77, 1), (77, 2), (77, 3), (78, 1)}
    assert [got[(77, n)]["elapsed_s"] for n in (1, 2, 3)] == [300, 290, 280]
    assert [got[(77, n)]["improvement_s"] for n in (1, 2, 3)] == [None, 10, 10]
    assert got[(77, 3)]["is_current"] and not got[(77, 2)]["is_current"]
    assert got[(77, 1)]["effort_count"] == 4  # the hidden effort is left out
    assert got[(77, 1)]["segment_name"] == "Hill 77 </b>"


def test_time_in_zones_by_hand(both: sa.Engine) -> None:
    """A: 3599 timed seconds (the last sample lasts nothing) at 140 bpm (zone 2) and 200 W (zone 4);
    B: 1799 s at 150 bpm (zone 3: min <= value < max); its 61 s pause and its last sample count nothing."""
    got = {(r["kind"], r["zone"]): r for r in mine(both, "time_in_zones_weekly")}
    assert {as_date(r["week_start"]) for r in got.values()} == {date(2024, 3, 4)}
    assert {k: r["seconds"] for k, r in got.items()} == {
        ("heartrate", 2): 3599,
        ("heartrate", 3): 1799,
        ("power", 4): 3599,
    }
    assert float(got[("heartrate", 2)]["share_pct"]) == pytest.approx(100 * 3599 / 5398, abs=0.05)
    assert float(got[("power", 4)]["share_pct"]) == 100.0
    assert (got[("power", 4)]["zone_min"], got[("power", 4)]["zone_max"]) == (180, 210)


def trimp(minutes: float, bpm: float, hr_max: float, rest: float = 60.0) -> float:
    r = (bpm - rest) / (hr_max - rest)
    return minutes * r * 0.64 * math.exp(1.92 * r)


def test_activity_load_by_hand(both: sa.Engine) -> None:
    """A: NP 200 W, FTP 210 / 1.05 = 200 W -> IF 1, TSS = 3600 * 200^2 / (200^2 * 36) = 100.
    B: TRIMP of 1799 s at 150 bpm with HRmax 190 (its last sample) and rest 60. C, E: suffer scores."""
    got = {r["activity_id"] % 100_000: r for r in mine(both, "activity_load")}
    assert set(got) == {1, 2, 3, 5}  # D (yoga) has no load
    assert (got[1]["formula"], float(got[1]["training_load"])) == ("power", 100.0)
    assert (float(got[1]["normalized_power"]), float(got[1]["intensity_factor"]), float(got[1]["ftp_w"])) == (
        200.0,
        1.0,
        200.0,
    )
    assert got[2]["formula"] == "heart_rate"
    assert float(got[2]["training_load"]) == pytest.approx(trimp(1799 / 60, 150, 190), abs=0.006)
    assert float(got[2]["training_load"]) == pytest.approx(50.19, abs=0.01)  # r = 90/130: 29.98 min * 1.674
    assert (got[3]["formula"], float(got[3]["training_load"])) == ("relative_effort", 40.0)
    assert (got[5]["formula"], float(got[5]["training_load"])) == ("relative_effort", 25.0)


def test_fitness_fatigue_form_by_hand(both: sa.Engine) -> None:
    """CTL(d) = CTL(d-1) + (load - CTL(d-1)) / 42, ATL with 7, TSB(d) = CTL(d-1) - ATL(d-1).

    Loads: Mon 4th 125 (A 100 power + E 25 relative effort: 'mixed'), Wed 6th B's TRIMP,
    Sat 9th 40, then nothing to Mon 11th (the newest activity).
    Mon: CTL 125/42 = 2.98, ATL 125/7 = 17.86, TSB 0; Tue: CTL 2.98 * 41/42 = 2.91, ATL 15.31, TSB -14.88.
    """
    rows = mine(both, "fitness_daily")
    days = [as_date(r["fitness_date"]) for r in rows]
    assert days == [date(2024, 3, 4) + timedelta(days=k) for k in range(8)]
    b_load = round(trimp(1799 / 60, 150, 190), 2)
    loads = {0: 125.0, 2: b_load, 5: 40.0}
    ctl = atl = 0.0
    for k, row in enumerate(rows):
        tsb = ctl - atl
        load = loads.get(k, 0.0)
        ctl += (load - ctl) / 42
        atl += (load - atl) / 7
        assert float(row["training_load"]) == pytest.approx(load, abs=0.005), k
        assert float(row["ctl"]) == pytest.approx(ctl, abs=0.006), k
        assert float(row["atl"]) == pytest.approx(atl, abs=0.006), k
        assert float(row["tsb"]) == pytest.approx(tsb, abs=0.011), k
    assert [float(rows[k][c]) for k in (0, 1) for c in ("ctl", "atl", "tsb")] == [2.98, 17.86, 0.0, 2.91, 15.31, -14.88]
    formulas = [r["formula"] for r in rows]
    assert formulas == ["mixed", None, "heart_rate", None, None, "relative_effort", None, None]
    assert (rows[0]["power_activities"], rows[0]["relative_effort_activities"]) == (1, 1)


def test_models_build_without_the_enrichment_tables(engine: sa.Engine) -> None:
    """A warehouse the enrichment has not reached: the tables a model requires are created empty."""
    wh.ensure_tables(engine)
    counts = build_all(engine)
    assert all(counts[name] == 0 for name in MODELS), counts
    assert sa.inspect(engine).has_table(catalog.STREAMS.table)


def test_a_model_requiring_an_unknown_table_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="does not declare"):
        wh.models.ensure_required_tables(engine, ["strava_no_such_table"])
