"""The per-run staging table, the load from the lake, and the merge into production."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.entities.catalog import ENRICHMENT_TABLE
from tasks.logs import run_logger
from tasks.warehouse import schema
from tasks.warehouse.dialects import dialect_for
from tasks.warehouse.sql_files import STAGING_PREFIX, run_key_started, scalar, staging_name
from tasks.warehouse.tables import (
    ACTIVITY_CHILDREN,
    DETAIL_MAX_CHARS,
    TABLE_NAMES,
    athlete_rows,
    ensure_tables,
    production_changed,
)

if TYPE_CHECKING:  # tasks.lake imports tasks.warehouse.schema: no import back at run time
    from tasks.lake import Lake


@dataclass(frozen=True)
class MergeResult:
    """What one merge changed in production; ``athlete_rows`` is the athlete's row count after it."""

    staged: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    undeleted: int
    history_rows: int
    athlete_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for summaries and artifacts."""
        return dict(self.__dict__)


LEFTOVER_AFTER = timedelta(days=1)
"""A staging table whose run started longer ago than this was left by a run that crashed (a run
ends within its flow timeout, 4 hours by default); a younger one may be another athlete's run
loading right now, and is left alone."""


def sweep_staging(conn: sa.Connection) -> list[str]:
    """Drop the staging tables (the summary's and the entities') that runs which crashed left; return them.

    A staging table's name holds its run's key, so its age is known; a young one is left alone.
    """
    dialect = dialect_for(conn.engine)
    q = dialect.preparer.quote
    now = datetime.now(UTC)
    dropped = []
    for leftover in dialect.staging_tables(conn):
        started = run_key_started(leftover.removeprefix(STAGING_PREFIX))
        if started is None or now - started < LEFTOVER_AFTER:
            continue  # maybe a concurrent run's (the next day's runs sweep it if it stays)
        run_logger(__name__).warning("Dropping staging table %s left by an earlier run that crashed", leftover)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(leftover)}")
        dropped.append(leftover)
    return dropped


def prepare_staging(engine: sa.Engine, run_key: str) -> str:
    """Create production tables if needed, sweep staging tables crashed runs left, create this run's."""
    ensure_tables(engine)
    dialect = dialect_for(engine)
    staging = staging_name(run_key)
    with engine.begin() as conn:
        sweep_staging(conn)
        dialect.create_staging(conn, staging, schema.ACTIVITY_TABLE)
    return staging


def delete_children_of_deleted(conn: sa.Connection, athlete_id: int) -> dict[str, int]:
    """Delete the rows that belong to the athlete's activities marked deleted; return rows deleted per table.

    The detail, laps, splits, best and segment efforts and streams of a deleted activity go, and
    so does its enrichment state row: an activity that reappears is enriched again from scratch.
    Call in the transaction that marks the deletion. Every statement is the athlete's only.
    """
    dialect = dialect_for(conn.engine)
    athlete = {"athlete_id": int(athlete_id)}
    deleted = {}
    for table in (*(s.table for s in ACTIVITY_CHILDREN), ENRICHMENT_TABLE):
        statement = dialect.sql("entities/delete_of_deleted_activities.sql", child=table, target=schema.ACTIVITY_TABLE)
        deleted[table] = max(conn.execute(statement, athlete).rowcount, 0)
    return deleted


def load_staging(
    engine: sa.Engine,
    lake: Lake,
    path: str,
    staging: str,
    iam_role_arn: str | None = None,
    region: str | None = None,
) -> int:
    """Load the run's staging file from the lake into the staging table, in one transaction.

    ``iam_role_arn`` and ``region`` come from the Warehouse block; only Redshift's COPY uses them.
    """
    dialect = dialect_for(engine, iam_role_arn=iam_role_arn, region=region)
    with engine.begin() as conn:
        loaded = dialect.load_file(conn, staging, lake, path)
    run_logger(__name__).info("Loaded %s rows into %s", loaded, staging)
    return loaded


def validation_rows(
    checks: Sequence[Mapping[str, Any]], athlete_id: int, run_key: str, checked_at: datetime
) -> list[dict[str, Any]]:
    """The rows of :data:`VALIDATION_TABLE` for one run's check results, in the manifest's order."""
    return [
        {
            "athlete_id": int(athlete_id),
            "run_key": run_key,
            "checked_at": checked_at,
            "check_order": order,
            "name": c["name"],
            "severity": c["severity"],
            "operator": c["operator"],
            "value_1": None if c["value_1"] is None else float(c["value_1"]),
            "value_2": None if c["value_2"] is None else float(c["value_2"]),
            "outcome": c["outcome"],
            "detail": str(c.get("detail") or "")[:DETAIL_MAX_CHARS],
        }
        for order, c in enumerate(checks)
    ]


@task(cache_policy=NO_CACHE)
def merge_staging(
    engine: sa.Engine,
    staging: str,
    observed_at: datetime,
    deletion_window: tuple[datetime, datetime] | None,
    athlete_id: int,
    run_key: str | None = None,
    checks: Sequence[Mapping[str, Any]] = (),
) -> MergeResult:
    """Merge staging into the athlete's production rows in ONE transaction: history, delete-then-insert, deletions.

    Every statement touches only ``athlete_id``'s rows (the validation gate has checked that
    every staged row is that athlete's). ``deletion_window`` is the [after, until] range of
    ``start_date`` that this run read in full; the athlete's rows inside it that Strava no
    longer returned are marked deleted. Pass None when the extraction was partial.
    ``checks`` (the gate's results as dicts) go to :data:`VALIDATION_TABLE` under ``run_key``
    in the same transaction: results are recorded exactly when the merge commits. The athlete's
    enriched activities whose values changed get their detail due again
    (``sql/load/mark_detail_due.sql``), in the same transaction too.
    """
    if checks and not run_key:
        raise ValueError("merge_staging records validation results under the run's key: pass run_key")
    dialect = dialect_for(engine)
    ids = {**TABLE_NAMES, "staging": staging}
    athlete = {"athlete_id": int(athlete_id)}
    with engine.begin() as conn:
        staged = scalar(conn, dialect.sql("load/count_staged.sql", **ids))
        inserted = scalar(conn, dialect.sql("load/count_new.sql", **ids), athlete)
        updated = scalar(conn, dialect.sql("load/count_changed.sql", **ids), athlete)
        undeleted = scalar(conn, dialect.sql("load/count_reappeared.sql", **ids), athlete)
        history = conn.execute(
            dialect.sql("load/record_stats_history.sql", **ids), {"observed_at": observed_at, **athlete}
        ).rowcount
        if updated:  # their detail is due again (the enrichment re-reads it: tasks/enrich)
            conn.execute(dialect.sql("load/mark_detail_due.sql", **ids), athlete)
        conn.execute(dialect.sql("load/merge_delete.sql", **ids), athlete)
        conn.execute(dialect.sql("load/merge_insert.sql", **ids))
        deleted = 0
        if deletion_window is not None:
            after, until = deletion_window
            deleted = conn.execute(
                dialect.sql("load/mark_deleted.sql", **ids),
                {"deleted_at": observed_at, "after": after, "until": until, **athlete},
            ).rowcount
            if deleted > 0:
                delete_children_of_deleted(conn, athlete_id)
        total = athlete_rows(conn, athlete_id).total
        if inserted or updated or deleted or undeleted or history > 0:
            production_changed(conn)  # the models are stale from this commit on
        if checks:
            rows = validation_rows(checks, athlete_id, str(run_key), datetime.now(UTC))
            conn.execute(dialect.sql("load/record_validation_results.sql", **ids), rows)
    return MergeResult(
        staged=staged,
        inserted=inserted,
        updated=updated,
        unchanged=staged - inserted - updated,
        deleted=deleted,
        undeleted=undeleted,
        history_rows=max(history, 0),
        athlete_rows=total,
    )


def mark_activity_deleted(engine: sa.Engine, athlete_id: int, activity_id: int, deleted_at: datetime) -> int:
    """Mark one of the athlete's activities deleted in one transaction; return the rows marked (0 or 1).

    For a deletion Strava confirmed (a 404 for the athlete's own token); a row already marked
    keeps its first mark, and an id the athlete does not hold changes nothing.
    """
    ensure_tables(engine)
    dialect = dialect_for(engine)
    params = {"athlete_id": int(athlete_id), "activity_id": int(activity_id), "deleted_at": deleted_at}
    with engine.begin() as conn:
        marked = max(conn.execute(dialect.sql("load/mark_activity_deleted.sql", **TABLE_NAMES), params).rowcount, 0)
        if marked:
            delete_children_of_deleted(conn, athlete_id)
            production_changed(conn)
        return marked


def drop_staging(engine: sa.Engine, staging: str) -> None:
    """Drop this run's staging table (idempotent)."""
    q = dialect_for(engine).preparer.quote
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(staging)}")
