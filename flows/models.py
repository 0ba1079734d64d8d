"""Models subflow: rebuild the tables under sql/models/ after the merge.

The subflow run is the one unit of work for all models (no task run per model: each costs
Prefect about a quarter of a second and carries no retry); its log lists the rows per model.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from flows import run_names
from tasks import warehouse as wh


@flow(name="build-models", flow_run_name=run_names.MODELS)
def build_models(warehouse_block: str = "strava-warehouse") -> dict[str, int]:
    """Rebuild every model, in file-name order; return rows per model."""
    logger = get_run_logger()
    built: dict[str, int] = {}
    with load_block(Warehouse, warehouse_block).engine() as engine:
        for path in wh.model_files():
            built[wh.model_name(path)] = wh.build_model(engine, path)
    logger.info("Built models: %s", ", ".join(f"{k} ({v} rows)" for k, v in built.items()))
    return built
