"""The warehouse contract: the production table, and how one API activity becomes one row.

Declared once here and used everywhere: the DDL (compiled per dialect by SQLAlchemy), the
Parquet staging file's Arrow schema, and the flattening of Strava's SummaryActivity JSON.
Tables are declared explicitly (duckdb-engine reflection is broken under SQLAlchemy 2.1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

ACTIVITY_TABLE = "strava_activity_data"
STATS_HISTORY_TABLE = "strava_activity_stats_history"

# Redshift turns TEXT into VARCHAR(256); polylines and names need more.
_TEXT = sa.Text().with_variant(sa.String(65535), "redshift")


@dataclass(frozen=True)
class Column:
    """One production column: its name, SQL type, Arrow type and where it comes from."""

    name: str
    sql_type: Any
    arrow_type: pa.DataType
    source: Callable[[Mapping[str, Any]], Any]


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
    def get(a: Mapping[str, Any]) -> Any:
        value = a.get(key)
        return None if value is None else str(value)

    return get


def _int(name: str) -> Column:
    return Column(name, sa.Integer(), pa.int32(), _field(name))


def _float(name: str) -> Column:
    return Column(name, sa.Float(), pa.float64(), _field(name))


def _bool(name: str) -> Column:
    return Column(name, sa.Boolean(), pa.bool_(), _field(name))


def _text(name: str, source: Callable[[Mapping[str, Any]], Any] | None = None) -> Column:
    return Column(name, _TEXT, pa.string(), source or _field(name))


# Columns named as the API's fields, flattened. Order is the table's column order.
API_COLUMNS: tuple[Column, ...] = (
    Column("id", sa.BigInteger(), pa.int64(), _field("id")),
    _int("resource_state"),
    Column("athlete_id", sa.BigInteger(), pa.int64(), _nested("athlete", "id")),
    _text("name"),
    _float("distance"),
    _int("moving_time"),
    _int("elapsed_time"),
    _float("total_elevation_gain"),
    _float("elev_high"),
    _float("elev_low"),
    _text("type"),
    _text("sport_type"),
    _int("workout_type"),
    Column("start_date", sa.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC"), _field("start_date")),
    Column("start_date_local", sa.TIMESTAMP(timezone=False), pa.timestamp("us"), _field("start_date_local")),
    _text("timezone"),
    _float("utc_offset"),
    _text("location_city"),
    _text("location_state"),
    _text("location_country"),
    _int("achievement_count"),
    _int("kudos_count"),
    _int("comment_count"),
    _int("athlete_count"),
    _int("photo_count"),
    _int("total_photo_count"),
    _int("pr_count"),
    _bool("trainer"),
    _bool("commute"),
    _bool("manual"),
    _bool("private"),
    _text("visibility"),
    _bool("flagged"),
    _bool("has_kudoed"),
    _bool("hide_from_home"),
    _text("gear_id"),
    Column("start_lat", sa.Float(), pa.float64(), _latlng("start_latlng", 0)),
    Column("start_lng", sa.Float(), pa.float64(), _latlng("start_latlng", 1)),
    Column("end_lat", sa.Float(), pa.float64(), _latlng("end_latlng", 0)),
    Column("end_lng", sa.Float(), pa.float64(), _latlng("end_latlng", 1)),
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
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if aware:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.replace(tzinfo=None)


def _coerce(column: Column, value: Any) -> Any:
    """Coerce one value to the column's type; a value that does not fit becomes None."""
    if value is None:
        return None
    t = column.arrow_type
    try:
        if pa.types.is_timestamp(t):
            return _parse_ts(value, aware=t.tz is not None)
        if pa.types.is_boolean(t):
            return value if isinstance(value, bool) else None
        if pa.types.is_integer(t):
            if isinstance(value, bool):
                return None
            return int(value) if float(value).is_integer() else None
        if pa.types.is_floating(t):
            return None if isinstance(value, bool) else float(value)
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError, OverflowError):
        return None


def flatten_activity(activity: Mapping[str, Any], extracted_at: datetime) -> dict[str, Any]:
    """Turn one SummaryActivity into a production row (values typed, unknown fields dropped)."""
    row = {c.name: _coerce(c, c.source(activity)) for c in API_COLUMNS}
    row["row_hash"] = row_hash(row)
    row["extracted_at"] = extracted_at
    return row


def row_hash(row: Mapping[str, Any]) -> str:
    """Fingerprint the API columns of a row, stable across runs."""
    payload = json.dumps([row.get(c.name) for c in API_COLUMNS], default=str, ensure_ascii=False)
    return hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()


def unknown_fields(activities: Iterable[Mapping[str, Any]]) -> set[str]:
    """Top-level fields the API sent that the table does not know (kept in the raw pages)."""
    seen: set[str] = set()
    for activity in activities:
        seen.update(k for k in activity if k not in KNOWN_FIELDS)
    return seen


def to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an Arrow table of staged rows with the staging file's exact schema."""
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)
