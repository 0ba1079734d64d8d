"""How a resource's JSON becomes rows: flattened by its spec, each value through its column's rule.

:func:`flatten` turns one JSON object into one row of a spec: each column reads its value with
its ``source`` and keeps it through its ``coercer`` (:mod:`tasks.warehouse.schema`): a value of
the wrong JSON type, non-finite or out of the column's range is loaded as NULL and named, so no
value can fail this run or a later one. The functions below cut each resource into the rows of
its entities and supply the values the API does not send (``"__activity_id"``, ``"__extracted_at"``:
the ``context`` columns of :mod:`tasks.entities.catalog`):

- :func:`detail_rows`: a DetailedActivity -> its detail row and its laps, splits and efforts;
  a child naming another athlete or activity is rejected, not loaded;
- :func:`stream_columns` / :func:`stream_rows`: a StreamSet (keyed by type, or Strava's list
  form) -> one row a sample; channels of different lengths, or a ``latlng`` sample that is not
  a ``[lat, lng]`` pair, reject the whole set (its raw file stays in the lake);
- :func:`stats_rows` (period x sport), :func:`zones_rows` (heart rate and power), :func:`gear_row`.

Each returns an :class:`EntityRows`: rows per entity, what was rejected and why, and the
values that did not fit (``entity.column`` -> count).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from tasks.entities.batch import EntityRejection
from tasks.entities.catalog import DETAIL, DETAIL_CHILDREN, GEAR, STATS, STREAMS, ZONES
from tasks.entities.spec import EntitySpec
from tasks.warehouse.schema import Column

__all__ = [
    "EntityRows",
    "StreamColumns",
    "api_columns",
    "detail_rows",
    "flatten",
    "gear_row",
    "row_hash",
    "stats_rows",
    "stream_columns",
    "stream_rows",
    "zones_rows",
]

Row = dict[str, Any]


def _is_context(column: Column) -> bool:
    """Whether the pipeline supplies the column (``context(...)``, and the row hash), not the API."""
    name = getattr(column.source, "__name__", "")
    return name.startswith("context_") or column.name == "row_hash"


def api_columns(spec: EntitySpec) -> tuple[str, ...]:
    """The columns whose values come from the API: what :func:`row_hash` fingerprints."""
    return tuple(c.name for c in spec.columns if not _is_context(c))


_HASH_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


def row_hash(spec: EntitySpec, row: Mapping[str, Any]) -> str:
    """Fingerprint of a row's API columns, in the table's order (as :func:`tasks.warehouse.schema.row_hash`)."""
    payload = _HASH_JSON.encode([row.get(name) for name in api_columns(spec)])
    return hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()


def flatten(spec: EntitySpec, item: Mapping[str, Any]) -> tuple[Row, list[str]]:
    """One row of ``spec`` from ``item`` (the API's object plus the ``"__<name>"`` values the pipeline supplies).

    Returns the row (every column of the spec, in order) and the names of the columns whose value
    was sent but does not fit (wrong type, non-finite, out of range): those are NULL in the row.
    ``row_hash`` is set for specs that have it.
    """
    row: Row = {}
    unfit: list[str] = []
    hashed = False
    for column in spec.columns:
        if column.name == "row_hash":
            hashed = True
            row["row_hash"] = None
            continue
        value = column.source(item)
        if value is None:
            row[column.name] = None
            continue
        kept = column.coercer(value)
        if kept is None:
            unfit.append(column.name)
        row[column.name] = kept
    if hashed:
        row["row_hash"] = row_hash(spec, row)
    return row, unfit


@dataclass
class EntityRows:
    """Rows cut from one or more responses: per entity, with what was rejected and what did not fit."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    rejected: list[EntityRejection] = field(default_factory=list)
    unfit: Counter[str] = field(default_factory=Counter)
    """``entity.column`` -> how many values did not fit their column (loaded as NULL)."""

    def add(self, spec: EntitySpec, row: Row, unfit: Sequence[str]) -> None:
        self.rows.setdefault(spec.name, []).append(row)
        self.unfit.update(f"{spec.name}.{name}" for name in unfit)

    def reject(self, spec: EntitySpec, key: Any, reason: str, raw_path: str | None = None) -> None:
        self.rejected.append(EntityRejection(spec.name, str(key), reason, raw_path))

    def extend(self, other: EntityRows) -> None:
        for name, rows in other.rows.items():
            self.rows.setdefault(name, []).extend(rows)
        self.rejected.extend(other.rejected)
        self.unfit.update(other.unfit)


def _preview(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing_key(spec: EntitySpec, row: Row, item: Mapping[str, Any]) -> str | None:
    """Why a row cannot be staged for want of a key value (None when every key column holds one)."""
    for name in spec.key:
        if row.get(name) is None:
            column = next(c for c in spec.columns if c.name == name)
            raw = column.source(item)
            return f"no {name}" if raw is None else f"{name} {_preview(raw)} does not fit its column"
    return None


def _ref_id(item: Mapping[str, Any], field_name: str) -> Any:
    """``item[field_name]["id"]`` (``athlete``, ``activity``), None when absent."""
    ref = item.get(field_name)
    return ref.get("id") if isinstance(ref, Mapping) else None


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


# --- detail ----------------------------------------------------------------------------------


def detail_rows(detail: Any, athlete_id: int, extracted_at: datetime, raw_path: str | None = None) -> EntityRows:
    """The detail row and its nested children (laps, splits, best and segment efforts) of one DetailedActivity.

    The detail row declares how many laps, best efforts and segment efforts the response held
    (``lap_count``...). A detail of another athlete is rejected whole; a child naming another
    athlete or activity, without its key, or repeating a key is rejected alone. A detail without
    a fitting ``athlete.id`` is the run's athlete's (the one it was requested for).
    """
    out = EntityRows()
    if not isinstance(detail, Mapping):
        out.reject(DETAIL, "?", f"the detail is not a JSON object: {_preview(detail)}", raw_path)
        return out
    item = {
        **detail,
        "__extracted_at": extracted_at,
        "__lap_count": _count(detail.get("laps")),
        "__best_effort_count": _count(detail.get("best_efforts")),
        "__segment_effort_count": _count(detail.get("segment_efforts")),
    }
    row, unfit = flatten(DETAIL, item)
    activity_id = row["activity_id"]
    if activity_id is None:
        out.reject(DETAIL, _preview(detail.get("id")), _missing_key(DETAIL, row, item) or "no id", raw_path)
        return out
    if row["athlete_id"] is None:
        row["athlete_id"] = athlete_id
        row["row_hash"] = row_hash(DETAIL, row)
    elif row["athlete_id"] != athlete_id:
        reason = f"belongs to athlete {row['athlete_id']}, not this run's athlete {athlete_id}"
        out.reject(DETAIL, activity_id, reason, raw_path)
        return out
    out.add(DETAIL, row, unfit)
    out.rows.update({child.name: [] for child in DETAIL_CHILDREN})
    for child in DETAIL_CHILDREN:
        out.extend(_children(child, detail.get(child.source or ""), activity_id, athlete_id, extracted_at, raw_path))
    return out


def _children(
    spec: EntitySpec, items: Any, activity_id: int, athlete_id: int, extracted_at: datetime, raw_path: str | None
) -> EntityRows:
    out = EntityRows(rows={spec.name: []})
    if items is None:
        return out
    if not isinstance(items, list):
        out.reject(spec, activity_id, f"{spec.source} is not a JSON array: {_preview(items)}", raw_path)
        return out
    seen: set[tuple[Any, ...]] = set()
    context = {"__activity_id": activity_id, "__athlete_id": athlete_id, "__extracted_at": extracted_at}
    for position, child in enumerate(items):
        where = f"{activity_id}/{spec.source}[{position}]"
        if not isinstance(child, Mapping):
            out.reject(spec, where, f"not a JSON object: {_preview(child)}", raw_path)
            continue
        owner, parent = _ref_id(child, "athlete"), _ref_id(child, "activity")
        if owner is not None and owner != athlete_id:
            out.reject(spec, where, f"names athlete {_preview(owner)}, not this run's athlete {athlete_id}", raw_path)
            continue
        if parent is not None and parent != activity_id:
            out.reject(spec, where, f"names activity {_preview(parent)}, not its detail's {activity_id}", raw_path)
            continue
        item = {**child, **context}
        row, unfit = flatten(spec, item)
        missing = _missing_key(spec, row, item)
        if missing is not None:
            out.reject(spec, where, missing, raw_path)
            out.unfit.update(f"{spec.name}.{name}" for name in unfit)
            continue
        key = tuple(row[name] for name in spec.key)
        if key in seen:
            out.reject(spec, where, f"repeats the key {dict(zip(spec.key, key, strict=True))}", raw_path)
            continue
        seen.add(key)
        out.add(spec, row, unfit)
    return out


# --- streams ---------------------------------------------------------------------------------


def _stream_source(column: Column) -> tuple[str, int | None] | None:
    """The channel (and the index inside a sample, for ``latlng``) a stream column reads; None: context."""
    if _is_context(column):
        return None
    name = getattr(column.source, "__name__", "")
    if not name.startswith("at_"):
        raise ValueError(f"Stream column {column.name!r} must read a channel with at(...), not {name!r}")
    channel, _, index = name.removeprefix("at_").partition(".")
    return channel, int(index) if index else None


_STREAM_SOURCES: tuple[tuple[Column, tuple[str, int | None] | None], ...] = tuple(
    (c, _stream_source(c)) for c in STREAMS.columns
)
STREAM_CHANNELS: tuple[str, ...] = tuple(dict.fromkeys(s[0] for _, s in _STREAM_SOURCES if s is not None))
"""The stream types the table has a column for (those Strava sends beyond them stay in the raw file)."""


@dataclass
class StreamColumns:
    """One activity's stream set, flattened column by column (``rows`` samples; 0: none sent)."""

    activity_id: int
    athlete_id: int
    rows: int
    columns: dict[str, list[Any]]
    unfit: Counter[str]
    """``activity_streams.column`` -> values that did not fit (NULL)."""

    def to_arrow(self) -> pa.Table:
        """The samples as an Arrow table of the staging file's schema."""
        return pa.table(
            {f.name: pa.array(self.columns[f.name], type=f.type) for f in STREAMS.arrow_schema},
            schema=STREAMS.arrow_schema,
        )

    def to_rows(self) -> list[Row]:
        names = [c.name for c in STREAMS.columns]
        return [dict(zip(names, values, strict=True)) for values in zip(*(self.columns[n] for n in names), strict=True)]


def _channels(streamset: Any) -> dict[str, Any] | str:
    """``{type: data}`` of a stream set in either form, or why it is not one."""
    if isinstance(streamset, Mapping):  # key_by_type=true: {"time": {"data": [...], ...}, ...}
        pairs = list(streamset.items())
    elif isinstance(streamset, list):  # the list form: [{"type": "time", "data": [...]}, ...]
        pairs = []
        for position, stream in enumerate(streamset):
            if not isinstance(stream, Mapping) or not isinstance(stream.get("type"), str):
                return f"stream {position} is not an object with a type: {_preview(stream)}"
            pairs.append((stream["type"], stream))
    else:
        return f"not a stream set (an object keyed by type, or a list of streams): {_preview(streamset)}"
    channels: dict[str, Any] = {}
    for key, stream in pairs:
        if key not in STREAM_CHANNELS:
            continue  # a type the table has no column for: kept in the raw file
        data = stream.get("data") if isinstance(stream, Mapping) else None
        if not isinstance(data, list):
            return f"stream {key!r} has no data array: {_preview(stream)}"
        if key in channels:
            return f"stream {key!r} is sent twice"
        channels[key] = data
    return channels


def stream_columns(streamset: Any, activity_id: int, athlete_id: int) -> StreamColumns | str:
    """The samples of one stream set, column by column; or why the whole set is rejected (a text).

    Every sample Strava sends becomes a row (``sample_index`` 0, 1, ...): channels of different
    lengths, or a ``latlng`` sample that is not a ``[lat, lng]`` pair, reject the set. A value
    that does not fit its column is NULL and counted.
    """
    channels = _channels(streamset)
    if isinstance(channels, str):
        return channels
    lengths = {key: len(data) for key, data in channels.items()}
    if len(set(lengths.values())) > 1:
        return f"channels differ in length: {dict(sorted(lengths.items()))}"
    n = next(iter(lengths.values()), 0)
    latlng = channels.get("latlng")
    if latlng is not None:
        for sample, pair in enumerate(latlng):
            if not isinstance(pair, list) or len(pair) != 2:  # noqa: PLR2004 - a pair
                return f"latlng sample {sample} is not a [lat, lng] pair: {_preview(pair)}"
    columns: dict[str, list[Any]] = {}
    unfit: Counter[str] = Counter()
    for column, source in _STREAM_SOURCES:
        if source is None:
            if column.name == "sample_index":
                columns[column.name] = list(range(n))
            elif column.name == "activity_id":
                columns[column.name] = [activity_id] * n
            elif column.name == "athlete_id":
                columns[column.name] = [athlete_id] * n
            else:
                raise ValueError(f"Stream column {column.name!r}: no value the pipeline supplies")
            continue
        channel, index = source
        data = channels.get(channel)
        if data is None:
            columns[column.name] = [None] * n
            continue
        if index is not None:
            data = [pair[index] for pair in data]
        coerce = column.coercer
        kept = [None if v is None else coerce(v) for v in data]
        bad = sum(1 for v, k in zip(data, kept, strict=True) if k is None and v is not None)
        if bad:
            unfit[f"{STREAMS.name}.{column.name}"] += bad
        columns[column.name] = kept
    return StreamColumns(activity_id, athlete_id, n, columns, unfit)


def stream_rows(streamset: Any, activity_id: int, athlete_id: int) -> list[Row] | str:
    """:func:`stream_columns` as rows (one a sample), or the reason the set is rejected."""
    flat = stream_columns(streamset, activity_id, athlete_id)
    return flat if isinstance(flat, str) else flat.to_rows()


# --- stats, zones, gear ----------------------------------------------------------------------

STATS_PERIODS = ("recent", "ytd", "all")
STATS_SPORTS = ("ride", "run", "swim")


def stats_rows(stats: Any, athlete_id: int, observed_at: datetime, raw_path: str | None = None) -> EntityRows:
    """ActivityStats as long rows: one per period (recent, ytd, all) and sport (ride, run, swim).

    Each row carries the athlete's ``biggest_ride_distance`` and ``biggest_climb_elevation_gain``;
    a period and sport Strava left out has no row.
    """
    out = EntityRows(rows={STATS.name: []})
    if not isinstance(stats, Mapping):
        out.reject(STATS, athlete_id, f"the stats are not a JSON object: {_preview(stats)}", raw_path)
        return out
    context = {
        "__athlete_id": athlete_id,
        "__observed_at": observed_at,
        "__biggest_ride_distance": stats.get("biggest_ride_distance"),
        "__biggest_climb_elevation_gain": stats.get("biggest_climb_elevation_gain"),
    }
    for period in STATS_PERIODS:
        for sport in STATS_SPORTS:
            totals = stats.get(f"{period}_{sport}_totals")
            if totals is None:
                continue
            if not isinstance(totals, Mapping):
                out.reject(STATS, f"{period}_{sport}", f"not a JSON object: {_preview(totals)}", raw_path)
                continue
            row, unfit = flatten(STATS, {**totals, **context, "__period": period, "__sport": sport})
            out.add(STATS, row, unfit)
    return out


ZONE_KINDS = ("heart_rate", "power")


def zones_rows(zones: Any, athlete_id: int, extracted_at: datetime, raw_path: str | None = None) -> EntityRows:
    """The athlete's heart-rate and power zones, one row a zone (1-based); Strava's open top ``max`` -1 is NULL."""
    out = EntityRows(rows={ZONES.name: []})
    if not isinstance(zones, Mapping):
        out.reject(ZONES, athlete_id, f"the zones are not a JSON object: {_preview(zones)}", raw_path)
        return out
    for kind in ZONE_KINDS:
        block = zones.get(kind)
        if block is None:
            continue
        listed = block.get("zones") if isinstance(block, Mapping) else None
        if not isinstance(listed, list):
            out.reject(ZONES, kind, f"no zones array: {_preview(block)}", raw_path)
            continue
        for number, zone in enumerate(listed, start=1):
            if not isinstance(zone, Mapping):
                out.reject(ZONES, f"{kind}[{number}]", f"not a JSON object: {_preview(zone)}", raw_path)
                continue
            item = {
                **zone,
                "__athlete_id": athlete_id,
                "__kind": kind,
                "__zone": number,
                "__custom_zones": block.get("custom_zones"),
                "__extracted_at": extracted_at,
            }
            if type(zone.get("max")) is int and zone["max"] == -1:
                item["max"] = None  # the open top zone
            row, unfit = flatten(ZONES, item)
            out.add(ZONES, row, unfit)
    return out


def gear_row(gear: Any, athlete_id: int, extracted_at: datetime, raw_path: str | None = None) -> EntityRows:
    """One DetailedGear as the athlete's gear row (rejected without a fitting id)."""
    out = EntityRows(rows={GEAR.name: []})
    if not isinstance(gear, Mapping):
        out.reject(GEAR, "?", f"the gear is not a JSON object: {_preview(gear)}", raw_path)
        return out
    item = {**gear, "__athlete_id": athlete_id, "__extracted_at": extracted_at}
    row, unfit = flatten(GEAR, item)
    missing = _missing_key(GEAR, row, item)
    if missing is not None:
        out.reject(GEAR, _preview(gear.get("id")), missing, raw_path)
        return out
    out.add(GEAR, row, unfit)
    return out
