"""The warehouse contract: the production table, and how one API activity becomes one row.

Declared once here and used everywhere: the DDL (compiled per dialect by SQLAlchemy), the
Parquet staging file's Arrow schema, the flattening of Strava's SummaryActivity JSON, and the
range of values each column accepts (a value outside it, non-finite or of the wrong JSON type
is loaded as NULL, so that no value can fail this run or a later one).
Tables are declared explicitly (duckdb-engine reflection is broken under SQLAlchemy 2.1).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

ACTIVITY_TABLE = "strava_activity_data"
STATS_HISTORY_TABLE = "strava_activity_stats_history"

TEXT_MAX_BYTES = 65535
"""The longest text a column accepts, in UTF-8 bytes: Redshift's VARCHAR(65535) holds no more."""

# Redshift turns TEXT into VARCHAR(256); polylines and names need more.
_TEXT = sa.Text().with_variant(sa.String(TEXT_MAX_BYTES), "redshift")
# Double precision everywhere: sa.Float() is a 4-byte FLOAT on DuckDB.
_DOUBLE: sa.Double[float] = sa.Double()

INT32 = (-(2**31), 2**31 - 1)
"""What an INTEGER column accepts (every warehouse's 4-byte integer)."""
ID_RANGE = (1, 2**63 - 1)
"""What an id column (BIGINT) accepts: Strava's ids are positive."""
FLOAT_LIMIT = 1e9
"""The largest magnitude a float column accepts.

The models round sums through NUMERIC(18, 4), which holds |x| < 1e14: even 100,000
activities at this limit in one group fit. No real value comes near it (1e9 metres is 25
times round the Earth; a day holds 86,400 seconds of utc_offset).
"""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest timestamp accepted (the Unix epoch): every warehouse and Arrow hold it."""
LATEST = datetime(2200, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
"""The latest timestamp accepted: far past any watch's wrong clock, well inside every warehouse."""


@dataclass(frozen=True)
class Column:
    """One production column: its name, SQL type, Arrow type, where it comes from, what it accepts.

    ``low`` and ``high`` bound the accepted values, inclusive: numbers and timestamps by value,
    text by its length in UTF-8 bytes (``high`` only); None for booleans and pipeline columns.
    """

    name: str
    sql_type: Any
    arrow_type: pa.DataType
    source: Callable[[Mapping[str, Any]], Any]
    low: Any = None
    high: Any = None


def _pipeline(_: Mapping[str, Any]) -> Any:
    return None  # set by the pipeline, not read from the API


def _field(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda a: a.get(key)


def _nested(key: str, sub: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(a: Mapping[str, Any]) -> Any:
        inner = a.get(key)
        return inner.get(sub) if isinstance(inner, Mapping) else None

    return get


def _latlng(key: str, index: int) -> Callable[[Mapping[str, Any]], Any]:
    def get(a: Mapping[str, Any]) -> Any:
        pair = a.get(key)
        if isinstance(pair, list | tuple) and len(pair) == 2:
            return pair[index]
        return None

    return get


def _as_text(key: str) -> Callable[[Mapping[str, Any]], Any]:
    """An integer sent as a number, kept as its decimal text (any other type stays as sent)."""

    def get(a: Mapping[str, Any]) -> Any:
        value = a.get(key)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    return get


def _id(name: str, source: Callable[[Mapping[str, Any]], Any]) -> Column:
    return Column(name, sa.BigInteger(), pa.int64(), source, *ID_RANGE)


def _int(name: str) -> Column:
    return Column(name, sa.Integer(), pa.int32(), _field(name), *INT32)


def _count(name: str) -> Column:
    """A count or a duration: never negative (a negative one would halt every run in the gate)."""
    return Column(name, sa.Integer(), pa.int32(), _field(name), 0, INT32[1])


def _float(name: str, source: Callable[[Mapping[str, Any]], Any] | None = None, limit: float = FLOAT_LIMIT) -> Column:
    return Column(name, _DOUBLE, pa.float64(), source or _field(name), -limit, limit)


def _measure(name: str) -> Column:
    """A distance or a climb: never negative, like :func:`_count`."""
    return Column(name, _DOUBLE, pa.float64(), _field(name), 0.0, FLOAT_LIMIT)


def _bool(name: str) -> Column:
    return Column(name, sa.Boolean(), pa.bool_(), _field(name))


def _text(name: str, source: Callable[[Mapping[str, Any]], Any] | None = None) -> Column:
    return Column(name, _TEXT, pa.string(), source or _field(name), high=TEXT_MAX_BYTES)


def _timestamp(name: str, *, aware: bool) -> Column:
    if aware:
        return Column(name, sa.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC"), _field(name), EARLIEST, LATEST)
    naive = (EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None))
    return Column(name, sa.TIMESTAMP(timezone=False), pa.timestamp("us"), _field(name), *naive)


# Columns named as the API's fields, flattened. Order is the table's column order.
API_COLUMNS: tuple[Column, ...] = (
    _id("id", _field("id")),
    _int("resource_state"),
    _id("athlete_id", _nested("athlete", "id")),
    _text("name"),
    _measure("distance"),
    _count("moving_time"),
    _count("elapsed_time"),
    _measure("total_elevation_gain"),
    _float("elev_high"),
    _float("elev_low"),
    _text("type"),
    _text("sport_type"),
    _int("workout_type"),
    _timestamp("start_date", aware=True),
    _timestamp("start_date_local", aware=False),
    _text("timezone"),
    _float("utc_offset"),
    _text("location_city"),
    _text("location_state"),
    _text("location_country"),
    _count("achievement_count"),
    _count("kudos_count"),
    _count("comment_count"),
    _count("athlete_count"),
    _count("photo_count"),
    _count("total_photo_count"),
    _count("pr_count"),
    _bool("trainer"),
    _bool("commute"),
    _bool("manual"),
    _bool("private"),
    _text("visibility"),
    _bool("flagged"),
    _bool("has_kudoed"),
    _bool("hide_from_home"),
    _text("gear_id"),
    _float("start_lat", _latlng("start_latlng", 0), 90.0),
    _float("start_lng", _latlng("start_latlng", 1), 180.0),
    _float("end_lat", _latlng("end_latlng", 0), 90.0),
    _float("end_lng", _latlng("end_latlng", 1), 180.0),
    _text("map_id", _nested("map", "id")),
    _text("map_summary_polyline", _nested("map", "summary_polyline")),
    _float("average_speed"),
    _float("max_speed"),
    _float("average_cadence"),
    _float("average_temp"),
    _float("average_watts"),
    _int("weighted_average_watts"),
    _float("kilojoules"),
    _bool("device_watts"),
    _int("max_watts"),
    _bool("has_heartrate"),
    _float("average_heartrate"),
    _float("max_heartrate"),
    _bool("heartrate_opt_out"),
    _bool("display_hide_heartrate_option"),
    _float("suffer_score"),
    _text("upload_id", _as_text("upload_id")),
    _text("external_id"),
    _bool("from_accepted_tag"),
)

# Columns the pipeline adds. row_hash fingerprints the API columns, so "updated" means
# "a value changed" on every warehouse (Redshift has no IS DISTINCT FROM).
EXTRACTED_AT = Column("extracted_at", sa.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC"), _pipeline)
ROW_HASH = Column("row_hash", sa.String(32), pa.string(), _pipeline)
DELETED_AT = Column("deleted_at", sa.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC"), _pipeline)

STAGED_COLUMNS: tuple[Column, ...] = (*API_COLUMNS, EXTRACTED_AT, ROW_HASH)
ALL_COLUMNS: tuple[Column, ...] = (*STAGED_COLUMNS, DELETED_AT)
KNOWN_FIELDS: frozenset[str] = frozenset(
    {"athlete", "map", "start_latlng", "end_latlng", "upload_id_str"} | {c.name for c in API_COLUMNS}
)

ARROW_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type) for c in STAGED_COLUMNS])
ROW_GROUP_ROWS = 5_000
"""Rows per Parquet row group of the staging file: few row groups (small file metadata), and one
row group's worth of Arrow data in memory while writing or reading it, whatever the run's size."""


def activity_table(metadata: sa.MetaData, name: str = ACTIVITY_TABLE) -> sa.Table:
    """Declare the production table (or a table of the same shape) on ``metadata``."""
    columns = [
        sa.Column(
            c.name,
            c.sql_type,
            primary_key=(c.name == "id"),
            autoincrement=False,
            nullable=(c.name != "id"),
        )
        for c in ALL_COLUMNS
    ]
    return sa.Table(name, metadata, *columns)


def stats_history_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the append-only history of kudos, comment and achievement counts."""
    return sa.Table(
        STATS_HISTORY_TABLE,
        metadata,
        sa.Column("activity_id", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("kudos_count", sa.Integer()),
        sa.Column("comment_count", sa.Integer()),
        sa.Column("achievement_count", sa.Integer()),
        # The activity's athlete. Last: older tables get it by ALTER TABLE (tasks.warehouse.ensure_tables).
        sa.Column("athlete_id", sa.BigInteger()),
    )


def _parse_ts(value: Any, *, aware: bool) -> datetime | None:
    """An ISO 8601 text (or a datetime) as a UTC-aware or naive datetime; anything else is None."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        return None
    if aware:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.replace(tzinfo=None)


def _number(value: Any) -> int | float | None:
    """A JSON number as sent (bool and text are not numbers); None otherwise."""
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def _text_value(value: Any, max_bytes: int) -> str | None:
    """Text every warehouse stores byte-exact: valid UTF-8, no NUL (PostgreSQL refuses it), not too long."""
    if not isinstance(value, str) or "\x00" in value:
        return None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, e.g. JSON "\ud800"
        return None
    return value if size <= max_bytes else None


def _typed(column: Column, value: Any) -> Any:
    """``value`` as the column's Python type, unchecked against the range; None if it has another type."""
    t = column.arrow_type
    if pa.types.is_timestamp(t):
        return _parse_ts(value, aware=t.tz is not None)
    if pa.types.is_boolean(t):
        return value if isinstance(value, bool) else None
    number = _number(value)
    if number is None:
        return None
    if pa.types.is_integer(t):
        return int(number) if float(number).is_integer() else None
    number = float(number)
    return number if math.isfinite(number) else None


def coerce(column: Column, value: Any) -> Any:
    """Coerce one value to the column's type; a value of another type, non-finite or out of range is None."""
    if value is None:
        return None
    if pa.types.is_string(column.arrow_type):
        return _text_value(value, column.high if column.high is not None else TEXT_MAX_BYTES)
    try:
        typed = _typed(column, value)
    except (TypeError, ValueError, OverflowError):
        return None
    if typed is None or column.low is None:
        return typed
    return typed if column.low <= typed <= column.high else None


def flatten_activity(activity: Mapping[str, Any], extracted_at: datetime) -> dict[str, Any]:
    """Turn one SummaryActivity into a production row (values typed, unknown fields dropped)."""
    row = {c.name: coerce(c, c.source(activity)) for c in API_COLUMNS}
    row["row_hash"] = row_hash(row)
    row["extracted_at"] = extracted_at
    return row


KEY_COLUMNS: tuple[str, ...] = ("id", "start_date")
"""What an activity cannot be staged without: the merge keys on ``id``; checks, deletions and
the watermark go by ``start_date``. An activity missing either is rejected (kept in the raw page)."""

_COLUMNS_BY_NAME = {c.name: c for c in API_COLUMNS}


class NotAnObjectError(ValueError):
    """A page of activities holds an item that is not a JSON object: the run fails before writing it."""


def _preview(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=repr)  # ASCII: a lone surrogate stays an escape
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_objects(items: Sequence[Any], page: int) -> None:
    """Raise :class:`NotAnObjectError` naming the page and position of the first item that is not an object."""
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise NotAnObjectError(
                f"Strava returned page {page} of /athlete/activities with an item that is not a JSON object "
                f"at position {position} (0-based, of {len(items)} items): {_preview(item)}. Nothing of this "
                "page was written to the lake or the warehouse; production and the watermark are unchanged. "
                "This is a Strava bug: run again later, and report it to Strava if it persists."
            )


def rejection(activity: Mapping[str, Any], row: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a flattened activity cannot be staged, as (column, reason); None when it can."""
    for name in KEY_COLUMNS:
        if row[name] is None:
            raw = _COLUMNS_BY_NAME[name].source(activity)
            return name, f"no {name}" if raw is None else f"{name} {_preview(raw)} does not fit its column"
    return None


def row_hash(row: Mapping[str, Any]) -> str:
    """Fingerprint the API columns of a row, stable across runs."""
    payload = json.dumps([row.get(c.name) for c in API_COLUMNS], default=str, ensure_ascii=False)
    return hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()


KNOWN_SPORT_TYPES = frozenset(
    "AlpineSki BackcountrySki Badminton Canoeing Crossfit EBikeRide Elliptical EMountainBikeRide "
    "Golf GravelRide Handcycle HighIntensityIntervalTraining Hike IceSkate InlineSkate Kayaking "
    "Kitesurf MountainBikeRide NordicSki Pickleball Pilates Racquetball Ride RockClimbing "
    "RollerSki Rowing Run Sail Skateboard Snowboard Snowshoe Soccer Squash StairStepper "
    "StandUpPaddling Surfing Swim TableTennis Tennis TrailRun Velomobile VirtualRide VirtualRow "
    "VirtualRun Walk WeightTraining Wheelchair Windsurf Workout Yoga".split()
)
"""Strava's documented ``sport_type`` values; another one is reported as drift (and loaded)."""


def unknown_fields(activities: Iterable[Mapping[str, Any]]) -> set[str]:
    """Top-level fields the API sent that the table does not know (kept in the raw pages)."""
    seen: set[str] = set()
    for activity in activities:
        seen.update(k for k in activity if k not in KNOWN_FIELDS)
    return seen


def unknown_sport_types(activities: Iterable[Mapping[str, Any]]) -> set[str]:
    """Sport types the API sent that :data:`KNOWN_SPORT_TYPES` does not list (loaded as sent)."""
    types = {a.get("sport_type") for a in activities}
    return {str(t) for t in types if t is not None and t not in KNOWN_SPORT_TYPES}


def unfit_values(activity: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    """The columns whose value Strava sent does not fit (type, range, finiteness): loaded as NULL."""
    return [c.name for c in API_COLUMNS if row[c.name] is None and c.source(activity) is not None]


def to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an Arrow table of staged rows with the staging file's exact schema."""
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)
