"""Strava webhooks: the receiver that turns Strava's POSTs into Prefect events, and what reactions need.

- :mod:`~tasks.webhooks.receiver` the ASGI app behind ``strava-elt webhook serve``
- :mod:`~tasks.webhooks.front` the HTTP front that serves it (deadlines, connection cap, bounded log)
- :mod:`~tasks.webhooks.reactions` the athlete's mailbox of events, one activity, one staging file
"""

from __future__ import annotations

from tasks.webhooks.reactions import Hint, Mailbox, fetch_activity, latest_per_activity, read_mailbox, save_cursor
from tasks.webhooks.receiver import EVENT_NAMES, ReceiverConfig, StravaEvent, build_app, event_id

__all__ = [
    "EVENT_NAMES",
    "Hint",
    "Mailbox",
    "ReceiverConfig",
    "StravaEvent",
    "build_app",
    "event_id",
    "fetch_activity",
    "latest_per_activity",
    "read_mailbox",
    "save_cursor",
]
