"""How the CLI talks to Prefect's process-wide machinery: temporary server, logs, events, progress.

* :func:`prepare_environment` gives Prefect's temporary server a generous start time when the
  user has not chosen one (a small, busy machine needs more than Prefect's default 20 s).
* :func:`explain` turns the errors a user can fix into one line that says how.
* :func:`quiet_tracebacks` keeps Prefect's console to one line per failure (``--debug``: all).
* :func:`flush_events` delivers the events and logs still queued before the process exits,
  without Prefect's ``EventsWorker - Still processing items`` warning.
* :class:`Progress` turns the log records a run already writes (pages read with the requests
  left, rate-limit waits, the extract's totals) into one updating line on stderr, only when stderr is a terminal.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = [
    "EPHEMERAL_TIMEOUT_DEFAULT",
    "EPHEMERAL_TIMEOUT_ENV",
    "Progress",
    "explain",
    "flush_events",
    "prepare_environment",
    "progress",
    "quiet_tracebacks",
]

EPHEMERAL_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
EPHEMERAL_TIMEOUT_DEFAULT = "180"
QUEUE_LOGGERS = ("EventsWorker", "APILogWorker")
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def _profile_sets(setting: str) -> bool:
    """Whether the active Prefect profile sets ``setting`` (read without importing Prefect)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return setting in (profiles.get("profiles", {}).get(active) or {})


_state = {"debug": False}


def prepare_environment(*, debug: bool = False) -> None:
    """Give Prefect's temporary server 180 s to start unless the environment or the profile says otherwise.

    ``debug``: Prefect's console keeps the tracebacks of failed runs (see :func:`progress`).
    """
    _state["debug"] = debug
    if EPHEMERAL_TIMEOUT_ENV not in os.environ and not _profile_sets(EPHEMERAL_TIMEOUT_ENV):
        os.environ[EPHEMERAL_TIMEOUT_ENV] = EPHEMERAL_TIMEOUT_DEFAULT


def timeout_hint() -> str:
    """What to do when Prefect's temporary server did not start in time."""
    return (
        "Prefect's temporary server did not start in time. Start a long-lived one in another terminal "
        "(`prefect server start`) and point this one at it (`export PREFECT_API_URL=http://127.0.0.1:4200/api`), "
        f"or give the temporary server longer (`export {EPHEMERAL_TIMEOUT_ENV}=600`; now "
        f"{os.environ.get(EPHEMERAL_TIMEOUT_ENV) or 'Prefect default'})."
    )


def explain(exc: BaseException) -> str | None:
    """A one-line explanation with the fix, for the errors whose text alone does not say it."""
    text = str(exc)
    if "Timed out while attempting to connect to ephemeral Prefect API server" in text:
        return timeout_hint()
    if isinstance(exc, ConnectionError) or "All connection attempts failed" in text:
        api = os.environ.get("PREFECT_API_URL")
        if api:
            return (
                f"No Prefect server answers at PREFECT_API_URL={api}: start it (`prefect server start`) "
                "or unset PREFECT_API_URL to let strava-elt start a temporary one."
            )
    return None


class _OneLineFormatter(logging.Formatter):
    """A console formatter that leaves tracebacks out (``--debug`` shows them)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        exc_info, exc_text, stack = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = exc_info, exc_text, stack


def quiet_tracebacks() -> None:
    """Prefect's console handlers print failures without their traceback (the API still stores it)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _OneLineFormatter):
            handler.setFormatter(_OneLineFormatter(handler.formatter or logging.Formatter()))


def flush_events(timeout: float = 30.0) -> None:
    """Send the events and logs Prefect still queues, before exit and without its progress warnings."""
    if "prefect.events.worker" not in sys.modules:
        return  # nothing was emitted in this process
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for name in QUEUE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for service in (EventsWorker, APILogWorker):
        try:
            service.drain_all(timeout=timeout, at_exit=False)
        except Exception:  # noqa: BLE001 - best effort at exit, like Prefect's own atexit drain
            pass


_PAGE = re.compile(r"^Page (\d+): (\d+) activities")
_ATHLETE = re.compile(r"^Athlete (\d+): watermark")
_WAIT = re.compile(r"until (?:midnight UTC \()?(?:\d{4}-\d\d-\d\d )?(\d\d:\d\d)")
_LEFT = re.compile(r"requests left: (\d+) in this 15-minute window, (\d+) today")
_EXTRACTED = re.compile(r"^Extracted (\d+) activities in (\d+) pages with (\d+) API requests")


class Progress(logging.Handler):
    """One updating line on ``stream`` from the run's log records: pages, activities, requests left, waits."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.athlete: str | None = None
        self.pages = 0
        self.activities = 0
        self.left: tuple[str, str] | None = None
        self.waiting: str | None = None
        self.shown = False

    def status(self) -> str:
        """The line as it stands."""
        parts = [f"athlete {self.athlete}"] if self.athlete else []
        parts.append(f"{self.pages} pages read, {self.activities} activities")
        if self.left is not None:
            parts.append(f"requests left {self.left[0]} in 15 min, {self.left[1]} today")
        if self.waiting:
            parts.append(f"waiting until {self.waiting} UTC for the rate limit")
        return "strava-elt: " + ", ".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        """Update the counts from one record; redraw the line (cleared first when a warning follows)."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not break the run
            return
        if record.levelno >= logging.WARNING and self.shown:
            self.stream.write("\r\x1b[K")  # Prefect's console prints the warning on a clean line
            self.shown = False
        if match := _ATHLETE.match(message):
            self.athlete, self.pages, self.activities, self.waiting = match.group(1), 0, 0, None
        elif match := _PAGE.match(message):
            self.pages, self.waiting = self.pages + 1, None
            self.activities += int(match.group(2))
        elif message.startswith("Strava rate limit:") and (match := _WAIT.search(message)):
            self.waiting = match.group(1)
        elif match := _EXTRACTED.match(message):
            self.activities, self.pages, self.waiting = int(match.group(1)), int(match.group(2)), None
        else:
            return
        if match := _LEFT.search(message):
            self.left = (match.group(1), match.group(2))
        self.stream.write("\r\x1b[K" + self.status())
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the line, so what follows starts on its own."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
        super().close()


@contextmanager
def progress(stream: TextIO | None = None) -> Iterator[Progress | None]:
    """Show live progress on ``stream`` (default stderr) while the block runs, if it is a terminal.

    Failed runs print without their traceback unless ``--debug`` was given. On a terminal the
    run's INFO lines give way to the progress line (warnings and errors
    still print); elsewhere (a pipe, a file, CI) nothing changes and nothing is attached.
    """
    # Prefect configures its logging on the first import of prefect.main (a flow's import pulls it
    # in), and again, resetting every level set below, if that import comes after this point.
    import prefect.main  # noqa: F401
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    if not _state["debug"]:
        quiet_tracebacks()
    stream = stream or sys.stderr
    if not stream.isatty():
        yield None
        return

    handler = Progress(stream)
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    consoles += [h for h in logging.getLogger("prefect").handlers if isinstance(h, PrefectConsoleHandler)]
    levels = [h.level for h in consoles]
    for console in consoles:
        console.setLevel(max(console.level, logging.WARNING))
    run_loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    logger_levels = [logger.level for logger in run_loggers]
    for logger in run_loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            # `demo` quiets Prefect (PREFECT_LOGGING_LEVEL=WARNING): the line still needs the INFO
            # records; the consoles above print only warnings meanwhile.
            logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(run_loggers, logger_levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        for console, level in zip(consoles, levels, strict=True):
            console.setLevel(level)
        handler.close()
