"""What the main flow hands down to its subflows: the blocks it loaded once, the warehouse's id, its engine.

The subflows (``extract_activities``, ``load_activities``, ``build_models``) take block names as
parameters, so the UI shows what each ran on and each runs alone too. Called from the main flow,
they use what the main flow already holds instead of loading the blocks again: the main flow
sets them here (a context variable, so only its own run and its subflows see them) and each
subflow asks for a block by its name; a name the main flow did not hand down is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from blocks.loading import load_block
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from tasks.lake import Lake, load_lake


@dataclass(frozen=True)
class Handed:
    """The main flow's loaded blocks (by name), its warehouse's id and, after the extract, its engine."""

    strava_block: str | None = None
    credentials: StravaCredentials | None = None
    lake_block: str | None = None
    lake: Lake | None = None
    warehouse_block: str | None = None
    warehouse: Warehouse | None = None
    warehouse_id: str | None = None
    engine: sa.Engine | None = None


_HANDED: ContextVar[Handed] = ContextVar("strava_elt_handed", default=Handed())  # noqa: B039 - frozen


@contextmanager
def hand_down(**values: Any) -> Iterator[Handed]:
    """Hand ``values`` (fields of :class:`Handed`) down to the subflows called inside the block."""
    token = _HANDED.set(replace(_HANDED.get(), **values))
    try:
        yield _HANDED.get()
    finally:
        _HANDED.reset(token)


def credentials(name: str) -> StravaCredentials:
    """The StravaCredentials block ``name``: the main flow's, or loaded."""
    handed = _HANDED.get()
    if handed.credentials is not None and handed.strava_block == name:
        return handed.credentials
    return load_block(StravaCredentials, name)


def lake(name: str) -> Lake:
    """The lake block ``name``: the main flow's, or loaded."""
    handed = _HANDED.get()
    if handed.lake is not None and handed.lake_block == name:
        return handed.lake
    return load_lake(name)


def warehouse(name: str) -> Warehouse:
    """The Warehouse block ``name``: the main flow's, or loaded."""
    handed = _HANDED.get()
    if handed.warehouse is not None and handed.warehouse_block == name:
        return handed.warehouse
    return load_block(Warehouse, name)


def warehouse_id(name: str) -> str | None:
    """The id of warehouse ``name`` when the main flow opened it (its tables exist); else None."""
    handed = _HANDED.get()
    return handed.warehouse_id if handed.warehouse_block == name else None


def engine(name: str) -> sa.Engine | None:
    """The main flow's engine on warehouse ``name``, if it holds one (the subflow must not dispose it)."""
    handed = _HANDED.get()
    return handed.engine if handed.warehouse_block == name else None
