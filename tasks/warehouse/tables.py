"""Production tables: the warehouse identity row, validation results, creation and migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.warehouse import Warehouse
from tasks.entities.catalog import ENRICHMENT_TABLE, SPECS, enrichment_state_table
from tasks.entities.spec import EntitySpec, Merge
from tasks.logs import run_logger
from tasks.warehouse import schema
from tasks.warehouse.dialects import SqlDialect, dialect_for
from tasks.warehouse.sql_files import read_sql, render, scalar


@contextmanager
def engine_of(warehouse: Warehouse, engine: sa.Engine | None = None) -> Iterator[sa.Engine]:
    """``engine`` when the caller shares the run's engine; else the block's own, disposed after.

    :meth:`~blocks.warehouse.Warehouse.engine` always owns what it opens: a step called alone
    opens one, a step of a run that holds one is handed that one and leaves it open.
    """
    if engine is not None:
        yield engine
        return
    with warehouse.engine() as own:
        yield own


WAREHOUSE_TABLE = "strava_elt_warehouse"
"""One row: the warehouse's identity, a uuid created with the tables (watermarks are keyed by it)."""


def warehouse_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the one-row identity table (a block rename never changes it; a new warehouse has its own)."""
    return sa.Table(
        WAREHOUSE_TABLE,
        metadata,
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )


VALIDATION_TABLE = "strava_validation_results"
"""One row per check per run that reached the merge, written in the merge's transaction."""
DETAIL_MAX_CHARS = 2000
"""A check's detail is cut to this many characters in the table (an error message is far shorter)."""


def validation_results_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the validation results: one row per check of each merged run, scoped by athlete."""
    return sa.Table(
        VALIDATION_TABLE,
        metadata,
        sa.Column("athlete_id", sa.BigInteger(), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("checked_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("check_order", sa.Integer(), nullable=False),  # the manifest's order
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(32), nullable=False),
        sa.Column("value_1", sa.Double()),
        sa.Column("value_2", sa.Double()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", schema.TEXT_TYPE),
        sa.PrimaryKeyConstraint("athlete_id", "run_key", "name"),
    )


MODEL_STATE_TABLE = "strava_elt_model_state"
"""Whether the models are current: an ``inputs`` row whose version every change of production
bumps (in the changing transaction), and a ``built`` row recording the inputs version, the models'
SQL fingerprint and row counts of the last complete build (:mod:`tasks.warehouse.models`)."""


def model_state_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the models' state (no key: two first runs racing to create a row leave two, both read)."""
    return sa.Table(
        MODEL_STATE_TABLE,
        metadata,
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("model_rows", sa.String(4000)),
        sa.Column("recorded_at", sa.TIMESTAMP(timezone=True)),
    )


TABLE_NAMES = {
    "target": schema.ACTIVITY_TABLE,
    "history": schema.STATS_HISTORY_TABLE,
    "identity": WAREHOUSE_TABLE,
    "results": VALIDATION_TABLE,
    "state": MODEL_STATE_TABLE,
    "enrichment": ENRICHMENT_TABLE,
}


def production_changed(conn: sa.Connection) -> None:
    """Mark the models stale: call in the transaction that changes production (merge, deletion, migration)."""
    conn.execute(dialect_for(conn.engine).sql("model_state/inputs_bump.sql", **TABLE_NAMES))


ENTITY_SPECS: tuple[EntitySpec, ...] = tuple(s for s in SPECS.values() if s.merge is not Merge.UPSERT_WINDOW)
"""The enrichment's entities (every spec but the activity summary's), each with its own table."""
ACTIVITY_CHILDREN: tuple[EntitySpec, ...] = tuple(s for s in ENTITY_SPECS if s.parent_column == "activity_id")
"""The entities whose rows belong to one activity: deleted with it (detail, laps, splits, efforts, streams)."""


def entity_indexes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, table, columns) of the indexes the athlete's reads of an activity's rows need.

    Every table whose rows belong to an activity but whose key does not start with
    ``activity_id`` (laps, best and segment efforts are keyed by their own id) gets
    ``(athlete_id, activity_id)``: replacing an activity's children and deleting them with it
    then read the index, not the table.
    """
    return [
        (f"ix_{s.table}_athlete_activity", s.table, ("athlete_id", "activity_id"))
        for s in ACTIVITY_CHILDREN
        if s.key[0] != "activity_id"
    ]


def ensure_tables(engine: sa.Engine) -> str:
    """Create (or migrate) the production, history, identity and validation tables; return the warehouse's id.

    The enrichment's tables (one per entity spec, and :data:`~tasks.entities.catalog.ENRICHMENT_TABLE`)
    are created here too. Idempotent. The identity (32 hex digits) is generated the first time, with the tables.
    """
    metadata = sa.MetaData()
    schema.activity_table(metadata)
    schema.stats_history_table(metadata)
    warehouse_table(metadata)
    validation_results_table(metadata)
    model_state_table(metadata)
    for spec in ENTITY_SPECS:
        spec.table_of(metadata)
    enrichment_state_table(metadata)
    dialect = dialect_for(engine)
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(dialect.sql("model_state/inputs_init.sql", **TABLE_NAMES))
        if migrate_to_double(conn) or _migrate_history(conn, dialect):
            production_changed(conn)
        dialect.ensure_indexes(conn)
        for name, table, columns in entity_indexes():
            dialect.ensure_index(conn, name, table, columns)
        if conn.execute(dialect.sql("load/warehouse_id.sql", **TABLE_NAMES)).scalar() is None:
            new_id = {"warehouse_id": uuid.uuid4().hex, "created_at": datetime.now(UTC)}
            conn.execute(dialect.sql("load/warehouse_id_insert.sql", **TABLE_NAMES), new_id)
    with engine.connect() as conn:  # read after the commit: a concurrent first run sees the same row
        identity = conn.execute(dialect.sql("load/warehouse_id.sql", **TABLE_NAMES)).scalar()
    if not identity:
        raise RuntimeError(f"Table {WAREHOUSE_TABLE} holds no warehouse id after creating one")
    return str(identity)


def read_warehouse_id(engine: sa.Engine) -> str | None:
    """The warehouse's id without creating anything: None when no run has created the tables yet."""
    if not sa.inspect(engine).has_table(WAREHOUSE_TABLE):
        return None
    with engine.connect() as conn:
        identity = conn.execute(dialect_for(engine).sql("load/warehouse_id.sql", **TABLE_NAMES)).scalar()
    return str(identity) if identity else None


def _migrate_history(conn: sa.Connection, dialect: SqlDialect) -> bool:
    """Add ``athlete_id`` to a stats history table from before athlete scoping, filled from production.

    Returns whether it did.
    """
    where = {"table_name": schema.STATS_HISTORY_TABLE, "column_name": "athlete_id"}
    if scalar(conn, dialect.sql("load/column_exists.sql", **TABLE_NAMES), where):
        return False
    conn.execute(dialect.sql("load/add_history_athlete_id.sql", **TABLE_NAMES))
    filled = conn.execute(dialect.sql("load/backfill_history_athlete_id.sql", **TABLE_NAMES)).rowcount
    run_logger(__name__).warning(
        "Migrated %s: added athlete_id, filled for %s earlier observations", schema.STATS_HISTORY_TABLE, filled
    )
    return True


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file: the run stops before it spends any Strava request."""


@task(cache_policy=NO_CACHE)
def open_warehouse(engine: sa.Engine) -> str:
    """Connect, create or migrate the tables and return the warehouse's id, before any Strava request.

    On DuckDB this takes the file's lock; a file another process holds raises :class:`WarehouseLocked`.
    """
    try:
        identity = ensure_tables(engine)
    except sa.exc.DBAPIError as exc:
        message = dialect_for(engine).locked_message(exc)
        if message is None:
            raise
        raise WarehouseLocked(message) from None
    get_run_logger().info("Warehouse %s: tables ready", identity)
    return identity


@dataclass(frozen=True)
class AthleteRows:
    """What production holds for one athlete."""

    total: int
    live: int
    newest_start_date: datetime | None


def athlete_rows(conn: sa.Connection, athlete_id: int) -> AthleteRows:
    """Count the athlete's rows (and the live ones) and find its newest start_date."""
    row = conn.execute(
        dialect_for(conn.engine).sql("load/athlete_rows.sql", **TABLE_NAMES), {"athlete_id": athlete_id}
    ).one()
    total, deleted = int(row[0] or 0), int(row[1] or 0)
    return AthleteRows(total=total, live=total - deleted, newest_start_date=row[2])


def athletes(engine: sa.Engine) -> list[int]:
    """The athletes with live activities in production, in id order."""
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(dialect_for(engine).sql("load/athletes.sql", **TABLE_NAMES))]


def choose_athlete(engine: sa.Engine, athlete_id: int | None, option: str = "--athlete-id") -> int | None:
    """``athlete_id``, or the warehouse's only athlete (None when it holds none).

    Raises:
        ValueError: No athlete was given and the warehouse holds several; the message lists them.

    """
    if athlete_id is not None:
        return int(athlete_id)
    found = athletes(engine)
    if len(found) > 1:
        listed = ", ".join(str(a) for a in found)
        raise ValueError(f"The warehouse holds {len(found)} athletes ({listed}); pass {option} to choose one")
    return found[0] if found else None


def migrate_to_double(conn: sa.Connection) -> list[str]:
    """Widen production's single-precision float columns to DOUBLE; return the columns changed.

    DuckDB compiled the old ``sa.Float()`` to a 4-byte FLOAT (11550.9 was kept as
    11550.900390625); an adopted PostgreSQL table may have ``real`` columns. Widening keeps each
    stored value as it is; a run re-reading an activity stores it exact again (within the
    lookback: the next run; older ones: ``--full-refresh``). Redshift's FLOAT was always double
    precision (and Redshift cannot alter a column's type).
    """
    if not dialect_for(conn.engine).alters_column_types:
        return []
    found = conn.execute(sa.text(read_sql("migrate/single_precision_columns.sql")), {"table": schema.ACTIVITY_TABLE})
    single = [r[0] for r in found]
    preparer = conn.dialect.identifier_preparer
    for column in single:
        statement = render(read_sql("migrate/to_double.sql"), preparer, table=schema.ACTIVITY_TABLE, column=column)
        try:
            conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            raise RuntimeError(
                f"Could not widen {schema.ACTIVITY_TABLE}.{column} from single to double precision ({exc.orig}). "
                "A column that an index or view depends on cannot change type: drop those, run again, then "
                "recreate them."
            ) from exc
    if single:
        run_logger(__name__).warning(
            "Widened %s.%s from single to double precision; values stored before stay rounded "
            "until a run re-reads them (run once with --full-refresh to restore them all)",
            schema.ACTIVITY_TABLE,
            ", ".join(single),
        )
    return single
