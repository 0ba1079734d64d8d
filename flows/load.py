"""Load: lake file -> per-run staging table -> gate -> merge into production.

The main flow calls :func:`load` in its own run; :func:`load_activities` is the same as a flow of
its own (the reaction flow and tests call it by block names).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from prefect import flow, get_run_logger

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from flows import run_names
from tasks import quality
from tasks import warehouse as wh
from tasks.lake import Lake, load_lake
from tasks.state.summary import LoadResult


@flow(name="load-activities", flow_run_name=run_names.LOAD)
def load_activities(
    warehouse_block: str,
    lake_block: str,
    staging_path: str,
    run_key: str,
    observed_at: datetime,
    deletion_window: tuple[datetime, datetime] | None = None,
    expected_rows: int | None = None,
    athlete_id: int | None = None,
) -> LoadResult:
    """Stage the run's file, check it, and merge it into the athlete's production rows in one transaction.

    The staging table is dropped whatever happens; production changes only in the merge, and
    only ``athlete_id``'s rows (required). The validation gate (``sql/validation/``) runs
    between load and merge: a failed ``halt`` check raises
    :class:`~tasks.quality.ValidationHalted` before the merge; otherwise the merge records
    the results in ``strava_validation_results`` in its transaction. ``expected_rows`` is the
    extract's row count, compared with the staged rows.
    """
    if athlete_id is None:
        raise ValueError("load_activities needs the run's athlete_id: the merge touches only that athlete's rows")
    warehouse = load_block(Warehouse, warehouse_block)
    lake = load_lake(lake_block)
    return load(warehouse, lake, staging_path, run_key, observed_at, deletion_window, expected_rows, athlete_id)


def load(
    warehouse: Warehouse,
    lake: Lake,
    staging_path: str,
    run_key: str,
    observed_at: datetime,
    deletion_window: tuple[datetime, datetime] | None,
    expected_rows: int | None,
    athlete_id: int,
    engine: sa.Engine | None = None,
) -> LoadResult:
    """The load's steps, in the calling flow's run (see :func:`load_activities`); ``engine``: the run's, if any."""
    logger = get_run_logger()
    with wh.engine_of(warehouse, engine) as engine:
        staging = wh.prepare_staging(engine, run_key)
        try:
            wh.load_staging(engine, lake, staging_path, staging, warehouse.iam_role_arn, warehouse.region)
            checks = quality.run_validation(engine, staging, expected_rows, observed_at, athlete_id)
            quality.enforce_gate(checks)
            recorded = [c.as_dict() for c in checks]
            result = wh.merge_staging(engine, staging, observed_at, deletion_window, athlete_id, run_key, recorded)
        finally:
            wh.drop_staging(engine, staging)
    logger.info(
        "Merged: %s inserted, %s updated, %s unchanged, %s marked deleted, %s reappeared",
        result.inserted,
        result.updated,
        result.unchanged,
        result.deleted,
        result.undeleted,
    )
    return LoadResult(result, tuple(checks))
