"""The dashboard: one self-contained HTML file drawn from the model tables.

Everything the page needs is inside it: Chart.js and chartjs-chart-matrix (vendored under
``tasks/insight/assets/`` with their licences), the page's own script and style, and the data as
JSON. A Content-Security-Policy forbids every network request, so the file opens the same
from a laptop, an S3 download or an e-mail attachment.

:func:`collect_data` reads the warehouse (models, activities and the recorded validation
results), :func:`render_html` fills the Jinja2 template ``tasks/insight/assets/dashboard.html.j2``
(autoescaped) with it, :func:`publish_dashboard` writes it to the lake with a Prefect artifact that links
it over http(s) (:mod:`tasks.insight.links`) or, without such a link, names the file.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import jinja2
import sqlalchemy as sa
from markupsafe import Markup
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks import lake as lake_io
from tasks import quality
from tasks import warehouse as wh
from tasks.insight import heatmap, links
from tasks.state.variables import read_variable

if TYPE_CHECKING:
    from tasks.insight.curves import ActivityStreams, ActivitySummary, SummaryStore

__all__ = [
    "GEAR_THRESHOLDS_VARIABLE",
    "PRIVACY_RADIUS_VARIABLE",
    "VALIDATION_TABLE",
    "InsightSettings",
    "collect_data",
    "dashboard_paths",
    "publish_dashboard",
    "read_table",
    "read_settings",
    "read_validation_results",
    "render_dashboard",
    "render_html",
]

ASSETS_DIR = wh.package_dir("tasks.insight") / "assets"
VENDORED = ("chart.umd.min.js", "chartjs-chart-matrix.min.js")
TEMPLATE = "dashboard.html.j2"
VALIDATION_TABLE = wh.VALIDATION_TABLE
VALIDATION_RUNS = 10
"""How many of the athlete's runs the dashboard's validation history shows."""
ARTIFACT_KEY = "strava-dashboard"
MAX_POINTS = 2000
MONTHS_SHOWN = 36
WEEKS_SHOWN = 26
LOAD_WEEKS = 52
TOP_SPORTS = 6
TILE_HOST = "https://tile.openstreetmap.org"
"""Where the heatmap's optional map tiles come from: requested only when the reader presses its button."""
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    f"img-src data: {TILE_HOST}; connect-src 'none'; font-src 'none'; form-action 'none'; base-uri 'none'"
)
GEAR_THRESHOLDS_VARIABLE = "strava_gear_thresholds"
"""Prefect Variable: a JSON object of gear id -> the gear's total km at which it is due for maintenance."""
PRIVACY_RADIUS_VARIABLE = "strava_privacy_radius_m"
"""Prefect Variable: the heatmap's privacy radius in metres (default 200; 0 turns it off)."""
MAX_PRIVACY_RADIUS_M = 5000.0
_WORKOUTS = ("default", "long run", "workout", "race")
_CHECK_FIELDS = ("name", "severity", "operator", "value_1", "value_2", "outcome", "detail")
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class InsightSettings:
    """What a user sets for the dashboard (Prefect Variables, see :func:`read_settings`)."""

    privacy_radius_m: float = heatmap.PRIVACY_RADIUS_M
    """Points of a route within this many metres of a frequent start or end are never drawn; 0 = off."""
    gear_thresholds_km: Mapping[str, float] = field(default_factory=dict)
    """Gear id -> total km at which the gear is due for maintenance."""

    @classmethod
    def parse(cls, privacy_radius: Any = None, gear_thresholds: Any = None) -> InsightSettings:
        """Settings from the Variables' values (None: the default).

        Raises:
            ValueError: A value of the wrong shape; the message names the Variable and what it takes.

        """
        radius: float | None = heatmap.PRIVACY_RADIUS_M
        if privacy_radius is not None:
            radius = _number(privacy_radius)
            if radius is None or not 0 <= radius <= MAX_PRIVACY_RADIUS_M:
                raise ValueError(
                    f"Prefect Variable {PRIVACY_RADIUS_VARIABLE} must be a number of metres from 0 (off) to "
                    f"{MAX_PRIVACY_RADIUS_M:g}, e.g. 200; it is {privacy_radius!r}: set it again or delete it"
                )
        thresholds: dict[str, float] = {}
        if gear_thresholds is not None:
            value = gear_thresholds
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
            if not isinstance(value, dict):
                raise ValueError(
                    f"Prefect Variable {GEAR_THRESHOLDS_VARIABLE} must be a JSON object of gear id to km, e.g. "
                    f'{{"b1234567": 5000, "g7654321": 800}}; it is not an object: set it again or delete it'
                )
            for gear_id, km in value.items():
                number = _number(km)
                if number is None or number <= 0:
                    raise ValueError(
                        f"Prefect Variable {GEAR_THRESHOLDS_VARIABLE}: the threshold of gear {str(gear_id)[:40]!r} "
                        f"must be a positive number of km, it is {str(km)[:40]!r}: correct it"
                    )
                thresholds[str(gear_id)] = number
        return cls(heatmap.PRIVACY_RADIUS_M if radius is None else radius, thresholds)


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_settings() -> InsightSettings:
    """The settings from the Prefect Variables ``strava_privacy_radius_m`` and ``strava_gear_thresholds``.

    Raises:
        ValueError: A Variable holds a value of the wrong shape (the message says which and how to fix it).

    """
    return InsightSettings.parse(read_variable(PRIVACY_RADIUS_VARIABLE), read_variable(GEAR_THRESHOLDS_VARIABLE))


# --------------------------------------------------------------------------- reading


def _plain(value: Any) -> Any:
    """A JSON-friendly value: decimals as floats, dates as ISO strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _table_exists(conn: sa.Connection, name: str) -> bool:
    return bool(conn.execute(sa.text(wh.read_sql("dashboard/table_exists.sql")), {"name": name}).scalar())


def read_table(conn: sa.Connection, name: str, athlete_id: int | None = None) -> list[dict[str, Any]]:
    """Every row of a table, or none when the table does not exist (yet).

    With ``athlete_id`` (a model, which has the column): only that athlete's rows, without the column.
    """
    if not _table_exists(conn, name):
        return []
    file = "dashboard/read_model.sql" if athlete_id is None else "dashboard/read_athlete_model.sql"
    statement = sa.text(wh.render(wh.read_sql(file), conn.dialect.identifier_preparer, model=name))
    rows = [dict(row) for row in conn.execute(statement, {"athlete_id": athlete_id}).mappings()]
    if athlete_id is not None:
        for row in rows:
            del row["athlete_id"]
    return rows


def read_validation_results(
    engine: sa.Engine, athlete_id: int | None = None, runs: int = VALIDATION_RUNS
) -> list[dict[str, Any]] | None:
    """The athlete's newest ``runs`` merged runs in ``strava_validation_results``; None without the table.

    Newest first, each a dict: ``run_key``, ``checked_at``, the ``passed``, ``failed`` and
    ``skipped`` counts, ``failed_checks`` (names) and ``checks`` (its rows, in the manifest's
    order). ``athlete_id`` None: the warehouse's only athlete (none: no runs).
    """
    with engine.connect() as conn:
        if not _table_exists(conn, VALIDATION_TABLE):
            return None
    athlete_id = wh.choose_athlete(engine, athlete_id)
    if athlete_id is None:
        return []
    with engine.connect() as conn:
        return _validation_runs(conn, athlete_id, runs)


def _validation_runs(conn: sa.Connection, athlete_id: int, runs: int) -> list[dict[str, Any]]:
    """Group the athlete's result rows (newest run first) into at most ``runs`` runs."""
    sql = wh.render(
        wh.read_sql("dashboard/validation_results.sql"), conn.dialect.identifier_preparer, results=VALIDATION_TABLE
    )
    found: list[dict[str, Any]] = []
    for row in conn.execute(sa.text(sql), {"athlete_id": athlete_id}).mappings():
        if not found or found[-1]["run_key"] != row["run_key"]:
            if len(found) == runs:
                break
            found.append({"run_key": row["run_key"], "checked_at": row["checked_at"], "checks": []})
        found[-1]["checks"].append({k: row[k] for k in _CHECK_FIELDS})
    for run in found:
        run.update(quality.outcome_counts(run["checks"]))
        run["failed_checks"] = [c["name"] for c in run["checks"] if c["outcome"] == quality.FAILED]
    return found


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _num(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def collect_data(
    engine: sa.Engine,
    checks: Sequence[Mapping[str, Any]] | None = None,
    *,
    athlete_id: int | None = None,
    generated_at: datetime | None = None,
    settings: InsightSettings | None = None,
    heatmap_store: heatmap.HeatmapStore | None = None,
    summary_store: SummaryStore | None = None,
) -> dict[str, Any]:
    """Read one athlete's models and activities into the dashboard's data (plain, JSON-ready).

    ``athlete_id`` None: the warehouse's only athlete (no data when it holds none).
    ``checks``: this run's check results; None: the newest recorded in the warehouse. The
    athlete's recent runs' tallies come from the warehouse either way.
    ``settings``: the privacy radius and gear thresholds; None: :func:`read_settings`.
    ``heatmap_store``: where the heatmap of the same routes is kept between runs (:class:`LakeHeatmapStore`).
    ``summary_store``: where each activity's bests and thinned track are kept between runs
    (:class:`LakeSummaryStore`): with it, only the samples of activities new since are read.

    Raises:
        ValueError: No athlete given and the warehouse holds several (the message lists them),
            or a setting's Variable holds a value of the wrong shape.

    """
    from tasks.insight import curves  # pyarrow.compute: imported when a dashboard is drawn, not with the flow

    settings = read_settings() if settings is None else settings
    athlete_id = wh.choose_athlete(engine, athlete_id)
    names = (
        "monthly_distance_by_sport",
        "weekly_kudos_change",
        "weekly_training_load",
        "activity_calendar_daily",
        "kudos_by_weekday_hour",
        "kudos_by_place",
        "activity_summary_yearly",
        "activity_summary_by_sport",
        "eddington",
        "eddington_yearly",
        "year_in_review",
        "gear_usage",
        "best_effort_progression",
        "segment_pr_history",
        "time_in_zones_weekly",
        "fitness_daily",
    )
    generated = generated_at or datetime.now(UTC)
    models: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    points: list[dict[str, Any]] = []
    polylines: list[str] = []
    mean_max = curves.curves((), generated.date())
    drawn: dict[str, Any] | None = None
    gear_names: dict[str, str] = {}
    runs: list[dict[str, Any]] = []
    if athlete_id is not None:
        with engine.connect() as conn:
            models = {name: read_table(conn, name, athlete_id) for name in names}
            result = conn.execute(sa.text(wh.read_sql("dashboard/activity_points.sql")), {"athlete_id": athlete_id})
            points = [dict(r) for r in result.mappings().fetchmany(MAX_POINTS)]
            entries, summaries = curves.read_summaries(conn, athlete_id, summary_store)
            mean_max = curves.summary_curves(entries, summaries, generated.date())
            with_track = {e.activity_id for e in entries if summaries[e.activity_id].points}
            found = conn.execute(sa.text(wh.read_sql("dashboard/activity_routes.sql")), {"athlete_id": athlete_id})
            polylines = [str(r[1]) for r in found if int(r[0]) not in with_track]  # streams first
            drawn = heatmap.heatmap_data(
                polylines,
                settings.privacy_radius_m,
                heatmap_store,
                functools.partial(curves.load_tracks, conn, athlete_id, entries, summaries, summary_store),
                curves.tracks_key(entries, summaries),
            )
            if _table_exists(conn, "strava_gear"):
                named = conn.execute(sa.text(wh.read_sql("dashboard/gear_names.sql")), {"athlete_id": athlete_id})
                gear_names = {str(r[0]): str(r[1]) for r in named if r[1]}
            if _table_exists(conn, VALIDATION_TABLE):
                runs = _validation_runs(conn, athlete_id, VALIDATION_RUNS)
    if checks is None and runs:
        checks = runs[0]["checks"]
    activities = _activities(points)
    by_sport = models["activity_summary_by_sport"]
    calendar = _calendar(models["activity_calendar_daily"])
    return {
        "athleteId": athlete_id,
        "generatedAt": generated.isoformat(timespec="seconds"),
        "kpis": {
            "activities": sum(r["activity_count"] for r in by_sport),
            "km": round(sum(float(r["total_km"] or 0) for r in by_sport)),
            "hours": round(sum(float(r["total_moving_hours"] or 0) for r in by_sport)),
            "kudos": sum(int(r["total_kudos"] or 0) for r in by_sport),
            "sports": len(by_sport),
            "latest": calendar["end"],
        },
        "monthly": _monthly(models["monthly_distance_by_sport"]),
        "weeklyKudos": _weekly_kudos(models["weekly_kudos_change"]),
        "load": _load(models["weekly_training_load"]),
        "calendar": calendar,
        "weekdayHour": {
            "cells": [
                [r["start_hour"], r["iso_weekday"], _num(r["avg_kudos"], 2), r["activity_count"]]
                for r in models["kudos_by_weekday_hour"]
            ]
        },
        "activities": activities,
        "startPoints": _start_points(activities),
        "places": [
            {k: _plain(r[k]) for k in ("place", "place_type", "activity_count", "total_kudos", "avg_kudos")}
            for r in models["kudos_by_place"][:10]
        ],
        "years": [
            {k: _plain(v) for k, v in r.items()}
            for r in sorted(models["activity_summary_yearly"], key=lambda r: r["activity_year"], reverse=True)
        ],
        "eddington": _eddington(models["eddington"], models["eddington_yearly"]),
        "yearReview": _year_review(models["year_in_review"]),
        "gear": _gear(models["gear_usage"], settings.gear_thresholds_km, gear_names),
        "heatmap": heatmap.render_heatmap([], settings.privacy_radius_m).as_dict() if drawn is None else drawn,
        "bestEfforts": _best_efforts(models["best_effort_progression"]),
        "segments": _segments(models["segment_pr_history"]),
        "curves": mean_max,
        "zones": _zones(models["time_in_zones_weekly"]),
        "fitness": _fitness(models["fitness_daily"]),
        "checks": None if checks is None else [{k: _plain(c.get(k)) for k in _CHECK_FIELDS} for c in checks],
        "validationRuns": [{k: _plain(v) for k, v in run.items() if k != "checks"} for run in runs],
    }


def _monthly(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked km per month and sport over the last ``MONTHS_SHOWN`` months; small sports as Other."""
    if not rows:
        return {"labels": [], "series": []}
    last = max(_date(r["month"]) for r in rows)
    months: list[date] = []
    year, month = last.year, last.month
    for _ in range(MONTHS_SHOWN):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    months.reverse()
    index = {m: i for i, m in enumerate(months)}
    recent = [r for r in rows if _date(r["month"]) in index]
    km_by_sport: dict[str, float] = {}
    for r in recent:
        km_by_sport[r["sport_type"]] = km_by_sport.get(r["sport_type"], 0.0) + float(r["total_km"] or 0)
    sports = [s for s, km in sorted(km_by_sport.items(), key=lambda kv: -kv[1]) if km > 0]
    top = sports[: TOP_SPORTS - 1] if len(sports) > TOP_SPORTS else sports
    series = {s: [0.0] * len(months) for s in [*top, "Other"]}
    for r in recent:
        key = r["sport_type"] if r["sport_type"] in top else "Other"
        series[key][index[_date(r["month"])]] += float(r["total_km"] or 0)
    return {
        "labels": [m.strftime("%Y-%m") for m in months],
        "series": [{"label": s, "data": [round(v, 1) for v in d]} for s, d in series.items() if any(d)],
    }


def _weeks_back(last: date, count: int) -> list[date]:
    return [last - timedelta(weeks=count - 1 - i) for i in range(count)]


def _weekly_kudos(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Kudos per week and workout type over the last ``WEEKS_SHOWN`` weeks, with % changes."""
    if not rows:
        return {"labels": [], "series": [], "totalPct": []}
    last = max(_date(r["week_start"]) for r in rows)
    weeks = _weeks_back(last, WEEKS_SHOWN + 1)  # one more, for the first week's % change
    index = {w: i for i, w in enumerate(weeks)}
    present = {r["workout"] for r in rows if _date(r["week_start"]) in index}
    order = [w for w in _WORKOUTS if w in present] + sorted(present - set(_WORKOUTS))
    data = {w: [0] * len(weeks) for w in order}
    pct: dict[str, list[float | None]] = {w: [None] * len(weeks) for w in order}
    for r in rows:
        i = index.get(_date(r["week_start"]))
        if i is not None:
            data[r["workout"]][i] = int(r["total_kudos"] or 0)
            pct[r["workout"]][i] = _num(r["pct_change"])
    totals = [sum(d[i] for d in data.values()) for i in range(len(weeks))]
    total_pct = [
        round(100.0 * (totals[i] - totals[i - 1]) / totals[i - 1], 1) if i and totals[i - 1] else None
        for i in range(len(weeks))
    ]
    return {
        "labels": [w.isoformat() for w in weeks[1:]],
        "series": [{"label": w, "data": data[w][1:], "pct": pct[w][1:]} for w in order],
        "totalPct": total_pct[1:],
    }


def _load(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Weekly distance and the 4-week averages over the last ``LOAD_WEEKS`` weeks."""
    if not rows:
        return {"labels": [], "distance": [], "distanceAvg": [], "hoursAvg": []}
    by_week = {_date(r["week_start"]): r for r in rows}
    weeks = _weeks_back(max(by_week), LOAD_WEEKS)

    def series(column: str, digits: int) -> list[float]:
        return [_num(by_week[w][column], digits) if w in by_week else 0.0 for w in weeks]  # type: ignore[misc]

    return {
        "labels": [w.isoformat() for w in weeks],
        "distance": series("distance_km", 1),
        "distanceAvg": series("distance_km_4wk_avg", 1),
        "hoursAvg": series("moving_hours_4wk_avg", 2),
    }


def _calendar(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every day of the last 53 weeks up to the newest activity: [week, weekday, count, km, date]."""
    if not rows:
        return {"cells": [], "weeks": 53, "max": 0, "monthTicks": {}, "end": None}
    by_day = {_date(r["activity_date"]): r for r in rows}
    end = max(by_day)
    start = _monday(end) - timedelta(weeks=52)
    cells: list[list[Any]] = []
    ticks: dict[int, str] = {}
    day = start
    while day <= end:
        week = (day - start).days // 7
        row = by_day.get(day)
        count = int(row["activity_count"]) if row else 0
        km = _num(row["distance_km"]) if row else 0.0
        cells.append([week, day.isoweekday(), count, km, day.isoformat()])
        if day.day == 1:
            ticks.setdefault(week, day.strftime("%b %Y" if day.month == 1 or not ticks else "%b"))
        day += timedelta(days=1)
    return {
        "cells": cells,
        "weeks": 53,
        "max": max(c[2] for c in cells),
        "monthTicks": ticks,
        "end": end.isoformat(),
        "active": sum(1 for c in cells if c[2]),
    }


def _activities(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Newest activities with kudos, compact: [date, sport index, km, kudos, lat, lng, name]."""
    rows = [p for p in points if p["kudos_count"] is not None]
    counts = Counter(p["sport_type"] or "Unknown" for p in rows)
    ranked = [s for s, _ in counts.most_common()]
    sports = ranked if len(ranked) <= TOP_SPORTS else [*ranked[: TOP_SPORTS - 1], "Other"]
    index = {s: i for i, s in enumerate(sports)}
    other = index.get("Other", len(sports) - 1)
    compact = []
    for p in rows:
        name = p["name"] or ""
        compact.append(
            [
                _date(p["start_date_local"]).isoformat(),
                index.get(p["sport_type"] or "Unknown", other),
                round(float(p["distance"] or 0) / 1000, 2),
                int(p["kudos_count"]),
                _num(p["start_lat"], 5),
                _num(p["start_lng"], 5),
                name if len(name) <= 80 else name[:79] + "…",
            ]
        )
    return {"sports": sports, "rows": compact, "limit": MAX_POINTS}


_GROUPS = ("ride", "run")
_EDDINGTON_FIELDS = ("eddington_number", "next_number", "days_at_next", "days_needed_for_next", "days_total")


def _eddington(current: list[dict[str, Any]], yearly: list[dict[str, Any]]) -> dict[str, Any]:
    """Current numbers per sport group and unit, and the km numbers at each year's end."""
    groups = []
    for group in _GROUPS:
        units = {r["unit"]: r for r in current if r["sport_group"] == group}
        if not units:
            continue
        entry: dict[str, Any] = {"group": group}
        for unit in ("km", "mi"):
            row = units.get(unit)
            entry[unit] = (
                None
                if row is None
                else {k: int(row[k]) for k in _EDDINGTON_FIELDS} | {"longest": _num(row["longest_day"])}
            )
        groups.append(entry)
    years = sorted({int(r["activity_year"]) for r in yearly})
    series = []
    for group in _GROUPS:
        for unit in ("km", "mi"):
            by_year = {
                int(r["activity_year"]): int(r["eddington_number"])
                for r in yearly
                if r["sport_group"] == group and r["unit"] == unit
            }
            if by_year:
                series.append({"group": group, "unit": unit, "data": [by_year.get(y) for y in years]})
    return {"groups": groups, "years": years, "series": series}


_REVIEW_FIELDS = (
    "activity_year",
    "activity_count",
    "active_days",
    "total_km",
    "total_elevation_m",
    "total_moving_hours",
    "total_kudos",
    "pr_count",
    "longest_streak_days",
    "streak_start",
    "streak_end",
    "biggest_day",
    "biggest_day_km",
    "biggest_day_activities",
    "most_kudos_name",
    "most_kudos_date",
    "most_kudos",
)


def _year_review(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per year, newest first."""
    ordered = sorted(rows, key=lambda r: r["activity_year"], reverse=True)
    return [{k: _plain(r[k]) for k in _REVIEW_FIELDS} for r in ordered]


def _gear(
    rows: list[dict[str, Any]], thresholds: Mapping[str, float], names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Distance and time per gear, most km first, with its threshold and whether it is passed.

    ``names``: gear id -> its name (``strava_gear``); a gear without one is named by its id.
    """
    gear = []
    names = names or {}
    for r in sorted(rows, key=lambda r: (-float(r["total_km"] or 0), r["gear_id"])):
        km = float(r["total_km"] or 0)
        threshold = thresholds.get(r["gear_id"])
        gear.append(
            {
                "gear_id": r["gear_id"],
                "name": names.get(r["gear_id"]) or r["gear_id"],
                "sport": r["main_sport_type"],
                "activities": int(r["activity_count"]),
                "km": km,
                "hours": _num(r["total_moving_hours"]),
                "first": _plain(r["first_used_on"]),
                "last": _plain(r["last_used_on"]),
                "threshold_km": threshold,
                "pct": None if threshold is None else round(100 * km / threshold, 1),
                "due": threshold is not None and km >= threshold,
            }
        )
    return {
        "rows": gear,
        "due": [g["gear_id"] for g in gear if g["due"]],
        "dueNames": [g["name"] for g in gear if g["due"]],
    }


def _keeping_tracks(
    activities: Iterable[ActivityStreams], tracks: dict[int, list[heatmap.Point]]
) -> Iterator[ActivityStreams]:
    """Pass the activities on, keeping each one's thinned track (the heatmap's) on the way."""
    for activity in activities:
        if len(activity.track) >= 2:
            tracks[activity.activity_id] = heatmap.thin_track(activity.track)
        activity.track = []
        yield activity


def _day_number(value: Any) -> int:
    """Days since 1970-01-01: a linear x axis the page labels as dates."""
    return (_date(value) - date(1970, 1, 1)).days


def _best_efforts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per standard distance, shortest first: its record progression (day, seconds, pace) and the standing record."""
    order: list[str] = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (float(r["distance_m"] or 0), r["effort_name"], r["pr_number"])):
        if r["effort_name"] not in by_name:
            order.append(r["effort_name"])
        by_name.setdefault(r["effort_name"], []).append(r)
    distances = []
    for name in order:
        prs = by_name[name]
        current = prs[-1]
        distances.append(
            {
                "name": name,
                "distance_m": _num(current["distance_m"]),
                "points": [
                    [_day_number(r["activity_date"]), int(r["elapsed_s"]), _num(r["pace_min_per_km"], 2)] for r in prs
                ],
                "record_s": int(current["elapsed_s"]),
                "record_date": _plain(current["activity_date"]),
                "pace": _num(current["pace_min_per_km"], 2),
                "prs": len(prs),
                "efforts": int(current["effort_count"]),
            }
        )
    return {"distances": distances}


SEGMENTS_SHOWN = 15


def _segments(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most ridden or run segments (by efforts), each with its PR history."""
    by_segment: dict[Any, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["segment_id"], r["pr_number"])):
        by_segment.setdefault(r["segment_id"], []).append(r)
    out = []
    for prs in by_segment.values():
        first, current = prs[0], prs[-1]
        out.append(
            {
                "segment_id": _plain(current["segment_id"]),
                "name": current["segment_name"] or str(current["segment_id"]),
                "sport": current["segment_activity_type"],
                "distance_m": _num(current["segment_distance_m"], 0),
                "efforts": int(current["effort_count"]),
                "prs": len(prs),
                "best_s": int(current["elapsed_s"]),
                "best_date": _plain(current["effort_date"]),
                "first_s": int(first["elapsed_s"]),
                "gained_s": int(first["elapsed_s"]) - int(current["elapsed_s"]),
                "history": [[_plain(r["effort_date"]), int(r["elapsed_s"])] for r in prs],
            }
        )
    out.sort(key=lambda s: (-s["efforts"], -s["prs"], str(s["name"])))
    return out[:SEGMENTS_SHOWN]


ZONE_WEEKS = 26


def _zones(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Minutes per zone and week over the last ``ZONE_WEEKS`` weeks, per kind (heart rate, power)."""
    out: dict[str, Any] = {}
    for kind in ("heartrate", "power"):
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            out[kind] = None
            continue
        weeks = _weeks_back(max(_date(r["week_start"]) for r in mine), ZONE_WEEKS)
        index = {w: i for i, w in enumerate(weeks)}
        zones = sorted({int(r["zone"]) for r in mine})
        bounds = {int(r["zone"]): (r["zone_min"], r["zone_max"]) for r in mine}
        series = {z: [0.0] * len(weeks) for z in zones}
        for r in mine:
            week = _date(r["week_start"])
            if week in index:
                series[int(r["zone"])][index[week]] = _num(r["minutes"]) or 0.0
        out[kind] = {
            "labels": [w.isoformat() for w in weeks],
            "zones": [{"zone": z, "min": bounds[z][0], "max": bounds[z][1], "minutes": series[z]} for z in zones],
        }
    return out


FITNESS_DAYS = 365
_FORMULAS = ("power", "heart_rate", "relative_effort", "mixed")


def _fitness(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Daily CTL, ATL, TSB and load over the last ``FITNESS_DAYS`` days, with each day's formula (an index)."""
    ordered = sorted(rows, key=lambda r: _date(r["fitness_date"]))[-FITNESS_DAYS:]
    last = ordered[-1] if ordered else None
    counts = Counter(r["formula"] for r in ordered if r["formula"])
    return {
        "labels": [_date(r["fitness_date"]).isoformat() for r in ordered],
        "ctl": [_num(r["ctl"]) for r in ordered],
        "atl": [_num(r["atl"]) for r in ordered],
        "tsb": [_num(r["tsb"]) for r in ordered],
        "load": [_num(r["training_load"]) for r in ordered],
        "formula": [_FORMULAS.index(r["formula"]) if r["formula"] in _FORMULAS else None for r in ordered],
        "formulas": list(_FORMULAS),
        "days": {f: counts.get(f, 0) for f in _FORMULAS},
        "latest": None
        if last is None
        else {
            "date": _date(last["fitness_date"]).isoformat(),
            "ctl": _num(last["ctl"]),
            "atl": _num(last["atl"]),
            "tsb": _num(last["tsb"]),
        },
    }


def _start_points(activities: dict[str, Any]) -> dict[str, Any]:
    """Start points around the busiest area (0.5° cell), bounds padded to a map-like aspect.

    Points are indices into ``activities["rows"]``, lowest kudos first (drawn underneath).
    """
    rows = activities["rows"]
    located = [i for i, r in enumerate(rows) if r[4] is not None and r[5] is not None]
    if not located:
        return {"idx": [], "bounds": [0, 0, 1, 1], "aspect": 1.6, "kudosMax": 0, "elsewhere": 0}
    cells = Counter((math.floor(rows[i][4] * 2), math.floor(rows[i][5] * 2)) for i in located)
    (cell_lat, cell_lng), _ = cells.most_common(1)[0]
    centre_lat, centre_lng = (cell_lat + 0.5) / 2, (cell_lng + 0.5) / 2
    near = [i for i in located if abs(rows[i][4] - centre_lat) <= 0.5 and abs(rows[i][5] - centre_lng) <= 0.75]
    lats, lngs = [rows[i][4] for i in near], [rows[i][5] for i in near]
    mid_lat, mid_lng = (min(lats) + max(lats)) / 2, (min(lngs) + max(lngs)) / 2
    scale = math.cos(math.radians(mid_lat)) or 1.0
    half_h = max((max(lats) - min(lats)) / 2, 0.002) * 1.15
    half_w = max((max(lngs) - min(lngs)) / 2 * scale, 0.002) * 1.15
    aspect = 1.6
    half_w, half_h = max(half_w, half_h * aspect), max(half_h, half_w / aspect)
    bounds = [mid_lng - half_w / scale, mid_lat - half_h, mid_lng + half_w / scale, mid_lat + half_h]
    return {
        "idx": sorted(near, key=lambda i: rows[i][3]),
        "bounds": [round(b, 5) for b in bounds],
        "aspect": aspect,
        "kudosMax": max(rows[i][3] for i in near),
        "elsewhere": len(located) - len(near),
    }


# --------------------------------------------------------------------------- rendering


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no ``<``, ``>`` or ``&`` survive as themselves."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _asset(name: str) -> str:
    text = (ASSETS_DIR / name).read_text(encoding="utf-8")
    text = _SOURCE_MAP.sub("", text)
    if re.search(r"</script|<!--", text, re.IGNORECASE):
        raise ValueError(f"asset {name} contains </script or <!--, which would break the inlined page")
    return text


def _fmt(value: Any, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals; – for none; other values as text."""
    if value is None:
        return "–"
    if isinstance(value, int | float | Decimal):
        return f"{float(value):,.{digits}f}"
    return str(value)


def _duration(seconds: Any) -> str:
    """Seconds as ``h:mm:ss`` or ``m:ss``; – for none."""
    if seconds is None:
        return "–"
    total = int(seconds)
    sign, total = ("-" if total < 0 else ""), abs(total)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}" if hours else f"{sign}{minutes}:{secs:02d}"


@functools.cache
def _template() -> jinja2.Template:
    """The page's Jinja2 template (``tasks/insight/assets/dashboard.html.j2``), HTML-escaping every value."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["num"] = _fmt
    env.filters["duration"] = _duration
    env.filters["script_json"] = lambda data: Markup(_script_json(data))
    return env.from_string((ASSETS_DIR / TEMPLATE).read_text(encoding="utf-8"))


def _badge(check: Mapping[str, str]) -> str:
    outcome = check["outcome"]
    return outcome if outcome in ("passed", "skipped") else f"failed-{check['severity'] or 'halt'}"


def render_html(data: Mapping[str, Any]) -> str:
    """The whole page: inlined libraries, style, data and script. No external reference."""
    k = data["kpis"]
    checks = [cells | {"badge": _badge(cells)} for cells in map(quality.check_cells, data["checks"] or [])]
    runs = [
        {
            **{key: _fmt(run[key]) for key in ("run_key", "passed", "failed", "skipped")},
            "checked_at": str(run["checked_at"] or "")[:19].replace("T", " "),
            "failed_checks": ", ".join(run["failed_checks"]),
        }
        for run in data.get("validationRuns") or []
    ]
    # Trusted text only is marked safe: the CSP constant and the assets (_asset refuses </script and <!--).
    return _template().render(
        data=data,
        athlete=f"athlete {data['athleteId']}" if data.get("athleteId") else "your activities",
        csp=Markup(CSP),
        css=Markup(_asset("dashboard.css")),
        scripts=[Markup(_asset(name)) for name in VENDORED],
        page_js=Markup(_asset("dashboard.js")),
        kpis=[
            (_fmt(k["activities"]), "activities"),
            (_fmt(k["km"]), "km"),
            (_fmt(k["hours"]), "hours moving"),
            (_fmt(k["kudos"]), "kudos"),
            (_fmt(k["sports"]), "sports"),
            (k["latest"] or "–", "latest activity"),
        ],
        months_shown=MONTHS_SHOWN,
        weeks_shown=WEEKS_SHOWN,
        load_weeks=LOAD_WEEKS,
        zone_weeks=ZONE_WEEKS,
        checks=checks,
        runs=runs,
    )


# --------------------------------------------------------------------------- publishing


def render_dashboard(
    engine: sa.Engine,
    checks: Sequence[Mapping[str, Any]] | None = None,
    *,
    athlete_id: int | None = None,
    settings: InsightSettings | None = None,
    heatmap_store: heatmap.HeatmapStore | None = None,
    summary_store: SummaryStore | None = None,
) -> str:
    """Collect and render in one call: the page's HTML (``settings`` None: :func:`read_settings`)."""
    data = collect_data(
        engine,
        checks,
        athlete_id=athlete_id,
        settings=settings,
        heatmap_store=heatmap_store,
        summary_store=summary_store,
    )
    return render_html(data)


def dashboard_paths(athlete_id: int | str, run_key: str | None = None) -> list[str]:
    """The lake keys: the athlete's current dashboard, and the run-scoped copy."""
    base = f"dashboards/athlete_id={athlete_id}"
    paths = [f"{base}/dashboard.html"]
    if run_key:
        paths.append(f"{base}/run={run_key}/dashboard.html")
    return paths


def gear_due_lines(data: Mapping[str, Any]) -> list[str]:
    """One line per gear past its maintenance threshold: "Name (id): 5,012 km of 5,000 km"."""
    return [
        f"{g['name']} ({g['gear_id']}): {g['km']:,.0f} km of {g['threshold_km']:,.0f} km"
        if g["name"] != g["gear_id"]
        else f"{g['gear_id']}: {g['km']:,.0f} km of {g['threshold_km']:,.0f} km"
        for g in data["gear"]["rows"]
        if g["due"]
    ]


def build_dashboard(
    engine: sa.Engine,
    checks: Sequence[Mapping[str, Any]] | None = None,
    athlete_id: int | None = None,
    heatmap_store: heatmap.HeatmapStore | None = None,
    summary_store: SummaryStore | None = None,
) -> tuple[str, list[str]]:
    """Render the dashboard's HTML from the warehouse (in the caller's run: the publishing is the task).

    ``heatmap_store``: where the heatmap of the same routes is kept between runs (:class:`LakeHeatmapStore`).
    ``summary_store``: where each activity's stream summary is kept between runs (:class:`LakeSummaryStore`).

    Returns:
        The page, and the gear due for maintenance (:func:`gear_due_lines`: the run's Slack message names them).

    """
    data = collect_data(engine, checks, athlete_id=athlete_id, heatmap_store=heatmap_store, summary_store=summary_store)
    page = render_html(data)
    get_run_logger().info("Rendered the dashboard: %s bytes", len(page.encode("utf-8")))
    return page, gear_due_lines(data)


@dataclass
class LakeHeatmapStore:
    """The athlete's heatmap kept in the lake beside the dashboard, with the key of its inputs.

    ``dashboards/athlete_id=<id>/heatmap.json``: the grid the page embeds anyway (counts per
    cell, never a coordinate of a track). Unreadable or stale: rendered again; a failed write
    is logged, never fails the dashboard.
    """

    lake: lake_io.Lake
    athlete_id: int | str

    @property
    def path(self) -> str:
        return f"dashboards/athlete_id={self.athlete_id}/heatmap.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.lake.read_if_present(self.path)
            stored = json.loads(body) if body else None
        except Exception:  # noqa: BLE001 - a cache: anything unreadable is rendered again
            return None
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("heatmap"), dict):
            return dict(stored["heatmap"])
        return None

    def put(self, key: str, data: dict[str, Any]) -> None:
        try:
            self.lake.write(self.path, json.dumps({"key": key, "heatmap": data}, separators=(",", ":")).encode())
        except Exception as exc:  # noqa: BLE001 - a cache: the next run renders again
            get_run_logger().warning("The heatmap was not kept in the lake for the next run: %s", exc)


@dataclass
class LakeSummaryStore:
    """The athlete's per-activity stream summaries kept in the lake beside the dashboard.

    ``dashboards/athlete_id=<id>/stream_summaries.json.gz``: per live activity with streams, its
    sample count, best means per channel and duration and its track's length, read every run;
    ``stream_tracks.json.gz`` beside it: the thinned tracks (the heatmap's input, as private as the
    streams the lake already holds), read only when the heatmap is drawn again (docs/insight.md).
    Unreadable or of another code version: made again from the samples; a failed write is
    logged, never fails the dashboard.
    """

    lake: lake_io.Lake
    athlete_id: int | str

    @property
    def path(self) -> str:
        return f"dashboards/athlete_id={self.athlete_id}/stream_summaries.json.gz"

    def get(self, version: str) -> dict[int, ActivitySummary] | None:
        import gzip

        from tasks.insight.curves import ActivitySummary

        try:
            body = self.lake.read_if_present(self.path)
            stored = json.loads(gzip.decompress(body)) if body else None
            if not isinstance(stored, dict) or stored.get("version") != version:
                return None
            return {int(k): ActivitySummary.from_json(v) for k, v in stored["activities"].items()}
        except Exception:  # noqa: BLE001 - a cache: anything unreadable is made again
            return None

    @property
    def tracks_path(self) -> str:
        return f"dashboards/athlete_id={self.athlete_id}/stream_tracks.json.gz"

    def tracks(self, version: str) -> dict[int, list[tuple[float, float]]] | None:
        import gzip

        try:
            body = self.lake.read_if_present(self.tracks_path)
            stored = json.loads(gzip.decompress(body)) if body else None
            if not isinstance(stored, dict) or stored.get("version") != version:
                return None
            return {int(k): [(float(p[0]), float(p[1])) for p in v] for k, v in stored["tracks"].items()}
        except Exception:  # noqa: BLE001 - a cache: anything unreadable is made again
            return None

    def put(self, version: str, summaries: Mapping[int, ActivitySummary]) -> None:
        import gzip

        body = {"version": version, "activities": {str(k): v.as_json() for k, v in summaries.items()}}
        tracks = {"version": version, "tracks": {str(k): v.track for k, v in summaries.items() if v.track}}
        try:  # the tracks first: summaries without their tracks would be read as complete
            self.lake.write(self.tracks_path, gzip.compress(json.dumps(tracks, separators=(",", ":")).encode(), 5))
            self.lake.write(self.path, gzip.compress(json.dumps(body, separators=(",", ":")).encode(), 5))
        except Exception as exc:  # noqa: BLE001 - a cache: the next run reads the samples again
            get_run_logger().warning("The stream summaries were not kept in the lake for the next run: %s", exc)


@task(cache_policy=NO_CACHE)
def publish_dashboard(
    lake: lake_io.Lake,
    page: str,
    athlete_id: int | str,
    run_key: str | None = None,
    figures: str | None = None,
    gear_due: Sequence[str] = (),
) -> dict[str, Any]:
    """Write the page to the lake (current and run-scoped) and publish the dashboard artifact.

    The artifact links the page over http(s) (:func:`tasks.insight.links.page_link`: the lake's
    base URL, or a presigned S3 URL whose expiry it states); with no such link it is a markdown
    artifact naming the file, never a ``file://`` or ``s3://`` link a browser refuses. ``figures``
    (the run's key numbers, one line) go into it, so the UI shows them without opening the page.

    Returns:
        ``path`` (lake key), ``url`` (``file://`` or ``s3://``), ``run_url`` (the run's copy),
        ``link`` (http(s) or None), ``link_note`` (what the link is, or why there is none),
        ``location`` (the file's path, or its ``s3://`` URI), ``bytes``, and ``gear_due`` (the
        gear past its maintenance threshold, one line each, also in the artifact).

    """
    body = page.encode("utf-8")
    paths = dashboard_paths(athlete_id, run_key)
    for path in paths:
        lake.write(path, body)
    url = lake.url(paths[0])
    run_url = lake.url(paths[-1])
    link = links.page_link(lake, paths[0])
    run_link = links.page_link(lake, paths[-1])
    title = f"Strava dashboard, athlete {athlete_id}"
    about = f"Self-contained HTML ({len(body):,} bytes)" + (f". This run: {figures}" if figures else "")
    if gear_due:
        about += ". Gear due for maintenance: " + "; ".join(gear_due)
    if link.url:
        create_link_artifact(
            key=ARTIFACT_KEY,
            link=link.url,
            link_text=title,
            description=f"{about}. {link.how}. This run's copy: {run_link.markdown('dashboard.html')}",
        )
        get_run_logger().info("Dashboard written to %s, linked at %s", url, link.url)
    else:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=f"# {title}\n\n{about}.\n\nWritten to {link.markdown(title)}.\n\n"
            f"This run's copy: `{run_link.location}`\n",
            description=f"{title}: {link.location}",
        )
        get_run_logger().info("Dashboard written to %s (no http link: %s)", url, link.how)
    return {
        "path": paths[0],
        "url": url,
        "run_url": run_url,
        "link": link.url,
        "link_note": link.how,
        "location": link.location,
        "bytes": str(len(body)),
        "gear_due": list(gear_due),
    }
