"""Enrichment under the budget: the queue of what lacks detail or streams, and what a run may spend on it.

- :mod:`~tasks.enrich.queue` the athlete's queue (newest first), progress, gear and stats due
- :mod:`~tasks.enrich.budget` requests to spend, from the limits and usage Strava reported

The fetching is :mod:`tasks.entities.fetch`'s, the loading :mod:`tasks.entities.store`'s; the
subflow that drives them is ``flows/enrich.py``. Docs: docs/enrichment.md.
"""

from tasks.enrich.budget import (
    DAILY_RESERVE,
    WINDOW_RESERVE,
    Usage,
    days_to_enrich,
    plan_requests,
    round_share,
    usage_of,
)
from tasks.enrich.queue import (
    ATHLETE_REQUESTS,
    MAX_ATTEMPTS,
    Progress,
    QueueItem,
    gear_due,
    needed_requests,
    progress,
    read_queue,
    stats_read_on,
    take,
)

__all__ = [
    "ATHLETE_REQUESTS",
    "DAILY_RESERVE",
    "MAX_ATTEMPTS",
    "WINDOW_RESERVE",
    "Progress",
    "QueueItem",
    "Usage",
    "days_to_enrich",
    "gear_due",
    "needed_requests",
    "plan_requests",
    "progress",
    "read_queue",
    "round_share",
    "stats_read_on",
    "take",
    "usage_of",
]
