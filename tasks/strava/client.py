"""The Strava API client: one request path, the pages of activities, the requests the extract flow makes.

Every request goes through :func:`tasks.strava.errors.send_with_retries` with the client's
:class:`~tasks.strava.ratelimit.Governor`. :meth:`StravaClient.iter_activity_pages` hides the
page loop (:class:`ActivityPages`: page numbers, stop on a short page, loop detection). The
extract flow builds its client with :func:`open_client`, the one place that picks the real clock
and sleep; tests that move time replace it to share the emulator's fake clock.
"""

from __future__ import annotations

import logging
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from prefect import get_run_logger

from blocks.strava import StravaCredentials
from tasks.strava.auth import athlete_http_client
from tasks.strava.errors import BadRequestError, DailyLimitReached, RetryPolicy, send_with_retries
from tasks.strava.ratelimit import Governor, LoggerLike, acquire_shared_slot, shared_limit_exists

PER_PAGE = 200  # Strava's maximum page size

logger = logging.getLogger(__name__)


class PaginationLoopError(BadRequestError):
    """The API returned a page of activities that were all seen already."""


class Paginator:
    """Page numbers for /athlete/activities: stop on a short page, fail on a loop."""

    def __init__(self, per_page: int = PER_PAGE) -> None:
        self.per_page = per_page
        self.page = 1
        self._seen: set[int] = set()

    def has_more(self, records: list[dict[str, Any]]) -> bool:
        """A full page may have a successor; a short (or empty) one is the last."""
        return len(records) >= self.per_page

    def check(self, records: Iterable[dict[str, Any]], page: int | None = None) -> list[dict[str, Any]]:
        """Return the records not seen before; raise when a whole non-empty page repeats.

        ``page`` names the page in the error (default: the current page number).
        """
        records = list(records)
        fresh = [r for r in records if r.get("id") not in self._seen]
        if records and not fresh:
            raise PaginationLoopError(
                f"Strava returned page {page or self.page} with only activities already read; "
                "stopping instead of looping. Rerun the flow; if it persists, report it."
            )
        self._seen.update(r.get("id") for r in fresh)  # type: ignore[misc]
        return fresh

    def get_next(self) -> int:
        """Advance to and return the next page number."""
        self.page += 1
        return self.page


class ActivityPages(Iterator[list[dict[str, Any]]]):
    """The pages of ``/athlete/activities`` started after ``after``, oldest first; one request per ``next()``.

    ``number`` is the page the next ``next()`` fetches; ``has_more`` turns False after a short
    (or empty) page, so N activities cost ceil(N/200) list requests, plus one when N is a
    multiple of 200. A request the daily budget stops raises
    :class:`~tasks.strava.errors.DailyLimitReached` and leaves the position unchanged.
    :meth:`fresh` is the loop detection: the activities not seen on an earlier page.
    ``body`` holds the page last read as the API sent it (the bytes the lake keeps).
    """

    def __init__(self, client: StravaClient, after: int, per_page: int = PER_PAGE) -> None:
        self._client = client
        self.after = after
        self._paginator = Paginator(per_page)
        self.has_more = True
        self.read = 0
        """The number of the page last read (0: none yet)."""
        self.body = b""
        """The response body of the page last read, byte for byte (b"": none yet)."""

    @property
    def number(self) -> int:
        """The number of the page the next request reads (1-based)."""
        return self._paginator.page

    def __iter__(self) -> ActivityPages:
        return self

    def __next__(self) -> list[dict[str, Any]]:
        if not self.has_more:
            raise StopIteration
        paginator = self._paginator
        items, self.body = self._client.activities_page_and_body(
            after=self.after, page=paginator.page, per_page=paginator.per_page
        )
        self.read = paginator.page
        if paginator.has_more(items):
            paginator.get_next()
        else:
            self.has_more = False
        return items

    def requests_left(self) -> tuple[int, int] | None:
        """Reads left in this 15-minute window and today, from the headers last seen (None: none yet)."""
        return self._client.governor.requests_left("GET")

    def fresh(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of the page just read that no earlier page held; a page of only repeats raises.

        Raises:
            PaginationLoopError: Every record of a non-empty page was read already.

        """
        return self._paginator.check(records, page=self.read)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StravaClient:
    """Authorised requests with the rate-limit governor and bounded retries.

    ``requests`` counts every API response received, as Strava counts them (retries, 401s
    and 429s included; ``/oauth/token`` is not an API request and not counted).

    Args:
        credentials: The block that authorises (and refreshes) the requests.
        clock: The governor's "now" (injected in tests, with ``sleep``).
        sleep: Sleeps for rate-limit waits and retry backoff alike.
        governor: A governor to share; by default one built on ``clock`` and ``sleep``.
        policy: Retry policy for retriable errors.
        log: Where waits and retries are logged (the run logger in flows).

    """

    def __init__(
        self,
        credentials: StravaCredentials,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        governor: Governor | None = None,
        policy: RetryPolicy | None = None,
        log: LoggerLike | None = None,
    ) -> None:
        self._log = log or logger
        self.governor = governor or Governor(clock=clock, sleep=sleep, logger=self._log)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self.requests = 0
        self.daily_limit: DailyLimitReached | None = None
        """Set when the daily budget stopped a request: the run ends partial."""
        self._shared_limit = shared_limit_exists(logger=self._log)
        self._http = athlete_http_client(credentials)
        self._http.event_hooks["response"].append(self._count)

    def _count(self, _response: httpx.Response) -> None:
        self.requests += 1

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET an API path (relative to /api/v3) and return its JSON body.

        Raises:
            DailyLimitReached: The daily budget is spent (also kept in ``daily_limit``).
            FatalError: See :mod:`tasks.errors`.
            RetriableError: The retries are used up.

        """
        return self.get_json_and_body(path, params)[0]

    def get_json_and_body(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, bytes]:
        """:meth:`get_json`, with the response body as received (decompressed, otherwise untouched)."""

        def send() -> httpx.Response:
            if self._shared_limit:
                acquire_shared_slot(logger=self._log)
            return self._http.get(path, params=params)

        try:
            response = send_with_retries(
                send,
                policy=self.policy,
                governor=self.governor,
                sleep=self._sleep,
                logger=self._log,
                method="GET",
            )
        except DailyLimitReached as exc:
            self.daily_limit = exc
            raise
        try:
            return response.json(), response.content
        except ValueError:
            raise BadRequestError(f"Strava answered {path} with a body that is not JSON; check the base URL.") from None

    def athlete(self) -> dict[str, Any]:
        """The authenticated athlete."""
        return self.get_json("/athlete")

    def get_resource(self, path: str, params: Mapping[str, Any] | None = None, **ids: object) -> tuple[Any, bytes]:
        """GET one resource by an entity spec's ``path`` template and ``params``: its JSON and its body as received.

        ``ids`` fill the template (``/activities/{activity_id}``, ``/gear/{gear_id}``), each
        percent-encoded as one path segment. One request, with everything :meth:`get_json` has
        (deadline, governor, retries, typed errors: a 404 is a
        :class:`~tasks.strava.errors.NotFoundError`, the daily limit a
        :class:`~tasks.strava.errors.DailyLimitReached`).
        """
        return self.get_json_and_body(resource_path(path, **ids), dict(params) if params else None)

    def activities_page_and_body(
        self, *, after: int, page: int, per_page: int = PER_PAGE
    ) -> tuple[list[dict[str, Any]], bytes]:
        """One page of SummaryActivity, oldest first (only ``after`` is given), and its body as received."""
        items, body = self.get_json_and_body(
            "/athlete/activities", {"after": after, "page": page, "per_page": per_page}
        )
        if not isinstance(items, list):
            raise BadRequestError(
                f"Strava returned {type(items).__name__} instead of a list for page {page} of /athlete/activities"
            )
        return items, body

    def iter_activity_pages(self, after: int, *, per_page: int = PER_PAGE) -> ActivityPages:
        """The pages of activities started after ``after`` (epoch seconds), one request each."""
        return ActivityPages(self, after, per_page)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> StravaClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def resource_path(template: str, **ids: object) -> str:
    """``template`` with its ``{name}`` fields filled from ``ids``, each percent-encoded as one path segment.

    Raises:
        ValueError: A field of the template has no value, or a value is empty.

    """
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(fields - set(ids))
    if missing:
        raise ValueError(f"The path {template!r} needs {missing}")
    values = {name: quote(str(ids[name]), safe="") for name in fields}
    empty = sorted(name for name, value in values.items() if not value)
    if empty:
        raise ValueError(f"The path {template!r} got an empty {empty}")
    return template.format(**values)


def open_client(credentials: StravaCredentials, log: LoggerLike | None = None) -> StravaClient:
    """Build the extract flow's client: real clock and sleep (tests replace this factory)."""
    return StravaClient(credentials, log=log)


def fetch_athlete(client: StravaClient) -> dict[str, Any] | None:
    """GET /athlete: who the token belongs to (the watermark is per athlete).

    Returns None when the daily budget is spent (``client.daily_limit`` says why).
    """
    try:
        return client.athlete()
    except DailyLimitReached as exc:
        get_run_logger().warning("No request left today for /athlete: %s", exc.message)
        return None


def fetch_next_page(pages: ActivityPages) -> list[dict[str, Any]] | None:
    """GET the next page of activities (``pages.number``), logged.

    Called by the extract's page task (``fetch-page-N``), which lands the page too. Returns
    None when the daily budget is spent (the client's ``daily_limit`` says why): an expected
    end of a backfill run, not a failed task.
    """
    log = get_run_logger()
    number = pages.number
    try:
        activities = next(pages)
    except DailyLimitReached as exc:
        log.warning("No request left today for page %s: %s", number, exc.message)
        return None
    left = pages.requests_left()
    if left is None:
        log.info("Page %s: %s activities", number, len(activities))
    else:
        log.info(
            "Page %s: %s activities; requests left: %s in this 15-minute window, %s today",
            number,
            len(activities),
            *left,
        )
    return activities
