"""What a run produced, typed: the extract's result and the run summary built from it.

Frozen dataclasses from the extract to the edge. Only the main flow's return value, the
run report, the Slack message and the ``loaded`` event turn them into JSON
(:meth:`RunSummary.as_dict`); everything in between reads the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tasks.quality import CheckResult, ValidationHalted
from tasks.warehouse.merge import MergeResult

__all__ = [
    "AFTER_MERGE",
    "FAILED",
    "FUTURE_IDS_SHOWN",
    "HALTED",
    "PARTIAL",
    "ExtractResult",
    "LoadResult",
    "PostCommitError",
    "Rejection",
    "RunSummary",
    "WatermarkMove",
    "short_error",
]

FUTURE_IDS_SHOWN = 5
"""How many ids of future-dated activities the logs, the summary and the report name."""

PARTIAL = "partial: resumes next run"
"""The status of a run that the daily rate limit cut short."""

HALTED = "halted by validation"
AFTER_MERGE = "failed after the merge"
FAILED = "failed"
_MAX_ERROR = 300


def short_error(exc: BaseException, limit: int = _MAX_ERROR) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


@dataclass(frozen=True)
class Rejection:
    """An activity not staged (no fitting id or start_date, or another athlete's); it stays in the raw page."""

    page: int
    position: int
    """0-based position in the page."""
    id: int | None
    reason: str


@dataclass(frozen=True)
class ExtractResult:
    """What the extract subflow produced, passed on to the load subflow.

    ``athlete_id`` is None (and ``staging_path`` too) when not even ``/athlete`` could be
    read today: nothing to load. ``partial_reason`` is set when the daily budget cut the
    read short (then ``complete`` is False).
    """

    athlete_id: int | None
    run_key: str
    extracted_at: datetime
    after: datetime
    pages: int = 0
    requests: int = 0
    activities: int = 0
    staging_path: str | None = None
    newest_start_date: datetime | None = None
    partial_reason: str | None = None
    previous_watermark: datetime | None = None
    full_read_reason: str | None = None
    future_dated: tuple[int, ...] = ()
    new_fields: tuple[str, ...] = ()
    new_sport_types: tuple[str, ...] = ()
    unfit_values: Mapping[str, int] = field(default_factory=dict)
    rejected: tuple[Rejection, ...] = ()
    deferred_owed: Mapping[str, Any] = field(default_factory=dict)
    """The athlete's deferred-reads record as this run read it (tasks/state/deferred.py): cleared after the merge."""

    @property
    def complete(self) -> bool:
        """Every page was read (the deletion window may be marked)."""
        return self.partial_reason is None


@dataclass(frozen=True)
class LoadResult:
    """What the load subflow did: the merge's counts, the validation results it recorded, the watermark it moved."""

    merge: MergeResult
    checks: tuple[CheckResult, ...]
    watermark: datetime | None = None
    """Where the load moved the watermark after the merge (None: not asked to, or nothing loaded yet)."""

    def as_dict(self) -> dict[str, Any]:
        """The merge counts and ``checks`` (as the main flow's summary holds them)."""
        return {**self.merge.as_dict(), "checks": [c.as_dict() for c in self.checks]}


@dataclass(frozen=True)
class WatermarkMove:
    """The watermark before the run and where the committed merge moved it (None: nothing loaded yet)."""

    before: datetime | None
    after: datetime | None


@dataclass(frozen=True)
class RunSummary:
    """One run of the main flow, as far as it got.

    Built step by step with :meth:`with_extract`, :meth:`with_merge` and friends (each returns
    a new summary); a field left None means the run did not get there (``watermark`` None:
    unchanged). ``failed_after_merge`` names the post-commit steps that failed and why.
    """

    run_key: str
    status: str = "started"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    warehouse_id: str | None = None
    extract: ExtractResult | None = None
    merge: MergeResult | None = None
    checks: tuple[CheckResult, ...] | None = None
    watermark: WatermarkMove | None = None
    models: Mapping[str, int] | None = None
    dashboard: Mapping[str, Any] | None = None
    monthly_top: tuple[Mapping[str, Any], ...] | None = None
    """The newest rows of the monthly model, for the run report (set with the dashboard)."""
    failed_after_merge: Mapping[str, str] | None = None
    enrichment: Mapping[str, Any] | None = None
    """What the enrichment subflow did (tasks/enrich/result.py: requests, enriched / total); None: not run."""
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def athlete_id(self) -> int | None:
        """The run's athlete (None until ``/athlete`` answered)."""
        return self.extract.athlete_id if self.extract else None

    @property
    def partial(self) -> bool:
        """The daily rate limit cut the run short (it still completed)."""
        return self.status.startswith(PARTIAL)

    @property
    def seconds(self) -> float | None:
        """Wall time from start to finish (None while running)."""
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def with_extract(self, extract: ExtractResult) -> RunSummary:
        """The extract is done: its numbers, and the run's status so far."""
        return replace(self, extract=extract, status=extract.partial_reason or "complete")

    def with_load(self, load: LoadResult) -> RunSummary:
        """The merge committed, with the validation results it recorded."""
        return replace(self, merge=load.merge, checks=load.checks)

    def with_(self, **changes: Any) -> RunSummary:
        """A copy with ``changes`` (any fields)."""
        return replace(self, **changes)

    def failed(self, exc: BaseException) -> RunSummary:
        """Why the run stopped: a halted gate also brings its check results."""
        checks = self.checks
        if isinstance(exc, ValidationHalted):
            status = HALTED
            checks = tuple(CheckResult(**r) for r in exc.results)
        elif isinstance(exc, PostCommitError):
            status = AFTER_MERGE
        else:
            status = FAILED
        limit = 2 * _MAX_ERROR if isinstance(exc, PostCommitError) else _MAX_ERROR
        return replace(self, status=status, checks=checks, error=short_error(exc, limit))

    def finished(self) -> RunSummary:
        """Stamped with the time the run ended."""
        return replace(self, finished_at=datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        """The flow's return value and the JSON of artifacts and messages (the keys callers read).

        Keys appear as far as the run got: the extract's numbers once it ran, the merge's
        counts and ``checks`` once it committed, ``watermark`` once it moved.
        """
        out: dict[str, Any] = {"run_key": self.run_key, "status": self.status}
        if self.warehouse_id is not None:
            out["warehouse_id"] = self.warehouse_id
        if self.extract is not None:
            x = self.extract
            out |= {
                "athlete_id": x.athlete_id,
                "pages": x.pages,
                "requests": x.requests,
                "extracted": x.activities,
                "new_fields": list(x.new_fields),
                "new_sport_types": list(x.new_sport_types),
                "unfit_values": dict(x.unfit_values),
                "rejected": [asdict(r) for r in x.rejected],
                "future_dated": {"count": len(x.future_dated), "ids": list(x.future_dated[:FUTURE_IDS_SHOWN])},
            }
            if x.full_read_reason:
                out["full_read_reason"] = x.full_read_reason
        if self.merge is not None:
            out |= self.merge.as_dict()
        if self.checks is not None:
            out["checks"] = [c.as_dict() for c in self.checks]
        if self.watermark is not None:
            out["watermark"] = self.watermark.after.isoformat() if self.watermark.after else None
        if self.models is not None:
            out["models"] = dict(self.models)
        if self.dashboard is not None:
            out["dashboard"] = dict(self.dashboard)
        if self.monthly_top is not None:
            out["monthly_top"] = [dict(r) for r in self.monthly_top]
        if self.enrichment is not None:
            out["enrichment"] = dict(self.enrichment)
        if self.failed_after_merge:
            out["failed_after_merge"] = dict(self.failed_after_merge)
        if self.error is not None:
            out["error"] = self.error
        return out


class PostCommitError(RuntimeError):
    """The load committed (production and watermark agree), then a later step failed.

    The message says exactly what completed and what did not, e.g. ``loaded: 12 inserted,
    3 updated, 0 marked deleted; watermark 2026-03-01T07:00:00+00:00; models failed: ...``.
    """

    @classmethod
    def of(cls, summary: RunSummary, failed: Mapping[str, str]) -> PostCommitError:
        """The error for a run whose merge committed and whose ``failed`` steps did not."""
        merge = summary.merge
        loaded = (
            f"loaded: {merge.inserted if merge else 0} inserted, {merge.updated if merge else 0} updated, "
            f"{merge.deleted if merge else 0} marked deleted"
        )
        if summary.watermark is not None:
            after = summary.watermark.after
            loaded += f"; watermark {after.isoformat() if after else 'none yet'}"
        steps = "; ".join(f"{step} failed: {error}" for step, error in failed.items())
        if "watermark" in failed:
            state = (
                "Production holds this run's activities; the watermark stayed where it was, so the next run "
                "re-reads this window (the merge makes that exactly-once) and rebuilds the models and the dashboard."
            )
        else:
            state = (
                "Production holds this run's activities and the watermark matches it; "
                "the next run rebuilds the models and the dashboard."
            )
        return cls(f"{loaded}; {steps}. {state}")
