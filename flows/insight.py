"""After the models: the dashboard in the lake with its link artifact, and the report's rows.

Called by the main flow as its last step, and by ``strava-elt dashboard`` for a file on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from blocks.loading import load_lake
from flows.load import open_engine
from tasks import dashboard, report
from tasks import warehouse as wh


def publish_insight(warehouse_block: str, lake_block: str, summary: dict[str, Any]) -> dict[str, str]:
    """Render the dashboard and write it to the lake with a link artifact.

    Also puts the newest rows of the monthly model in ``summary["monthly_top"]`` for the run
    report, which the main flow publishes at its end (``tasks.notify.report_run``).

    Args:
        warehouse_block: Name of the Warehouse block.
        lake_block: Name of the lake block.
        summary: The main flow's summary so far (``run_key``, ``athlete_id``, counts, and
            ``checks`` when validation ran).

    Returns:
        Where the dashboard was written: lake ``path``, ``url``, ``run_url`` and ``bytes``.

    """
    lake = load_lake(lake_block)
    _, engine = open_engine(warehouse_block)
    try:
        page = dashboard.build_dashboard(engine, summary.get("checks"), summary.get("athlete_id"))
        monthly = report.monthly_rows(engine)
    finally:
        engine.dispose()
    published = dashboard.publish_dashboard(lake, page, summary.get("athlete_id") or "unknown", summary.get("run_key"))
    summary["monthly_top"] = monthly
    return published


def single_athlete(engine: sa.Engine) -> int | None:
    """The athlete of the warehouse's live activities when there is exactly one, else None."""
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text(wh.read_sql("dashboard/athletes.sql")))]
    return int(ids[0]) if len(ids) == 1 else None


def write_dashboard_file(warehouse_block: str, out: Path) -> tuple[Path, int]:
    """Render the dashboard from the warehouse into ``out``; validation results from its table.

    Returns:
        The file written and its size in bytes.

    """
    _, engine = open_engine(warehouse_block)
    try:
        checks = dashboard.read_validation_results(engine)
        page = dashboard.render_dashboard(engine, checks, athlete_id=single_athlete(engine))
    finally:
        engine.dispose()
    out = out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    body = page.encode("utf-8")
    out.write_bytes(body)
    return out.resolve(), len(body)
