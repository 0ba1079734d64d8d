"""Models: rebuild the tables under sql/models/ after the merge.

:func:`build_models` is the main flow's models subflow (and runs alone too); its body is
:func:`build_all`: one unit of work for all models, the log lists the rows per model. Models that
are current (same SQL, no change of production since their last complete build) are not rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from prefect import flow, get_run_logger

from blocks.prefect_compat import install_prompt_heartbeat_stop
from blocks.warehouse import Warehouse
from flows import handoff, run_names
from tasks import warehouse as wh

install_prompt_heartbeat_stop()  # a subflow's end does not wait for its heartbeat thread


@flow(name="build-models", flow_run_name=run_names.MODELS)
def build_models(warehouse_block: str = "strava-warehouse", force: bool = False) -> dict[str, int]:
    """Rebuild every model, in file-name order, unless they are current (``force``: always); rows per model.

    Called by the main flow, it uses the main flow's Warehouse block and engine (:mod:`flows.handoff`).
    """
    return build_all(handoff.warehouse(warehouse_block), handoff.engine(warehouse_block), force=force)


def build_all(warehouse: Warehouse, engine: sa.Engine | None = None, *, force: bool = False) -> dict[str, int]:
    """Rebuild every model of ``warehouse`` in the calling flow's run, unless they are current; rows per model.

    Current: built from the same SQL with no change of production since
    (:meth:`~tasks.warehouse.ModelState.current_rows`); then the last build's row counts are
    returned and nothing is rebuilt. ``force`` rebuilds all the same.
    """
    logger = get_run_logger()
    paths = wh.model_files()
    fingerprint = wh.models_fingerprint(paths)
    names = [wh.model_name(path) for path in paths]
    with wh.engine_of(warehouse, engine) as engine:
        state = wh.read_model_state(engine)
        current = None if force else state.current_rows(fingerprint, wh.existing_models(engine, names))
        if current is not None:
            logger.info("Models current (no change of production since they were built): not rebuilt")
            return current
        built = {name: wh.build_model(engine, path) for name, path in zip(names, paths, strict=True)}
        if state.inputs is not None:
            wh.record_models_built(engine, state.inputs, fingerprint, built)
    logger.info("Built models: %s", ", ".join(f"{k} ({v} rows)" for k, v in built.items()))
    return built
