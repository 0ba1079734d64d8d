"""What one enrichment run did: requests, what it fetched, and the athlete's progress after it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EnrichResult"]


@dataclass(frozen=True)
class EnrichResult:
    """One run's enrichment of one athlete.

    ``planned`` is what the budget allowed (:func:`~tasks.enrich.budget.plan_requests`),
    ``requests`` what was sent. ``enriched``/``total``: the athlete's live activities with their
    detail current and their streams fetched, after the run. ``partial_reason``: the daily limit
    (or Strava failing) stopped the run; it resumes next run from the queue, never a failure.
    ``skipped``: why nothing was requested (no budget left, nothing queued).
    """

    athlete_id: int | None
    planned: int = 0
    requests: int = 0
    details: int = 0
    streams: int = 0
    gear: int = 0
    stats: bool = False
    zones: bool = False
    enriched: int = 0
    total: int = 0
    queued: int = 0
    """Activities still in the queue after the run."""
    batches: int = 0
    partial_reason: str | None = None
    skipped: str | None = None

    @property
    def complete(self) -> bool:
        """Every live activity of the athlete has its detail and streams."""
        return self.enriched >= self.total

    def progress(self) -> str:
        """``812/1234 enriched``."""
        return f"{self.enriched}/{self.total} enriched"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the run summary (``enrichment``)."""
        return asdict(self)
