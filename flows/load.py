"""Load: lake file -> per-run staging table -> gate -> merge into production -> watermark.

:func:`load_activities` is the main flow's load subflow (the reaction flow and tests call it
alone, by block names); its body is :func:`load`, which takes loaded blocks. Given a
:class:`WatermarkPlan` (the main flow's extract decides it), the subflow also moves the
watermark once the merge has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from prefect import flow, get_run_logger

from blocks.prefect_compat import install_prompt_heartbeat_stop
from blocks.warehouse import Warehouse
from flows import handoff, run_names
from tasks import quality
from tasks import warehouse as wh
from tasks.lake import Lake
from tasks.state import slots
from tasks.state import watermark as wm
from tasks.state.summary import LoadResult, short_error

install_prompt_heartbeat_stop()  # a subflow's end does not wait for its heartbeat thread


@dataclass(frozen=True)
class WatermarkPlan:
    """Where the watermark may move once the merge has committed (from the extract of the same run)."""

    warehouse_id: str
    newest: datetime | None
    """The newest start_date extracted (None: nothing)."""
    extracted_at: datetime
    """The run's extraction time: the watermark never passes it."""
    reset: bool
    """The run read the whole history: the watermark may move back."""
    flow_run_id: str
    """The main flow's run, recorded with the watermark."""


class WatermarkNotMoved(RuntimeError):
    """The merge committed but the watermark did not move; ``loaded`` is what the load did (the cause is chained)."""

    def __init__(self, loaded: LoadResult, cause: BaseException) -> None:
        merge = loaded.merge
        super().__init__(
            f"merged ({merge.inserted} inserted, {merge.updated} updated, {merge.deleted} marked deleted); "
            f"the watermark did not move: {short_error(cause)}"
        )
        self.loaded = loaded


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
    watermark: WatermarkPlan | None = None,
) -> LoadResult:
    """Stage the run's file, check it, and merge it into the athlete's production rows in one transaction.

    The staging table is dropped whatever happens; production changes only in the merge, and
    only ``athlete_id``'s rows (required). The validation gate (``sql/validation/``) runs
    between load and merge: a failed ``halt`` check raises
    :class:`~tasks.quality.ValidationHalted` before the merge; otherwise the merge records
    the results in ``strava_validation_results`` in its transaction. ``expected_rows`` is the
    extract's row count, compared with the staged rows. With ``watermark``, the committed merge
    moves the athlete's watermark (task ``advance_watermark``); if that fails, the run fails with
    :class:`WatermarkNotMoved`, which carries the load's result. Called by the main flow, it uses
    the blocks and the engine the main flow holds (:mod:`flows.handoff`).
    """
    if athlete_id is None:
        raise ValueError("load_activities needs the run's athlete_id: the merge touches only that athlete's rows")
    with slots.athlete_slot(athlete_id=athlete_id):  # slot: one run per athlete (tasks/state/slots.py)
        loaded = load(
            handoff.warehouse(warehouse_block),
            handoff.lake(lake_block),
            staging_path,
            run_key,
            observed_at,
            deletion_window,
            expected_rows,
            athlete_id,
            handoff.engine(warehouse_block),
        )
        if watermark is None:
            return loaded
        # Only now may the watermark move (never past the run's extraction time).
        try:
            moved = wm.advance_watermark(
                watermark.warehouse_id,
                athlete_id,
                watermark.newest,
                watermark.extracted_at,
                loaded.merge.athlete_rows,
                watermark.flow_run_id,
                reset=watermark.reset,
            )
        except Exception as exc:
            raise WatermarkNotMoved(loaded, exc) from exc
    return replace(loaded, watermark=moved)


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
            checks = quality.run_validation(
                engine, staging, expected_rows, observed_at, athlete_id, checks_role=warehouse.checks_role
            )
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
