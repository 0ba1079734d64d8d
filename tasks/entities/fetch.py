"""The enrichment's fetch side: request resources for one athlete and run, land them, stage them as a batch.

:class:`EnrichmentFetch` requests what it is given (detail and streams per activity, gear by id,
the athlete's stats and zones) through the client, each by its spec's ``path`` and ``params``:
exactly one request per detail, per stream set, per gear, per stats and per zones (retries
aside). Each response lands in the lake as received (gzipped strict JSON):
``raw/<lake prefix>/athlete_id=<id>/run=<run key>/<entity>-<key>.json.gz``; it is flattened
by its spec (:mod:`tasks.entities.flatten`) and written to one Parquet staging file per
entity (``spec.arrow_schema``) at ``staging/<lake prefix>/athlete_id=<id>/run=<run key>/<entity>.parquet``,
row group by row group as responses come (a 4-hour activity's 14,400 samples are one
activity's worth in memory, not the batch's). The result is a :class:`~tasks.entities.batch.StagedBatch`
for the warehouse side.

Outcomes that are not failures:

- a 404 for an activity (deleted, or private without ``activity:read_all``): ``not_found`` in
  its state row, its children and streams replaced by nothing; its streams are not requested;
- a stream set Strava does not have (an empty set, or a 404 naming ``streams``: a manual
  activity): ``none``; a stream set that cannot be staged (channels of different lengths, a
  ``latlng`` that is not a pair): ``rejected``, with the reason, its raw file kept;
- the daily limit (or Strava still failing after the retries) stops the batch where it is:
  what was fetched is staged, ``partial_reason`` says why, the next run resumes.

An authorisation error (401, 403) is raised: nothing more can be read with this token.

State rows (:data:`~tasks.entities.catalog.ENRICHMENT_TABLE`), one per activity this run has
something to say about, hold only the columns it touched: ``detail_at``/``detail_due`` when its
detail was answered (a 404 included), ``streams_at``/``streams_outcome``/``streams_samples`` when
its streams were; the merge keeps the stored value of a column a row leaves out. ``last_error``
is this run's failure for the activity (None: it did not fail, which clears an older one) and
``attempts`` is 1 when it failed, 0 when it did not (the store may add a 1 to the stored count for
"failed N times in a row"). An activity the batch stopped before has no row.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks import lake as lake_tasks
from tasks.entities.batch import EntityRejection, StagedBatch
from tasks.entities.catalog import DETAIL, DETAIL_CHILDREN, GEAR, SPECS, STATS, STREAMS, ZONES
from tasks.entities.flatten import EntityRows, detail_rows, gear_row, stats_rows, stream_columns, zones_rows
from tasks.entities.spec import EntitySpec
from tasks.logs import run_logger
from tasks.strava.client import StravaClient
from tasks.strava.errors import (
    AuthError,
    BadRequestError,
    DailyLimitReached,
    ForbiddenError,
    NotFoundError,
    RetriableError,
    StravaError,
)

__all__ = ["EnrichmentFetch", "StreamsOutcome", "fetch_enrichment"]


class StreamsOutcome:
    """What became of an activity's streams (``streams_outcome`` of its state row)."""

    LOADED = "loaded"
    NONE = "none"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"


_GEAR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ERROR_CHARS = 2000  # the state table's last_error


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """The batch ends here (the daily limit, or Strava still failing): what was fetched is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Activity:
    """One activity's state row as this run leaves it: only what this run touched."""

    activity_id: int
    detail_at: datetime | None = None
    detail_due: bool | None = None
    streams_at: datetime | None = None
    streams_outcome: str | None = None
    streams_samples: int | None = None
    last_error: str | None = None
    found: bool = True

    @property
    def touched(self) -> bool:
        """Whether this run has anything to say about the activity (a stop before its request: nothing)."""
        return self.detail_at is not None or self.streams_at is not None or self.last_error is not None

    def row(self, athlete_id: int) -> dict[str, Any]:
        """The state row: the detail's columns only if its detail was answered, the streams' only if they were."""
        row: dict[str, Any] = {"athlete_id": athlete_id, "activity_id": self.activity_id}
        if self.detail_at is not None:
            row.update(detail_at=self.detail_at, detail_due=self.detail_due)
        if self.streams_at is not None:
            row.update(
                streams_at=self.streams_at, streams_outcome=self.streams_outcome, streams_samples=self.streams_samples
            )
        error = None if self.last_error is None else self.last_error[:_ERROR_CHARS]
        row.update(attempts=0 if error is None else 1, last_error=error)
        return row


@dataclass
class EnrichmentFetch:
    """Fetch one athlete's resources in one run into the lake, and stage them (:meth:`fetch`).

    Args:
        client: The athlete's client (its governor, retries and request count).
        lake: Where raw responses and staging files go.
        athlete_id: Whose resources these are (a child naming another athlete is rejected).
        run_key: This run's key (the lake's ``run=`` partition).
        extracted_at: When this run reads (every row's ``extracted_at``, the stats' ``observed_at``).

    """

    client: StravaClient
    lake: lake_tasks.Lake
    athlete_id: int
    run_key: str
    extracted_at: datetime
    _writers: dict[str, lake_tasks.StagingFileWriter] = field(init=False, default_factory=dict)
    _rows: Counter[str] = field(init=False, default_factory=Counter)
    _parents: dict[str, list[int]] = field(init=False, default_factory=dict)
    _activities: dict[int, _Activity] = field(init=False, default_factory=dict)
    _rejected: list[EntityRejection] = field(init=False, default_factory=list)
    _unfit: Counter[str] = field(init=False, default_factory=Counter)

    def fetch(
        self,
        detail_ids: Iterable[int] = (),
        stream_ids: Iterable[int] = (),
        gear_ids: Iterable[str] = (),
        *,
        stats: bool = False,
        zones: bool = False,
    ) -> StagedBatch:
        """Request, land and stage: the athlete's zones and stats, the gear, then each activity's detail and streams.

        Activities go in the order given (the queue's: newest first), the detail before the
        streams of each; an activity in both lists costs two requests. Returns the staged
        batch, partial when the daily limit (or a Strava outage) stopped it.
        """
        details, streams = list(dict.fromkeys(detail_ids)), list(dict.fromkeys(stream_ids))
        wanted_streams = set(streams)
        wanted_details = set(details)
        order = list(dict.fromkeys([*details, *streams]))
        requests_before = self.client.requests
        partial_reason: str | None = None
        try:
            try:
                if zones:
                    self._zones()
                if stats:
                    self._stats()
                for gear_id in dict.fromkeys(gear_ids):
                    self._gear(gear_id)
                for activity_id in order:
                    if activity_id in wanted_details:
                        self._detail(activity_id)
                    if activity_id in wanted_streams and self._state(activity_id).found:
                        self._streams(activity_id)
            except _Stop as stop:
                partial_reason = stop.reason
            files = self._upload()
        finally:
            for writer in self._writers.values():
                writer.discard()
        batch = StagedBatch(
            athlete_id=self.athlete_id,
            run_key=self.run_key,
            extracted_at=self.extracted_at,
            files=files,
            rows=dict(self._rows),
            parents={name: tuple(dict.fromkeys(ids)) for name, ids in self._parents.items()},
            state=tuple(a.row(self.athlete_id) for a in self._activities.values() if a.touched),
            rejected=tuple(self._rejected),
            unfit=Counter(self._unfit),
            requests=self.client.requests - requests_before,
            partial_reason=partial_reason,
        )
        _log(batch)
        return batch

    # --- one resource each ---------------------------------------------------------------

    def _get(self, spec: EntitySpec, what: str, **ids: object) -> tuple[Any, bytes] | NotFoundError:
        """One request for ``spec``: its JSON and body, or the 404 (the daily limit or an outage stops the batch)."""
        assert spec.path is not None
        try:
            return self.client.get_resource(spec.path, spec.params, **ids)
        except NotFoundError as exc:
            return exc
        except DailyLimitReached as exc:
            raise _Stop(f"partial: resumes next run (daily budget spent at {what}: {exc.message})") from exc
        except (AuthError, ForbiddenError):
            raise
        except RetriableError as exc:
            raise _Stop(f"partial: resumes next run (Strava kept failing at {what}: {exc.message})") from exc

    def _land(self, spec: EntitySpec, key: object, body: bytes) -> str:
        path = lake_tasks.raw_resource_path(spec.lake_prefix, self.athlete_id, self.run_key, spec.name, key)
        return lake_tasks.land_raw_response(self.lake, path, body)

    def _stage(self, out: EntityRows) -> None:
        for name, rows in out.rows.items():
            self._rows[name] += len(rows)
            if rows:
                self._writer(SPECS[name]).write_page(rows)
        self._rejected.extend(out.rejected)
        self._unfit.update(out.unfit)

    def _writer(self, spec: EntitySpec) -> lake_tasks.StagingFileWriter:
        writer = self._writers.get(spec.name)
        if writer is None:
            writer = self._writers[spec.name] = lake_tasks.StagingFileWriter(arrow_schema=spec.arrow_schema)
        return writer

    def _state(self, activity_id: int) -> _Activity:
        return self._activities.setdefault(activity_id, _Activity(activity_id))

    def _replaced(self, specs: Sequence[EntitySpec], activity_id: int) -> None:
        """The activity's rows of ``specs`` are replaced by this batch's (none, when it has none)."""
        for spec in specs:
            self._parents.setdefault(spec.name, []).append(activity_id)
            self._rows.setdefault(spec.name, 0)

    def _detail(self, activity_id: int) -> None:
        state = self._state(activity_id)
        try:
            got = self._get(DETAIL, f"the detail of activity {activity_id}", activity_id=activity_id)
        except BadRequestError as exc:
            state.last_error = _error(exc)
            return
        state.detail_at, state.detail_due = self.extracted_at, False
        if isinstance(got, NotFoundError):
            state.found = False
            state.streams_at, state.streams_outcome, state.streams_samples = self.extracted_at, "not_found", 0
            self._replaced([*DETAIL_CHILDREN, STREAMS], activity_id)
            return
        detail, body = got
        raw = self._land(DETAIL, activity_id, body)
        out = detail_rows(detail, self.athlete_id, self.extracted_at, raw_path=raw)
        if DETAIL.name not in out.rows:  # rejected whole
            state.last_error = "; ".join(r.reason for r in out.rejected)
        else:
            self._replaced(DETAIL_CHILDREN, activity_id)
        self._stage(out)

    def _streams(self, activity_id: int) -> None:
        state = self._state(activity_id)
        try:
            got = self._get(STREAMS, f"the streams of activity {activity_id}", activity_id=activity_id)
        except BadRequestError as exc:
            state.last_error = _error(exc)
            return
        state.streams_at = self.extracted_at
        if isinstance(got, NotFoundError):
            # A 404 after this run read the detail, or naming the streams: the activity has none (manual).
            detail_read = state.detail_at is not None and state.found
            names_streams = ".streams" in got.message  # Strava's errors[]: Activity.streams
            outcome = StreamsOutcome.NONE if detail_read or names_streams else StreamsOutcome.NOT_FOUND
            state.streams_outcome, state.streams_samples = outcome, 0
            state.found = outcome == StreamsOutcome.NONE
            self._replaced([STREAMS], activity_id)
            return
        streamset, body = got
        raw = self._land(STREAMS, activity_id, body)
        flat = stream_columns(streamset, activity_id, self.athlete_id)
        if isinstance(flat, str):
            state.streams_outcome, state.last_error = StreamsOutcome.REJECTED, flat
            self._rejected.append(EntityRejection(STREAMS.name, str(activity_id), flat, raw))
            return
        state.streams_outcome = StreamsOutcome.LOADED if flat.rows else StreamsOutcome.NONE
        state.streams_samples = flat.rows
        self._replaced([STREAMS], activity_id)
        self._rows[STREAMS.name] += flat.rows
        self._unfit.update(flat.unfit)
        if flat.rows:
            self._writer(STREAMS).write_table(flat.to_arrow())

    def _gear(self, gear_id: str) -> None:
        if not _GEAR_ID.fullmatch(str(gear_id)):
            self._rejected.append(EntityRejection(GEAR.name, str(gear_id)[:64], "not a gear id: not requested"))
            return
        got = self._get_or_reject(GEAR, gear_id, f"gear {gear_id}", gear_id=gear_id)
        if got is not None:
            raw = self._land(GEAR, gear_id, got[1])
            self._stage(gear_row(got[0], self.athlete_id, self.extracted_at, raw_path=raw))

    def _stats(self) -> None:
        got = self._get_or_reject(STATS, self.athlete_id, "the athlete's stats", athlete_id=self.athlete_id)
        if got is not None:
            raw = self._land(STATS, self.athlete_id, got[1])
            self._stage(stats_rows(got[0], self.athlete_id, self.extracted_at, raw_path=raw))

    def _zones(self) -> None:
        got = self._get_or_reject(ZONES, self.athlete_id, "the athlete's zones")
        if got is not None:
            raw = self._land(ZONES, self.athlete_id, got[1])
            self._stage(zones_rows(got[0], self.athlete_id, self.extracted_at, raw_path=raw))

    def _get_or_reject(self, spec: EntitySpec, key: object, what: str, **ids: object) -> tuple[Any, bytes] | None:
        """A resource of the athlete (not an activity's): a 404 or a malformed answer is a rejection."""
        try:
            got = self._get(spec, what, **ids)
        except BadRequestError as exc:
            self._rejected.append(EntityRejection(spec.name, str(key), _error(exc)))
            return None
        if isinstance(got, NotFoundError):
            self._rejected.append(EntityRejection(spec.name, str(key), f"not found (404) at {what}"))
            return None
        return got

    # --- the end -------------------------------------------------------------------------

    def _upload(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for name, writer in self._writers.items():
            if writer.rows:
                spec = SPECS[name]
                path = lake_tasks.staging_file_path(self.athlete_id, self.run_key, name, spec.lake_prefix)
                files[name] = writer.upload(self.lake, path)
        return files


def _error(exc: StravaError) -> str:
    return str(exc)[:_ERROR_CHARS]


def _log(batch: StagedBatch) -> None:
    logger = run_logger(__name__)
    outcomes = Counter(str(s["streams_outcome"]) for s in batch.state if s.get("streams_outcome") is not None)
    logger.info(
        "Athlete %s: enrichment fetched %s activities with %s requests; rows %s; streams %s%s",
        batch.athlete_id,
        len(batch.state),
        batch.requests,
        {k: v for k, v in batch.rows.items() if v} or "none",
        dict(outcomes) or "not asked",
        f"; {batch.partial_reason}" if batch.partial_reason else "",
    )
    if batch.rejected:
        logger.warning(
            "%s resources or items not staged (kept in the raw files): %s",
            len(batch.rejected),
            [(r.entity, r.key, r.reason) for r in batch.rejected[:20]],
        )
    if batch.unfit:
        logger.warning("Values loaded as NULL because they do not fit their column: %s", dict(batch.unfit))


def fetch_enrichment(
    client: StravaClient,
    lake: lake_tasks.Lake,
    athlete_id: int,
    run_key: str,
    extracted_at: datetime,
    *,
    detail_ids: Iterable[int] = (),
    stream_ids: Iterable[int] = (),
    gear_ids: Iterable[str] = (),
    stats: bool = False,
    zones: bool = False,
) -> StagedBatch:
    """:meth:`EnrichmentFetch.fetch` in one call."""
    return EnrichmentFetch(client, lake, athlete_id, run_key, extracted_at).fetch(
        detail_ids, stream_ids, gear_ids, stats=stats, zones=zones
    )
