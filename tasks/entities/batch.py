"""The hand-over between the fetch side and the warehouse side of the enrichment: a :class:`StagedBatch`.

The fetch side (:mod:`tasks.entities.fetch`) requests resources, lands each raw response in the
lake, flattens it by its spec and writes one Parquet staging file per entity (the spec's
``arrow_schema``); the warehouse side (:mod:`tasks.entities.store`) loads those files into
per-run staging tables, runs the entity checks and merges every entity in one transaction,
together with the enrichment state rows (:data:`~tasks.entities.catalog.ENRICHMENT_TABLE`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EntityRejection:
    """A resource (or an item of it) that could not be staged: kept in its raw file, named with the reason."""

    entity: str
    key: str
    reason: str
    raw_path: str | None = None


@dataclass(frozen=True)
class StagedBatch:
    """One athlete's fetched resources of one run, staged in the lake, ready to merge.

    ``files``: entity name -> lake path of its Parquet staging file (entities with no rows are absent).
    ``parents``: entity name -> the parent keys whose rows this batch replaces (for REPLACE_CHILDREN
    entities: every fetched activity, also those with no rows, so stale children go).
    ``state``: rows for the enrichment state table (one per activity touched: what was fetched, when,
    with what outcome), upserted in the merge's transaction.
    """

    athlete_id: int
    run_key: str
    extracted_at: datetime
    files: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[str, int] = field(default_factory=dict)
    parents: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    state: tuple[Mapping[str, Any], ...] = ()
    rejected: tuple[EntityRejection, ...] = ()
    unfit: Counter[str] = field(default_factory=Counter)
    """``entity.column`` -> how many values did not fit their column (loaded as NULL)."""
    requests: int = 0
    partial_reason: str | None = None
    """Why the batch stopped before everything asked for was fetched (the daily limit, Strava down); None: complete."""
