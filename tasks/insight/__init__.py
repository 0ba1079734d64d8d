"""Insight: the dashboard (a Jinja2 template in ``assets/``), the run report and notifications.

- :mod:`~tasks.insight.dashboard` the self-contained HTML dashboard, published to the lake
- :mod:`~tasks.insight.index` the index page of an application's athletes, published to the lake
- :mod:`~tasks.insight.report` the run report (Markdown) and its data
- :mod:`~tasks.insight.notify` the Slack (any notification block) summary and failure notes
"""

from __future__ import annotations

from tasks.insight import dashboard, index, notify, report
from tasks.insight.index import IndexEntry, publish_index
from tasks.insight.notify import PostCommitError

__all__ = [
    "IndexEntry",
    "PostCommitError",
    "dashboard",
    "index",
    "notify",
    "publish_index",
    "report",
]
