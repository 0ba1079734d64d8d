"""Run state.

The watermark (a Prefect Variable per warehouse and athlete), the events a run
emits, and which failures end a run instead of being retried.

- :mod:`~tasks.state.watermark` reading, resolving and advancing the watermark
- :mod:`~tasks.state.events` the ``strava.activities.loaded`` event
- :mod:`~tasks.state.retry` the flow-retry policy
- :mod:`~tasks.state.runs` an athlete's runs: their tag and the last one
- :mod:`~tasks.state.budget` an application's budget shared by its athletes' runs
- :mod:`~tasks.state.slots` one run per athlete, whichever way it starts: the athlete's slot
- :mod:`~tasks.state.rounds` the round's memory and its children's outcomes
- :mod:`~tasks.state.summary` the typed run results (``ExtractResult``, ``LoadResult``, ``RunSummary``)
- :mod:`~tasks.state.variables` Prefect Variables read and written with a short wait on a busy server
"""

from __future__ import annotations

from tasks.state import budget, events, retry, rounds, runs, slots, summary, variables, watermark

__all__ = [
    "budget",
    "events",
    "retry",
    "rounds",
    "runs",
    "slots",
    "summary",
    "variables",
    "watermark",
]
