"""The SQL models: portable (Redshift parse), built on DuckDB and PostgreSQL, values checked.

Rows are inserted straight into production (no pipeline), including deleted activities,
missing values and hostile text, and every model is compared with the same figures computed
in Python from the same rows.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot

from blocks.warehouse import use_schema
from tasks import warehouse as wh
from tasks.warehouse import schema

PG_URL = os.environ.get("STRAVA_ELT_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MY_MODELS = [p for p in wh.model_files() if int(p.name.split("_", 1)[0]) >= 30]

SPORTS = ("Run", "Run", "Run", "Ride", "TrailRun", "Swim", "Yoga", "VirtualRide")
PLACES = (
    ("London", "United Kingdom", 51.5074, -0.1278),
    (None, "France", 48.8566, 2.3522),
    (None, None, 35.6762, 139.6503),
    ("São Paulo </script>", 'Brasil "quoted"', -23.55, -46.63),
    (None, None, None, None),
    ("", "", -0.2, -0.7),
)


# --------------------------------------------------------------------------- rows


def make_rows(
    seed: int = 7, count: int = 260, athlete_id: int = 42, first_id: int = 9_000_000_000
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One athlete's activities over ~2 years with gaps, deletions, NULLs and nasty text; and their history."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    local = datetime(2023, 12, 28, 6, 30)
    for i in range(count):
        local += timedelta(hours=rng.choice((5, 11, 20, 26, 49)))
        if i == 120:
            local += timedelta(days=40)  # a gap longer than 4 weeks
        sport = rng.choice(SPORTS)
        city, country, lat, lng = rng.choice(PLACES)
        indoor = sport in ("Yoga", "VirtualRide")
        rows.append(
            {
                "id": first_id + i,
                "athlete_id": athlete_id,
                "name": rng.choice(("Morning Run", 'The "easy" one', "</script><b>x", "🏃 émoji\nnewline")),
                "distance": 0.0 if sport == "Yoga" else round(rng.uniform(1_000, 60_000), 1),
                "moving_time": rng.randint(600, 12_000),
                "total_elevation_gain": None if i % 17 == 0 else round(rng.uniform(0, 900), 1),
                "sport_type": None if i % 53 == 0 else sport,
                "workout_type": rng.choice((None, 0, 1, 2, 3, 10, 11, 12)),
                "start_date": (local - timedelta(hours=1)).replace(tzinfo=UTC),
                "start_date_local": local,
                "location_city": None if indoor else city,
                "location_country": None if indoor else country,
                "start_lat": None if indoor else lat,
                "start_lng": None if indoor else lng,
                "kudos_count": None if i % 41 == 0 else rng.randint(0, 30),
                "total_photo_count": rng.choice((0, 0, 0, 2)),
                "achievement_count": rng.randint(0, 4),
                "athlete_count": 1,
                "pr_count": i % 3,
                "gear_id": (None, "b1", "g1", "")[i % 4],
                "deleted_at": datetime(2025, 1, 1, tzinfo=UTC) if i % 13 == 5 else None,
            }
        )
    history: list[dict[str, Any]] = []
    for row in rows[-60:]:
        first = row["start_date"].replace(hour=12, minute=0, second=0) + timedelta(days=1)
        kudos = row["kudos_count"] or 0
        seen = {"activity_id": row["id"], "athlete_id": athlete_id}
        history.append({**seen, "observed_at": first, "kudos_count": max(kudos - 3, 0)})
        if row["id"] % 2:
            history.append({**seen, "observed_at": first + timedelta(days=2), "kudos_count": kudos})
    return rows, history


def live(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["deleted_at"] is None]


def insert(engine: sa.Engine, rows: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
    wh.ensure_tables(engine)
    metadata = sa.MetaData()
    table = schema.activity_table(metadata)
    hist = schema.stats_history_table(metadata)
    full = [{c.name: r.get(c.name) for c in schema.ALL_COLUMNS} for r in rows]
    with engine.begin() as conn:
        conn.execute(table.insert(), full)
        if history:
            conn.execute(hist.insert(), history)


def build_all(engine: sa.Engine) -> dict[str, int]:
    return {wh.model_name(p): wh.build_model(engine, p) for p in wh.model_files()}


def fetch(engine: sa.Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608 - fixed test names
        return [dict(m) for m in result.mappings()]


# --------------------------------------------------------------------------- helpers


def num(value: Any) -> float | None:
    return None if value is None else float(value)


def close(actual: Any, expected: float | None, places: int) -> bool:
    """Equal after rounding to ``places`` (SQL rounds half away from zero, Python to even)."""
    if expected is None or actual is None:
        return actual is None and expected is None
    return abs(float(actual) - expected) <= 0.5 * 10**-places + 1e-9


def as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def week_start(d: datetime | date) -> date:
    day = as_date(d)
    return day - timedelta(days=day.weekday())


def mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


# --------------------------------------------------------------------------- backends


def _has_fixture(request: pytest.FixtureRequest, name: str) -> bool:
    return bool(request._fixturemanager.getfixturedefs(name, request.node))  # type: ignore[attr-defined]


def _own_postgres_schema(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """Fallback when conftest has no ``pg_url``: an own schema on PG_URL, dropped after."""
    admin = sa.create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        reason = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"
        if os.environ.get("STRAVA_ELT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (STRAVA_ELT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    schema_name = f"t_models_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(admin.url)
    use_schema(eng, schema_name)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty warehouse: a DuckDB file, or a fresh schema on the PostgreSQL test server.

    PostgreSQL comes from conftest's ``pg_url`` fixture when it exists (skip/fail rules there).
    """
    if request.param == "duckdb":
        eng = sa.create_engine(f"duckdb:///{tmp_path / 'models.duckdb'}")
        yield eng
        eng.dispose()
    elif _has_fixture(request, "pg_url"):
        eng = sa.create_engine(request.getfixturevalue("pg_url"))
        yield eng
        eng.dispose()
    else:
        yield from _own_postgres_schema(request)


@pytest.fixture
def built(engine: sa.Engine) -> tuple[sa.Engine, list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    rows, history = make_rows()
    insert(engine, rows, history)
    return engine, rows, history, build_all(engine)


# --------------------------------------------------------------------------- portability


@pytest.mark.parametrize("path", wh.model_files(), ids=lambda p: p.name)
def test_every_model_parses_as_redshift_and_avoids_unportable_sql(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    parsed = sqlglot.parse(text, read="redshift")
    assert len([p for p in parsed if p is not None]) == 1, "one SELECT per model file"
    assert isinstance(parsed[0], sqlglot.exp.Query)
    upper = re.sub(r"--[^\n]*", "", text).upper()
    # Redshift: bare NUMERIC has scale 0 and AVG of an integer is an integer.
    assert not re.search(r"AS NUMERIC\)", upper), "give NUMERIC a precision and scale"
    banned_words = ("::", "GENERATE_SERIES", "STRFTIME", "DATE_DIFF(", "ILIKE", "QUALIFY", "FILTER (", "LIST(")
    for banned in banned_words:
        assert banned not in upper, f"{banned} is not portable to Redshift/PostgreSQL"


def test_my_models_are_numbered_after_the_spine() -> None:
    names = [wh.model_name(p) for p in MY_MODELS]
    assert names == [
        "activity_summary_yearly",
        "activity_summary_by_sport",
        "monthly_distance_by_sport",
        "weekly_training_load",
        "kudos_by_weekday_hour",
        "kudos_by_place",
        "kudos_history_daily",
        "activity_calendar_daily",
        "eddington",
        "eddington_yearly",
        "year_in_review",
        "gear_usage",
        "best_effort_progression",
        "segment_pr_history",
        "time_in_zones_weekly",
        "activity_load",
        "fitness_daily",
    ]


ENRICHED = {wh.model_name(p) for p in wh.model_files() if wh.models.required_tables(p.read_text(encoding="utf-8"))}
"""Models over the enrichment's tables (streams, efforts, zones): this file's activities have none of
those (their figures and athlete scope are tested in tests/test_insight_models.py); fitness_daily
reads activity_load."""
ENRICHED.add("fitness_daily")


# --------------------------------------------------------------------------- values


def test_all_models_build(built: Any) -> None:
    _, rows, _, counts = built
    assert set(counts) == {wh.model_name(p) for p in wh.model_files()}
    assert all(n > 0 for name, n in counts.items() if name not in ENRICHED), counts
    assert all(counts[name] == 0 for name in ENRICHED), counts


def test_yearly_summary(built: Any) -> None:
    engine, rows, _, _ = built
    by_year: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        by_year[r["start_date_local"].year].append(r)
    got = {r["activity_year"]: r for r in fetch(engine, "activity_summary_yearly")}
    assert set(got) == set(by_year)
    for year, items in by_year.items():
        g = got[year]
        assert g["activity_count"] == len(items)
        assert g["sport_count"] == len({r["sport_type"] for r in items if r["sport_type"]})
        assert close(g["total_km"], sum(r["distance"] for r in items) / 1000, 1)
        assert close(g["total_moving_hours"], sum(r["moving_time"] for r in items) / 3600, 1)
        assert close(g["total_elevation_m"], sum(r["total_elevation_gain"] or 0 for r in items), 0)
        kudos = [r["kudos_count"] for r in items if r["kudos_count"] is not None]
        assert g["total_kudos"] == sum(kudos)
        assert close(g["avg_kudos"], mean(kudos), 2)
        assert g["max_kudos"] == max(kudos)


def test_summary_by_sport(built: Any) -> None:
    engine, rows, _, _ = built
    by_sport: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        by_sport[r["sport_type"] or "Unknown"].append(r)
    got = {r["sport_type"]: r for r in fetch(engine, "activity_summary_by_sport")}
    assert set(got) == set(by_sport)
    for sport, items in by_sport.items():
        g = got[sport]
        assert g["activity_count"] == len(items)
        assert as_date(g["first_activity_on"]) == min(r["start_date_local"] for r in items).date()
        assert as_date(g["last_activity_on"]) == max(r["start_date_local"] for r in items).date()
        assert close(g["avg_km"], mean([r["distance"] for r in items]) / 1000, 2)  # type: ignore[operator]
        assert close(g["avg_moving_minutes"], mean([r["moving_time"] for r in items]) / 60, 1)  # type: ignore[operator]
        assert close(g["avg_kudos"], mean([r["kudos_count"] for r in items]), 2)


def test_monthly_distance_by_sport(built: Any) -> None:
    engine, rows, _, _ = built
    expected: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        month = r["start_date_local"].date().replace(day=1)
        expected[(month, r["sport_type"] or "Unknown")].append(r)
    got = {(as_date(r["month"]), r["sport_type"]): r for r in fetch(engine, "monthly_distance_by_sport")}
    assert set(got) == set(expected)
    for key, items in expected.items():
        assert got[key]["activity_count"] == len(items)
        assert close(got[key]["total_km"], sum(r["distance"] for r in items) / 1000, 1)
        assert got[key]["total_kudos"] == sum(r["kudos_count"] or 0 for r in items)


def test_weekly_training_load_with_rolling_averages(built: Any) -> None:
    engine, rows, _, _ = built
    weekly: dict[date, dict[str, float]] = defaultdict(lambda: {"n": 0, "s": 0.0, "m": 0.0, "e": 0.0})
    for r in live(rows):
        w = weekly[week_start(r["start_date_local"])]
        w["n"] += 1
        w["s"] += r["moving_time"]
        w["m"] += r["distance"]
        w["e"] += r["total_elevation_gain"] or 0
    last = max(weekly)
    spine = {w + timedelta(weeks=k) for w in weekly for k in range(4) if w + timedelta(weeks=k) <= last}
    got = {as_date(r["week_start"]): r for r in fetch(engine, "weekly_training_load")}
    assert set(got) == spine
    empty = {"n": 0, "s": 0.0, "m": 0.0, "e": 0.0}
    gap_weeks = 0
    for week in spine:
        this = weekly.get(week, empty)
        window = [weekly.get(week - timedelta(weeks=k), empty) for k in range(4)]
        g = got[week]
        gap_weeks += this["n"] == 0
        assert g["activity_count"] == this["n"]
        assert close(g["moving_hours"], this["s"] / 3600, 2)
        assert close(g["distance_km"], this["m"] / 1000, 1)
        assert close(g["elevation_m"], this["e"], 0)
        assert close(g["moving_hours_4wk_avg"], sum(w["s"] for w in window) / 3600 / 4, 2)
        assert close(g["distance_km_4wk_avg"], sum(w["m"] for w in window) / 1000 / 4, 1)
        assert close(g["elevation_m_4wk_avg"], sum(w["e"] for w in window) / 4, 0)
    assert gap_weeks >= 3  # the 40-day gap shows as empty weeks with a decaying average


def test_kudos_by_weekday_and_hour(built: Any) -> None:
    engine, rows, _, _ = built
    cells: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        cells[(r["start_date_local"].isoweekday(), r["start_date_local"].hour)].append(r)
    got = {(r["iso_weekday"], r["start_hour"]): r for r in fetch(engine, "kudos_by_weekday_hour")}
    assert set(got) == set(cells)
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for (weekday, hour), items in cells.items():
        g = got[(weekday, hour)]
        assert g["weekday"] == names[weekday - 1]
        assert g["activity_count"] == len(items)
        assert g["total_kudos"] == sum(r["kudos_count"] or 0 for r in items)
        assert close(g["avg_kudos"], mean([r["kudos_count"] for r in items]), 2)


def _place(r: dict[str, Any]) -> tuple[str, str | None, str | None, float | None, float | None] | None:
    city = r["location_city"] or None
    country = r["location_country"] or None
    if city:
        return ("city", city, country, None, None)
    if country:
        return ("country", None, country, None, None)
    if r["start_lat"] is not None and r["start_lng"] is not None:
        import math

        return ("grid", None, None, math.floor(r["start_lat"] * 2) / 2, math.floor(r["start_lng"] * 2) / 2)
    return None


def test_kudos_by_place(built: Any) -> None:
    engine, rows, _, _ = built
    places: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        key = _place(r)
        if key is not None:
            places[key].append(r)
    got = {
        (r["place_type"], r["city"], r["country"], num(r["grid_lat"]), num(r["grid_lng"])): r
        for r in fetch(engine, "kudos_by_place")
    }
    assert set(got) == set(places)
    labels = {g["place"] for g in got.values()}
    assert "London, United Kingdom" in labels
    assert "France" in labels
    assert "grid 35.5, 139.5" in labels
    assert "grid -0.5, -1.0" in labels  # empty strings are no place; floor goes south-west
    assert 'São Paulo </script>, Brasil "quoted"' in labels
    for key, items in places.items():
        g = got[key]
        assert g["activity_count"] == len(items)
        assert g["total_kudos"] == sum(r["kudos_count"] or 0 for r in items)
        assert close(g["avg_kudos"], mean([r["kudos_count"] for r in items]), 2)
        assert close(g["avg_start_lat"], mean([r["start_lat"] for r in items]), 4)


def test_kudos_history_daily(built: Any) -> None:
    engine, rows, history, _ = built
    alive = {r["id"] for r in live(rows)}
    per_activity: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for h in sorted(history, key=lambda h: h["observed_at"]):
        if h["activity_id"] in alive:
            per_activity[h["activity_id"]].append(h)
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for observations in per_activity.values():
        previous = None
        for h in observations:
            d = days[h["observed_at"].date()]
            d["observations"] += 1
            if previous is None:
                d["activities_first_seen"] += 1
                d["kudos_on_first_seen"] += h["kudos_count"]
            else:
                d["activities_changed"] += 1
                d["kudos_gained_later"] += h["kudos_count"] - previous
            previous = h["kudos_count"]
    got = {as_date(r["observed_on"]): r for r in fetch(engine, "kudos_history_daily")}
    assert set(got) == set(days)
    total = 0
    for day in sorted(days):
        expected = days[day]
        total += expected["kudos_on_first_seen"] + expected["kudos_gained_later"]
        for key in ("observations", "activities_first_seen", "activities_changed", "kudos_on_first_seen"):
            assert got[day][key] == expected[key], (day, key)
        assert got[day]["kudos_gained_later"] == expected["kudos_gained_later"]
        assert got[day]["kudos_total"] == total
    deleted_with_history = {h["activity_id"] for h in history} - alive
    assert deleted_with_history, "the fixture must hold history of a deleted activity"


def test_activity_calendar_daily(built: Any) -> None:
    engine, rows, _, _ = built
    days: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for r in live(rows):
        days[r["start_date_local"].date()].append(r)
    got = {as_date(r["activity_date"]): r for r in fetch(engine, "activity_calendar_daily")}
    assert set(got) == set(days)
    for day, items in days.items():
        assert got[day]["activity_count"] == len(items)
        assert close(got[day]["distance_km"], sum(r["distance"] for r in items) / 1000, 1)
        assert got[day]["total_kudos"] == sum(r["kudos_count"] or 0 for r in items)


def test_spine_monthly_model_averages_are_not_truncated(built: Any) -> None:
    engine, rows, _, _ = built
    runs = [r for r in live(rows) if r["sport_type"] in ("Run", "TrailRun", "VirtualRun")]
    months: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        months[r["start_date_local"].date().replace(day=1)].append(r)
    got = {as_date(r["month"]): r for r in fetch(engine, "activity_summary_monthly")}
    assert set(got) == set(months)
    for month, items in months.items():
        kudos = [r["kudos_count"] for r in items if r["kudos_count"] is not None]
        assert close(got[month]["avg_kudos"], mean(kudos), 2)
        assert close(got[month]["avg_moving_minutes"], mean([r["moving_time"] for r in items]) / 60, 1)  # type: ignore[operator]
        if len(kudos) > 1:
            assert close(got[month]["stddev_kudos"], statistics.stdev(kudos), 2)


def test_deleted_activities_are_excluded_everywhere(built: Any) -> None:
    engine, rows, _, _ = built
    live_rows = live(rows)
    assert len(live_rows) < len(rows)
    count_columns = {
        "activity_summary_yearly": "activity_count",
        "activity_summary_by_sport": "activity_count",
        "monthly_distance_by_sport": "activity_count",
        "weekly_training_load": "activity_count",
        "kudos_by_weekday_hour": "activity_count",
        "activity_calendar_daily": "activity_count",
        "year_in_review": "activity_count",
    }
    for table, column in count_columns.items():
        assert sum(r[column] for r in fetch(engine, table)) == len(live_rows), table
    located = [r for r in live_rows if _place(r) is not None]
    assert sum(r["activity_count"] for r in fetch(engine, "kudos_by_place")) == len(located)


def test_models_rebuild_idempotently(built: Any) -> None:
    engine, _, _, counts = built
    before = {name: fetch(engine, name) for name in counts}
    assert build_all(engine) == counts
    assert {name: fetch(engine, name) for name in counts} == before


def test_models_build_on_an_empty_warehouse(engine: sa.Engine) -> None:
    wh.ensure_tables(engine)
    counts = build_all(engine)
    assert all(n == 0 for n in counts.values()), counts


def test_decimal_types_come_back_as_numbers(built: Any) -> None:
    engine, *_ = built
    row = fetch(engine, "activity_summary_yearly")[0]
    assert isinstance(row["total_km"], Decimal | float)
    assert isinstance(row["activity_year"], int)


def test_every_model_starts_with_the_athlete(built: Any) -> None:
    engine, _, _, counts = built
    for name in counts:
        with engine.connect() as conn:
            columns = list(conn.execute(sa.text(f"SELECT * FROM {name} LIMIT 0")).keys())  # noqa: S608 - model names
        assert columns[0] == "athlete_id", name


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: repr(list(r.values())))


def test_models_are_per_athlete(built: Any) -> None:
    """Another athlete in the warehouse changes none of the first athlete's model rows."""
    engine, _, _, counts = built
    alone = {name: fetch(engine, name) for name in counts}
    # Athlete 43: other activities, some in the same weeks, months, places and hours as 42's.
    other, other_history = make_rows(seed=8, count=200, athlete_id=43, first_id=9_100_000_000)
    metadata = sa.MetaData()
    with engine.begin() as conn:
        conn.execute(
            schema.activity_table(metadata).insert(),
            [{c.name: r.get(c.name) for c in schema.ALL_COLUMNS} for r in other],
        )
        conn.execute(schema.stats_history_table(metadata).insert(), other_history)
    together = build_all(engine)
    print("\nmodel rows, athlete 42 alone -> with athlete 43:", {n: f"{counts[n]} -> {together[n]}" for n in counts})
    for name in counts:
        if name in ENRICHED:
            continue  # no rows here: tests/test_insight_models.py checks their athlete scope
        rows = fetch(engine, name)
        assert {r["athlete_id"] for r in rows} == {42, 43}, name
        assert _sorted([r for r in rows if r["athlete_id"] == 42]) == _sorted(alone[name]), name
        assert together[name] > counts[name], name


def test_dashboard_and_kudos_queries_run_on_every_backend(built: Any) -> None:
    from tasks import kudos
    from tasks.insight import dashboard

    engine, rows, _, _ = built
    alive = live(rows)
    data = dashboard.collect_data(engine, athlete_id=42)
    assert data["kpis"]["activities"] == len(alive)
    assert len(data["activities"]["rows"]) == sum(1 for r in alive if r["kudos_count"] is not None)
    assert data["monthly"]["labels"] and data["calendar"]["cells"] and data["weekdayHour"]["cells"]
    assert "São Paulo &lt;/script&gt;" in dashboard.render_html(data)
    assert dashboard.read_validation_results(engine) == []  # the table exists (ensure_tables), no run merged yet
    assert len(kudos.read_activities(engine, 42)) == len(alive)
    assert kudos.read_activities(engine, 43) == []


@pytest.mark.postgres
def test_two_runs_rebuilding_a_model_at_once_both_succeed(request: pytest.FixtureRequest) -> None:
    """Two athletes' runs finish together: their rebuilds of one model take turns, not DROP/CREATE races.

    Without the lock the second build's DROP misses the first's uncommitted table and its CREATE
    fails with DuplicateTable once the first commits (seen in the round's e2e on PostgreSQL).
    """
    import threading

    engine = sa.create_engine(request.getfixturevalue("pg_url"))
    try:
        wh.ensure_tables(engine)
        path = wh.model_files()[0]
        name = wh.model_name(path)
        errors: list[BaseException] = []

        def build() -> None:
            try:
                wh.build_model(engine, path)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        other = threading.Thread(target=build)
        with engine.begin() as conn:  # the first run's build, holding its transaction open
            wh.dialect_for(engine).lock_models(conn, state=wh.MODEL_STATE_TABLE)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE TABLE {name} AS SELECT 1 AS athlete_id")
            other.start()
            other.join(timeout=1.0)  # it waits for this transaction (it never finishes first)
            assert other.is_alive()
        other.join(timeout=60)
        assert not errors, errors
        with engine.connect() as conn:
            assert "month" in conn.execute(sa.text(f"SELECT * FROM {name} LIMIT 0")).keys()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- Eddington, year in review, gear (by hand)


def _known_rows() -> list[dict[str, Any]]:
    """A small history of athlete 7 whose figures are worked out by hand in the tests below."""
    spec = [
        # local start, sport, km, kudos, prs, gear, deleted
        ("2023-05-01 07:00", "Ride", 3.0, 2, 1, "b1", False),
        ("2023-05-02 07:00", "Ride", 2.0, 5, 0, "b1", False),
        ("2023-05-02 19:00", "VirtualRide", 1.5, None, 0, "b1", False),  # same day: 3.5 km of riding
        ("2023-05-03 07:00", "EBikeRide", 50.0, 5, 2, "b2", False),  # motor assisted: no Eddington
        ("2023-06-01 07:00", "Ride", 3.0, 1, 0, "b1", False),
        ("2024-01-10 07:00", "GravelRide", 5.0, 3, 0, "b1", False),
        ("2024-01-11 07:00", "Ride", 4.0, 4, 0, "b1", False),
        ("2024-02-01 07:00", "Ride", 2.9, 99, 9, "b1", True),  # deleted: counts nowhere
        ("2024-03-01 07:00", "Ride", 3.0, 0, 0, "b1", False),
        ("2024-07-01 06:00", "Run", 10.0, 6, 1, "g1", False),
        ("2024-07-01 23:30", "TrailRun", 2.0, 6, 0, "g1", False),  # UTC: the next day; local: 12 km on 07-01
        ("2024-07-02 07:00", "Run", 1.0, 2, 0, "g1", False),
        ("2025-12-30 07:00", "Yoga", 0.0, None, 0, "", False),
        ("2025-12-31 07:00", "Yoga", 0.0, None, 0, None, False),
    ]
    rows = []
    for i, (start, sport, km, kudos, prs, gear, deleted) in enumerate(spec):
        local = datetime.fromisoformat(start)
        rows.append(
            {
                "id": 7_000 + i,
                "athlete_id": 7,
                "name": f"{sport} {i} </b>",
                "sport_type": sport,
                "distance": km * 1000,
                "moving_time": 600,
                "total_elevation_gain": 10.0,
                "start_date": (local + timedelta(hours=7)).replace(tzinfo=UTC),
                "start_date_local": local,
                "kudos_count": kudos,
                "pr_count": prs,
                "gear_id": gear,
                "deleted_at": datetime(2025, 1, 1, tzinfo=UTC) if deleted else None,
            }
        )
    return rows


@pytest.fixture
def known(engine: sa.Engine) -> sa.Engine:
    insert(engine, _known_rows(), [])
    other, _ = make_rows(count=80, athlete_id=8, first_id=9_200_000_000)  # another athlete, never mixed in
    insert(engine, other, [])
    build_all(engine)
    return engine


def _mine(engine: sa.Engine, table: str, *key: str) -> dict[Any, dict[str, Any]]:
    return {tuple(r[k] for k in key): r for r in fetch(engine, table) if r["athlete_id"] == 7}


def test_eddington_numbers_by_hand(known: sa.Engine) -> None:
    """Ride days (km): 5.0, 4.0, 3.5, 3.0, 3.0, 3.0 -> E 3 (a 4th day of 4 km would make 4).

    In miles: 3.11, 2.49, 2.17, 1.86 x 3 -> E 2; days of 3 mi or more: one. Run days (local):
    12.0 and 1.0 km -> E 1, one day of 2 km or more.
    """
    got = _mine(known, "eddington", "sport_group", "unit")
    columns = ("eddington_number", "next_number", "days_at_next", "days_needed_for_next", "days_total")
    expected = {
        ("ride", "km"): (3, 4, 2, 2, 6, 5.0),
        ("ride", "mi"): (2, 3, 1, 2, 6, 3.1),
        ("run", "km"): (1, 2, 1, 1, 2, 12.0),
        ("run", "mi"): (1, 2, 1, 1, 2, 7.5),
    }
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert tuple(got[key][c] for c in columns) == values[:5], key
        assert close(got[key]["longest_day"], values[5], 1), key


def test_eddington_history_by_year_by_hand(known: sa.Engine) -> None:
    """2023's rides: 3.5, 3.0, 3.0 km -> E 3 exactly (a day of exactly E counts), in miles E 1.

    2025 has no ride (only yoga) but is a year of the athlete: the number carries over.
    """
    got = _mine(known, "eddington_yearly", "sport_group", "unit", "activity_year")
    columns = ("eddington_number", "gained", "days_at_next", "days_needed_for_next", "days_total")
    expected = {
        ("ride", "km", 2023): (3, 3, 0, 4, 3),
        ("ride", "km", 2024): (3, 0, 2, 2, 6),
        ("ride", "km", 2025): (3, 0, 2, 2, 6),
        ("ride", "mi", 2023): (1, 1, 1, 1, 3),
        ("ride", "mi", 2024): (2, 1, 1, 2, 6),
        ("ride", "mi", 2025): (2, 0, 1, 2, 6),
        ("run", "km", 2024): (1, 1, 1, 1, 2),
        ("run", "km", 2025): (1, 0, 1, 1, 2),
        ("run", "mi", 2024): (1, 1, 1, 1, 2),
        ("run", "mi", 2025): (1, 0, 1, 1, 2),
    }
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert tuple(got[key][c] for c in columns) == values, key


def test_eddington_matches_a_brute_force_count(built: Any) -> None:
    """On the random fixture: E is the largest n with n days of at least n units (checked by counting)."""
    engine, rows, _, _ = built
    groups = {"Ride": "ride", "VirtualRide": "ride", "Run": "run", "TrailRun": "run"}
    days: dict[tuple[str, date], float] = defaultdict(float)
    for r in live(rows):
        if r["sport_type"] in groups and r["distance"] > 0:
            days[(groups[r["sport_type"]], r["start_date_local"].date())] += r["distance"]
    got = _mine_of(engine, 42)
    for (group, unit), row in got.items():
        metres = 1000.0 if unit == "km" else 1609.344
        dist = [d for (g, _), d in days.items() if g == group]
        e = max(n for n in range(len(dist) + 1) if sum(1 for d in dist if d >= n * metres) >= n)
        assert row["eddington_number"] == e, (group, unit)
        assert row["days_needed_for_next"] == e + 1 - sum(1 for d in dist if d >= (e + 1) * metres)
    assert set(got) == {("ride", "km"), ("ride", "mi"), ("run", "km"), ("run", "mi")}


def _mine_of(engine: sa.Engine, athlete: int) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["sport_group"], r["unit"]): r for r in fetch(engine, "eddington") if r["athlete_id"] == athlete}


def test_year_in_review_by_hand(known: sa.Engine) -> None:
    got = _mine(known, "year_in_review", "activity_year")
    assert set(got) == {(2023,), (2024,), (2025,)}
    y23, y24, y25 = got[(2023,)], got[(2024,)], got[(2025,)]
    assert (y23["activity_count"], y23["active_days"], y23["pr_count"], y23["total_kudos"]) == (5, 4, 3, 13)
    assert close(y23["total_km"], 59.5, 1) and close(y23["total_moving_hours"], 3000 / 3600, 1)
    assert close(y23["total_elevation_m"], 50, 0)
    assert (y23["longest_streak_days"], as_date(y23["streak_start"]), as_date(y23["streak_end"])) == (
        3,
        date(2023, 5, 1),
        date(2023, 5, 3),
    )
    assert as_date(y23["biggest_day"]) == date(2023, 5, 3) and close(y23["biggest_day_km"], 50.0, 1)
    # 5 kudos twice: the earlier activity wins.
    assert (y23["most_kudos"], y23["most_kudos_activity_id"], as_date(y23["most_kudos_date"])) == (
        5,
        7_001,
        date(2023, 5, 2),
    )
    assert y23["most_kudos_name"] == "Ride 1 </b>"
    # 2024: the deleted ride (99 kudos, 9 PRs) counts nowhere; two 2-day streaks, the earlier wins.
    assert (y24["activity_count"], y24["active_days"], y24["pr_count"], y24["most_kudos"]) == (6, 5, 1, 6)
    assert y24["most_kudos_activity_id"] == 7_009
    assert (y24["longest_streak_days"], as_date(y24["streak_start"])) == (2, date(2024, 1, 10))
    assert as_date(y24["biggest_day"]) == date(2024, 7, 1) and y24["biggest_day_activities"] == 2
    assert close(y24["biggest_day_km"], 12.0, 1)
    # 2025: yoga on 30 and 31 December, no distance and no kudos count.
    assert (y25["longest_streak_days"], as_date(y25["streak_end"])) == (2, date(2025, 12, 31))
    assert as_date(y25["biggest_day"]) == date(2025, 12, 30) and close(y25["biggest_day_km"], 0.0, 1)
    assert y25["most_kudos"] is None and y25["most_kudos_name"] is None and y25["pr_count"] == 0


def test_gear_usage_by_hand(known: sa.Engine) -> None:
    got = _mine(known, "gear_usage", "gear_id")
    assert set(got) == {("b1",), ("b2",), ("g1",)}  # no gear, or an empty id: left out
    b1, b2, g1 = got[("b1",)], got[("b2",)], got[("g1",)]
    assert (b1["activity_count"], b1["main_sport_type"]) == (7, "Ride")
    assert close(b1["total_km"], 21.5, 1) and close(b1["total_moving_hours"], 7 * 600 / 3600, 1)
    assert (as_date(b1["first_used_on"]), as_date(b1["last_used_on"])) == (date(2023, 5, 1), date(2024, 3, 1))
    assert (b2["activity_count"], b2["main_sport_type"]) == (1, "EBikeRide") and close(b2["total_km"], 50.0, 1)
    assert (g1["activity_count"], g1["main_sport_type"]) == (3, "Run") and close(g1["total_km"], 13.0, 1)


def test_gear_thresholds_flag_the_gear_due(known: sa.Engine) -> None:
    from tasks.insight import dashboard

    settings = dashboard.InsightSettings(gear_thresholds_km={"b1": 20, "g1": 100, "elsewhere": 1})
    data = dashboard.collect_data(known, athlete_id=7, settings=settings)
    rows = {g["gear_id"]: g for g in data["gear"]["rows"]}
    assert [g["gear_id"] for g in data["gear"]["rows"]] == ["b2", "b1", "g1"]  # most km first
    assert rows["b1"]["due"] and rows["b1"]["pct"] == 107.5
    assert not rows["g1"]["due"] and rows["g1"]["pct"] == 13.0
    assert rows["b2"]["threshold_km"] is None and not rows["b2"]["due"]
    assert data["gear"]["due"] == ["b1"]
    page = dashboard.render_html(data)
    assert 'id="gear-warning"' in page and "Due for maintenance: b1" in page
    assert [g["group"] for g in data["eddington"]["groups"]] == ["ride", "run"]
    assert data["eddington"]["years"] == [2023, 2024, 2025]
    assert [y["activity_year"] for y in data["yearReview"]] == [2025, 2024, 2023]
    assert "Ride 1 &lt;/b&gt;" in page and "Ride 1 </b>" not in page
