"""One application's API budget, shared by all its athletes' runs and by the round.

Strava reports the application's usage in every response's headers. Each run records the
budgets it saw last in one Prefect Variable per application (``strava_budget_<client id>``),
so the round, in another process, knows what is left before it starts the next athlete. The
round also counts what its own children reported spending, and holds back what the children
still running may need (:class:`Ledger`), so parallel children never plan with the same
requests. Pacing within a run stays the governor's (:mod:`tasks.strava.ratelimit`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasks.logs import run_logger
from tasks.state.variables import read_variable, write_variable
from tasks.strava.ratelimit import RateLimit, RateLimits

__all__ = [
    "INCREMENTAL_REQUESTS",
    "Budget",
    "Ledger",
    "read_budget",
    "record_budget",
    "requests_needed",
    "variable_name",
]

PREFIX = "strava_budget_"
PER_PAGE = 200
INCREMENTAL_REQUESTS = 2
"""What an incremental run needs: ``/athlete`` and one page of activities."""


def variable_name(client_id: str) -> str:
    """The application's budget Variable, e.g. ``strava_budget_12345``."""
    slug = re.sub(r"[^a-z0-9_]", "_", str(client_id).lower())
    return f"{PREFIX}{slug}"


def requests_needed(activities: int | None) -> int:
    """Requests a run needs for ``activities`` new ones: ``/athlete`` plus ``N // 200 + 1`` pages.

    None (not known, e.g. before the first load) counts as an incremental run's need: a first
    load that needs more is cut short by the daily budget and resumes in the next round.
    """
    return 1 + (max(0, activities or 0) // PER_PAGE + 1)


@dataclass(frozen=True)
class Budget:
    """The application's daily budget as last seen: requests left today for reads (GET)."""

    read: RateLimit | None
    overall: RateLimit | None
    observed_at: datetime

    def daily_remaining(self, now: datetime | None = None) -> int | None:
        """Reads left today (the smaller of read and overall); None when nothing is known.

        An observation from an earlier UTC day counts as a fresh budget.
        """
        now = now or datetime.now(UTC)
        if self.observed_at.astimezone(UTC).date() != now.astimezone(UTC).date():
            return None
        left = [limit.long_remaining for limit in (self.read, self.overall) if limit is not None]
        return min(left) if left else None

    def to_json(self) -> dict[str, Any]:
        """The Variable's value: ``{"read": [15-min limit, usage, daily limit, usage], ..., "at": iso}``."""
        value: dict[str, Any] = {"at": self.observed_at.astimezone(UTC).isoformat()}
        for kind, limit in (("read", self.read), ("overall", self.overall)):
            if limit is not None:
                value[kind] = [limit.short_limit, limit.short_usage, limit.long_limit, limit.long_usage]
        return value

    @classmethod
    def from_json(cls, value: Any) -> Budget | None:
        """Parse a Variable's value; None when it is missing or not a budget."""
        if not isinstance(value, dict) or "at" not in value:
            return None
        try:
            at = datetime.fromisoformat(str(value["at"]))
            limits = {k: RateLimit(*map(int, value[k])) if k in value else None for k in ("read", "overall")}
        except (TypeError, ValueError):
            return None
        return cls(read=limits["read"], overall=limits["overall"], observed_at=at)


def _daily_usage(budget: Budget | None) -> int:
    if budget is None:
        return -1
    return max((limit.long_usage for limit in (budget.read, budget.overall) if limit is not None), default=-1)


def read_budget(client_id: str) -> Budget | None:
    """The application's budget as some run last saw it, or None."""
    return Budget.from_json(read_variable(variable_name(client_id)))


def record_budget(client_id: str, limits: RateLimits | None, at: datetime | None = None) -> None:
    """Record the budgets a run saw last; never lowers today's recorded usage (runs end out of order).

    Never raises: the budget is advice for the round, not part of a load.
    """
    if limits is None:
        return
    seen = Budget(read=limits.read, overall=limits.overall, observed_at=at or datetime.now(UTC))
    try:
        known = read_budget(client_id)
        same_day = known is not None and known.observed_at.astimezone(UTC).date() == seen.observed_at.date()
        if same_day and _daily_usage(known) > _daily_usage(seen):
            return
        write_variable(variable_name(client_id), seen.to_json())
    except Exception as exc:  # noqa: BLE001 - advice only: a failed write must not fail a load
        run_logger(__name__).warning("Budget of application %s not recorded: %s", client_id, exc)


@dataclass
class Ledger:
    """The round's view of the budget: last seen usage, what its children spent, what they hold.

    Args:
        client_id: The application's client id (names its budget Variable).
        start: The budget recorded when the round began (None: nothing known yet).

    """

    client_id: str
    start: Budget | None = None
    spent: int = 0
    held: dict[str, int] = field(default_factory=dict)

    def remaining(self, now: datetime | None = None) -> int | None:
        """Reads left today minus what running children may still need; None when unknown."""
        latest = read_budget(self.client_id)
        candidates = []
        for budget, extra in ((self.start, self.spent), (latest, 0)):
            left = budget.daily_remaining(now) if budget is not None else None
            if left is not None:
                candidates.append(left - extra)
        if not candidates:
            return None
        return min(candidates) - sum(self.held.values())

    def allows(self, need: int, now: datetime | None = None) -> bool:
        """Whether ``need`` more requests fit in today's budget (always, while nothing is known)."""
        left = self.remaining(now)
        return left is None or left >= need

    def hold(self, key: str, need: int) -> None:
        """Reserve ``need`` requests for a child run that starts."""
        self.held[key] = need

    def settle(self, key: str, requests: int | None) -> None:
        """A child run ended having sent ``requests`` (None: unknown, its reservation counts)."""
        need = self.held.pop(key, 0)
        self.spent += need if requests is None else requests
