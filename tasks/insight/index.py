"""The index page: an application's athletes with their freshness and a link to each dashboard.

:func:`index_entries` gathers, per athlete of the roster, its status, watermark, last load
and last run; :func:`publish_index` renders ``assets/index.html.j2`` (autoescaped: athlete
names and Strava's revocation reasons are untrusted text) and writes ``index.html`` at the
lake's root, linking each athlete's dashboard relatively (``dashboards/athlete_id=<id>/dashboard.html``,
see :func:`tasks.insight.dashboard.dashboard_paths`), so the page works wherever the lake is served.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2

from tasks.insight.dashboard import ASSETS_DIR, dashboard_paths
from tasks.insight.links import page_link
from tasks.lake import Lake

__all__ = ["INDEX_PATH", "IndexEntry", "index_entries", "publish_index", "render_index"]

INDEX_PATH = "index.html"
TEMPLATE = "index.html.j2"
STALE_AFTER_DAYS = 8
"""An athlete whose last load is older than this (a weekly schedule plus a day) is shown as stale."""


@dataclass(frozen=True)
class IndexEntry:
    """One athlete on the index page and in ``strava-elt athletes``.

    Attributes:
        athlete_id: Strava's id of the athlete.
        block_name: The athlete's StravaCredentials block.
        status: ``active`` or ``revoked``.
        name: The athlete's name as Strava sent it (untrusted), or None.
        revoked_at: When it was marked revoked (ISO 8601).
        revoked_reason: Why.
        watermark: Newest start_date loaded into the warehouse, None before the first load.
        last_loaded: When a run last moved the watermark.
        last_run: The latest pipeline run's state (e.g. ``Completed``), None when none ran.
        last_run_at: When that run ended (or started).

    """

    athlete_id: int
    block_name: str
    status: str = "active"
    name: str | None = None
    revoked_at: str | None = None
    revoked_reason: str | None = None
    watermark: datetime | None = None
    last_loaded: datetime | None = None
    last_run: str | None = None
    last_run_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        """The entry as one plain row (ISO strings), for JSON and the CLI's table."""
        return {
            "athlete_id": self.athlete_id,
            "name": self.name,
            "block": self.block_name,
            "status": self.status,
            "revoked_at": self.revoked_at,
            "revoked_reason": self.revoked_reason,
            "watermark": _iso(self.watermark),
            "last_loaded": _iso(self.last_loaded),
            "last_run": f"{self.last_run} {_iso(self.last_run_at) or ''}".strip() if self.last_run else None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def index_entries(application_block: str, warehouse_block: str | None = None) -> list[IndexEntry]:
    """The application's athletes (roster order) with watermark and last load in ``warehouse_block``, and last run.

    Without a warehouse block, or before its first run created its tables, watermarks are None.
    """
    from blocks.loading import load_block
    from blocks.warehouse import Warehouse
    from tasks.state.runs import last_run
    from tasks.state.watermark import watermark_record
    from tasks.strava.roster import list_roster
    from tasks.warehouse import read_warehouse_id

    warehouse_id = None
    if warehouse_block:
        with load_block(Warehouse, warehouse_block).engine() as engine:
            warehouse_id = read_warehouse_id(engine)
    entries = []
    for athlete in list_roster(application_block):
        if athlete.athlete_id is None:
            continue
        mark = watermark_record(warehouse_id, athlete.athlete_id) if warehouse_id else None
        run = last_run(athlete.athlete_id)
        entries.append(
            IndexEntry(
                athlete_id=athlete.athlete_id,
                block_name=athlete.block_name,
                status=athlete.status,
                name=athlete.athlete_name,
                revoked_at=athlete.revoked_at,
                revoked_reason=athlete.revoked_reason,
                watermark=mark.start_date if mark else None,
                last_loaded=mark.updated_at if mark else None,
                last_run=run.state if run else None,
                last_run_at=run.at if run else None,
            )
        )
    return entries


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((ASSETS_DIR / TEMPLATE).read_text(encoding="utf-8"))


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max((now - moment).total_seconds(), 0)
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def _freshness(entry: IndexEntry, now: datetime) -> str:
    if entry.status == "revoked":
        return "revoked"
    if entry.last_loaded is None:
        return "never"
    return "stale" if (now - entry.last_loaded).days >= STALE_AFTER_DAYS else "fresh"


def render_index(entries: Sequence[IndexEntry], now: datetime, title: str = "Strava athletes") -> str:
    """The index page's HTML: one row per athlete, every value escaped."""
    rows = [
        {
            "id": entry.athlete_id,
            "name": entry.name or f"athlete {entry.athlete_id}",
            "named": bool(entry.name),  # the id in brackets only beside a real name: never "athlete 7 (7)"
            "href": dashboard_paths(entry.athlete_id)[0],
            "freshness": _freshness(entry, now),
            "status": entry.status,
            "revoked": f"{entry.revoked_at or ''} {entry.revoked_reason or ''}".strip(),
            "watermark": _iso(entry.watermark) or "none",
            "last_loaded": _iso(entry.last_loaded) or "never",
            "ago": _ago(entry.last_loaded, now),
            "last_run": f"{entry.last_run} {_iso(entry.last_run_at) or ''}".strip() if entry.last_run else "none",
        }
        for entry in sorted(entries, key=lambda e: e.athlete_id)
    ]
    return _template().render(title=title, rows=rows, generated=_iso(now))


def publish_index(lake: Lake, entries: Sequence[IndexEntry], now: datetime) -> dict[str, str | None]:
    """Write ``index.html`` at the lake's root.

    Returns:
        Its lake ``path``, ``url`` (``file://`` or ``s3://``), ``link`` (an http(s) URL, or None:
        :func:`tasks.insight.links.page_link`) and size in ``bytes``.

    """
    body = render_index(entries, now).encode("utf-8")
    lake.write(INDEX_PATH, body)
    return {
        "path": INDEX_PATH,
        "url": lake.url(INDEX_PATH),
        "link": page_link(lake, INDEX_PATH, now=now).url,
        "bytes": str(len(body)),
    }
