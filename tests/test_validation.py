"""The validation gate: declared checks, their SQL on DuckDB and PostgreSQL, the gate in the
pipeline (halt before the merge), artifacts, Slack and the ``validate`` command."""

from __future__ import annotations

import http.server
import json
import pickle
import statistics
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from pydantic import SecretStr

from tasks import quality as v
from tasks import warehouse as wh
from tasks.insight.notify import SUMMARY_ARTIFACT_KEY, format_markdown, format_slack
from tasks.state.summary import ExtractResult, RunSummary, WatermarkMove
from tasks.warehouse import schema
from tasks.warehouse.merge import MergeResult
from tests.conftest import WAREHOUSES, Env

STAGING = "stg_strava_activity_data_test"
# A Wednesday noon: every test timestamp stays in its week whatever the session time zone.
RUN_AT = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
ATHLETE = 4711  # the run's athlete; OTHER's rows share production
OTHER = 4712
EXPECTED_CHECKS = {
    "no_duplicate_ids": "halt",
    "staged_rows_match_extracted": "halt",
    "no_null_id_or_start_date": "halt",
    "no_negative_values": "halt",
    "staged_rows_belong_to_athlete": "halt",
    "start_date_not_in_future": "warn",
    "newest_activity_age_days": "warn",
    "weekly_new_activities_zscore": "warn",
    "kudos_zscore": "warn",
}
Z_90 = 1.645


# --------------------------------------------------------------------------- helpers


class Db:
    """Production and a staging table in a real database, filled with rows built by tasks.warehouse.schema."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        metadata = sa.MetaData()
        self.production = schema.activity_table(metadata)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:  # as the pipeline does: same columns, no constraints
            wh.dialect_for(self.engine).create_staging(conn, STAGING, schema.ACTIVITY_TABLE)
        self.staging = sa.Table(STAGING, sa.MetaData(), *(sa.Column(c.name, c.sql_type) for c in schema.ALL_COLUMNS))
        self._next_id = 1

    def row(self, start: datetime | None, **fields: Any) -> dict[str, Any]:
        activity_id = fields.pop("id", None)
        if activity_id is None:
            activity_id, self._next_id = self._next_id, self._next_id + 1
        athlete = fields.pop("athlete_id", ATHLETE)
        activity = {"id": activity_id, "distance": 5000.0, "moving_time": 1500, "elapsed_time": 1600, **fields}
        if athlete is not None:
            activity["athlete"] = {"id": athlete}
        activity["start_date"] = start.isoformat() if start else None
        row = schema.flatten_activity(activity, RUN_AT)
        # Staged as given: these tests exercise the checks, not the load's coercion (which turns
        # a negative count into NULL before it could reach staging).
        row.update({k: val for k, val in fields.items() if k in row})
        return row

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), rows)

    def run(self, directory: Path | None = None, expected_rows: int | None = None) -> dict[str, v.CheckResult]:
        checks = v.load_checks(directory)
        params = {"expected_rows": expected_rows, "run_started_at": RUN_AT, "athlete_id": ATHLETE}
        return {r.name: r for r in v.run_checks(self.engine, checks, staging=STAGING, params=params)}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """Empty production and staging tables on DuckDB, then on PostgreSQL."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    w = Db(url)
    try:
        yield w
    finally:
        w.engine.dispose()


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in value.items()) + " }"
    return json.dumps(value)


def write_manifest(directory: Path, checks: list[dict[str, Any]], files: dict[str, str]) -> Path:
    """A manifest of ``checks`` and its SQL ``files`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    lines = []
    for check in checks:
        lines.append("[[check]]")
        for key, value in {"description": "test check", **check}.items():
            lines.append(f"{key} = {_toml(value)}")
    (directory / v.MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def weekly_history(w: Db, counts: list[int], kudos: int = 5) -> None:
    """Production holds ``counts[i]`` activities in each of the weeks before RUN_AT's week."""
    rows = []
    for weeks_ago, count in enumerate(reversed(counts), start=1):
        start = RUN_AT - timedelta(weeks=weeks_ago)
        rows += [w.row(start + timedelta(minutes=k), kudos_count=kudos) for k in range(count)]
    w.insert(w.production, rows)


# --------------------------------------------------------------------------- the manifest


def test_manifest_declares_the_checks_and_every_file_is_redshift_sql() -> None:
    checks = v.load_checks()
    assert {c.name: c.severity for c in checks} == EXPECTED_CHECKS
    preparer = sa.create_engine("postgresql+psycopg://").dialect.identifier_preparer
    used = {c.sql.name for c in checks} | {c.compare_sql.name for c in checks if c.compare_sql}
    files = sorted((wh.SQL_DIR / "validation").glob("*.sql"))
    assert {f.name for f in files} == used  # no orphan file, no missing file
    for path in files:
        sql = wh.render(path.read_text(encoding="utf-8"), preparer, staging=STAGING)
        parsed = sqlglot.parse(sql, read="redshift")
        assert len([p for p in parsed if p is not None]) == 1, path.name
        assert parsed[0] is not None and parsed[0].key == "select", path.name


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"operator": "about"}, "operator must be one of"),
        ({"severity": "fatal"}, "severity must be warn or halt"),
        ({"compare_sql": "b.sql"}, "exactly one of compare_sql"),
        ({"threshold": "zero"}, "threshold must be a number"),
        ({"name": "Bad Name"}, "name must match"),
        ({"colour": "red"}, "unknown keys"),
        ({"params": {"expected_rows": 1}}, "does not redefine"),
    ],
)
def test_a_wrong_manifest_entry_is_refused_with_its_reason(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    check = {"name": "c", "severity": "warn", "sql": "a.sql", "operator": "equals", "threshold": 0, **entry}
    write_manifest(tmp_path, [check], {"a.sql": "SELECT 1"})
    with pytest.raises(v.ValidationConfigError, match=message):
        v.load_checks(tmp_path)


def test_duplicate_names_and_a_missing_manifest_are_refused(tmp_path: Path) -> None:
    check = {"name": "c", "severity": "warn", "sql": "a.sql", "operator": "equals", "threshold": 0}
    write_manifest(tmp_path, [check, check], {"a.sql": "SELECT 1"})
    with pytest.raises(v.ValidationConfigError, match="declared twice"):
        v.load_checks(tmp_path)
    with pytest.raises(v.ValidationConfigError, match="No validation manifest"):
        v.load_checks(tmp_path / "nowhere")


# --------------------------------------------------------------------------- operators, severities, errors


@pytest.mark.parametrize(
    ("operator", "passing", "failing"),
    [
        ("equals", (3, 3), (3, 4)),
        ("not_equals", (3, 4), (3, 3)),
        ("greater", (4, 3), (3, 3)),
        ("greater_equals", (3, 3), (2, 3)),
        ("less", (2, 3), (3, 3)),
        ("less_equals", (3, 3), (4, 3)),
    ],
)
@pytest.mark.parametrize("value_2_from", ["threshold", "compare_sql"])
def test_each_operator_passes_and_fails(
    db: Db,
    tmp_path: Path,
    operator: str,
    passing: tuple[int, int],
    failing: tuple[int, int],
    value_2_from: str,
) -> None:
    checks, files = [], {}
    for label, (left, right) in (("pass", passing), ("fail", failing)):
        files[f"{label}_1.sql"] = f"SELECT {left}"
        check = {"name": f"{label}_check", "severity": "warn", "sql": f"{label}_1.sql", "operator": operator}
        if value_2_from == "threshold":
            check["threshold"] = right
        else:
            files[f"{label}_2.sql"] = f"SELECT CAST({right} AS NUMERIC(10, 2))"  # a Decimal on PostgreSQL
            check["compare_sql"] = f"{label}_2.sql"
        checks.append(check)
    results = db.run(write_manifest(tmp_path / "checks", checks, files))
    assert results["pass_check"].outcome == "passed"
    assert (results["pass_check"].value_1, results["pass_check"].value_2) == passing
    assert results["fail_check"].outcome == "failed"
    assert (results["fail_check"].value_1, results["fail_check"].value_2) == failing


def test_severity_decides_whether_a_failure_halts(tmp_path: Path) -> None:
    failing = {"sql": "one.sql", "operator": "equals", "threshold": 0}
    directory = write_manifest(
        tmp_path,
        [
            {"name": "soft", "severity": "warn", **failing},
            {"name": "hard", "severity": "halt", **failing},
            {"name": "fine", "severity": "halt", "sql": "one.sql", "operator": "equals", "threshold": 1},
        ],
        {"one.sql": "SELECT 1"},
    )
    engine = sa.create_engine("duckdb:///:memory:")
    results = v.run_checks(engine, v.load_checks(directory))
    assert [(r.name, r.failed, r.halts) for r in results] == [
        ("soft", True, False),
        ("hard", True, True),
        ("fine", False, False),
    ]
    v.enforce_gate([results[0], results[2]])  # a failed warn check does not stop the merge
    with pytest.raises(v.ValidationHalted, match="halt check\\(s\\) failed: hard") as caught:
        v.enforce_gate(results)
    assert "soft" not in str(caught.value)
    assert [r["name"] for r in caught.value.results] == ["soft", "hard", "fine"]
    # The exception crosses Prefect's result machinery intact, results included.
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.results == caught.value.results and str(copy) == str(caught.value)


def test_broken_checks_fail_alone_with_the_database_message(db: Db, tmp_path: Path) -> None:
    db.insert(db.staging, [db.row(RUN_AT - timedelta(days=1))])
    files = {
        "syntax.sql": "SELECT COUNT(* FROM {staging}",
        "no_table.sql": "SELECT COUNT(*) FROM no_such_table",
        "empty.sql": "  \n",
        "two_rows.sql": "SELECT 1 UNION ALL SELECT 2",
        "text.sql": "SELECT 'abc'",
        "unknown_placeholder.sql": "SELECT COUNT(*) FROM {nothing}",
        "unbound.sql": "SELECT CAST(:not_given AS INTEGER)",
        "good.sql": "SELECT COUNT(*) FROM {staging}",
    }
    checks = [
        {"name": Path(name).stem, "severity": "halt", "sql": name, "operator": "equals", "threshold": 1}
        for name in [*files, "missing.sql"]
    ]
    # The good check comes after the errors: an aborted PostgreSQL transaction must not poison it.
    checks.append(checks.pop(checks.index(next(c for c in checks if c["name"] == "good"))))
    results = db.run(write_manifest(tmp_path / "checks", checks, files))
    assert results.pop("good").outcome == "passed"
    for name, result in results.items():
        assert result.outcome == "failed" and result.halts, name
        assert result.detail.startswith("check could not run: "), name
    assert "syntax error" in results["syntax"].detail.lower()  # the database's own message
    assert "no_such_table" in results["no_table"].detail
    assert "empty" in results["empty"].detail
    assert "returned 2 rows" in results["two_rows"].detail
    assert "not a number" in results["text"].detail
    assert "{nothing}" in results["unknown_placeholder"].detail
    assert "not_given" in results["unbound"].detail
    assert "missing.sql" in results["missing"].detail


def test_null_value_is_skipped_with_the_declared_reason(tmp_path: Path) -> None:
    directory = write_manifest(
        tmp_path,
        [
            {
                "name": "maybe",
                "severity": "halt",
                "sql": "null.sql",
                "operator": "equals",
                "threshold": 0,
                "skip_reason": "nothing to compare",
            }
        ],
        {"null.sql": "SELECT CAST(NULL AS INTEGER), 'because'"},
    )
    (result,) = v.run_checks(sa.create_engine("duckdb:///:memory:"), v.load_checks(directory))
    assert (result.outcome, result.detail, result.halts) == ("skipped", "nothing to compare (because)", False)
    assert v.describe(result) == "skipped: nothing to compare (because)"


# --------------------------------------------------------------------------- the shipped checks


def test_a_clean_staging_table_passes_every_data_check(db: Db) -> None:
    weekly_history(db, [6] * 8)
    staged = [db.row(RUN_AT - timedelta(hours=h), kudos_count=5) for h in (1, 2, 3)]
    db.insert(db.staging, staged)
    results = db.run(expected_rows=3)
    assert {n: r.outcome for n, r in results.items() if EXPECTED_CHECKS[n] == "halt"} == dict.fromkeys(
        [
            "no_duplicate_ids",
            "staged_rows_match_extracted",
            "no_null_id_or_start_date",
            "no_negative_values",
            "staged_rows_belong_to_athlete",
        ],
        "passed",
    )
    assert results["start_date_not_in_future"].outcome == "passed"
    assert results["newest_activity_age_days"].outcome == "passed"
    assert results["newest_activity_age_days"].value_1 == pytest.approx(1 / 24)


@pytest.mark.parametrize(
    ("bad", "failing", "detail"),
    [
        ({"id": 102}, "no_duplicate_ids", "e.g. id 102"),
        ({"start_date": None}, "no_null_id_or_start_date", "0 without id, 1 without start_date"),
        ({"distance": -5.0}, "no_negative_values", "e.g. id"),
        ({"elapsed_time": -1}, "no_negative_values", "e.g. id"),
        ({"kudos_count": -2}, "no_negative_values", "e.g. id"),
        ({"start_date": RUN_AT + timedelta(days=2)}, "start_date_not_in_future", "e.g. id"),
        ({"extra": True}, "staged_rows_match_extracted", ""),
        ({"athlete_id": OTHER}, "staged_rows_belong_to_athlete", "1 staged for another athlete (or none), 0 held"),
        ({"athlete_id": None}, "staged_rows_belong_to_athlete", "1 staged for another athlete (or none), 0 held"),
    ],
)
def test_each_data_check_catches_its_fault(db: Db, bad: dict[str, Any], failing: str, detail: str) -> None:
    good = [db.row(RUN_AT - timedelta(hours=h), id=100 + h) for h in (1, 2, 3)]
    fields = {k: val for k, val in bad.items() if k != "extra"}
    start = fields.pop("start_date", RUN_AT - timedelta(hours=5))
    fault = db.row(start, **fields)
    db.insert(db.staging, [*good, fault])
    results = db.run(expected_rows=3 if "extra" in bad else 4)
    assert results[failing].outcome == "failed"
    assert detail in results[failing].detail
    others = {n for n, r in results.items() if r.failed}
    assert others == {failing}, others


def test_an_id_production_holds_under_another_athlete_halts(db: Db) -> None:
    theirs = db.row(RUN_AT - timedelta(days=3), athlete_id=OTHER)
    db.insert(db.production, [theirs, db.row(RUN_AT - timedelta(days=4))])
    db.insert(db.staging, [db.row(RUN_AT - timedelta(hours=1)), db.row(RUN_AT - timedelta(days=3), id=theirs["id"])])
    result = db.run()["staged_rows_belong_to_athlete"]
    assert (result.outcome, result.halts, result.value_1) == ("failed", True, 1)
    assert result.detail == (
        f"0 staged for another athlete (or none), 1 held by another athlete in production; e.g. id {theirs['id']}"
    )


def test_history_checks_read_only_the_athletes_production_rows(db: Db) -> None:
    # The other athlete's rows: recent, many, with lots of kudos. The run's athlete has none yet.
    weekly_history(db, [3, 9, 4, 11, 2, 8], kudos=40)
    with db.engine.begin() as conn:
        conn.execute(sa.update(db.production).values(athlete_id=OTHER))
    db.insert(db.staging, [db.row(RUN_AT - timedelta(days=20), kudos_count=1)])
    results = db.run()
    assert results["newest_activity_age_days"].value_1 == pytest.approx(20)  # not the other's 7 days
    weekly, kudos = results["weekly_new_activities_zscore"], results["kudos_zscore"]
    assert (weekly.outcome, weekly.detail) == ("skipped", "not enough history (no earlier week in production)")
    assert (kudos.outcome, kudos.detail) == ("skipped", "not enough history (0 earlier activities with kudos, need 20)")


def test_staged_rows_check_is_skipped_without_an_expected_count(db: Db) -> None:
    db.insert(db.staging, [db.row(RUN_AT - timedelta(hours=1))])
    result = db.run(expected_rows=None)["staged_rows_match_extracted"]
    assert result.outcome == "skipped" and "not given" in result.detail


def test_freshness_warns_when_the_newest_activity_is_old(db: Db) -> None:
    db.insert(db.production, [db.row(RUN_AT - timedelta(days=30))])
    db.insert(db.staging, [db.row(RUN_AT - timedelta(days=20))])
    result = db.run()["newest_activity_age_days"]
    assert result.outcome == "failed" and not result.halts
    assert result.value_1 == pytest.approx(20)


# --------------------------------------------------------------------------- z-scores

COUNTS = [5, 7, 6, 8, 7, 6, 5, 8]  # mean 6.5, sample sd 1.195


def expected_z(new: int, counts: list[int]) -> float:
    return (new - statistics.mean(counts)) / statistics.stdev(counts)


@pytest.mark.parametrize(("new", "outcome"), [(6, "passed"), (8, "passed"), (2, "failed"), (11, "failed")])
def test_weekly_zscore_against_a_known_history(db: Db, new: int, outcome: str) -> None:
    weekly_history(db, COUNTS)
    # Already in production and re-fetched by the lookback: last week's and this week's earlier
    # activities must not count as new.
    this_week_known = db.row(RUN_AT - timedelta(hours=30))
    db.insert(db.production, [this_week_known])
    refetched = [
        this_week_known,
        *[r for r in _production_rows(db) if r["start_date"] >= RUN_AT - timedelta(weeks=1)],
    ]
    fresh = [db.row(RUN_AT - timedelta(minutes=10 + k)) for k in range(new)]
    db.insert(db.staging, refetched + fresh)
    result = db.run()["weekly_new_activities_zscore"]
    z = expected_z(new, COUNTS)
    assert result.value_1 == pytest.approx(abs(z), rel=1e-9)
    assert result.outcome == outcome == ("passed" if abs(z) <= Z_90 else "failed")
    assert not result.halts
    assert f"z = {z:.2f}" in result.detail and f"{new} new this week" in result.detail


def _production_rows(w: Db) -> list[dict[str, Any]]:
    with w.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(w.production))]
    for row in rows:
        row.pop("deleted_at")
        row["start_date"] = row["start_date"].astimezone(UTC)
    return rows


def test_weekly_zscore_counts_empty_weeks_as_zero(db: Db) -> None:
    weekly_history(db, [6, 0, 6, 6, 0, 6])  # weeks 2 and 5 without an activity
    db.insert(db.staging, [db.row(RUN_AT - timedelta(hours=1)) for _ in range(4)])
    result = db.run()["weekly_new_activities_zscore"]
    assert result.value_1 == pytest.approx(abs(expected_z(4, [6, 0, 6, 6, 0, 6])))


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ([], "no earlier week in production"),
        ([7], "1 week(s) of history, need 4"),
        ([7, 7, 7, 7, 7], "every earlier week had the same count"),
    ],
)
def test_weekly_zscore_skips_without_enough_history(db: Db, counts: list[int], reason: str) -> None:
    weekly_history(db, counts)
    db.insert(db.staging, [db.row(RUN_AT - timedelta(hours=h)) for h in (1, 2)])
    result = db.run()["weekly_new_activities_zscore"]
    assert result.outcome == "skipped" and result.value_1 is None
    assert result.detail == f"not enough history ({reason})"
    assert v.describe(result).startswith("skipped: not enough history")


def test_first_run_skips_both_statistical_checks(db: Db) -> None:
    db.insert(db.staging, [db.row(RUN_AT - timedelta(days=d), kudos_count=3) for d in range(40)])
    results = db.run(expected_rows=40)
    for name in ("weekly_new_activities_zscore", "kudos_zscore"):
        assert results[name].outcome == "skipped"
        assert results[name].detail.startswith("not enough history")
    assert not any(r.failed for r in results.values())


HISTORY_KUDOS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 4, 5, 6, 7, 5, 6, 3, 4, 8, 6, 5, 7, 6]


@pytest.mark.parametrize(("staged", "outcome"), [([5, 7, 6, 4], "passed"), ([0, 0, 1, 0], "failed")])
def test_kudos_zscore_against_a_known_history(db: Db, staged: list[int], outcome: str) -> None:
    history = [db.row(RUN_AT - timedelta(days=3 + i), kudos_count=k) for i, k in enumerate(HISTORY_KUDOS)]
    old = db.row(RUN_AT - timedelta(days=400), kudos_count=500)  # outside the 365-day history
    db.insert(db.production, [*history, old])
    refetched = dict(history[0], kudos_count=staged[0])  # a staged id leaves the history
    rest = [db.row(RUN_AT - timedelta(hours=i + 1), kudos_count=k) for i, k in enumerate(staged[1:])]
    db.insert(db.staging, [refetched, *rest])
    result = db.run()["kudos_zscore"]
    hist = HISTORY_KUDOS[1:]
    z = (statistics.mean(staged) - statistics.mean(hist)) / (statistics.stdev(hist) / len(staged) ** 0.5)
    assert result.value_1 == pytest.approx(abs(z), rel=1e-9)
    assert result.outcome == outcome == ("passed" if abs(z) <= Z_90 else "failed")
    assert f"over {len(hist)} activities" in result.detail


# --------------------------------------------------------------------------- messages


CHECK_RESULTS = (
    v.CheckResult("no_duplicate_ids", "halt", "equals", 0, 0, "passed"),
    v.CheckResult("no_negative_values", "halt", "equals", 2, 0, "failed", "e.g. id 9"),
    v.CheckResult("kudos_zscore", "warn", "less_equals", 2.5, 1.645, "failed", "z = -2.50"),
    v.CheckResult("weekly_new_activities_zscore", "warn", "less_equals", None, 1.645, "skipped",
                  "not enough history (no earlier week in production)"),
)  # fmt: skip


def _results_summary(status: str = "complete", merge: MergeResult | None = None, **changes: Any) -> RunSummary:
    """A run that extracted 450 activities with 4 requests and ran :data:`CHECK_RESULTS`."""
    extract = ExtractResult(7, "k1", RUN_AT, RUN_AT, requests=4, activities=450)
    summary = RunSummary("k1").with_extract(extract).with_(status=status, checks=CHECK_RESULTS, **changes)
    return summary if merge is None else summary.with_(merge=merge)


def test_messages_name_every_check_and_the_numbers() -> None:
    merged = MergeResult(staged=450, inserted=440, updated=3, unchanged=7, deleted=1, undeleted=0, history_rows=0)
    mark = WatermarkMove(None, datetime(2025, 3, 11, 10, tzinfo=UTC))
    done = _results_summary(merge=merged, watermark=mark)
    text = format_slack(done)
    assert text.splitlines()[0] == "strava-elt run k1: complete, 1 warning(s)"
    assert "requests 4, extracted 450, inserted 440, updated 3, deleted 1, watermark 2025-03-11T10:00:00+00:00" in text
    assert "Checks: 1 passed, 2 failed, 1 skipped" in text
    assert "❌ no_negative_values (halt): 2 = 0, failed: e.g. id 9" in text
    assert "⚠️ kudos_zscore (warn): 2.5 <= 1.645, failed: z = -2.50" in text
    assert "weekly_new_activities_zscore (warn): skipped: not enough history" in text
    markdown = format_markdown(done)
    assert "| no_negative_values | halt | 2 | equals | 0 | failed | e.g. id 9 |" in markdown
    # One formatter behind the artifact, the report, Slack and the dashboard; one symbol map.
    assert v.results_table(CHECK_RESULTS)[2] == {
        "check": "kudos_zscore", "severity": "warn", "value 1": "2.5", "operator": "less_equals",
        "value 2": "1.645", "outcome": "failed", "detail": "z = -2.50",
    }  # fmt: skip
    dicts = [c.as_dict() for c in CHECK_RESULTS]  # the formatter reads results and their JSON alike
    assert v.check_cells(dicts[2])["symbol"] == "<=" and v.check_cells(CHECK_RESULTS[3])["value_1"] == "NULL"
    assert v.outcome_counts(dicts) == v.outcome_counts(CHECK_RESULTS) == {"passed": 1, "failed": 2, "skipped": 1}
    halted = format_slack(_results_summary(status="halted by validation"))
    assert "HALTED by validation before the merge: production and watermark unchanged" in halted
    assert "inserted 0, updated 0, deleted 0, watermark unchanged" in halted
    early = format_slack(RunSummary("k2", status="failed", error="MissingBlockError: no block"))
    assert "FAILED: MissingBlockError: no block" in early and "Checks: no results" in early


# --------------------------------------------------------------------------- pipeline, Slack, CLI


class SlackServer:
    """A local stand-in for a Slack incoming webhook: records posts, answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok" if outer.status == 200 else b"internal_error")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"

    @property
    def texts(self) -> list[str]:
        return [p["text"] for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack(env: Env) -> Iterator[tuple[SlackServer, str]]:
    """A local webhook server and a SlackWebhook block pointing at it."""
    from prefect_slack import SlackWebhook

    server = SlackServer()
    name = f"slack-{env.warehouse_block}"
    SlackWebhook(url=SecretStr(server.url)).save(name, overwrite=True)
    try:
        yield server, name
    finally:
        server.close()


def _staging_tables(env: Env) -> list[tuple[Any, ...]]:
    return env.query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name LIKE 'stg_%'"
    )


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_pipeline_reports_checks_artifacts_and_one_slack_message(env: Env, slack: tuple[SlackServer, str]) -> None:
    from prefect.artifacts import Artifact

    server, block = slack
    summary = env.run(slack_block=block)
    assert {c["name"]: c["severity"] for c in summary["checks"]} == EXPECTED_CHECKS
    by_name = {c["name"]: c for c in summary["checks"]}
    assert by_name["staged_rows_match_extracted"]["value_1"] == summary["extracted"] == 450
    assert by_name["weekly_new_activities_zscore"]["outcome"] == "skipped"  # first run: no history
    assert by_name["kudos_zscore"]["detail"].startswith("not enough history")
    assert len(server.posts) == 1
    text = server.texts[0]
    assert text.startswith(f"strava-elt run {summary['run_key']}: complete")
    assert f"requests {summary['requests']}, extracted 450, inserted 450, updated 0, deleted 0" in text
    assert f"watermark {summary['watermark']}" in text
    for name in EXPECTED_CHECKS:
        assert name in text
    table = Artifact.get(v.ARTIFACT_KEY)
    assert table is not None and table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["check"] for r in rows] == list(EXPECTED_CHECKS)
    assert set(rows[0]) == {"check", "severity", "value 1", "operator", "value 2", "outcome", "detail"}
    markdown = Artifact.get(SUMMARY_ARTIFACT_KEY)
    assert markdown is not None and summary["run_key"] in str(markdown.data)
    # The merge recorded one row per check, under the run and the athlete, in the manifest's order.
    recorded = env.query(
        "SELECT athlete_id, run_key, name, outcome, value_1 FROM strava_validation_results ORDER BY check_order"
    )
    assert recorded == [
        (env.emu.athlete["id"], summary["run_key"], c["name"], c["outcome"], c["value_1"]) for c in summary["checks"]
    ]

    env.run()  # no slack_block: no message
    assert len(server.posts) == 1


def test_slack_outage_is_a_warning_not_a_failure(
    env: Env, slack: tuple[SlackServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, block = slack
    server.status = 500
    summary = env.run(slack_block=block)
    assert summary["inserted"] == 450 and len(env.production()) == 450  # the load stands
    assert env.watermark() is not None
    assert len(server.posts) == 1  # tried once
    assert any(
        r.levelname == "WARNING" and "Slack message not sent" in r.getMessage() and "internal_error" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_halt_keeps_production_and_watermark_then_a_healthy_run_loads_everything_once(
    env: Env, slack: tuple[SlackServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value Strava could send never halts the shipped gate (a negative distance loads as NULL,
    # counted in unfit_values): the halt here is a user's own rule, "no activity over 1,000 km".
    directory = write_manifest(
        tmp_path / "ultra",
        [{"name": "no_ultra_distance", "severity": "halt", "sql": "ultra.sql", "operator": "equals", "threshold": 0}],
        {
            "ultra.sql": "SELECT COUNT(*), 'e.g. id ' || CAST(MIN(id) AS VARCHAR) "
            "FROM {staging} WHERE distance > 1000000"
        },
    )
    monkeypatch.setenv("STRAVA_ELT_VALIDATION_DIR", str(directory))
    server, block = slack
    env.run()
    before = env.production()
    mark = env.watermark()
    newest = max(r["start_date"] for r in before.values())
    added = env.emu.add_activities(3)
    bad = added[0]
    env.emu.modify_activity(bad["id"], distance=2_000_000.0)

    with pytest.raises(v.ValidationHalted, match="no_ultra_distance") as caught:
        env.run(slack_block=block)
    assert "Production and the watermark are unchanged" in str(caught.value)
    halted = {r["name"]: r for r in caught.value.results}
    assert halted["no_ultra_distance"]["outcome"] == "failed"
    assert halted["no_ultra_distance"]["detail"] == f"e.g. id {bad['id']}"
    assert env.production() == before
    assert env.watermark() == mark
    assert not _staging_tables(env)
    first = env.query("SELECT run_key, name, outcome FROM strava_validation_results")
    assert [(name, outcome) for _, name, outcome in first] == [("no_ultra_distance", "passed")]  # none of the halt
    staged_files = list((env.lake_dir / "staging").rglob("activities.parquet"))
    assert len(staged_files) == 2  # the halted run's file stays for inspection
    assert len(server.posts) == 1
    text = server.texts[0]
    assert "HALTED by validation" in text and "watermark unchanged" in text
    assert f"❌ no_ultra_distance (halt): 1 = 0, failed: e.g. id {bad['id']}" in text

    env.emu.modify_activity(bad["id"], distance=5000.0)
    summary = env.run()
    assert summary["inserted"] == 3
    prod = env.production()
    assert set(prod) == {a["id"] for a in env.emu.activities}
    assert env.query("SELECT COUNT(*) - COUNT(DISTINCT id) FROM strava_activity_data")[0][0] == 0
    assert prod[bad["id"]]["distance"] == 5000.0
    assert env.watermark() > newest
    recorded = env.query("SELECT run_key, outcome FROM strava_validation_results ORDER BY run_key")
    assert recorded == [(first[0][0], "passed"), (summary["run_key"], "passed")]


def test_a_halting_manifest_from_the_environment_stops_the_merge(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = write_manifest(
        tmp_path / "strict",
        [
            {"name": "always_halts", "severity": "halt", "sql": "rows.sql", "operator": "less", "threshold": 0},
            {"name": "broken", "severity": "warn", "sql": "broken.sql", "operator": "equals", "threshold": 0},
        ],
        {"rows.sql": "SELECT COUNT(*) FROM {staging}", "broken.sql": "SELECT FROM WHERE"},
    )
    monkeypatch.setenv("STRAVA_ELT_VALIDATION_DIR", str(directory))
    with pytest.raises(v.ValidationHalted, match="always_halts \\(450 < 0, failed\\)") as caught:
        env.run()
    assert "broken" not in str(caught.value).split("failed:")[1]  # a warn check never halts
    assert caught.value.results[1]["detail"].startswith("check could not run")
    assert not env.query("SELECT COUNT(*) FROM strava_activity_data")[0][0]
    assert env.watermark() is None


def test_validate_command_exit_codes(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    env.run()
    count = tmp_path / "count.sql"
    count.write_text("SELECT COUNT(*) FROM strava_activity_data", encoding="utf-8")
    expected = tmp_path / "expected.sql"
    expected.write_text("SELECT 450", encoding="utf-8")
    broken = tmp_path / "broken.sql"
    broken.write_text("SELECT nope FROM strava_activity_data", encoding="utf-8")
    block = ["--warehouse-block", env.warehouse_block]

    assert main(["validate", str(count), str(expected), "equals", "halt", *block]) == 0
    assert "count (halt): 450 = 450, passed" in capsys.readouterr().out
    assert main(["validate", str(count), "500", "greater", "halt", *block]) == 1
    assert "450 > 500, failed" in capsys.readouterr().out
    assert main(["validate", str(count), "500", "greater", "warn", *block]) == 0
    assert main(["validate", str(broken), "0", "equals", "halt", *block]) == 1
    out = capsys.readouterr().out
    assert "check could not run" in out and "nope" in out  # the database's message
    assert main(["validate", str(count), "no-such-file.sql", "equals", "halt", *block]) == 1
    assert "neither a SQL file nor a number" in capsys.readouterr().err


@pytest.mark.postgres
def test_pg_url_gives_a_fresh_schema(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            schema_name = conn.execute(sa.text("SELECT current_schema()")).scalar()
            tables = conn.execute(
                sa.text("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()")
            ).scalar()
    finally:
        engine.dispose()
    assert str(schema_name).startswith("test_") and tables == 0


def test_a_run_that_fails_otherwise_still_sends_its_one_message(
    env: Env, slack: tuple[SlackServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, block = slack
    monkeypatch.setenv("STRAVA_ELT_VALIDATION_DIR", str(tmp_path / "no-manifest-here"))
    with pytest.raises(v.ValidationConfigError, match="No validation manifest"):
        env.run(slack_block=block)
    assert not env.query("SELECT COUNT(*) FROM strava_activity_data")[0][0]  # a broken gate lets nothing through
    assert not _staging_tables(env)
    assert len(server.posts) == 1
    text = server.texts[0]
    assert "FAILED: ValidationConfigError: No validation manifest" in text
    assert "extracted 450, inserted 0, updated 0, deleted 0, watermark unchanged" in text


def test_a_misspelt_slack_block_fails_before_any_work(env: Env) -> None:
    from blocks.loading import MissingBlockError

    with pytest.raises(MissingBlockError, match="no-such-slack"):
        env.run(slack_block="no-such-slack")
    assert env.emu.request_count() == 0
