"""One page of activities read, landed and tallied: the extract's per-page work.

:func:`fetch_page` is the one task per page (fetch and land together: its run shows each
page's request and write). :class:`PageRows` flattens a page once; :class:`ExtractTally`
keeps the run's totals, the schema drift, the newest ``start_date`` and the future-dated
ids, and ends as a frozen :class:`~tasks.state.summary.ExtractResult`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import lake as lake_tasks
from tasks.logs import run_logger
from tasks.state.summary import FUTURE_IDS_SHOWN, ExtractResult, Rejection
from tasks.strava.client import ActivityPages, fetch_next_page
from tasks.warehouse import schema

__all__ = ["ExtractTally", "PageRows", "fetch_page", "log_findings"]

_ATHLETE_COLUMN = next(c for c in schema.API_COLUMNS if c.name == "athlete_id")


@dataclass
class PageRows:
    """One page, flattened once: the raw items, the rows to stage, the items rejected, the unfit values."""

    number: int
    items: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    unfit: Counter[str] = field(default_factory=Counter)

    @classmethod
    def read(
        cls, pages: ActivityPages, items: list[dict[str, Any]], extracted_at: datetime, athlete_id: int
    ) -> PageRows:
        """Flatten ``items``; reject those without a fitting id or start_date, or of another athlete.

        ``/athlete/activities`` lists the authorised athlete's own activities, so an item without
        a usable ``athlete.id`` is that athlete's (filled in; an unusable one is counted in
        ``unfit``), and an item naming another athlete is refused rather than loaded into the
        wrong athlete's rows (or halting every run at the gate). Of the rest, only those no
        earlier page held are staged (``pages.fresh``: a page of only repeats raises).
        """
        number = pages.read
        schema.require_objects(items, number)  # before anything of the page is flattened or written
        page = cls(number, items)
        keyed: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for position, activity in enumerate(items):
            row = schema.flatten_activity(activity, extracted_at)
            rejected = schema.rejection(activity, row)
            if rejected is None and row["athlete_id"] is None:
                if _ATHLETE_COLUMN.source(activity) is not None:
                    page.unfit["athlete_id"] += 1
                row["athlete_id"] = athlete_id
                row["row_hash"] = schema.row_hash(row)
            elif rejected is None and row["athlete_id"] != athlete_id:
                rejected = (
                    "athlete_id",
                    f"belongs to athlete {row['athlete_id']}, not this run's athlete {athlete_id}",
                )
            if rejected is None:
                keyed.append((activity, row))
                continue
            column, reason = rejected
            page.unfit.update({*schema.unfit_values(activity, row), column})  # a missing id or start_date counts too
            page.rejected.append(Rejection(number, position, row["id"], reason))
        chosen = {id(a) for a in pages.fresh([activity for activity, _ in keyed])}
        for activity, row in keyed:
            if id(activity) in chosen:
                page.rows.append(row)
                page.unfit.update(schema.unfit_values(activity, row))
        return page


@task(cache_policy=NO_CACHE, task_run_name="fetch-page-{number}")
def fetch_page(
    pages: ActivityPages, number: int, lake: lake_tasks.Lake, athlete_id: int, run_key: str, extracted_at: datetime
) -> PageRows | None:
    """Fetch page ``number`` (the next of ``pages``), check it, and land it raw in the lake: one task per page.

    Returns the page's rows; None when the daily budget is spent. A page holding something
    other than objects, or only activities already read, raises before anything of it is
    written; an empty page is not written.
    """
    if number != pages.number:
        raise ValueError(f"fetch_page was asked for page {number}, but the next page is {pages.number}")
    items = fetch_next_page(pages)
    if items is None:
        return None
    page = PageRows.read(pages, items, extracted_at, athlete_id)
    if items:
        lake_tasks.land_raw_page(lake, athlete_id, run_key, number, items, body=pages.body)
    return page


@dataclass
class ExtractTally:
    """The extract's running totals over its pages: counts, drift, unfit values, newest and future dates."""

    extracted_at: datetime
    pages: int = 0
    activities: int = 0
    newest_start_date: datetime | None = None
    future_dated: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    new_fields: set[str] = field(default_factory=set)
    new_sport_types: set[str] = field(default_factory=set)
    unfit: Counter[str] = field(default_factory=Counter)

    def add(self, page: PageRows) -> None:
        """Count one page in; its drift, its unfit values and its start dates."""
        self.pages += 1
        self.activities += len(page.rows)
        self.rejected += page.rejected
        self.new_fields |= schema.unknown_fields(page.items)
        self.new_sport_types |= schema.unknown_sport_types(page.items)
        self.unfit.update(page.unfit)
        for row in page.rows:
            started = row["start_date"]
            if started and started > self.extracted_at:
                # Loaded, named in the report, but never the watermark: a watch with a wrong
                # clock would otherwise push it past uploads still to come.
                self.future_dated.append(row["id"])
            elif started and (self.newest_start_date is None or started > self.newest_start_date):
                self.newest_start_date = started

    def result(self, base: ExtractResult, **fields: Any) -> ExtractResult:
        """``base`` (who, when, from where) with this tally's figures and ``fields``."""
        return replace(
            base,
            pages=self.pages,
            activities=self.activities,
            newest_start_date=self.newest_start_date,
            future_dated=tuple(self.future_dated),
            rejected=tuple(self.rejected),
            new_fields=tuple(sorted(self.new_fields)),
            new_sport_types=tuple(sorted(self.new_sport_types)),
            unfit_values=dict(sorted(self.unfit.items())),
            **fields,
        )


def log_findings(result: ExtractResult) -> None:
    """Log what the extract refused, did not know, or found dated in the future; then its totals."""
    logger = run_logger(__name__)
    if result.rejected:
        logger.warning(
            "%s activities not loaded (no fitting id or start_date; kept in the raw lake pages): %s",
            len(result.rejected),
            _as_dicts(result.rejected),
        )
    if result.new_fields or result.new_sport_types or result.unfit_values:
        logger.warning(
            "Strava sent what the table does not know (kept in the raw pages): fields %s, sport types %s; "
            "values loaded as NULL because they do not fit their column: %s",
            list(result.new_fields) or "none",
            list(result.new_sport_types) or "none",
            dict(result.unfit_values) or "none",
        )
    if result.future_dated:
        logger.warning(
            "%s activities start after this run read them (a device clock?), e.g. ids %s: loaded, "
            "and the watermark stops at this run's time %s",
            len(result.future_dated),
            list(result.future_dated[:FUTURE_IDS_SHOWN]),
            result.extracted_at.isoformat(),
        )
    logger.info(
        "Extracted %s activities in %s pages with %s API requests%s",
        result.activities,
        result.pages,
        result.requests,
        f"; {result.partial_reason}" if result.partial_reason else "",
    )


def _as_dicts(rejected: Sequence[Rejection]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rejected]
