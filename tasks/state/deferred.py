"""What webhook reactions could not afford for an athlete, kept until a run pays it (never dropped).

The record is the Variable ``strava_react_deferred_<athlete_id>``. Reactions write it
(flows/react.py); the main flow's run for the athlete reads it after ``/athlete`` answered and
pays it with its own read (:func:`plan`), and clears what it covered once the merge has
committed (:func:`clear_paid`): a run that fails before the merge keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks.state.budget import requests_needed
from tasks.state.variables import read_variable, write_variable

__all__ = [
    "DEFERRED_IDS_MAX",
    "Deferred",
    "Payment",
    "clear_paid",
    "plan",
    "read_deferred",
    "run_need",
    "save_deferred",
]

DEFERRED_IDS_MAX = 300
"""Deferred activity ids kept by name (a Prefect Variable holds 5,000 characters); beyond, a full read is due."""

_DEFERRED_PREFIX = "strava_react_deferred_"


@dataclass
class Deferred:
    """What earlier reactions of an athlete could not afford, kept for a later read (never dropped).

    ``ids`` maps an activity id to the event's aspect (``update`` or ``delete``); when more
    than :data:`DEFERRED_IDS_MAX` are owed, ``full_read_due`` replaces them: a full read of the
    athlete's history (``ceil(N/200) + 1`` requests) covers every update and delete at once.
    ``incremental_due``: creates or recent updates the daily allowance could not read yet.
    """

    ids: dict[int, str]
    full_read_due: bool = False
    incremental_due: bool = False

    def add(self, activity_id: int, aspect: str) -> None:
        if self.full_read_due:
            return
        self.ids[int(activity_id)] = aspect
        if len(self.ids) > DEFERRED_IDS_MAX:
            self.ids, self.full_read_due = {}, True

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": {str(k): v for k, v in sorted(self.ids.items())},
            "full_read_due": self.full_read_due,
            "incremental_due": self.incremental_due,
        }

    @classmethod
    def of(cls, value: Any) -> Deferred:
        """The record from its JSON (anything else: nothing owed)."""
        if not isinstance(value, Mapping):
            return cls({})
        ids = {int(k): str(v) for k, v in dict(value.get("ids") or {}).items() if str(k).isdigit()}
        return cls(ids, bool(value.get("full_read_due")), bool(value.get("incremental_due")))

    @property
    def empty(self) -> bool:
        return not (self.ids or self.full_read_due or self.incremental_due)


def variable_name(athlete_id: int) -> str:
    """The Variable holding the athlete's deferred reads."""
    return f"{_DEFERRED_PREFIX}{int(athlete_id)}"


def read_deferred(athlete_id: int) -> Deferred:
    """The athlete's deferred reads (``strava_react_deferred_<athlete_id>``): one Variable read, no Strava request."""
    return Deferred.of(read_variable(variable_name(athlete_id)))


def save_deferred(athlete_id: int, deferred: Deferred) -> None:
    """Keep the athlete's deferred reads for the next reaction or run."""
    write_variable(variable_name(athlete_id), deferred.to_json())


@dataclass(frozen=True)
class Payment:
    """How a run pays an athlete's deferred reads: ``full_read_reason`` set means it reads the whole history.

    ``owed`` is the record as the run read it (its JSON): what the run clears after its merge.
    """

    owed: Mapping[str, Any] = field(default_factory=dict)
    full_read_reason: str | None = None


def plan(deferred: Deferred, after: datetime | None, starts: Mapping[int, datetime]) -> Payment:
    """Pay the record with the least API cost: the run's own list read, or a full read when that cannot cover it.

    Args:
        deferred: The athlete's record.
        after: Where the run reads from (None: the whole history already).
        starts: The start of each activity the warehouse holds for the athlete.

    An owed id whose start lies after ``after`` is covered by the list read (an update: its
    newest values; a delete: the deletion marking of the complete window). An id older than
    the window, or one the warehouse does not hold (its start unknown), is not: then the run
    reads the whole history (``ceil(N/200) + 1`` requests for N activities) rather than one
    ``GET /activities/{id}`` per owed id. The full read is paid once, through the run's own
    lake -> staging -> gate -> merge and its deletion marking, and costs no more than the
    single reads as soon as more than ``ceil(N/200) + 1`` ids are owed (11 for 2,000 activities).

    """
    if deferred.empty:
        return Payment()
    owed = deferred.to_json()
    if deferred.full_read_due:
        return Payment(owed, "deferred by webhook reactions: a full read is due (more ids than a record keeps)")
    if after is None:
        return Payment(owed)
    outside = [i for i in deferred.ids if (started := starts.get(i)) is None or started <= after]
    if outside:
        return Payment(owed, f"deferred by webhook reactions: {len(outside)} owed activities outside the read window")
    return Payment(owed)


def run_need(deferred: Deferred, after: datetime | None, starts: Mapping[int, datetime]) -> int:
    """Requests the athlete's next run needs with this record, as the round estimates it before starting it.

    The run decides with :func:`plan` (same arguments): when it will read the whole history
    (``full_read_due``, or an owed id outside the window or unknown), the need is a full read of
    what the warehouse holds (``/athlete`` plus ``len(starts) // 200 + 1`` pages); otherwise an
    incremental run's (``/athlete`` and one page).
    """
    if plan(deferred, after, starts).full_read_reason is not None:
        return requests_needed(len(starts))
    return requests_needed(None)


def clear_paid(athlete_id: int, owed: Mapping[str, Any]) -> Deferred:
    """Clear from the athlete's record what a committed run covered (``owed``, as the run read it); return what is left.

    Call only after the merge committed. What a reaction added since the run read the record
    (another id, a flag) stays.
    """
    paid = Deferred.of(owed)
    current = read_deferred(athlete_id)
    left = Deferred(
        {i: a for i, a in current.ids.items() if paid.ids.get(i) != a},
        current.full_read_due and not paid.full_read_due,
        current.incremental_due and not paid.incremental_due,
    )
    if left.to_json() != current.to_json():
        save_deferred(athlete_id, left)
    return left
