"""What an entity is: one Strava resource declared once (:class:`EntitySpec`), and how its JSON becomes rows.

A spec drives everything the pipeline does with the resource: the request (``path``, ``params``,
``paging``), where its raw responses land in the lake (``lake_prefix``), the columns of its
staging file and table (with the range of values each accepts: :class:`~tasks.warehouse.schema.Column`),
its key and its parent (deletes propagate from a deleted activity to its children), how its
staged rows merge into production (``merge``), and whether Strava can change it after upload
(``mutable``: an immutable resource is never fetched twice).

The declarations themselves are in :mod:`tasks.entities.catalog`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from tasks.warehouse import schema
from tasks.warehouse.schema import Column


class Paging(StrEnum):
    """How a resource's responses come."""

    LIST = "list"
    """A JSON array, ``page``/``per_page`` until a short page (``/athlete/activities``)."""
    SINGLE = "single"
    """One JSON object per request (``/activities/{id}``, ``/gear/{id}``, ``/athletes/{id}/stats``)."""
    KEYED = "keyed"
    """One JSON object keyed by type, each holding a ``data`` array (``/activities/{id}/streams``)."""
    NESTED = "nested"
    """Not requested: rows cut from a list inside another entity's response (``laps`` of a detail)."""


class Merge(StrEnum):
    """How staged rows reach production; every rule touches only the run's athlete."""

    UPSERT_WINDOW = "upsert_window"
    """The activity summary's merge: delete-then-insert by key, deletions marked within the read's window."""
    UPSERT = "upsert"
    """Delete-then-insert by key (one row per key: the newest values win)."""
    REPLACE_CHILDREN = "replace_children"
    """Every row of each staged parent is replaced (a detail's laps, an activity's stream samples)."""
    APPEND = "append"
    """A snapshot per run, kept as history (the athlete's stats)."""
    REPLACE_ATHLETE = "replace_athlete"
    """The athlete's rows are replaced as a whole (zones)."""


@dataclass(frozen=True)
class EntitySpec:
    """One Strava resource, declared once.

    ``columns`` are the table's columns in order; the first ones are the key. ``athlete_id`` is a
    column of every entity (state belongs to its owner). ``parent`` names the entity whose
    deletion removes these rows and ``parent_column`` the column that holds its key.
    ``source`` is, for a NESTED entity, the field of the parent's response that holds its list.
    """

    name: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    merge: Merge
    paging: Paging
    path: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None
    parent_column: str | None = None
    source: str | None = None
    lake_prefix: str = ""
    mutable: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        missing = [k for k in (*self.key, "athlete_id") if k not in names]
        if missing:
            raise ValueError(f"Entity {self.name!r} declares key or athlete column(s) {missing} it has no column for")
        if (self.parent is None) != (self.parent_column is None):
            raise ValueError(f"Entity {self.name!r}: parent and parent_column go together")
        if self.paging is Paging.NESTED and not self.source:
            raise ValueError(f"Entity {self.name!r} is nested: say which field of its parent holds it (source)")
        if not self.lake_prefix:
            object.__setattr__(self, "lake_prefix", self.name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The staging file's schema: the table's columns in order."""
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])

    def table_of(self, metadata: sa.MetaData, name: str | None = None) -> sa.Table:
        """Declare the entity's production table (or a staging table of its shape) on ``metadata``."""
        return sa.Table(
            name or self.table,
            metadata,
            *(
                sa.Column(c.name, c.sql_type, autoincrement=False, nullable=c.name not in self.key)
                for c in self.columns
            ),
            # In the key's order (not the columns'): gear's (athlete_id, id) leads with the athlete.
            sa.PrimaryKeyConstraint(*self.key),
        )


# --- sources: where a column's value is in the resource's JSON ----------------------------------


def at(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """The value at a dotted ``path`` of a JSON object (``segment.id``, ``start_latlng.0``); None when absent."""
    parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))

    def get(item: Mapping[str, Any]) -> Any:
        value: Any = item
        for part in parts:
            if isinstance(part, int):
                if not isinstance(value, list | tuple) or len(value) <= part:
                    return None
            elif not isinstance(value, Mapping):
                return None
            value = value[part] if isinstance(part, int) else value.get(part)
            if value is None:
                return None
        return value

    get.__name__ = f"at_{path}"
    return get


def context(key: str) -> Callable[[Mapping[str, Any]], Any]:
    """A value the pipeline supplies with the item (``activity_id`` of a nested list, ``observed_at``), not the API.

    The flattener passes it in the item under ``"__<key>"``.
    """
    name = f"__{key}"

    def get(item: Mapping[str, Any]) -> Any:
        return item.get(name)

    get.__name__ = f"context_{key}"
    return get


_DOUBLE: sa.Double[float] = sa.Double()


def id_(name: str, path: str | None = None) -> Column:
    """A positive id (BIGINT)."""
    return Column(name, sa.BigInteger(), pa.int64(), at(path or name), *schema.ID_RANGE)


def ctx_id(name: str) -> Column:
    """A positive id the pipeline supplies (the parent activity, the athlete)."""
    return Column(name, sa.BigInteger(), pa.int64(), context(name), *schema.ID_RANGE)


def int_(name: str, path: str | None = None, low: int = schema.INT32[0], high: int = schema.INT32[1]) -> Column:
    """An INTEGER in [low, high]."""
    return Column(name, sa.Integer(), pa.int32(), at(path or name), low, high)


def count(name: str, path: str | None = None) -> Column:
    """A count or a duration: never negative."""
    return int_(name, path, 0)


def float_(
    name: str, path: str | None = None, low: float = -schema.FLOAT_LIMIT, high: float = schema.FLOAT_LIMIT
) -> Column:
    """A DOUBLE in [low, high]."""
    return Column(name, _DOUBLE, pa.float64(), at(path or name), low, high)


def measure(name: str, path: str | None = None) -> Column:
    """A distance or a climb: never negative."""
    return float_(name, path, 0.0)


def bool_(name: str, path: str | None = None) -> Column:
    """A JSON true or false."""
    return Column(name, sa.Boolean(), pa.bool_(), at(path or name))


def text(name: str, path: str | None = None, high: int = schema.TEXT_MAX_BYTES) -> Column:
    """Text of at most ``high`` UTF-8 bytes."""
    return Column(name, schema.TEXT_TYPE, pa.string(), at(path or name), high=high)


def key_text(name: str, path: str | None = None) -> Column:
    """A text key (gear ids such as ``b12345``): short, so every warehouse can index it."""
    return Column(name, sa.String(64), pa.string(), at(path or name), high=64)


def ctx_text(name: str, high: int = 64) -> Column:
    """A short text the pipeline supplies (a stats period, a zone kind)."""
    return Column(name, sa.String(high), pa.string(), context(name), high=high)


def timestamp(name: str, path: str | None = None, *, aware: bool = True) -> Column:
    """An ISO 8601 time, UTC-aware or local (naive)."""
    if aware:
        return Column(
            name,
            sa.TIMESTAMP(timezone=True),
            pa.timestamp("us", tz="UTC"),
            at(path or name),
            schema.EARLIEST,
            schema.LATEST,
        )
    return Column(
        name,
        sa.TIMESTAMP(timezone=False),
        pa.timestamp("us"),
        at(path or name),
        schema.EARLIEST.replace(tzinfo=None),
        schema.LATEST.replace(tzinfo=None),
    )


def ctx_timestamp(name: str) -> Column:
    """A UTC time the pipeline supplies (when the run read the resource)."""
    return Column(
        name, sa.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC"), context(name), schema.EARLIEST, schema.LATEST
    )
