"""Flattening by spec: each resource's JSON into the rows of its entities, every value through its column's rule.

Known JSON, written here, and the emulator's own record (in process: no HTTP needed to cut it).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from emulator import StravaEmulator
from tasks.entities.catalog import DETAIL, GEAR, LAPS, SPECS, STATS, STREAMS, ZONES
from tasks.entities.flatten import (
    api_columns,
    detail_rows,
    flatten,
    gear_row,
    row_hash,
    stats_rows,
    stream_columns,
    stream_rows,
    zones_rows,
)

AT = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
ATHLETE = 77
ACTIVITY = 9_000_000_123


def lap(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": 1000 + number,
        "activity": {"id": ACTIVITY},
        "athlete": {"id": ATHLETE},
        "lap_index": number,
        "split": number,
        "name": f"Lap {number}",
        "elapsed_time": 300,
        "moving_time": 290,
        "distance": 1000.0,
        "start_date": "2026-11-01T08:00:00Z",
        "start_date_local": "2026-11-01T09:00:00Z",
        "start_index": 0,
        "end_index": 300,
        "average_heartrate": 150.5,
        **fields,
    }


def a_detail(**fields: Any) -> dict[str, Any]:
    return {
        "id": ACTIVITY,
        "athlete": {"id": ATHLETE, "resource_state": 1},
        "description": "Legs felt good today.",
        "calories": 812.5,
        "device_name": "Garmin fēnix 7",
        "gear_id": "g42",
        "gear": {"id": "g42", "name": "Pegasus"},
        "photos": {"count": 2},
        "total_photo_count": 2,
        "map": {"id": "a1", "polyline": "abc", "summary_polyline": "ab"},
        "has_heartrate": True,
        "laps": [lap(1), lap(2)],
        "splits_metric": [
            {"split": 1, "distance": 1000.0, "elapsed_time": 301, "moving_time": 290, "elevation_difference": -2.5},
            {"split": 2, "distance": 1000.0, "elapsed_time": 299, "moving_time": 299, "elevation_difference": 1.0},
        ],
        "splits_standard": [{"split": 1, "distance": 1609.3, "elapsed_time": 480, "moving_time": 470}],
        "best_efforts": [
            {"id": 5001, "name": "1k", "activity": {"id": ACTIVITY}, "athlete": {"id": ATHLETE}, "pr_rank": 1},
        ],
        "segment_efforts": [
            {
                "id": 7001,
                "activity": {"id": ACTIVITY},
                "athlete": {"id": ATHLETE},
                "segment": {"id": 31, "name": "High Street Hill", "average_grade": 4.5, "private": False},
                "elapsed_time": 120,
                "pr_rank": None,
                "kom_rank": 3,
            }
        ],
        **fields,
    }


# --- flatten ---------------------------------------------------------------------------------


def test_flatten_keeps_fitting_values_and_lists_the_rest_as_null() -> None:
    item = lap(1, average_heartrate=1e20, max_heartrate=float("nan"), moving_time="290", device_watts=1)
    item.update({"__activity_id": ACTIVITY, "__athlete_id": ATHLETE, "__extracted_at": AT})
    row, unfit = flatten(LAPS, item)
    assert list(row) == [c.name for c in LAPS.columns]  # every column, in the table's order
    assert row["id"] == 1001 and row["activity_id"] == ACTIVITY and row["athlete_id"] == ATHLETE
    assert row["elapsed_time"] == 300 and row["distance"] == 1000.0 and row["extracted_at"] == AT
    assert row["start_date"] == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert row["start_date_local"] == datetime(2026, 11, 1, 9, 0)  # local time: naive
    # 10^20 beats a minute, NaN, a number sent as text, 1 for a boolean: NULL, and named.
    assert row["average_heartrate"] is None and row["max_heartrate"] is None
    assert row["moving_time"] is None and row["device_watts"] is None
    assert sorted(unfit) == ["average_heartrate", "device_watts", "max_heartrate", "moving_time"]
    assert row["average_cadence"] is None and "average_cadence" not in unfit  # not sent: NULL, not unfit


def test_the_row_hash_covers_the_api_columns_only() -> None:
    assert "extracted_at" not in api_columns(DETAIL) and "row_hash" not in api_columns(DETAIL)
    assert "athlete_id" not in api_columns(GEAR) and "athlete_id" in api_columns(DETAIL)  # context vs API
    first = detail_rows(a_detail(), ATHLETE, AT).rows[DETAIL.name][0]
    later = detail_rows(a_detail(), ATHLETE, datetime(2027, 1, 1, tzinfo=UTC)).rows[DETAIL.name][0]
    changed = detail_rows(a_detail(description="Windy"), ATHLETE, AT).rows[DETAIL.name][0]
    assert first["row_hash"] == later["row_hash"] == row_hash(DETAIL, first)  # read later: same values, same hash
    assert changed["row_hash"] != first["row_hash"]
    assert len(first["row_hash"]) == 32


# --- detail ----------------------------------------------------------------------------------


def test_a_detail_becomes_its_row_and_its_childrens_rows_with_the_counts_it_declares() -> None:
    out = detail_rows(a_detail(), ATHLETE, AT)
    assert out.rejected == [] and not out.unfit
    (detail,) = out.rows["activity_detail"]
    assert detail["activity_id"] == ACTIVITY and detail["athlete_id"] == ATHLETE
    assert detail["description"] == "Legs felt good today." and detail["device_name"] == "Garmin fēnix 7"
    assert detail["gear_id"] == "g42" and detail["gear_name"] == "Pegasus" and detail["photo_count"] == 2
    assert detail["polyline"] == "abc" and detail["has_heartrate"] is True
    assert (detail["lap_count"], detail["best_effort_count"], detail["segment_effort_count"]) == (2, 1, 1)
    assert [r["id"] for r in out.rows["activity_laps"]] == [1001, 1002]
    assert all(r["activity_id"] == ACTIVITY and r["athlete_id"] == ATHLETE for r in out.rows["activity_laps"])
    assert [(r["split"], r["elevation_difference"]) for r in out.rows["activity_splits_metric"]] == [
        (1, -2.5),
        (2, 1.0),
    ]
    assert [r["activity_id"] for r in out.rows["activity_splits_standard"]] == [ACTIVITY]
    assert out.rows["activity_best_efforts"][0]["pr_rank"] == 1
    (effort,) = out.rows["activity_segment_efforts"]
    assert (effort["segment_id"], effort["segment_name"], effort["segment_average_grade"]) == (
        31,
        "High Street Hill",
        4.5,
    )
    assert effort["kom_rank"] == 3 and effort["pr_rank"] is None and effort["segment_private"] is False


def test_a_ride_without_splits_or_best_efforts_has_every_child_entity_empty() -> None:
    detail = a_detail(laps=[], segment_efforts=[])
    for name in ("splits_metric", "splits_standard", "best_efforts"):
        del detail[name]
    out = detail_rows(detail, ATHLETE, AT)
    assert out.rows["activity_detail"][0]["best_effort_count"] is None  # not sent: no count
    assert out.rows["activity_detail"][0]["lap_count"] == 0
    for name in ("activity_laps", "activity_splits_metric", "activity_best_efforts", "activity_segment_efforts"):
        assert out.rows[name] == []


def test_children_naming_another_athlete_or_activity_are_rejected_not_loaded() -> None:
    detail = a_detail(
        laps=[lap(1), lap(2, athlete={"id": 999}), lap(3, activity={"id": 5})],
        best_efforts=[{"name": "1k"}, {"id": 5001}, {"id": 5001}],  # no id; then a key twice
    )
    out = detail_rows(detail, ATHLETE, AT, raw_path="raw/x.json.gz")
    assert [r["id"] for r in out.rows["activity_laps"]] == [1001]
    assert [r["id"] for r in out.rows["activity_best_efforts"]] == [5001]
    reasons = {(r.entity, r.key): r.reason for r in out.rejected}
    assert reasons == {
        ("activity_laps", f"{ACTIVITY}/laps[1]"): f"names athlete 999, not this run's athlete {ATHLETE}",
        ("activity_laps", f"{ACTIVITY}/laps[2]"): f"names activity 5, not its detail's {ACTIVITY}",
        ("activity_best_efforts", f"{ACTIVITY}/best_efforts[0]"): "no id",
        ("activity_best_efforts", f"{ACTIVITY}/best_efforts[2]"): "repeats the key {'id': 5001}",
    }
    assert {r.raw_path for r in out.rejected} == {"raw/x.json.gz"}
    assert out.rows["activity_detail"][0]["lap_count"] == 3  # what the response held


def test_a_detail_of_another_athlete_is_rejected_whole() -> None:
    out = detail_rows(a_detail(athlete={"id": 5}), ATHLETE, AT)
    assert out.rows == {}
    assert [(r.entity, r.key) for r in out.rejected] == [("activity_detail", str(ACTIVITY))]
    assert "belongs to athlete 5" in out.rejected[0].reason
    # Without a (fitting) athlete id it is the athlete it was requested for.
    filled = detail_rows(a_detail(athlete={"id": "x"}), ATHLETE, AT)
    assert filled.rows["activity_detail"][0]["athlete_id"] == ATHLETE
    assert filled.unfit == {"activity_detail.athlete_id": 1}
    assert detail_rows([1, 2], ATHLETE, AT).rejected[0].reason.startswith("the detail is not a JSON object")
    assert detail_rows(a_detail(id=-3), ATHLETE, AT).rejected[0].reason == "activity_id -3 does not fit its column"


def test_the_emulators_detail_flattens_without_a_rejection() -> None:
    emu = StravaEmulator(activities=12, seed=42, athlete_id=ATHLETE, end=datetime(2026, 11, 1, 8, tzinfo=UTC))
    runs = [a for a in emu.activities if a["sport_type"] == "Run" and not a.get("manual")]
    detail = emu.activity_detail(runs[0]["id"])
    out = detail_rows(detail, ATHLETE, AT)
    assert out.rejected == [] and not out.unfit
    row = out.rows["activity_detail"][0]
    assert row["lap_count"] == len(detail["laps"]) == len(out.rows["activity_laps"]) > 0
    assert row["best_effort_count"] == len(out.rows["activity_best_efforts"]) > 0
    assert sum(r["distance"] for r in out.rows["activity_laps"]) == pytest.approx(detail["distance"], abs=1.0)


# --- streams ---------------------------------------------------------------------------------


def keyed(**channels: list[Any]) -> dict[str, Any]:
    return {
        k: {"data": v, "series_type": "distance", "original_size": len(v), "resolution": "high"}
        for k, v in channels.items()
    }


def test_a_stream_set_keyed_by_type_becomes_one_row_a_sample() -> None:
    streams = keyed(
        time=[0, 1, 2],
        distance=[0.0, 2.5, 5.1],
        latlng=[[51.5, -0.12], [51.50002, -0.12001], [51.50004, -0.12002]],
        heartrate=[90, 1e20, 95],
        moving=[False, True, True],
        altitude=[12.0, float("nan"), 12.4],
        unknown_type=[1, 2, 3],  # a type the table has no column for: left in the raw file
    )
    rows = stream_rows(streams, ACTIVITY, ATHLETE)
    assert isinstance(rows, list) and len(rows) == 3
    assert [r["sample_index"] for r in rows] == [0, 1, 2]
    assert rows[1] == {
        "activity_id": ACTIVITY,
        "sample_index": 1,
        "athlete_id": ATHLETE,
        "time": 1,
        "distance": 2.5,
        "lat": 51.50002,
        "lng": -0.12001,
        "altitude": None,  # NaN
        "velocity_smooth": None,
        "heartrate": None,  # 10^20
        "cadence": None,
        "watts": None,
        "temp": None,
        "moving": True,
        "grade_smooth": None,
    }
    flat = stream_columns(streams, ACTIVITY, ATHLETE)
    assert not isinstance(flat, str)
    assert flat.unfit == {"activity_streams.heartrate": 1, "activity_streams.altitude": 1}
    table = flat.to_arrow()
    assert table.schema == STREAMS.arrow_schema and table.num_rows == 3
    assert table.column("heartrate").to_pylist() == [90, None, 95]


def test_the_list_form_gives_the_same_rows() -> None:
    channels = {"time": [0, 1], "watts": [200, 4001], "temp": [21, 22]}
    listed = [{"type": k, "data": v, "series_type": "time"} for k, v in channels.items()]
    assert stream_rows(listed, ACTIVITY, ATHLETE) == stream_rows(keyed(**channels), ACTIVITY, ATHLETE)
    rows = stream_rows(listed, ACTIVITY, ATHLETE)
    assert isinstance(rows, list) and [r["watts"] for r in rows] == [200, None]  # 4001 W: out of range


@pytest.mark.parametrize(
    ("streams", "reason"),
    [
        (keyed(time=[0, 1, 2], heartrate=[90, 91]), "channels differ in length: {'heartrate': 2, 'time': 3}"),
        (keyed(time=[0, 1], latlng=[[51.5, -0.1], [51.5]]), "latlng sample 1 is not a [lat, lng] pair: [51.5]"),
        (keyed(time=[0, 1], latlng=[[51.5, -0.1], "x"]), 'latlng sample 1 is not a [lat, lng] pair: "x"'),
        (keyed(time=[0], latlng=[[1, 2, 3]]), "latlng sample 0 is not a [lat, lng] pair: [1, 2, 3]"),
        ({"time": {"series_type": "time"}}, "stream 'time' has no data array"),
        ([{"data": [1]}], "stream 0 is not an object with a type"),
        ("streams", "not a stream set"),
    ],
)
def test_a_broken_stream_set_is_rejected_whole_with_its_reason(streams: Any, reason: str) -> None:
    rejected = stream_rows(streams, ACTIVITY, ATHLETE)
    assert isinstance(rejected, str) and rejected.startswith(reason)


def test_no_streams_is_no_rows() -> None:
    for empty in ({}, []):
        flat = stream_columns(empty, ACTIVITY, ATHLETE)
        assert not isinstance(flat, str) and flat.rows == 0 and flat.to_arrow().num_rows == 0


def test_a_latlng_pair_of_unfit_numbers_is_null_not_a_rejection() -> None:
    rows = stream_rows(keyed(latlng=[[91.0, 0.0], [None, 181], [True, "x"]]), ACTIVITY, ATHLETE)
    assert isinstance(rows, list)
    assert [(r["lat"], r["lng"]) for r in rows] == [(None, 0.0), (None, None), (None, None)]


def test_the_emulators_streams_flatten_every_sample() -> None:
    emu = StravaEmulator(activities=6, seed=42, athlete_id=ATHLETE, end=datetime(2026, 11, 1, 8, tzinfo=UTC))
    activity = next(a for a in emu.activities if not a.get("manual") and a.get("map", {}).get("summary_polyline"))
    channels = emu.activity_streams(activity["id"])
    flat = stream_columns(keyed(**channels), activity["id"], ATHLETE)
    assert not isinstance(flat, str) and not flat.unfit
    assert flat.rows == activity["elapsed_time"] + 1  # one sample a second, as recorded
    assert flat.columns["lat"][0] == channels["latlng"][0][0]


# --- stats, zones, gear ----------------------------------------------------------------------


def test_stats_are_long_rows_period_by_sport_with_the_biggest_on_each() -> None:
    totals = {"count": 3, "distance": 42000.5, "moving_time": 9000, "elapsed_time": 9500, "elevation_gain": 300.0}
    stats: dict[str, Any] = {
        f"{p}_{s}_totals": dict(totals) for p in ("recent", "ytd", "all") for s in ("ride", "run", "swim")
    }
    stats.update({"biggest_ride_distance": 120_000.0, "biggest_climb_elevation_gain": 1e12})
    stats["recent_run_totals"]["achievement_count"] = 4
    stats["ytd_swim_totals"]["distance"] = -1.0
    del stats["all_swim_totals"]
    out = stats_rows(stats, ATHLETE, AT)
    rows = out.rows["athlete_stats"]
    assert [(r["period"], r["sport"]) for r in rows] == [
        (p, s) for p in ("recent", "ytd", "all") for s in ("ride", "run", "swim") if (p, s) != ("all", "swim")
    ]
    assert all(r["biggest_ride_distance"] == 120_000.0 and r["observed_at"] == AT for r in rows)
    assert all(r["biggest_climb_elevation_gain"] is None for r in rows)  # 10^12 m: past the range
    assert rows[1]["achievement_count"] == 4 and rows[0]["achievement_count"] is None
    assert out.unfit == {"athlete_stats.biggest_climb_elevation_gain": 8, "athlete_stats.distance": 1}
    assert list(rows[0]) == list(STATS.column_names)


def test_zones_are_one_row_a_zone_and_the_open_top_max_is_null_not_unfit() -> None:
    zones = {
        "heart_rate": {"custom_zones": False, "zones": [{"min": 0, "max": 120}, {"min": 120, "max": -1}]},
        "power": {"zones": [{"min": 0, "max": 150}, {"min": 150, "max": 10**20}, {"min": 300, "max": -1}]},
    }
    out = zones_rows(zones, ATHLETE, AT)
    rows = out.rows["athlete_zones"]
    assert [(r["kind"], r["zone"], r["min"], r["max"]) for r in rows] == [
        ("heart_rate", 1, 0, 120),
        ("heart_rate", 2, 120, None),
        ("power", 1, 0, 150),
        ("power", 2, 150, None),
        ("power", 3, 300, None),
    ]
    assert [r["custom_zones"] for r in rows] == [False, False, None, None, None]
    assert out.unfit == {"athlete_zones.max": 1}  # 10^20 W is unfit; -1 is Strava's open top
    assert list(rows[0]) == list(ZONES.column_names)


def test_gear_is_one_row_and_rejected_without_an_id() -> None:
    gear = {
        "id": "b12345",
        "name": "Red bike",
        "distance": 123456.7,
        "primary": True,
        "frame_type": 3,
        "retired": False,
    }
    out = gear_row(gear, ATHLETE, AT)
    (row,) = out.rows["gear"]
    assert (row["id"], row["athlete_id"], row["distance"], row["frame_type"]) == ("b12345", ATHLETE, 123456.7, 3)
    assert row["row_hash"] == row_hash(GEAR, row)
    moved = gear_row({**gear, "distance": 130000.0}, ATHLETE, AT).rows["gear"][0]
    assert moved["row_hash"] != row["row_hash"]  # its distance changed: an update
    assert gear_row({"name": "x"}, ATHLETE, AT).rejected[0].reason == "no id"
    assert gear_row({**gear, "distance": math.inf}, ATHLETE, AT).unfit == {"gear.distance": 1}


def test_every_specs_arrow_schema_takes_its_flattened_rows() -> None:
    # A row of every entity (NULLs where nothing was sent) converts to its staging file's schema.
    for spec in SPECS.values():
        if spec.name == "activities":
            continue
        row, _ = flatten(spec, {"__activity_id": 1, "__athlete_id": 1, "__extracted_at": AT})
        table = pa.Table.from_pylist([row], schema=spec.arrow_schema)
        assert table.num_rows == 1 and table.column_names == list(spec.column_names)
