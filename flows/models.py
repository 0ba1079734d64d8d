"""Models: rebuild the tables under sql/models/ after the merge.

One unit of work for all models, in the calling flow's run (no task run per model: each costs
Prefect server round trips and carries no retry); the log lists the rows per model.
:func:`build_models` is the same as a flow of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from prefect import flow, get_run_logger

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from flows import run_names
from tasks import warehouse as wh


@flow(name="build-models", flow_run_name=run_names.MODELS)
def build_models(warehouse_block: str = "strava-warehouse") -> dict[str, int]:
    """Rebuild every model, in file-name order; return rows per model."""
    return build_all(load_block(Warehouse, warehouse_block))


def build_all(warehouse: Warehouse, engine: sa.Engine | None = None) -> dict[str, int]:
    """Rebuild every model of ``warehouse``, in file-name order, in the calling flow's run; rows per model."""
    logger = get_run_logger()
    built: dict[str, int] = {}
    with warehouse.engine(reuse=engine) as engine:
        for path in wh.model_files():
            built[wh.model_name(path)] = wh.build_model(engine, path)
    logger.info("Built models: %s", ", ".join(f"{k} ({v} rows)" for k, v in built.items()))
    return built
