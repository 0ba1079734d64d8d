"""After the models: the dashboard in the lake with its artifact, and the report's newest months.

Called by the main flow as its last step, by ``strava-elt dashboard`` for a file on disk, and by
``strava-elt dashboard --serve`` to serve a local lake's pages over http on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from prefect.filesystems import LocalFileSystem

from blocks.loading import load_block, load_lake_block
from blocks.prefect_compat import block_document_name
from blocks.warehouse import Warehouse
from tasks.insight import dashboard, links, report, serve
from tasks.insight.index import INDEX_PATH
from tasks.lake import Lake, local_path
from tasks.state.summary import RunSummary
from tasks.state.variables import read_variable, write_variable
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
        athlete = summary.athlete_id
        store = None if athlete is None else dashboard.LakeHeatmapStore(lake, athlete)
        kept = None if athlete is None else dashboard.LakeSummaryStore(lake, athlete)
        page, gear_due = dashboard.build_dashboard(engine, checks, athlete, heatmap_store=store, summary_store=kept)
        monthly = report.monthly_rows(engine, summary.athlete_id)
    published = dashboard.publish_dashboard(
        lake, page, summary.athlete_id or "unknown", summary.run_key, figures=key_figures(summary), gear_due=gear_due
    )
    return summary.with_(dashboard=published, monthly_top=tuple(monthly))


def key_figures(summary: RunSummary) -> str | None:
    """The run's key numbers in one line, for the dashboard artifact: read, merged, watermark."""
    parts: list[str] = []
    if summary.extract is not None:
        x = summary.extract
        parts.append(f"{x.activities:,} activities read in {x.requests:,} API requests")
    if summary.merge is not None:
        m = summary.merge
        parts.append(f"{m.inserted:,} inserted, {m.updated:,} updated, {m.deleted:,} marked deleted")
    if summary.watermark is not None and summary.watermark.after is not None:
        parts.append(f"watermark {summary.watermark.after.isoformat()}")
    return "; ".join(parts) or None


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


def serve_lake_pages(
    lake_block: str, port: int = 0, *, say: Callable[[str], None], stop: threading.Event | None = None
) -> int:
    """Serve a local lake's dashboards and index page on 127.0.0.1 until interrupted (or ``stop`` is set).

    While it serves, the Variable ``strava_lake_base_url_<lake block>`` holds its URL, so the
    dashboard artifacts of runs published meanwhile link it; it is removed on exit (unless
    something else has set it since).

    Raises:
        ValueError: The lake is not a local folder (an S3 lake is linked by presigned URLs).

    """
    lake = load_lake_block(lake_block)
    variable = links.base_url_variable(block_document_name(lake) or lake_block)
    if not isinstance(lake, LocalFileSystem) or "://" in str(lake.basepath or ""):
        raise ValueError(
            f"Lake block {lake_block!r} is not a local folder: an S3 lake's dashboards are linked by presigned "
            f"URLs, or by the base URL in the Variable {variable}"
        )
    root = local_path(lake, "")
    with serve.serving(root, port=port) as server:
        base = server.base_url
        write_variable(variable, base)
        try:
            pages = [INDEX_PATH] if (root / INDEX_PATH).is_file() else []
            pages += sorted(p.relative_to(root).as_posix() for p in root.glob("dashboards/*/dashboard.html"))
            say(f"Serving lake {lake_block} ({root}) read-only at {base}/ ; Ctrl-C stops.")
            say(f"Dashboard artifacts published meanwhile link here (Variable {variable}).")
            for page in pages:
                say(f"  {base}/{page}")
            try:
                (stop or threading.Event()).wait()
            except KeyboardInterrupt:
                pass
        finally:
            if read_variable(variable) == base:
                from prefect.variables import Variable

                Variable.unset(variable)
    return 0
