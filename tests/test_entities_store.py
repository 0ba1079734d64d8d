"""The enrichment's warehouse side (tasks/entities/store.py): tables, load_batch, the gate, deletes propagating.

Staged batches are built by hand: Parquet files of each spec's ``arrow_schema`` in a local lake,
loaded into DuckDB files and PostgreSQL schemas; Redshift's SQL is compiled with the real
sqlalchemy-redshift dialect and parsed by sqlglot.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import sqlglot
from prefect.filesystems import LocalFileSystem
from sqlalchemy.schema import CreateTable
from sqlalchemy_redshift.dialect import RedshiftDialect_redshift_connector

from tasks import warehouse as wh
from tasks.entities import catalog
from tasks.entities.batch import StagedBatch
from tasks.entities.catalog import ENRICHMENT_TABLE, SPECS
from tasks.entities.spec import EntitySpec, Merge
from tasks.entities.store import (
    EntityLoad,
    _entity_sql,
    _state_sql,
    entity_checks,
    entity_staging_name,
    load_batch,
)
from tasks.lake import Lake
from tasks.quality.guard import check_read_only
from tasks.quality.runner import ValidationHalted
from tasks.warehouse import schema
from tasks.warehouse.sql_files import run_key_started
from tasks.warehouse.tables import ACTIVITY_CHILDREN, ENTITY_SPECS, entity_indexes

A, B = 1001, 2002
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
RUN_1 = "20261101t080000_aaaaaaaa"
RUN_2 = "20261102t080000_bbbbbbbb"
ACTIVITIES = {A: [11, 12, 13], B: [21, 22]}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A warehouse holding two athletes' summaries: a DuckDB file, then a fresh PostgreSQL schema."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    e = sa.create_engine(url)
    try:
        wh.ensure_tables(e)
        table = schema.activity_table(sa.MetaData())
        rows = [
            {"id": i, "athlete_id": athlete, "name": f"run {i}", "start_date": T0 - timedelta(days=i)}
            for athlete, ids in ACTIVITIES.items()
            for i in ids
        ]
        with e.begin() as conn:
            conn.execute(sa.insert(table), rows)
        yield e
    finally:
        e.dispose()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    (tmp_path / "lake").mkdir()
    return Lake(LocalFileSystem(basepath=str(tmp_path / "lake")))


# ------------------------------------------------------------------ building batches by hand


def row(spec: EntitySpec, **values: Any) -> dict[str, Any]:
    """A staged row of ``spec``: every column, None unless given."""
    unknown = set(values) - set(spec.column_names)
    assert not unknown, unknown
    return {c: values.get(c) for c in spec.column_names}


def detail(athlete: int, activity: int, description: str = "easy", run: str = RUN_1) -> dict[str, Any]:
    return row(
        catalog.DETAIL,
        activity_id=activity,
        athlete_id=athlete,
        description=description,
        calories=500.0,
        lap_count=2,
        extracted_at=T0,
        row_hash=f"{activity}-{description}",
    )


def laps(athlete: int, activity: int, n: int) -> list[dict[str, Any]]:
    return [
        row(catalog.LAPS, id=activity * 100 + i, activity_id=activity, athlete_id=athlete, lap_index=i, distance=1000.0)
        for i in range(1, n + 1)
    ]


def splits(spec: EntitySpec, athlete: int, activity: int, n: int) -> list[dict[str, Any]]:
    return [row(spec, activity_id=activity, split=i, athlete_id=athlete, distance=1000.0) for i in range(1, n + 1)]


def efforts(spec: EntitySpec, athlete: int, activity: int, n: int) -> list[dict[str, Any]]:
    extra = {"segment_id": 7, "segment_name": "hill"} if spec is catalog.SEGMENT_EFFORTS else {"name": "5k"}
    return [
        row(spec, id=activity * 1000 + i, activity_id=activity, athlete_id=athlete, elapsed_time=60 * i, **extra)
        for i in range(1, n + 1)
    ]


def streams(athlete: int, activity: int, n: int) -> list[dict[str, Any]]:
    return [
        row(catalog.STREAMS, activity_id=activity, sample_index=i, athlete_id=athlete, time=i, heartrate=120 + i % 30)
        for i in range(n)
    ]


def gear(athlete: int, distance: float, gear_id: str = "g1") -> list[dict[str, Any]]:
    return [row(catalog.GEAR, id=gear_id, athlete_id=athlete, name="shoes", distance=distance, row_hash=str(distance))]


def stats(athlete: int, observed_at: datetime) -> list[dict[str, Any]]:
    return [
        row(catalog.STATS, athlete_id=athlete, observed_at=observed_at, period=p, sport="run", count=3)
        for p in ("recent", "ytd", "all")
    ]


def zones(athlete: int, n: int) -> list[dict[str, Any]]:
    return [row(catalog.ZONES, athlete_id=athlete, kind="heartrate", zone=z, min=z * 20) for z in range(1, n + 1)]


def staged(
    lake: Lake,
    athlete: int,
    run_key: str,
    entities: Mapping[str, Sequence[Mapping[str, Any]]],
    parents: Mapping[str, Sequence[Any]] | None = None,
    state: Sequence[Mapping[str, Any]] = (),
) -> StagedBatch:
    """Write one Parquet file per entity with rows (``spec.arrow_schema``) and describe the batch."""
    files, counts = {}, {}
    for name, rows in entities.items():
        if not rows:
            continue
        path = f"staging/athlete_id={athlete}/run={run_key}/{name}.parquet"
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(list(rows), schema=SPECS[name].arrow_schema), sink)
        lake.write(path, sink.getvalue())
        files[name], counts[name] = path, len(rows)
    return StagedBatch(
        athlete_id=athlete,
        run_key=run_key,
        extracted_at=T0,
        files=files,
        rows=counts,
        parents={k: tuple(v) for k, v in (parents or {}).items()},
        state=tuple(state),
    )


CHILD_NAMES = [s.name for s in catalog.DETAIL_CHILDREN]


def full_batch(lake: Lake, athlete: int, run_key: str = RUN_1, description: str = "easy") -> StagedBatch:
    """Everything of ``athlete``'s activities: detail and its lists, streams, gear, stats, zones, state rows."""
    ids = ACTIVITIES[athlete]
    entities: dict[str, list[dict[str, Any]]] = {
        "activity_detail": [detail(athlete, i, description) for i in ids],
        "activity_laps": [r for i in ids for r in laps(athlete, i, 2)],
        "activity_splits_metric": [r for i in ids for r in splits(catalog.SPLITS_METRIC, athlete, i, 3)],
        "activity_splits_standard": [r for i in ids for r in splits(catalog.SPLITS_STANDARD, athlete, i, 2)],
        "activity_best_efforts": [r for i in ids for r in efforts(catalog.BEST_EFFORTS, athlete, i, 2)],
        "activity_segment_efforts": [r for i in ids for r in efforts(catalog.SEGMENT_EFFORTS, athlete, i, 2)],
        "activity_streams": [r for i in ids for r in streams(athlete, i, 50)],
        "gear": gear(athlete, 100.0),
        "athlete_stats": stats(athlete, T0),
        "athlete_zones": zones(athlete, 5),
    }
    parents = {name: ids for name in [*CHILD_NAMES, "activity_streams"]}
    state = [
        {"activity_id": i, "detail_at": T0, "detail_due": False, "streams_at": T0, "streams_outcome": "ok",
         "streams_samples": 50, "attempts": 1}
        for i in ids
    ]  # fmt: skip
    return staged(lake, athlete, run_key, entities, parents, state)


def columns_of(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :t ORDER BY ordinal_position"
            ),
            {"t": table},
        )
        return [r[0] for r in found]


def table_rows(engine: sa.Engine, table: str, athlete: int) -> list[tuple[Any, ...]]:
    """The athlete's rows of ``table``, sorted (a snapshot to compare)."""
    t = sa.table(table, *(sa.column(c) for c in columns_of(engine, table)))
    with engine.connect() as conn:
        found = conn.execute(sa.select(t).where(t.c.athlete_id == athlete)).all()
    return sorted((tuple(r) for r in found), key=repr)


def snapshot(engine: sa.Engine, athlete: int) -> dict[str, list[tuple[Any, ...]]]:
    return {t: table_rows(engine, t, athlete) for t in [*(s.table for s in ENTITY_SPECS), ENRICHMENT_TABLE]}


def counts(engine: sa.Engine, athlete: int) -> dict[str, int]:
    return {t: len(rows) for t, rows in snapshot(engine, athlete).items()}


def staging_tables(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return wh.dialect_for(engine).staging_tables(conn)


def models_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.exec_driver_sql("SELECT MAX(version) FROM strava_elt_model_state WHERE kind = 'inputs'").scalar()
        )


EXPECTED_A = {
    "strava_activity_detail": 3,
    "strava_activity_laps": 6,
    "strava_activity_splits_metric": 9,
    "strava_activity_splits_standard": 6,
    "strava_activity_best_efforts": 6,
    "strava_activity_segment_efforts": 6,
    "strava_activity_streams": 150,
    "strava_gear": 1,
    "strava_athlete_stats_history": 3,
    "strava_athlete_zones": 5,
    ENRICHMENT_TABLE: 3,
}


# ------------------------------------------------------------------ tables


def test_ensure_tables_creates_every_enrichment_table_once(engine: sa.Engine) -> None:
    wh.ensure_tables(engine)  # again: idempotent
    for spec in ENTITY_SPECS:
        assert columns_of(engine, spec.table) == list(spec.column_names), spec.name
    state = columns_of(engine, ENRICHMENT_TABLE)
    assert state[:2] == ["athlete_id", "activity_id"] and "streams_outcome" in state
    assert {s.name for s in ENTITY_SPECS} == set(SPECS) - {"activities"}
    # The key holds: a second row of one key is refused.
    zone = {"athlete_id": A, "kind": "heartrate", "zone": 1}
    table = catalog.ZONES.table_of(sa.MetaData())
    with engine.begin() as conn:
        conn.execute(sa.insert(table), zone)
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.execute(sa.insert(table), zone)
    if engine.dialect.name == "postgresql":
        inspector = sa.inspect(engine)
        for spec in ENTITY_SPECS:
            assert inspector.get_pk_constraint(spec.table)["constrained_columns"] == list(spec.key)
        found = {ix["name"]: (t, tuple(ix["column_names"])) for t in {i[1] for i in entity_indexes()}
                 for ix in inspector.get_indexes(t)}  # fmt: skip
        for name, table, columns in entity_indexes():
            assert found[name] == (table, columns)
    assert {i[1] for i in entity_indexes()} == {
        "strava_activity_laps", "strava_activity_best_efforts", "strava_activity_segment_efforts"
    }  # fmt: skip


# ------------------------------------------------------------------ load_batch


def test_a_batch_loaded_twice_lands_exactly_once(engine: sa.Engine, lake: Lake) -> None:
    batch = full_batch(lake, A)
    version = models_version(engine)
    first = load_batch(engine, lake, batch)
    assert isinstance(first, EntityLoad)
    assert counts(engine, A) == EXPECTED_A
    assert first.entities["activity_detail"].inserted == 3 and first.entities["activity_streams"].inserted == 150
    assert first.state_rows == 3 and first.changed
    assert models_version(engine) == version + 1, "the models are marked stale in the merge's transaction"
    assert staging_tables(engine) == []
    before = snapshot(engine, A)

    again = load_batch(engine, lake, batch)
    assert snapshot(engine, A) == before
    for name, c in again.entities.items():
        assert c.inserted == 0 and c.deleted == 0, name
    assert again.entities["activity_detail"].updated == 0 and again.entities["activity_detail"].unchanged == 3
    assert again.entities["gear"].updated == 0
    assert again.entities["activity_laps"].updated == 6  # replaced: laps carry no fingerprint
    assert again.entities["athlete_stats"].updated == 0 and again.entities["athlete_stats"].unchanged == 3
    with engine.connect() as conn:
        names = [r[0] for r in conn.exec_driver_sql(
            f"SELECT name FROM strava_validation_results WHERE athlete_id = {A} AND run_key = '{RUN_1}'"
        )]  # fmt: skip
    assert "activity_detail_rows_belong_to_athlete" in names and "enriched_detail_share" in names
    assert len(names) == len(set(names)) == len(again.checks)


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)  # a checkpoint is DuckDB's: PostgreSQL manages its own
def test_a_duckdb_batch_is_checkpointed_to_the_file_after_its_merge(engine: sa.Engine, lake: Lake) -> None:
    """DuckDB's memory holds one batch, not the run's: its write-ahead log is empty after each load."""
    assert engine.dialect.name == "duckdb"
    wal = Path(f"{engine.url.database}.wal")
    with engine.begin() as conn:  # something in the log first: the fixture's own writes may be in it
        conn.exec_driver_sql(f"UPDATE strava_activity_data SET name = 'renamed' WHERE athlete_id = {A}")
    assert wal.exists() and wal.stat().st_size > 0
    load_batch(engine, lake, full_batch(lake, A))
    assert counts(engine, A) == EXPECTED_A
    assert not wal.exists() or wal.stat().st_size == 0


def test_update_counts_follow_the_row_hash(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    changed = staged(
        lake, A, RUN_2,
        {"activity_detail": [detail(A, 11, "tempo"), detail(A, 12)], "gear": gear(A, 150.0)},
    )  # fmt: skip
    result = load_batch(engine, lake, changed)
    d = result.entities["activity_detail"]
    assert (d.staged, d.inserted, d.updated, d.unchanged, d.deleted) == (2, 0, 1, 1, 0)
    assert result.entities["gear"].updated == 1
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            f"SELECT description FROM strava_activity_detail WHERE athlete_id = {A} AND activity_id = 11"
        ).scalar()
        distance = conn.exec_driver_sql(f"SELECT distance FROM strava_gear WHERE athlete_id = {A}").scalar()
    assert found == "tempo" and distance == 150.0
    assert counts(engine, A)["strava_activity_detail"] == 3  # 13 untouched


def test_replace_children_removes_stale_children(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    # Activity 11 re-fetched: one lap now (ids 1101 kept, 1102 gone); 12 re-fetched with no laps and no streams.
    again = staged(
        lake, A, RUN_2,
        {"activity_laps": laps(A, 11, 1), "activity_streams": streams(A, 11, 20)},
        parents={"activity_laps": [11, 12], "activity_streams": [11, 12]},
    )  # fmt: skip
    result = load_batch(engine, lake, again)
    lap = result.entities["activity_laps"]
    assert (lap.staged, lap.inserted, lap.updated, lap.deleted) == (1, 0, 1, 3)
    s = result.entities["activity_streams"]
    assert (s.staged, s.inserted, s.updated, s.deleted) == (20, 0, 20, 80)
    with engine.connect() as conn:
        by_activity = dict(conn.exec_driver_sql(
            f"SELECT activity_id, COUNT(*) FROM strava_activity_laps WHERE athlete_id = {A} GROUP BY activity_id"
        ).all())  # fmt: skip
        samples = dict(conn.exec_driver_sql(
            f"SELECT activity_id, COUNT(*) FROM strava_activity_streams WHERE athlete_id = {A} GROUP BY activity_id"
        ).all())  # fmt: skip
    assert by_activity == {11: 1, 13: 2}
    assert samples == {11: 20, 13: 50}


def test_a_file_without_parents_is_refused(engine: sa.Engine, lake: Lake) -> None:
    batch = staged(lake, A, RUN_1, {"activity_laps": laps(A, 11, 2)})
    with pytest.raises(ValueError, match="no parents"):
        load_batch(engine, lake, batch)
    with pytest.raises(ValueError, match="does not merge"):
        load_batch(engine, lake, staged(lake, A, RUN_1, {}, parents={"activities": [11]}))


def test_another_athletes_rows_are_never_touched(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    a_before = snapshot(engine, A)
    load_batch(engine, lake, full_batch(lake, B))
    # B's zones replaced as a whole, B's activities' children replaced: A's stay as they were.
    load_batch(engine, lake, staged(lake, B, RUN_2, {"athlete_zones": zones(B, 2)}, parents={
        "activity_laps": [21, 22], "activity_streams": [21, 22]}))  # fmt: skip
    assert snapshot(engine, A) == a_before
    b = counts(engine, B)
    assert b["strava_athlete_zones"] == 2 and b["strava_activity_laps"] == 0 and b["strava_activity_streams"] == 0
    assert b["strava_activity_detail"] == 2 and b[ENRICHMENT_TABLE] == 2


def test_stats_history_appends_a_snapshot_per_run(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, staged(lake, A, RUN_1, {"athlete_stats": stats(A, T0)}))
    load_batch(engine, lake, staged(lake, A, RUN_1, {"athlete_stats": stats(A, T0)}))  # the same run again
    assert counts(engine, A)["strava_athlete_stats_history"] == 3
    later = load_batch(engine, lake, staged(lake, A, RUN_2, {"athlete_stats": stats(A, T0 + timedelta(days=1))}))
    assert later.entities["athlete_stats"].inserted == 3
    assert counts(engine, A)["strava_athlete_stats_history"] == 6


# ------------------------------------------------------------------ the gate


def test_a_foreign_activity_halts_the_whole_batch(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    before = {a: snapshot(engine, a) for a in (A, B)}
    # A's batch holds a detail row of B's activity 21 (staged under A): nothing of it may merge.
    bad = staged(
        lake, A, RUN_2,
        {"activity_detail": [detail(A, 11, "changed"), detail(A, 21)], "activity_laps": laps(A, 11, 1)},
        parents={"activity_laps": [11]},
        state=[{"activity_id": 11, "detail_at": T0}],
    )  # fmt: skip
    with pytest.raises(ValidationHalted, match="activity_detail_rows_belong_to_athlete") as halted:
        load_batch(engine, lake, bad)
    failed = {r["name"]: r for r in halted.value.results if r["outcome"] == "failed"}
    assert set(failed) == {"activity_detail_rows_belong_to_athlete"}
    assert "1 of an activity another athlete holds" in failed["activity_detail_rows_belong_to_athlete"]["detail"]
    assert {a: snapshot(engine, a) for a in (A, B)} == before
    assert staging_tables(engine) == []
    lake_dir = Path(lake.block.basepath)
    assert (lake_dir / bad.files["activity_detail"]).is_file(), "the staging file stays in the lake"


def test_a_row_of_another_athlete_id_halts(engine: sa.Engine, lake: Lake) -> None:
    bad = staged(lake, A, RUN_1, {"athlete_zones": zones(A, 2) + zones(B, 1), "gear": gear(A, 1.0)})
    with pytest.raises(ValidationHalted, match="athlete_zones_rows_belong_to_athlete"):
        load_batch(engine, lake, bad)
    assert counts(engine, A)["strava_gear"] == 0


def test_warn_checks_say_how_much_of_the_history_is_enriched(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, staged(lake, A, RUN_1, {"activity_detail": [detail(A, 11)]}, state=[
        {"activity_id": 11, "detail_at": T0, "streams_at": T0, "streams_samples": 0}]))  # fmt: skip
    result = load_batch(engine, lake, staged(lake, A, RUN_2, {"activity_detail": [detail(A, 12)]}))
    by_name = {c.name: c for c in result.checks}
    share = by_name["enriched_detail_share"]
    assert share.severity == "warn" and share.outcome == "failed"
    assert share.value_1 == pytest.approx(1 / 3) and share.detail == "1 of 3 live activities have their detail"
    streams_share = by_name["enriched_streams_share"]
    assert streams_share.value_1 == pytest.approx(1 / 3) and "(0 with samples)" in streams_share.detail


def test_every_entity_check_is_read_only_and_athlete_scoped() -> None:
    checks = entity_checks()
    assert {c.scope for c in checks} == {"activity_entities", "athlete_entities", "production"}
    for c in checks:
        text = c.check.sql.read_text(encoding="utf-8")
        for dialect in ("duckdb", "postgresql", "redshift"):
            check_read_only(text, c.check.sql.name, dialect)
        assert ":athlete_id" in text, c.check.sql.name


# ------------------------------------------------------------------ deletes propagate


def _children_counts(engine: sa.Engine, athlete: int, activity: int) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.exec_driver_sql(
                f"SELECT COUNT(*) FROM {t} WHERE athlete_id = {athlete} AND activity_id = {activity}"  # noqa: S608
            ).scalar())
            for t in [*(s.table for s in ACTIVITY_CHILDREN), ENRICHMENT_TABLE]
        }  # fmt: skip


def test_a_webhook_delete_takes_the_activitys_rows_with_it(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    load_batch(engine, lake, full_batch(lake, B))
    b_before = snapshot(engine, B)
    assert all(n > 0 for n in _children_counts(engine, A, 11).values())
    # Another athlete's id deletes nothing.
    assert wh.mark_activity_deleted(engine, B, 11, T0) == 0
    assert all(n > 0 for n in _children_counts(engine, A, 11).values())

    assert wh.mark_activity_deleted(engine, A, 11, T0) == 1
    assert set(_children_counts(engine, A, 11).values()) == {0}
    assert all(n > 0 for n in _children_counts(engine, A, 12).values())
    assert snapshot(engine, B) == b_before
    c = counts(engine, A)
    assert c["strava_activity_streams"] == 100 and c["strava_gear"] == 1 and c[ENRICHMENT_TABLE] == 2


def test_the_summary_merges_deletion_marking_takes_the_rows_with_it(engine: sa.Engine, lake: Lake) -> None:
    load_batch(engine, lake, full_batch(lake, A))
    load_batch(engine, lake, full_batch(lake, B))
    b_before = snapshot(engine, B)
    # A run that read A's window around activity 12 in full and did not see it: it is marked deleted.
    staging = wh.prepare_staging(engine, "20261101t090000_cccccccc")
    try:
        window = (T0 - timedelta(days=12, hours=1), T0 - timedelta(days=11, hours=23))
        result = wh.merge_staging.fn(engine, staging, T0, window, A)
    finally:
        wh.drop_staging(engine, staging)
    assert result.deleted == 1
    assert set(_children_counts(engine, A, 12).values()) == {0}
    assert all(n > 0 for n in _children_counts(engine, A, 11).values())
    assert snapshot(engine, B) == b_before
    # It reappears (a later summary merge re-inserts it unmarked): no state row, so the enrichment's
    # queue holds it again, and its next batch lands again.
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE strava_activity_data SET deleted_at = NULL WHERE athlete_id = {A} AND id = 12")
    assert table_rows(engine, ENRICHMENT_TABLE, A) and 12 not in {r[1] for r in table_rows(engine, ENRICHMENT_TABLE, A)}
    load_batch(engine, lake, full_batch(lake, A, RUN_2))
    assert all(n > 0 for n in _children_counts(engine, A, 12).values())


# ------------------------------------------------------------------ the enrichment state


def test_state_rows_upsert_and_keep_what_a_row_omits(engine: sa.Engine, lake: Lake) -> None:
    first = [{"activity_id": 11, "detail_at": T0, "detail_due": False, "streams_at": T0, "streams_outcome": "ok",
              "streams_samples": 50, "attempts": 1}]  # fmt: skip
    load_batch(engine, lake, staged(lake, A, RUN_1, {}, state=first))
    # A webhook update: detail due again; later only the detail is re-fetched.
    load_batch(engine, lake, staged(lake, A, RUN_2, {}, state=[{"activity_id": 11, "detail_due": True},
                                                              {"activity_id": 12, "attempts": 1,
                                                               "last_error": "429"}]))  # fmt: skip
    rows = {r[1]: r for r in table_rows(engine, ENRICHMENT_TABLE, A)}
    assert set(rows) == {11, 12}
    columns = [c.name for c in catalog.enrichment_state_table(sa.MetaData()).columns]
    r11 = dict(zip(columns, rows[11], strict=True))
    assert r11["detail_due"] is True and r11["streams_outcome"] == "ok" and r11["streams_samples"] == 50
    r12 = dict(zip(columns, rows[12], strict=True))
    assert r12["last_error"] == "429" and r12["detail_at"] is None
    with pytest.raises(ValueError, match="state row of athlete"):
        load_batch(engine, lake, staged(lake, A, RUN_2, {}, state=[{"activity_id": 11, "athlete_id": B}]))
    assert table_rows(engine, ENRICHMENT_TABLE, B) == []


# ------------------------------------------------------------------ names and Redshift


def test_staging_names_are_swept_like_the_summarys() -> None:
    names = {entity_staging_name(RUN_1, s.name) for s in ENTITY_SPECS}
    assert len(names) == len(ENTITY_SPECS)
    assert all(n.startswith(wh.staging_name(RUN_1) + "_") and len(n) <= 63 for n in names)
    # An enrichment run's batches add a number to the run key: long keys keep their time and a digest.
    long_keys = [f"{RUN_1}_{n}" for n in (1, 12, 123)] + [RUN_1 + "_" + "x" * 15]
    long_names = {entity_staging_name(k, s.name) for k in long_keys for s in ENTITY_SPECS}
    assert len(long_names) == len(long_keys) * len(ENTITY_SPECS)
    assert all(len(n) <= 63 and n.startswith(wh.staging_name(RUN_1[:15])) for n in long_names)
    swept = {run_key_started(n.removeprefix(wh.STAGING_PREFIX)) for n in long_names}
    assert swept == {datetime(2026, 11, 1, 8, 0, tzinfo=UTC)}


REDSHIFT = RedshiftDialect_redshift_connector()


class _RedshiftDialect(wh.RedshiftDialect):
    @property
    def preparer(self) -> sa.sql.compiler.IdentifierPreparer:
        return REDSHIFT.identifier_preparer


def _redshift_sql() -> list[tuple[str, str]]:
    dialect = _RedshiftDialect(sa.create_engine("sqlite://"))
    out = []
    for spec in ENTITY_SPECS:
        stg = entity_staging_name(RUN_1, spec.name)
        for name in ("count_staged", "count_existing", "count_changed", "delete_keys", "insert", "delete_athlete"):
            out.append((f"{spec.name}:{name}", _entity_sql(dialect, f"{name}.sql", spec, stg)))
        if spec.merge is Merge.REPLACE_CHILDREN:
            out.append((f"{spec.name}:delete_parents", _entity_sql(dialect, "delete_parents.sql", spec)))
    for name in ("state_read", "state_delete", "state_insert"):
        out.append((name, _state_sql(dialect, f"{name}.sql")))
    params = {"athlete_id": A, "activity_id": 11, "parents": [11, 12], "activity_ids": [11, 12]}
    params |= {c: None for c in ("detail_at", "detail_due", "streams_at", "streams_outcome", "streams_samples",
                                 "attempts", "last_error")}  # fmt: skip
    compiled = []
    for label, statement in out:
        sql = str(statement.compile(dialect=REDSHIFT, compile_kwargs={"literal_binds": False}))
        compiled.append((label, sql))
    assert params  # the binds are the dialect's: compile only
    return compiled


def test_the_entity_sql_compiles_and_parses_as_redshift() -> None:
    compiled = _redshift_sql()
    assert len(compiled) > 60
    for label, sql in compiled:
        text = sql.replace("__[POSTCOMPILE_parents]", "(1, 2)").replace("__[POSTCOMPILE_activity_ids]", "(1, 2)")
        parsed = [s for s in sqlglot.parse(text, read="redshift", error_level=sqlglot.ErrorLevel.RAISE) if s]
        assert len(parsed) == 1, label
        if label != "state_insert":  # INSERT ... VALUES: the athlete is a bound value
            assert "athlete_id = " in text, f"{label}: every statement is the athlete's"


def test_the_enrichment_tables_compile_for_redshift() -> None:
    metadata = sa.MetaData()
    tables = [s.table_of(metadata) for s in ENTITY_SPECS] + [catalog.enrichment_state_table(metadata)]
    for table in tables:
        ddl = str(CreateTable(table).compile(dialect=REDSHIFT))
        assert "PRIMARY KEY" in ddl and "athlete_id BIGINT" in ddl, table.name
        sqlglot.parse_one(ddl, read="redshift")


# ------------------------------------------------------------------ load_batch on a recorded Redshift session


def test_load_batch_on_redshift_sends_copies_and_one_merge_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real sqlalchemy-redshift dialect over the recording DB-API of tests/test_redshift_sql.py."""
    from prefect_aws import AwsCredentials, S3Bucket

    from blocks.warehouse import engine_options
    from tests import test_redshift_sql as rs

    tables = {s.table: s for s in ENTITY_SPECS}
    real_execute, real_answer = rs._Cursor.execute, rs._Recorder.answer

    def execute(self: Any, sql: str, params: Any = None) -> None:
        self._recorder.params = params
        real_execute(self, sql, params)

    def answer(self: Any, sql: str) -> list[tuple[Any, ...]] | None:
        s = " ".join(sql.lower().split())
        params = getattr(self, "params", None) or ()
        if "ordinal_position" in s and params and params[0] in tables:
            return [(c,) for c in tables[params[0]].column_names]
        if "as foreign_rows" in s:
            return [(0, "")]
        if "as share" in s:
            return [(0.5, "1 of 2")]
        if "select count(*) from stg_" in s:
            return [(3,)]  # the merge's counts: every staged key already there, with other values
        return real_answer(self, sql)

    monkeypatch.setattr(rs._Cursor, "execute", execute)
    monkeypatch.setattr(rs._Recorder, "answer", answer)
    sessions: list[Any] = []
    engine = sa.create_engine(rs.URL, module=rs.fake_redshift_connector(sessions), **engine_options(rs.URL))
    bucket = S3Bucket(
        bucket_name=rs.BUCKET, bucket_folder=rs.FOLDER, credentials=AwsCredentials(region_name="eu-west-1")
    )
    prefix = f"staging/athlete_id={A}/run={RUN_1}"
    batch = StagedBatch(
        athlete_id=A,
        run_key=RUN_1,
        extracted_at=T0,
        files={
            "activity_detail": f"{prefix}/activity_detail.parquet",
            "activity_laps": f"{prefix}/activity_laps.parquet",
        },
        rows={"activity_detail": 450, "activity_laps": 450},
        parents={"activity_laps": (11, 12)},
        state=({"activity_id": 11, "detail_at": T0},),
    )
    try:
        result = load_batch(engine, Lake(bucket), batch, iam_role_arn=rs.ARN, region="eu-west-1")
    finally:
        engine.dispose()
    assert len(sessions) == 1, "staging (TEMP tables), checks and merge share ONE session"
    log = rs._normalised(sessions[0].log)  # comments and bound values left out, whitespace collapsed
    detail_stg, laps_stg = (entity_staging_name(RUN_1, n) for n in ("activity_detail", "activity_laps"))
    assert f"CREATE TEMP TABLE {detail_stg} (LIKE strava_activity_detail)" in log
    assert f"CREATE TEMP TABLE {laps_stg} (LIKE strava_activity_laps)" in log
    copies = [q for q in log if q.startswith("COPY")]
    assert copies == [
        f"COPY {detail_stg} FROM 's3://{rs.BUCKET}/{rs.FOLDER}/{prefix}/activity_detail.parquet' "
        f"WITH CREDENTIALS AS 'aws_iam_role={rs.ARN}' FORMAT AS PARQUET",
        f"COPY {laps_stg} FROM 's3://{rs.BUCKET}/{rs.FOLDER}/{prefix}/activity_laps.parquet' "
        f"WITH CREDENTIALS AS 'aws_iam_role={rs.ARN}' FORMAT AS PARQUET",
    ]  # no FILLRECORD: an entity's file holds every column of its table
    # The merge: one transaction (no COMMIT between its first statement and its end), every write the athlete's.
    first = next(i for i, q in enumerate(log) if q.startswith("DELETE FROM strava_activity_detail"))
    end = log.index("COMMIT", first)
    merge = log[first:end]
    writes = [q for q in merge if q.startswith(("DELETE", "INSERT", "UPDATE"))]
    assert any(q.startswith("DELETE FROM strava_activity_laps WHERE athlete_id = %s AND activity_id IN (%s, %s)")
               for q in writes)  # fmt: skip
    assert any(q.startswith("INSERT INTO strava_enrichment_state") for q in writes)
    assert result.entities["activity_detail"].updated == 3 and result.changed
    assert "UPDATE strava_elt_model_state SET version = version + 1 WHERE kind = 'inputs'" in writes
    for q in writes:
        assert "athlete_id" in q or q.startswith("UPDATE strava_elt_model_state"), q
    assert log[-5:] == [f"DROP TABLE IF EXISTS {detail_stg}", f"DROP TABLE IF EXISTS {laps_stg}", "COMMIT",
                        "ROLLBACK", "CLOSE"]  # fmt: skip
    assert rs.ARN not in "\n".join(str(c.detail) for c in result.checks)


@pytest.mark.postgres
def test_the_gate_runs_as_the_checks_role(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: the role may only SELECT; load_batch grants it the enrichment tables and its staging tables."""
    import uuid

    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    lake = Lake(LocalFileSystem(basepath=str(lake_dir)))
    engine = sa.create_engine(pg_url)
    role = f"strava_elt_checks_{uuid.uuid4().hex[:8]}"
    try:
        wh.ensure_tables(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(schema.activity_table(sa.MetaData())), [
                {"id": i, "athlete_id": a, "start_date": T0 - timedelta(days=i)}
                for a, ids in ACTIVITIES.items() for i in ids])  # fmt: skip
            conn.exec_driver_sql(f'CREATE ROLE "{role}" NOLOGIN')
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{conn.exec_driver_sql("SELECT current_schema()").scalar()}" '
                                 f'TO "{role}"')  # fmt: skip
        result = load_batch(engine, lake, full_batch(lake, A), checks_role=role)
        assert not [c for c in result.checks if "permission" in c.detail], [c.detail for c in result.checks]
        assert {c.outcome for c in result.checks if c.severity == "halt"} == {"passed"}
        bad = staged(lake, A, RUN_2, {"activity_detail": [detail(A, 21)]})
        with pytest.raises(ValidationHalted, match="activity_detail_rows_belong_to_athlete"):
            load_batch(engine, lake, bad, checks_role=role)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()


def test_a_crashed_runs_entity_staging_tables_are_swept(engine: sa.Engine, lake: Lake) -> None:
    old = entity_staging_name("20261001t080000_dddddddd", "activity_streams")  # a month before the clock
    young = entity_staging_name(datetime.now(UTC).strftime("%Y%m%dt%H%M%S") + "_eeeeeeee", "activity_laps")
    with engine.begin() as conn:
        for name in (old, young):
            wh.dialect_for(engine).create_staging(conn, name, "strava_activity_laps")
    load_batch(engine, lake, staged(lake, A, RUN_1, {"athlete_zones": zones(A, 1)}))
    assert staging_tables(engine) == [young], "the old one swept; a young one may be a concurrent run's"


def test_rows_of_an_activity_deleted_meanwhile_do_not_land(engine: sa.Engine, lake: Lake) -> None:
    # The batch was fetched, then a webhook delete marked 12 deleted before the batch merged.
    batch = full_batch(lake, A)
    assert wh.mark_activity_deleted(engine, A, 12, T0) == 1
    load_batch(engine, lake, batch)
    assert set(_children_counts(engine, A, 12).values()) == {0}
    assert all(n > 0 for n in _children_counts(engine, A, 11).values())
