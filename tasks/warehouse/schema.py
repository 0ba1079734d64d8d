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
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

ACTIVITY_TABLE = "strava_activity_data"
STATS_HISTORY_TABLE = "strava_activity_stats_history"

TEXT_MAX_BYTES = 65535
"""The longest text a column accepts, in UTF-8 bytes: Redshift's VARCHAR(65535) holds no more."""

# Redshift turns TEXT into VARCHAR(256); polylines and names need more.
TEXT_TYPE = sa.Text().with_variant(sa.String(TEXT_MAX_BYTES), "redshift")
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

    @cached_property
    def coercer(self) -> Callable[[Any], Any]:
        """The column's rule for a value that is not None, chosen once from its type (see :func:`coerce`)."""
        return _coercer(self)


def _pipeline(_: Mapping[str, Any]) -> Any:
    return None  # set by the pipeline, not read from the API


@dataclass(frozen=True)
class _Field:
    """The API's top-level field ``key`` (:func:`flatten_activity` reads it with ``dict.get`` directly)."""

    key: str

    def __call__(self, activity: Mapping[str, Any]) -> Any:
        return activity.get(self.key)


def _field(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return _Field(key)


def _nested(key: str, sub: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(a: Mapping[str, Any]) -> Any:
        inner = a.get(key)
        return inner.get(sub) if isinstance(inner, dict | Mapping) else None  # dict: skips the slower ABC check

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
    return Column(name, TEXT_TYPE, pa.string(), source or _field(name), high=TEXT_MAX_BYTES)


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


Coercer = Callable[[Any], Any]
"""One column's rule for one value (not None): the value as the column stores it, or None if it does not fit."""

_UNFIT = (TypeError, ValueError, OverflowError)
"""What converting a value of the right JSON type can still raise: the value does not fit (None)."""


def _text_rule(max_bytes: int) -> Coercer:
    def text(value: Any) -> str | None:
        """Text every warehouse stores byte-exact: valid UTF-8, no NUL (PostgreSQL refuses it), not too long."""
        if not isinstance(value, str) or "\x00" in value:
            return None
        if value.isascii():  # one byte a character: no need to encode
            return value if len(value) <= max_bytes else None
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate, e.g. JSON "\ud800"
            return None
        return value if size <= max_bytes else None

    return text


def _boolean(value: Any) -> bool | None:
    """A JSON true or false (a number or text is not a boolean)."""
    return value if isinstance(value, bool) else None


def _integer_rule(low: int, high: int) -> Coercer:
    def integer(value: Any) -> int | None:
        """A JSON number with an integral value (5.0 is 5) in [low, high]; a bool or text is not a number."""
        if type(value) is int:  # most values: nothing to convert
            return value if low <= value <= high else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = int(value) if float(value).is_integer() else None  # NaN and infinities are not integral
        except _UNFIT:  # an int past float's range, e.g. 2**1024
            return None
        return number if number is not None and low <= number <= high else None

    return integer


def _floating_rule(low: float, high: float) -> Coercer:
    def floating(value: Any) -> float | None:
        """A JSON number as a finite float in [low, high]; a bool or text is not a number."""
        if type(value) is float:  # most values: nothing to convert (NaN and infinities are out of range)
            return value if low <= value <= high else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except _UNFIT:  # an int past float's range, e.g. 10**400
            return None
        return number if math.isfinite(number) and low <= number <= high else None

    return floating


def _timestamp_rule(low: datetime | None, high: datetime | None, *, aware: bool) -> Coercer:
    def timestamp(value: Any) -> datetime | None:
        """An ISO 8601 text (or a datetime) as a UTC-aware or naive datetime, in [low, high] if bounded."""
        try:
            moment = _parse_ts(value, aware=aware)
        except _UNFIT:  # garbage text, or past the calendar once moved to UTC
            return None
        if moment is None or low is None or high is None:
            return moment
        return moment if low <= moment <= high else None

    return timestamp


def _coercer(column: Column) -> Coercer:
    """Choose the column's rule once, from its Arrow type: one rule per kind of column, with its range."""
    t, low, high = column.arrow_type, column.low, column.high
    bounded = low is not None and high is not None
    if pa.types.is_string(t):  # the range of text is its length in UTF-8 bytes
        return _text_rule(high if high is not None else TEXT_MAX_BYTES)
    if pa.types.is_timestamp(t) and (bounded or low is high is None):
        return _timestamp_rule(low, high, aware=t.tz is not None)
    if pa.types.is_boolean(t) and low is high is None:
        return _boolean
    if pa.types.is_integer(t) and bounded:
        return _integer_rule(low, high)
    if pa.types.is_floating(t) and bounded and math.isfinite(low) and math.isfinite(high):
        return _floating_rule(low, high)
    raise ValueError(
        f"Column {column.name!r} ({t}) declares low={low!r}, high={high!r}: a number needs both bounds "
        "(finite), a timestamp both or none, a boolean none. Fix its declaration in tasks/warehouse/schema.py."
    )


def coerce(column: Column, value: Any) -> Any:
    """Coerce one value to the column's type; a value of another type, non-finite or out of range is None."""
    return None if value is None else column.coercer(value)


_FLATTENED: tuple[tuple[str, str | None, Callable[[Mapping[str, Any]], Any], Coercer], ...] = tuple(
    (c.name, c.source.key if isinstance(c.source, _Field) else None, c.source, c.coercer) for c in API_COLUMNS
)
"""Each API column's name, top-level field (None: read by its source), source and rule, looked up once."""


def flatten_activity(activity: Mapping[str, Any], extracted_at: datetime) -> dict[str, Any]:
    """Turn one SummaryActivity into a production row (values typed, unknown fields dropped)."""
    get = activity.get
    row: dict[str, Any] = {}
    for name, key, source, coerce_value in _FLATTENED:
        value = get(key) if key is not None else source(activity)
        row[name] = None if value is None else coerce_value(value)
    row["row_hash"] = _hash_values(list(row.values()))  # row_hash(row): the row holds the API columns, in order
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


_API_NAMES: tuple[str, ...] = tuple(c.name for c in API_COLUMNS)
_HASH_JSON = json.JSONEncoder(default=str, ensure_ascii=False)  # json.dumps(..., default=str, ensure_ascii=False)


def row_hash(row: Mapping[str, Any]) -> str:
    """Fingerprint the API columns of a row, stable across runs."""
    return _hash_values([row.get(name) for name in _API_NAMES])


def _hash_values(values: list[Any]) -> str:
    """The fingerprint of the API columns' values, in the table's order."""
    payload = _HASH_JSON.encode(values)
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
    get = activity.get
    return [
        name
        for name, key, source, _ in _FLATTENED
        if row[name] is None and (get(key) if key is not None else source(activity)) is not None
    ]


def to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an Arrow table of staged rows with the staging file's exact schema."""
    with arrow_without_pandas():
        return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


@contextmanager
def arrow_without_pandas() -> Iterator[None]:
    """Convert Python values to Arrow without pyarrow importing pandas to look for its types.

    pyarrow's first conversion of a Python list in a process (``pa.array``, ``from_pylist``)
    asks whether the list is a pandas object, and to know pandas' types it imports pandas when
    it is installed (the ``kudos`` and ``notebook`` extras): about 0.2 s and 40 MB of every
    run, for rows that are plain dicts. Here that first look finds no pandas (``import
    pandas`` fails at once while the block runs) and pyarrow remembers that, so later
    conversions to a given type skip the look too (one that infers the types still imports
    pandas, in pyarrow's C++ part). pyarrow's explicit pandas calls (``to_pandas``,
    ``from_pandas``) import pandas when used, as before, and nothing changes once pandas was
    imported. docs/performance.md has the figures.
    """
    if "pandas" in sys.modules or any(isinstance(f, _NoPandas) for f in sys.meta_path):
        yield  # imported already, or blocked by an enclosing call
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """An import finder that refuses pandas: ``import pandas`` raises ImportError at once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError(f"{name} is not imported for a conversion of plain values (arrow_without_pandas)")
