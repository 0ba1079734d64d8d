"""Flow-run retries for transient failures only.

The main flow has ``retries``: a warehouse, S3 or network outage gets another run later, and
the exactly-once merge makes that rerun safe. A permanent failure (a missing or invalid
block, a halting validation, a broken manifest, a refused Strava authorisation, a bad
parameter) would fail the same way again, so it ends the run at once: its flow run's retry
budget is set to zero before the failure is reported.
"""

from __future__ import annotations

from prefect import get_run_logger

from blocks.loading import AmbiguousBlockError, InvalidBlockError, MissingBlockError
from blocks.prefect_compat import stop_flow_run_retries
from tasks.quality import ValidationConfigError, ValidationHalted
from tasks.state.slots import AthleteBusy
from tasks.state.summary import PostCommitError
from tasks.strava.errors import FatalError

__all__ = ["PERMANENT", "final_unless_transient"]

PERMANENT: tuple[type[BaseException], ...] = (
    MissingBlockError,
    AmbiguousBlockError,
    InvalidBlockError,
    ValidationHalted,
    ValidationConfigError,
    FatalError,
    PostCommitError,  # the load committed: the next scheduled run rebuilds the rest
    AthleteBusy,  # another run of the athlete is doing the work
)
"""Failures a retry cannot mend (or need not: the committed load is not redone)."""


def final_unless_transient(exc: BaseException) -> None:
    """Make this flow run's failure final when ``exc`` is permanent (no retry); else leave it."""
    if not isinstance(exc, PERMANENT) or not stop_flow_run_retries():
        return
    get_run_logger().info("%s cannot be mended by a retry: no retry for this run", type(exc).__name__)
