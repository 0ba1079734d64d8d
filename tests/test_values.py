"""Every value exact, none can poison a later run.

Each typed column declares the values it accepts (tasks/warehouse/schema.py); whatever Strava sends
outside that (out of range, non-finite, the wrong JSON type) is loaded as NULL and counted, an
activity without a fitting id or start_date is not staged, and an item that is not an object
fails the run before its page is written. Floats are double precision on every warehouse and
every value round-trips bit-exact.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from tasks import warehouse as wh
from tasks.insight import dashboard, report
from tasks.warehouse import schema
from tests.conftest import WAREHOUSES, Env, make_env

FLOAT_COLUMNS = [c for c in schema.API_COLUMNS if pa.types.is_floating(c.arrow_type)]
OBSERVED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def kind(column: schema.Column) -> str:
    t = column.arrow_type
    for name, test in (
        ("timestamp", pa.types.is_timestamp),
        ("bool", pa.types.is_boolean),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
    ):
        if test(t):
            return name
    return "text"


def single(value: float) -> float:
    """``value`` rounded to single precision, as a 4-byte FLOAT column stores it."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


# --------------------------------------------------------------------------- declared ranges


def test_every_typed_column_declares_what_it_accepts() -> None:
    declared = {c.name: (kind(c), c.low, c.high) for c in schema.API_COLUMNS}
    for name, (k, low, high) in declared.items():
        if k == "bool":
            assert (low, high) == (None, None), name
        elif k == "text":
            assert (low, high) == (None, schema.TEXT_MAX_BYTES), name
        else:
            assert low is not None and high is not None and low < high, name
    assert declared["id"][1:] == declared["athlete_id"][1:] == (1, 2**63 - 1)
    assert declared["kudos_count"][1:] == (0, 2**31 - 1)
    assert declared["workout_type"][1:] == (-(2**31), 2**31 - 1)
    assert declared["distance"][1:] == (0.0, 1e9)
    assert declared["average_temp"][1:] == (-1e9, 1e9)
    # What the shipped halt check refuses is out of range at the load: no value Strava sends halts a run.
    assert all(declared[name][1] == 0 for name in _non_negative_by_check())
    assert declared["start_lat"][1:] == declared["end_lat"][1:] == (-90.0, 90.0)
    assert declared["start_lng"][1:] == declared["end_lng"][1:] == (-180.0, 180.0)
    assert declared["start_date"][1:] == (
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2200, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
    )
    # The float bound keeps the models' NUMERIC(18, 4) casts (|x| < 1e14) safe for sums of 100,000 activities.
    assert schema.FLOAT_LIMIT * 100_000 < 1e14 + 1


def _beyond(column: schema.Column) -> list[Any]:
    """Values just outside the column's range, non-finite ones and values of the wrong JSON type."""
    k = kind(column)
    if k == "int":
        return [column.low - 1, column.high + 1, 1.5, float("inf"), float("nan"), True, "7", [1], {"a": 1}]
    if k == "float":
        return [
            math.nextafter(column.low, -math.inf),
            math.nextafter(column.high, math.inf),
            float("inf"),
            float("-inf"),
            float("nan"),
            10**400,
            False,
            "1.5",
            [1.0],
        ]
    if k == "timestamp":
        return [
            "1969-12-31T23:59:59.999999Z",
            "2200-01-01T00:00:00Z",
            "yesterday",
            "",
            1_700_000_000,
            True,
            {"t": 1},
        ]
    if k == "bool":
        return [1, 0, "true", "yes", [True]]
    return [
        "nul \x00 byte",
        "lone surrogate \ud800",
        "é" * (schema.TEXT_MAX_BYTES // 2) + "xy",
        12,
        1.5,
        True,
        ["a"],
        {"a": "b"},
    ]


def _within(column: schema.Column) -> list[tuple[Any, Any]]:
    """(sent, stored) pairs at and inside the column's range."""
    k = kind(column)
    if k == "int":
        return [(column.low, column.low), (column.high, column.high), (5.0, 5)]  # 5.0: an integral JSON float
    if k == "float":
        return [(column.low, column.low), (column.high, column.high), (0, 0.0), (51.512337, 51.512337)]
    if k == "timestamp":
        aware = column.arrow_type.tz is not None
        low, high = column.low, column.high
        return [
            ("1970-01-01T00:00:00Z", low),
            ("2199-12-31T23:59:59.999999Z", high),
            (
                "2025-06-01T07:30:00+02:00",
                datetime(2025, 6, 1, 5, 30, tzinfo=UTC) if aware else datetime(2025, 6, 1, 7, 30),
            ),
        ]
    if k == "bool":
        return [(True, True), (False, False)]
    longest = "é" * (schema.TEXT_MAX_BYTES // 2) + "x"
    return [("", ""), (longest, longest), ("🏃‍♀️ \t\n\r\\\"'", "🏃‍♀️ \t\n\r\\\"'")]


@pytest.mark.parametrize("column", schema.API_COLUMNS, ids=lambda c: c.name)
def test_each_column_keeps_what_fits_and_nulls_what_does_not(column: schema.Column) -> None:
    for sent, stored in _within(column):
        got = schema.coerce(column, sent)
        assert got == stored and type(got) is type(stored), (column.name, sent, got)
    for sent in _beyond(column):
        assert schema.coerce(column, sent) is None, (column.name, sent)


def test_json_numbers_python_cannot_hold_are_unfit_not_fatal() -> None:
    text = (
        '{"id": 1180591620717411303424, "distance": 1e999, "max_speed": -1e999, "kudos_count": 3e9,'
        ' "athlete": {"id": -5}, "start_date": "2025-01-01T00:00:00Z", "start_latlng": [90.000001, 12.5],'
        ' "upload_id": 1e3, "name": "\\ud83c"}'
    )
    activity = json.loads(text)
    row = schema.flatten_activity(activity, OBSERVED)
    nulls = {"id", "distance", "max_speed", "kudos_count", "athlete_id", "start_lat", "upload_id", "name"}
    assert all(row[name] is None for name in nulls)
    assert row["start_lng"] == 12.5
    assert schema.to_arrow([row]).num_rows == 1  # Arrow takes the row: nothing left to fail a run
    assert schema.rejection(activity, row) == ("id", "id 1180591620717411303424 does not fit its column")
    assert schema.rejection({"start_date": "2025-01-01T00:00:00Z"}, {**row, "id": None}) == ("id", "no id")
    activity["id"] = 7
    assert schema.rejection(activity, schema.flatten_activity(activity, OBSERVED)) is None
    activity["start_date"] = "2300-01-01T00:00:00Z"
    reason = schema.rejection(activity, schema.flatten_activity(activity, OBSERVED))
    assert reason == ("start_date", 'start_date "2300-01-01T00:00:00Z" does not fit its column')


def test_an_item_that_is_not_an_object_is_named_by_page_and_position() -> None:
    schema.require_objects([{"id": 1}, {}], page=3)
    with pytest.raises(schema.NotAnObjectError) as caught:
        schema.require_objects([{"id": 1}, {"id": 2}, None, 1, "x"], page=3)
    message = str(caught.value)
    assert "page 3" in message and "position 2 (0-based, of 5 items): null" in message
    assert "Nothing of this page was written" in message and "report it" in message


# --------------------------------------------------------------------------- double precision


def _ddl(dialect: sa.Dialect) -> list[str]:
    ddl = str(CreateTable(schema.activity_table(sa.MetaData())).compile(dialect=dialect))
    return [line.strip().rstrip(",") for line in ddl.strip().splitlines()]


def test_floats_compile_to_double_precision_on_every_warehouse() -> None:
    import duckdb_engine
    from sqlalchemy_redshift.dialect import RedshiftDialect_redshift_connector

    for dialect in (duckdb_engine.Dialect(), postgresql.dialect(), RedshiftDialect_redshift_connector()):
        lines = _ddl(dialect)
        for column in FLOAT_COLUMNS:
            assert f"{column.name} DOUBLE PRECISION" in lines, (dialect.name, column.name)
        assert not any(re.search(r"\b(FLOAT|REAL)\b", line) for line in lines), dialect.name


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty warehouse: a DuckDB file, then a fresh PostgreSQL schema."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    e = sa.create_engine(url)
    try:
        yield e
    finally:
        e.dispose()


def _column_types(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :t"
            ),
            {"t": schema.ACTIVITY_TABLE},
        )
        return {r[0]: r[1].lower() for r in rows}


def test_created_tables_hold_floats_in_double_precision(engine: sa.Engine) -> None:
    wh.ensure_tables(engine)
    types = _column_types(engine)
    expected = "double" if engine.dialect.name == "duckdb" else "double precision"
    assert {c.name: types[c.name] for c in FLOAT_COLUMNS} == {c.name: expected for c in FLOAT_COLUMNS}


# --------------------------------------------------------------------------- extreme accepted values


def _non_negative_by_check() -> set[str]:
    """Columns the shipped halt check ``no_negative_values`` keeps from going below 0 in production."""
    text = (wh.SQL_DIR / "validation" / "negative_values.sql").read_text(encoding="utf-8")
    return set(re.findall(r"(\w+) < 0", text))


def _extreme(column: schema.Column, end: str, non_negative: set[str]) -> Any:
    """The column's lowest or highest value that production can hold."""
    k = kind(column)
    if k == "bool":
        return end == "high"
    if k == "text":
        return "é" * (schema.TEXT_MAX_BYTES // 2) + "x" if end == "high" else ""
    if end == "high":
        return column.high
    return 0 if column.name in non_negative else column.low


EXTREME_ATHLETE = 2**63 - 1
"""Every extreme row is one athlete's (the highest id): a merge is scoped to one athlete."""


def extreme_rows() -> list[dict[str, Any]]:
    """Production rows at each column's lowest and highest value, and rows of NULLs."""
    non_negative = _non_negative_by_check()
    rows = []
    for number, end in enumerate(("low", "high", "low", "high")):
        row = {c.name: _extreme(c, end, non_negative) for c in schema.API_COLUMNS}
        row["id"] = 1 + number if end == "low" else 2**63 - 1 - number
        if number >= 2:  # runs: the monthly model (pace, kudos spread) sees the extremes too
            row["sport_type"] = "Run"
        rows.append(row)
    for number in range(2):
        row = dict.fromkeys(c.name for c in schema.API_COLUMNS)
        row["id"] = 100 + number
        row["start_date"] = schema.EARLIEST + timedelta(days=400 * number)  # the pipeline stages none without
        rows.append(row)
    for row in rows:
        row["athlete_id"] = EXTREME_ATHLETE
        row["row_hash"] = schema.row_hash(row)
        row["extracted_at"] = OBSERVED
    return rows


def _merge(engine: sa.Engine, rows: list[dict[str, Any]], observed_at: datetime) -> wh.MergeResult:
    """Stage ``rows`` the pipeline's way (Arrow, COPY on PostgreSQL) and merge them into production."""
    dialect = wh.dialect_for(engine)
    staging = wh.staging_name("extremes")
    with engine.begin() as conn:
        dialect.create_staging(conn, staging, schema.ACTIVITY_TABLE)
        dialect.load_staging(conn, staging, schema.to_arrow(rows))
    try:
        return wh.merge_staging.fn(engine, staging, observed_at, None, EXTREME_ATHLETE)
    finally:
        wh.drop_staging(engine, staging)


def test_every_model_builds_on_each_columns_extreme_accepted_values(engine: sa.Engine) -> None:
    wh.ensure_tables(engine)
    rows = extreme_rows()
    assert _merge(engine, rows, OBSERVED).inserted == len(rows)
    # A second observation with the counts swapped end to end: the history's differences at their widest.
    counts = ("kudos_count", "comment_count", "achievement_count")
    swapped = [{**r, **{c: rows[(i + 1) % 4][c] for c in counts}} if i < 4 else r for i, r in enumerate(rows)]
    for row in swapped:
        row["row_hash"] = schema.row_hash(row)
    assert _merge(engine, swapped, OBSERVED + timedelta(days=1)).updated == 4

    with engine.connect() as conn:
        stored = {r["id"]: dict(r) for r in conn.execute(sa.text("SELECT * FROM strava_activity_data")).mappings()}
    for row in swapped:  # stored as sent, to the bit
        got = stored[row["id"]]
        for column in schema.API_COLUMNS:
            assert got[column.name] == row[column.name], (row["id"], column.name)

    built = {wh.model_name(p): wh.build_model(engine, p) for p in wh.model_files()}
    assert set(built) == {wh.model_name(p) for p in wh.model_files()}
    assert built["activity_summary_yearly"] == 2  # 1970 and 2199; rows without a local start time have no year
    page = dashboard.render_dashboard(engine, athlete_id=EXTREME_ATHLETE)
    assert "<html" in page
    assert len(report.monthly_rows(engine, EXTREME_ATHLETE)) == 2  # 1970-01 and 2199-12


# --------------------------------------------------------------------------- through the pipeline


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _expected(activity: dict[str, Any], column: schema.Column) -> Any:
    """What production must hold for ``column``, read from the API's JSON independently of tasks.warehouse.schema."""
    name = column.name
    if name == "athlete_id":
        return activity["athlete"]["id"]
    if name in ("map_id", "map_summary_polyline"):
        return activity.get("map", {}).get(name.removeprefix("map_"))
    if name in ("start_lat", "start_lng", "end_lat", "end_lng"):
        pair = activity.get(name.split("_")[0] + "_latlng") or []
        return pair[0 if name.endswith("lat") else 1] if pair else None
    value = activity.get(name)
    if name == "upload_id" and value is not None:
        return str(value)
    if value is not None and name in ("start_date", "start_date_local"):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if name == "start_date" else moment.replace(tzinfo=None)
    if value is not None and kind(column) == "float":
        return float(value)
    return value


def assert_exact(stored: Any, expected: Any, where: str) -> None:
    if expected is None:
        assert stored is None, where
    elif isinstance(expected, float):
        assert isinstance(stored, float) and stored.hex() == expected.hex(), (where, stored, expected)
    elif isinstance(expected, str):
        assert isinstance(stored, str) and stored.encode("utf-8") == expected.encode("utf-8"), where
    elif isinstance(expected, bool):
        assert stored is expected, where
    else:
        assert type(stored) is type(expected) and stored == expected, (where, stored, expected)


def test_every_value_round_trips_exactly(env: Env) -> None:
    summary = env.run()
    assert summary["unfit_values"] == {} and summary["rejected"] == []
    prod = env.production()
    activities = env.emu.activities
    assert len(prod) == len(activities) == 450
    not_single = 0
    for activity in activities:
        row = prod[activity["id"]]
        assert set(row) == {c.name for c in schema.ALL_COLUMNS}
        for column in schema.API_COLUMNS:
            expected = _expected(activity, column)
            assert_exact(row[column.name], expected, f"{activity['id']}.{column.name}")
            not_single += isinstance(expected, float) and single(expected) != expected
    assert not_single > 1000  # values a 4-byte FLOAT would have rounded (11550.9 -> 11550.900390625)


def test_odd_values_load_as_null_are_counted_and_never_fail_a_later_run(env: Env) -> None:
    env.run()
    newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in env.emu.activities)
    added = env.emu.add_activities(7, start_date=newest + timedelta(hours=1))
    big, inf, huge_id, no_id, no_date, far, odd = added
    env.emu.modify_activity(big["id"], distance=1e20, kudos_count=3_000_000_000, moving_time=-(2**31) - 1)
    env.emu.set_raw_fields(inf["id"], distance="1e999", max_speed="-1e999", average_speed="NaN")
    env.emu.set_raw_fields(huge_id["id"], id=str(2**70))
    env.emu.set_raw_fields(no_id["id"], id="null")
    env.emu.set_raw_fields(no_date["id"], start_date='"yesterday"')
    env.emu.set_raw_fields(far["id"], start_date='"2300-01-01T00:00:00Z"')
    env.emu.modify_activity(odd["id"], start_latlng=[91.0, 181.0], name="nul\x00byte", gear_id=12)
    env.emu.set_raw_fields(odd["id"], external_id='"\\ud800"')
    before = env.production()

    summary = env.run()
    assert summary["status"] == "complete"
    assert summary["inserted"] == 3  # 7 new, 4 rejected
    assert summary["unfit_values"] == {
        "average_speed": 1,
        "distance": 2,
        "external_id": 1,
        "gear_id": 1,
        "id": 2,
        "kudos_count": 1,
        "max_speed": 1,
        "moving_time": 1,
        "name": 1,
        "start_date": 2,
        "start_lat": 1,
        "start_lng": 1,
    }
    assert [(r["page"], r["reason"]) for r in summary["rejected"]] == [
        (1, "id 1180591620717411303424 does not fit its column"),
        (1, "no id"),
        (1, 'start_date "yesterday" does not fit its column'),
        (1, 'start_date "2300-01-01T00:00:00Z" does not fit its column'),
    ]
    assert [r["id"] for r in summary["rejected"]] == [None, None, no_date["id"], far["id"]]
    # Positions are the items' places in the page as the API sent it.
    raw = json.loads(
        gzip.decompress(next((env.lake_dir / "raw").rglob(f"run={summary['run_key']}/page-00001.json.gz")).read_bytes())
    )
    for rejected in summary["rejected"]:
        item = raw[rejected["position"]]
        assert item["name"] in {huge_id["name"], no_id["name"], no_date["name"], far["name"]}

    prod = env.production()
    assert set(prod) == set(before) | {big["id"], inf["id"], odd["id"]}
    assert (prod[big["id"]]["distance"], prod[big["id"]]["kudos_count"], prod[big["id"]]["moving_time"]) == (None,) * 3
    assert prod[big["id"]]["elapsed_time"] == big["elapsed_time"]
    assert [prod[inf["id"]][c] for c in ("distance", "max_speed", "average_speed")] == [None] * 3
    assert [prod[odd["id"]][c] for c in ("start_lat", "start_lng", "name", "gear_id", "external_id")] == [None] * 5
    assert prod[odd["id"]]["end_lat"] == odd["end_latlng"][0]
    assert env.watermark() == datetime.fromisoformat(odd["start_date"].replace("Z", "+00:00"))
    assert set(summary["models"]) == {wh.model_name(p) for p in wh.model_files()}

    later = env.emu.add_activities(2)
    again = env.run()  # the odd values sit in the lookback window: the next run loads as well
    assert again["status"] == "complete" and again["inserted"] == 2
    assert len(again["rejected"]) == 4 and again["unfit_values"]["id"] == 2
    assert {a["id"] for a in later} <= set(env.production())
    assert set(again["models"]) == set(summary["models"])


def _refuse(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_a_raw_page_of_hostile_values_holds_what_strava_sent_as_strict_json(env: Env) -> None:
    env.run()
    newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in env.emu.activities)
    huge, inf, nan, odd = env.emu.add_activities(4, start_date=newest + timedelta(hours=1))
    env.emu.set_raw_fields(huge["id"], id=str(2**70))
    env.emu.set_raw_fields(inf["id"], distance="1e999", max_speed="-1e999", elev_high="1.50")
    env.emu.set_raw_fields(nan["id"], average_speed="NaN", max_speed="Infinity", elev_low="-Infinity")
    env.emu.set_raw_fields(odd["id"], external_id='"\\ud800"', name='"NaN, Infinity \\" <b>"')
    env.emu.reset_counts()

    summary = env.run()
    assert summary["status"] == "complete" and summary["inserted"] == 3
    [request] = [r for r in env.emu.requests if r.path == "/api/v3/athlete/activities"]
    bearer = {"Authorization": f"Bearer {env.emu.issue_access_token()}"}
    sent = httpx.get(env.emu.base_url + request.path, params=request.query, headers=bearer).content
    assert b'"distance":1e999' in sent and b'"average_speed":NaN' in sent  # what the run was sent
    [path] = (env.lake_dir / "raw").rglob(f"run={summary['run_key']}/page-00001.json.gz")
    raw = gzip.decompress(path.read_bytes())

    # Byte for byte what Strava sent, but for the three constants JSON does not have.
    rewritten = sent
    for name, constant in (("average_speed", b"NaN"), ("max_speed", b"Infinity"), ("elev_low", b"-Infinity")):
        field_ = f'"{name}":'.encode()
        assert rewritten.count(field_ + constant) == 1
        rewritten = rewritten.replace(field_ + constant, field_ + b'"' + constant + b'"')
    assert raw == rewritten
    items = {item["name"]: item for item in json.loads(raw.decode("utf-8"), parse_constant=_refuse)}
    assert items[huge["name"]]["id"] == 2**70
    assert items[inf["name"]]["distance"] == math.inf and items[inf["name"]]["max_speed"] == -math.inf
    assert [items[nan["name"]][k] for k in ("average_speed", "max_speed", "elev_low")] == [
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    assert items['NaN, Infinity " <b>']["external_id"] == "\ud800"


def test_an_item_that_is_not_an_object_fails_the_run_before_its_page_is_written(env: Env) -> None:
    env.run()
    before = env.production()
    mark = env.watermark()
    pages_before = sorted((env.lake_dir / "raw").rglob("*.json.gz"))
    added = env.emu.add_activities(3)
    env.emu.inject_items('null, 1, "x"', page=1, position=2)

    with pytest.raises(schema.NotAnObjectError, match=r"page 1 .* at position 2 \(0-based, of \d+ items\): null"):
        env.run()
    assert env.production() == before
    assert env.watermark() == mark
    assert sorted((env.lake_dir / "raw").rglob("*.json.gz")) == pages_before

    env.emu.clear_injected_items()
    summary = env.run()
    assert summary["inserted"] == 3 and {a["id"] for a in added} <= set(env.production())


# --------------------------------------------------------------------------- migration


def _old_table(metadata: sa.MetaData) -> sa.Table:
    """Production as it was: floats in single precision (REAL: DuckDB's old FLOAT, PostgreSQL's real)."""
    return sa.Table(
        schema.ACTIVITY_TABLE,
        metadata,
        *(
            sa.Column(
                c.name, sa.REAL() if c in FLOAT_COLUMNS else c.sql_type, primary_key=c.name == "id", autoincrement=False
            )
            for c in schema.ALL_COLUMNS
        ),
    )


def test_single_precision_columns_are_widened_in_place(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    old = _old_table(metadata)
    metadata.create_all(engine)
    rows = [
        schema.flatten_activity({"id": 7, "distance": 11550.9, "start_latlng": [51.512337, -0.1278]}, OBSERVED),
        schema.flatten_activity({"id": 8, "name": "no floats"}, OBSERVED),
    ]
    with engine.begin() as conn:
        conn.execute(old.insert(), rows)
    expected = "double" if engine.dialect.name == "duckdb" else "double precision"
    assert _column_types(engine)["distance"] != expected
    read = "SELECT id, distance, start_lat, start_lng, name FROM strava_activity_data ORDER BY id"
    with engine.connect() as conn:
        before = conn.execute(sa.text(read)).all()

    wh.ensure_tables(engine)
    assert {_column_types(engine)[c.name] for c in FLOAT_COLUMNS} == {expected}
    with engine.begin() as conn:
        after = conn.execute(sa.text(read)).all()
        assert wh.migrate_to_double(conn) == []  # idempotent
    # Every row intact, each value exactly as single precision had stored it (PostgreSQL prints
    # a real in its shortest form, so ``before`` reads 11550.9 there and 11550.900390625 on DuckDB).
    assert after == [tuple(single(v) if isinstance(v, float) else v for v in row) for row in before]
    assert after[0][1] == single(11550.9) != 11550.9  # rounded once: only a re-read restores it


def test_an_old_single_precision_table_is_migrated_to_double(tmp_path: Path) -> None:
    for env in make_env(tmp_path, activities=250):
        engine = sa.create_engine(f"duckdb:///{env.duckdb_path}")
        metadata = sa.MetaData()
        old = _old_table(metadata)
        metadata.create_all(engine)
        retired = {**schema.flatten_activity(env.emu.activities[-1], OBSERVED), "id": 1, "distance": 11550.9}
        rows = [schema.flatten_activity(a, OBSERVED) for a in env.emu.activities] + [retired]
        with engine.begin() as conn:
            conn.execute(old.insert(), rows)
        assert _column_types(engine)["distance"] == "float"
        with engine.connect() as conn:
            kept = dict(conn.execute(sa.text("SELECT * FROM strava_activity_data WHERE id = 1")).mappings().one())
        assert kept["distance"] == single(11550.9) != 11550.9
        engine.dispose()

        env.run()  # the first run reads the whole history (no watermark): every live row is rewritten exact
        engine = sa.create_engine(f"duckdb:///{env.duckdb_path}")
        assert {_column_types(engine)[c.name] for c in FLOAT_COLUMNS} == {"double"}
        with engine.begin() as conn:
            assert wh.migrate_to_double(conn) == []  # idempotent
        engine.dispose()
        prod = env.production()
        assert len(prod) == 251
        assert {k: v for k, v in prod[1].items() if k != "deleted_at"} == {
            k: v for k, v in kept.items() if k != "deleted_at"
        }
        assert prod[1]["deleted_at"] is not None  # not in Strava: marked, kept, its rounded value intact
        for activity in env.emu.activities:
            for column in FLOAT_COLUMNS:
                assert_exact(prod[activity["id"]][column.name], _expected(activity, column), column.name)


def test_negative_counts_a_missing_athlete_and_a_foreign_one_never_halt_a_run(env: Env) -> None:
    """Values the gate would halt on are refused before writing, so no run (nor the next) halts."""
    env.run()
    newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in env.emu.activities)
    negative, anonymous, foreign = env.emu.add_activities(3, start_date=newest + timedelta(hours=1))
    env.emu.modify_activity(negative["id"], distance=-5.0, kudos_count=-2, elapsed_time=-1)
    env.emu.remove_fields(anonymous["id"], "athlete")
    other = env.emu.athlete["id"] + 1
    env.emu.modify_activity(foreign["id"], athlete={"id": other, "resource_state": 1})

    summary = env.run()
    assert summary["inserted"] == 2
    assert summary["unfit_values"] == {"athlete_id": 1, "distance": 1, "elapsed_time": 1, "kudos_count": 1}
    assert [(r["id"], r["reason"]) for r in summary["rejected"]] == [
        (foreign["id"], f"belongs to athlete {other}, not this run's athlete {env.emu.athlete['id']}")
    ]
    prod = env.production()
    assert foreign["id"] not in prod
    row = prod[negative["id"]]
    assert (row["distance"], row["kudos_count"], row["elapsed_time"]) == (None, None, None)
    assert prod[anonymous["id"]]["athlete_id"] == env.emu.athlete["id"]
    again = env.run()  # the same items, still in the lookback window: the next run loads too
    assert again["inserted"] == 0 and len(again["rejected"]) == 1
