"""What a run tells people: a markdown summary artifact and one Slack message per run.

Both are built from the main flow's summary dict (the run's numbers plus the validation
results under ``checks``). Notifying never fails a run: a Slack outage or a 5xx is logged as
a warning, and the load it reports on stays as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync
from slack_sdk.errors import SlackClientError

from blocks.loading import load_notification_block
from tasks.insight import report
from tasks.logs import run_logger
from tasks.quality import FAILED, PASSED, SKIPPED, ValidationHalted, describe, outcome_counts

__all__ = [
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
HALTED = "halted by validation"
AFTER_MERGE = "failed after the merge"
_ICONS = {PASSED: "✅", SKIPPED: "➖", "warn": "⚠️", "halt": "❌"}
_MAX_ERROR = 300
_NO_CHECKS = "no results (the run stopped before the load subflow returned them)"


def load_slack(name: str | None) -> NotificationBlock | None:
    """The notification block named ``name`` (None: no message); a wrong name fails fast.

    Any Prefect notification block: core Slack Webhook, prefect-slack's Slack Incoming
    Webhook, Microsoft Teams, a custom webhook... (``type-slug/name`` picks one type).
    """
    return load_notification_block(name) if name else None


def short_error(exc: BaseException, limit: int = _MAX_ERROR) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


class PostCommitError(RuntimeError):
    """The load committed (production and watermark agree), then a later step failed.

    The message says exactly what completed and what did not, e.g. ``loaded: 12 inserted,
    3 updated, 0 marked deleted; watermark 2026-03-01T07:00:00+00:00; models failed: ...``.
    """

    @classmethod
    def of(cls, summary: Mapping[str, Any], failed: Mapping[str, str]) -> PostCommitError:
        """The error for a run whose merge committed and whose ``failed`` steps did not."""
        loaded = (
            f"loaded: {summary.get('inserted', 0)} inserted, {summary.get('updated', 0)} updated, "
            f"{summary.get('deleted', 0)} marked deleted"
        )
        if "watermark" in summary:
            loaded += f"; watermark {summary['watermark'] or 'none yet'}"
        steps = "; ".join(f"{step} failed: {error}" for step, error in failed.items())
        if "watermark" in failed:
            state = (
                "Production holds this run's activities; the watermark stayed where it was, so the next run "
                "re-reads this window (the merge makes that exactly-once) and rebuilds the models and the dashboard."
            )
        else:
            state = (
                "Production holds this run's activities and the watermark matches it; "
                "the next run rebuilds the models and the dashboard."
            )
        return cls(f"{loaded}; {steps}. {state}")


def record_failure(summary: dict[str, Any], exc: BaseException) -> None:
    """Note in ``summary`` why the run stopped; a halted gate also brings its check results."""
    if isinstance(exc, ValidationHalted):
        summary["status"] = HALTED
        summary["checks"] = exc.results
    elif isinstance(exc, PostCommitError):
        summary["status"] = AFTER_MERGE
    else:
        summary["status"] = "failed"
    summary["error"] = short_error(exc, _MAX_ERROR if not isinstance(exc, PostCommitError) else 2 * _MAX_ERROR)


def _checks(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(summary.get("checks") or [])


def _icon(check: Mapping[str, Any]) -> str:
    return _ICONS[check["severity"]] if check["outcome"] == FAILED else _ICONS.get(check["outcome"], "")


def _headline(summary: Mapping[str, Any]) -> str:
    status = str(summary.get("status", "unknown"))
    warned = sum(1 for c in _checks(summary) if c["outcome"] == FAILED and c["severity"] == "warn")
    if status == HALTED:
        text = "HALTED by validation before the merge: production and watermark unchanged"
    elif status == "failed":
        text = f"FAILED: {summary.get('error', 'unknown error')}"
    elif status == AFTER_MERGE:
        text = f"FAILED after the merge committed: {summary.get('error', 'unknown error')}"
    else:
        text = status + (f", {warned} warning(s)" if warned else "")
    return f"strava-elt run {summary.get('run_key', '?')}: {text}"


def _numbers(summary: Mapping[str, Any]) -> dict[str, str]:
    """The run's numbers: merge counts are 0 and the watermark unchanged when the merge did not run."""
    numbers = {key: str(summary.get(key, "?")) for key in ("requests", "extracted")}
    numbers.update({key: str(summary.get(key, 0)) for key in ("inserted", "updated", "deleted")})
    numbers["watermark"] = str(summary["watermark"] or "none yet") if "watermark" in summary else "unchanged"
    return numbers


def _tally(checks: list[Mapping[str, Any]]) -> str:
    counts = outcome_counts(checks)
    return f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped"


def format_slack(summary: Mapping[str, Any]) -> str:
    """The run's Slack message: outcome, numbers, then one line per check."""
    lines = [_headline(summary), ", ".join(f"{k} {v}" for k, v in _numbers(summary).items())]
    checks = _checks(summary)
    if checks:
        lines.append(f"Checks: {_tally(checks)}")
        lines += [f"{_icon(c)} {c['name']} ({c['severity']}): {describe(c)}" for c in checks]
    else:
        lines.append(f"Checks: {_NO_CHECKS}")
    return "\n".join(lines)


def format_markdown(summary: Mapping[str, Any]) -> str:
    """The run report: outcome headline, numbers, checks, models and newest months."""
    return report.run_report_markdown(
        summary,
        summary.get("monthly_top") or (),
        (summary.get("dashboard") or {}).get("url"),
        headline=_headline(summary),
    )


@task(cache_policy=NO_CACHE)
def send_slack(slack: NotificationBlock, text: str) -> bool:
    """Send ``text`` through the notification block; on failure log a warning and return False."""
    try:
        with slack.raise_on_failure():  # Apprise-based blocks (core Slack Webhook) report failures only so
            sent: Any = slack.notify(text)
            if inspect.iscoroutine(sent):  # a notification block with only an async notify()
                run_coro_as_sync(sent)
    except (NotificationError, SlackClientError, OSError) as exc:
        # Slack being down must not fail or roll back a load that already happened.
        run_logger(__name__).warning(
            "Slack message not sent (%s: %s); the run's result is unaffected", type(exc).__name__, exc
        )
        return False
    return True


def report_run(summary: Mapping[str, Any], slack: NotificationBlock | None) -> None:
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
