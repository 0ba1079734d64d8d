"""What a run tells people: a markdown summary artifact and one Slack message per run.

Both are built from the main flow's typed :class:`~tasks.state.summary.RunSummary` (the run's
numbers plus the validation results). Notifying never fails a run: a Slack outage or a 5xx is logged as
a warning, and the load it reports on stays as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync

from blocks.loading import load_notification_block
from tasks.insight import report
from tasks.logs import run_logger
from tasks.quality import FAILED, PASSED, SKIPPED, CheckResult, describe, outcome_counts
from tasks.state.summary import AFTER_MERGE, HALTED, PostCommitError, RunSummary, short_error
from tasks.state.summary import FAILED as RUN_FAILED

__all__ = [
    "AFTER_MERGE",
    "HALTED",
    "PostCommitError",
    "format_markdown",
    "format_slack",
    "load_slack",
    "record_failure",
    "report_run",
    "send_slack",
    "short_error",
]

SUMMARY_ARTIFACT_KEY = report.ARTIFACT_KEY  # one markdown run report per run
_ICONS = {PASSED: "✅", SKIPPED: "➖", "warn": "⚠️", "halt": "❌"}
_NO_CHECKS = "no results (the run stopped before the load subflow returned them)"


def load_slack(name: str | None) -> NotificationBlock | None:
    """The notification block named ``name`` (None: no message); a wrong name fails fast.

    Any Prefect notification block: core Slack Webhook, prefect-slack's Slack Incoming
    Webhook, Microsoft Teams, a custom webhook... (``type-slug/name`` picks one type).
    """
    return load_notification_block(name) if name else None


def record_failure(summary: RunSummary, exc: BaseException) -> RunSummary:
    """``summary`` with why the run stopped; a halted gate also brings its check results."""
    return summary.failed(exc)


def _icon(check: CheckResult) -> str:
    return _ICONS[check.severity] if check.outcome == FAILED else _ICONS.get(check.outcome, "")


def _headline(summary: RunSummary) -> str:
    status = summary.status
    warned = sum(1 for c in summary.checks or () if c.outcome == FAILED and c.severity == "warn")
    if status == HALTED:
        text = "HALTED by validation before the merge: production and watermark unchanged"
    elif status == RUN_FAILED:
        text = f"FAILED: {summary.error or 'unknown error'}"
    elif status == AFTER_MERGE:
        text = f"FAILED after the merge committed: {summary.error or 'unknown error'}"
    else:
        text = status + (f", {warned} warning(s)" if warned else "")
    return f"strava-elt run {summary.run_key}: {text}"


def _numbers(summary: RunSummary) -> dict[str, str]:
    """The run's numbers: merge counts are 0 and the watermark unchanged when the merge did not run."""
    extract, merge, mark = summary.extract, summary.merge, summary.watermark
    return {
        "requests": str(extract.requests) if extract else "?",
        "extracted": str(extract.activities) if extract else "?",
        "inserted": str(merge.inserted if merge else 0),
        "updated": str(merge.updated if merge else 0),
        "deleted": str(merge.deleted if merge else 0),
        "watermark": "unchanged" if mark is None else (mark.after.isoformat() if mark.after else "none yet"),
    }


def _tally(checks: Sequence[CheckResult]) -> str:
    counts = outcome_counts(checks)
    return f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped"


GEAR_DUE_TITLE = ":wrench: Gear due for maintenance"
"""The Slack line naming the gear past its threshold (Prefect Variable strava_gear_thresholds)."""


def _slack_text(value: str) -> str:
    """``value`` as literal Slack mrkdwn: ``&``, ``<`` and ``>`` escaped (no mention or link), whitespace flattened."""
    return " ".join(value.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value_findings(summary: RunSummary) -> list[str]:
    """Values loaded as NULL, counted per column, and the activities not loaded (capped): none when all fit."""
    extract = summary.extract
    if extract is None:
        return []
    lines = []
    counts = report.unfit_counts(extract, _slack_text)
    if counts:
        lines.append(f"{report.UNFIT_TITLE}: {counts}")
    if extract.rejected:
        lines.append(f"Activities not loaded: {len(extract.rejected):,} (kept in the raw lake pages)")
        lines += [f"• {line}" for line in report.rejected_lines(extract, _slack_text)]
    return lines


def format_slack(summary: RunSummary) -> str:
    """The run's Slack message: outcome, numbers, values not loaded, then one line per check."""
    lines = [_headline(summary), ", ".join(f"{k} {v}" for k, v in _numbers(summary).items())]
    lines += _value_findings(summary)
    due = (summary.dashboard or {}).get("gear_due") or []
    if due:
        lines.append(f"{GEAR_DUE_TITLE}: " + "; ".join(_slack_text(str(line)) for line in due))
    checks = summary.checks or ()
    if checks:
        lines.append(f"Checks: {_tally(checks)}")
        lines += [f"{_icon(c)} {c.name} ({c.severity}): {describe(c)}" for c in checks]
    else:
        lines.append(f"Checks: {_NO_CHECKS}")
    return "\n".join(lines)


def format_markdown(summary: RunSummary) -> str:
    """The run report: outcome headline, numbers, checks, models and newest months."""
    return report.run_report_markdown(summary, headline=_headline(summary))


def _slack_client_errors() -> tuple[type[Exception], ...]:
    """prefect-slack's client errors, imported only when a send failed (slack_sdk costs ~0.1 s to import)."""
    from slack_sdk.errors import SlackClientError

    return (SlackClientError,)


@task(cache_policy=NO_CACHE)
def send_slack(slack: NotificationBlock, text: str) -> bool:
    """Send ``text`` through the notification block; on failure log a warning and return False."""
    try:
        with slack.raise_on_failure():  # Apprise-based blocks (core Slack Webhook) report failures only so
            sent: Any = slack.notify(text)
            if inspect.iscoroutine(sent):  # a notification block with only an async notify()
                run_coro_as_sync(sent)
    except Exception as exc:
        if not isinstance(exc, (NotificationError, OSError, *_slack_client_errors())):
            raise
        # Slack being down must not fail or roll back a load that already happened.
        run_logger(__name__).warning(
            "Slack message not sent (%s: %s); the run's result is unaffected", type(exc).__name__, exc
        )
        return False
    return True


def report_run(summary: RunSummary, slack: NotificationBlock | None) -> None:
    """Publish the summary artifact and send the Slack message (if a block is set).

    Called from the main flow's ``finally``; it never raises, so it cannot hide the run's error.
    """
    logger = run_logger(__name__)
    try:
        create_markdown_artifact(
            markdown=format_markdown(summary),
            key=SUMMARY_ARTIFACT_KEY,
            description=_headline(summary),
        )
    except Exception as exc:  # noqa: BLE001 - reporting must not mask the run's own outcome
        logger.warning("Run summary artifact not created (%s: %s)", type(exc).__name__, exc)
    if slack is None:
        return
    try:
        send_slack(slack, format_slack(summary))
    except Exception as exc:  # noqa: BLE001 - as above; send_slack already handles Slack's own errors
        logger.warning("Slack message not sent (%s: %s); the run's result is unaffected", type(exc).__name__, exc)
