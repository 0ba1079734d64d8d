"""Insight: the dashboard (a Jinja2 template in ``assets/``), the run report and notifications.

- :mod:`~tasks.insight.dashboard` the self-contained HTML dashboard, published to the lake
- :mod:`~tasks.insight.index` the index page of an application's athletes, published to the lake
- :mod:`~tasks.insight.report` the run report (Markdown) and its data
- :mod:`~tasks.insight.notify` the Slack (any notification block) summary and failure notes
- :mod:`~tasks.insight.frames` DataFrames for notebooks: ``read_activities``, ``read_model``,
  ``read_validation_results`` (pandas, imported only when one of them is first used)
"""

from __future__ import annotations

from typing import Any

from tasks.insight import dashboard, index, notify, report
from tasks.insight.index import IndexEntry, publish_index
from tasks.insight.notify import PostCommitError

_FRAMES = ("model_names", "read_activities", "read_model", "read_validation_results")

__all__ = [
    "IndexEntry",
    "PostCommitError",
    "dashboard",
    "index",
    "model_names",
    "notify",
    "publish_index",
    "read_activities",
    "read_model",
    "read_validation_results",
    "report",
]


def __getattr__(name: str) -> Any:
    """The DataFrame readers, imported on first use: a run never pays for pandas."""
    if name in _FRAMES:
        from tasks.insight import frames

        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
