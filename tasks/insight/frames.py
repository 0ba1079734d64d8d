"""DataFrames for notebooks: one athlete's activities, models and validation results.

Read-only and athlete-scoped, for exploring in pandas::

    from tasks.insight import read_activities, read_model

    activities = read_activities("strava-warehouse", athlete_id=12345)
    monthly = read_model("strava-warehouse", "activity_summary_monthly", athlete_id=12345)

``warehouse`` is a Warehouse block or its name. ``athlete_id`` None reads the warehouse's only
athlete (a warehouse with several asks for one, naming them). The load path never uses pandas
(pyarrow serves it); pandas comes with the ``notebook`` (or ``kudos``) extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from blocks.loading import load_block
from blocks.warehouse import Warehouse
from tasks import warehouse as wh

__all__ = ["model_names", "read_activities", "read_model", "read_validation_results"]

_NO_ATHLETE = 0
"""An id no athlete has (Strava's ids are positive): a warehouse without athletes reads as an empty frame."""


def model_names() -> list[str]:
    """The model tables ``read_model`` reads, in build order (``sql/models/``)."""
    return [wh.model_name(path) for path in wh.model_files()]


@contextmanager
def _engine(warehouse: Warehouse | str) -> Iterator[sa.Engine]:
    block = load_block(Warehouse, warehouse) if isinstance(warehouse, str) else warehouse
    with block.engine() as engine:
        yield engine


def _frame(engine: sa.Engine, statement: sa.TextClause, params: dict[str, object]) -> pd.DataFrame:
    """The result as a DataFrame: its columns in order, timestamps as datetime64 (UTC when stored so)."""
    with engine.connect() as conn:
        result = conn.execute(statement, params)
        frame = pd.DataFrame.from_records(result.fetchall(), columns=list(result.keys()), coerce_float=True)
    for column in frame.columns:
        values = frame[column].dropna()
        first = values.iloc[0] if len(values) else None
        if isinstance(first, datetime):  # pd.Timestamp included
            frame[column] = pd.to_datetime(frame[column], utc=first.tzinfo is not None)
    return frame


def _athlete(engine: sa.Engine, athlete_id: int | None) -> int:
    chosen = wh.choose_athlete(engine, athlete_id, option="athlete_id")
    return _NO_ATHLETE if chosen is None else chosen


def read_activities(
    warehouse: Warehouse | str, athlete_id: int | None = None, *, include_deleted: bool = False
) -> pd.DataFrame:
    """One athlete's activities, every column of ``strava_activity_data``, oldest first.

    Activities deleted on Strava (``deleted_at`` set) are left out unless ``include_deleted``.

    Raises:
        ValueError: ``athlete_id`` is None and the warehouse holds several athletes.

    """
    with _engine(warehouse) as engine:
        statement = wh.dialect_for(engine).sql("insight/activities.sql", table=wh.schema.ACTIVITY_TABLE)
        athlete = _athlete(engine, athlete_id)
        return _frame(engine, statement, {"athlete_id": athlete, "include_deleted": include_deleted})


def read_model(warehouse: Warehouse | str, name: str, athlete_id: int | None = None) -> pd.DataFrame:
    """One athlete's rows of the model table ``name`` (see :func:`model_names`), without the athlete column.

    Raises:
        ValueError: ``name`` is not a model, or the warehouse holds several athletes and none was named.
        LookupError: The model was not built yet in this warehouse.

    """
    names = model_names()
    if name not in names:
        raise ValueError(f"No model named {name!r}; the models are: {', '.join(names)}")
    with _engine(warehouse) as engine:
        if name not in wh.existing_models(engine, [name]):
            raise LookupError(
                f"The model {name!r} is not built in this warehouse yet: a run builds the models after its load"
            )
        statement = wh.dialect_for(engine).sql("dashboard/read_athlete_model.sql", model=name)
        frame = _frame(engine, statement, {"athlete_id": _athlete(engine, athlete_id)})
    return frame.drop(columns=["athlete_id"], errors="ignore")


def read_validation_results(warehouse: Warehouse | str, athlete_id: int | None = None) -> pd.DataFrame:
    """One athlete's validation results: a row per check of each merged run, oldest run first."""
    with _engine(warehouse) as engine:
        statement = wh.dialect_for(engine).sql("insight/validation_results.sql", table=wh.VALIDATION_TABLE)
        return _frame(engine, statement, {"athlete_id": _athlete(engine, athlete_id)})
