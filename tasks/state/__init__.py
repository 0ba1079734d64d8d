"""Run state.

The watermark (a Prefect Variable per warehouse and athlete), the events a run
emits, and which failures end a run instead of being retried.

- :mod:`~tasks.state.watermark` reading, resolving and advancing the watermark
- :mod:`~tasks.state.events` the ``strava.activities.loaded`` event
- :mod:`~tasks.state.retry` the flow-retry policy
- :mod:`~tasks.state.summary` the typed run results (``ExtractResult``, ``LoadResult``, ``RunSummary``)
"""

from __future__ import annotations

from tasks.state import events, retry, summary, watermark

__all__ = [
    "events",
    "retry",
    "summary",
    "watermark",
]
