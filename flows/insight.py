"""After the models: the dashboard in the lake with its link artifact, and the report's newest months.

Called by the main flow as its last step, and by ``strava-elt dashboard`` for a file on disk.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from tasks.insight import dashboard, report
from tasks.lake import Lake
from tasks.state.summary import RunSummary
from tasks.warehouse import engine_of


def publish_insight(
    warehouse: Warehouse, lake: Lake, summary: RunSummary, engine: sa.Engine | None = None
) -> RunSummary:
    """Render the dashboard and write it to the lake with a link artifact.

    Args:
        warehouse: The Warehouse block.
        lake: The lake block.
        summary: The main flow's summary so far (its athlete, run key and checks).
        engine: The run's engine on ``warehouse``, if it holds one.

    Returns:
        ``summary`` with ``dashboard`` (lake ``path``, ``url``, ``run_url`` and ``bytes``) and
        ``monthly_top`` (the newest rows of the monthly model, for the run report).

    """
    checks = None if summary.checks is None else [c.as_dict() for c in summary.checks]
    with engine_of(warehouse, engine) as engine:
        page = dashboard.build_dashboard(engine, checks, summary.athlete_id)
        monthly = report.monthly_rows(engine, summary.athlete_id)
    published = dashboard.publish_dashboard(lake, page, summary.athlete_id or "unknown", summary.run_key)
    return summary.with_(dashboard=published, monthly_top=tuple(monthly))


def write_dashboard_file(warehouse_block: str, out: Path, athlete_id: int | None = None) -> tuple[Path, int]:
    """Render one athlete's dashboard from the warehouse into ``out``; validation results from its table.

    Args:
        warehouse_block: Name of the Warehouse block.
        out: The HTML file to write.
        athlete_id: Whose dashboard; None: the warehouse's only athlete (an error listing the
            athletes when it holds several).

    Returns:
        The file written and its size in bytes.

    """
    with load_block(Warehouse, warehouse_block).engine() as engine:
        page = dashboard.render_dashboard(engine, athlete_id=athlete_id)
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    body = page.encode("utf-8")
    out.write_bytes(body)
    return out.resolve(), len(body)
