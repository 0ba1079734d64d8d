"""The checks role: PostgreSQL and Redshift run the gate as a role that can only SELECT the project's tables.

The Warehouse block's ``checks_role`` names it. Each check's read-only transaction then
switches to it (``SET LOCAL ROLE`` on PostgreSQL; ``SET LOCAL SESSION AUTHORIZATION`` on
Redshift, which needs a superuser loader), so a check that got past the guard still cannot read
a table outside the project, call a function the role may not execute, or write. The role
holds SELECT on the project's tables (the summary's, the enrichment's: detail, laps, splits,
efforts, streams, gear, stats, zones and ``strava_enrichment_state``, the results' and the
models') and on each run's staging table (granted by the run, which owns it), and USAGE on the
schema: nothing else. :func:`create_checks_role` makes it, with every project table created
first so that its grants are complete from the start.

What differs between warehouses (how the role is made and switched to, and which have one at
all) is the dialect class's :attr:`~tasks.warehouse.dialects.SqlDialect.checks_role_sql`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from tasks import warehouse as wh
from tasks.entities.catalog import ENRICHMENT_TABLE
from tasks.logs import run_logger
from tasks.warehouse.dialects import ChecksRoleSql, dialect_classes
from tasks.warehouse.schema import ACTIVITY_TABLE, STAGED_COLUMNS, STATS_HISTORY_TABLE
from tasks.warehouse.tables import ENTITY_SPECS, MODEL_STATE_TABLE, VALIDATION_TABLE, WAREHOUSE_TABLE

__all__ = [
    "DEFAULT_CHECKS_ROLE",
    "ENRICHMENT_TABLES",
    "ROLE_DIALECTS",
    "create_checks_role",
    "create_project_tables",
    "ensure_checks_grants",
    "grant_checks_role",
    "project_tables",
    "set_role_sql",
]

DEFAULT_CHECKS_ROLE = "strava_elt_checks"
# The warehouses whose dialect class declares a checks role (SQLAlchemy backend names).
ROLE_DIALECTS = tuple(name for name, cls in dialect_classes().items() if cls.checks_role_sql is not None)
_CORE_TABLES = (ACTIVITY_TABLE, STATS_HISTORY_TABLE, VALIDATION_TABLE, WAREHOUSE_TABLE, MODEL_STATE_TABLE)
ENRICHMENT_TABLES = (*(s.table for s in ENTITY_SPECS), ENRICHMENT_TABLE)
"""The enrichment's tables: one per entity spec (detail, laps, splits, efforts, streams, gear,
stats, zones) and the state table. Its checks read them (sql/validation/entities/)."""


def _role_sql(conn: sa.Connection | sa.Engine) -> ChecksRoleSql:
    """The checks-role SQL files of the connection's warehouse; a clear error where it has none."""
    name = conn.dialect.name
    cls = dialect_classes().get(name)
    role_sql = None if cls is None else cls.checks_role_sql
    if role_sql is None:
        having = " and ".join(dialect_classes()[n].title for n in ROLE_DIALECTS)
        title = name if cls is None else cls.title
        raise ValueError(
            f"a checks role is for {having}; this warehouse is {name}: leave the Warehouse "
            f"block's checks_role empty ({title} checks rely on the guard and the read-only transaction)"
        )
    return role_sql


def _text(conn: sa.Connection | sa.Engine, relative: str, **identifiers: str) -> sa.TextClause:
    """``sql/<relative>`` with its identifiers quoted for the connection's warehouse."""
    text, preparer = wh.read_sql(relative), conn.dialect.identifier_preparer
    return sa.text(wh.render(text, preparer, columns=STAGED_COLUMNS, **identifiers))


def set_role_sql(conn: sa.Connection | sa.Engine, role: str) -> sa.TextClause:
    """The statement that makes the rest of the transaction run as ``role`` on this warehouse."""
    return _text(conn, _role_sql(conn).set_role, role=role)


def project_tables(conn: sa.Connection) -> list[str]:
    """The project's tables that exist in the connection's schema: production, history, results, enrichment, models."""
    from tasks.warehouse.models import model_files, model_name

    names = list(dict.fromkeys([*_CORE_TABLES, *ENRICHMENT_TABLES, *(model_name(p) for p in model_files())]))
    schema = _schema(conn)
    inspector = sa.inspect(conn)
    return [name for name in names if inspector.has_table(name, schema=schema)]


def _schema(conn: sa.Connection) -> str:
    return str(conn.execute(_text(conn, "checks_role/current_schema.sql")).scalar())


def grant_checks_role(conn: sa.Connection, role: str, tables: Iterable[str]) -> list[str]:
    """Grant ``role`` SELECT on ``tables`` of the connection's schema where it lacks it; return those granted.

    What the role holds already (``has_table_privilege``) is skipped, so a run after the first
    grants nothing and takes no lock. When something is missing, the dialect's lock
    (PostgreSQL: a transaction-level advisory lock) is taken first and the privileges read
    again: a session that was granting the same tables meanwhile has committed, and what it
    granted is not granted twice. Two sessions granting on one table at once is what fails
    with ``tuple concurrently updated``; :func:`ensure_checks_grants` retries that once.
    """
    role_sql = _role_sql(conn)
    schema = _schema(conn)
    preparer = conn.dialect.identifier_preparer
    qualified = {table: f"{preparer.quote(schema)}.{preparer.quote(table)}" for table in dict.fromkeys(tables)}

    def lacking(names: Iterable[str]) -> list[str]:
        check = _text(conn, "checks_role/can_select.sql")
        return [t for t in names if not conn.execute(check, {"role": role, "table": qualified[t]}).scalar()]

    missing = lacking(qualified)
    if missing and role_sql.lock is not None:
        conn.execute(_text(conn, role_sql.lock))
        if role_sql.lock_table is not None:
            for table in missing:
                conn.execute(_text(conn, role_sql.lock_table, schema=schema, table=table))
        missing = lacking(missing)
    for table in missing:
        conn.execute(_text(conn, "checks_role/grant_select.sql", schema=schema, table=table, role=role))
    return missing


_RACES = ("tuple concurrently updated", "tuple concurrently deleted")
"""PostgreSQL's errors when another session changed the same catalog row (a table's ACL) first."""


def ensure_checks_grants(engine: sa.Engine, role: str, extra: Iterable[str] = ()) -> list[str]:
    """Grant ``role`` SELECT on the project's tables and ``extra`` (a run's staging table) in one transaction.

    Retried once, in a new transaction, when another session changed one of those tables' ACL at
    the same moment (``tuple concurrently updated``: a session outside the project's lock, or a
    warehouse without one); the retry reads the privileges again and grants only what is still
    missing. Any other error, or the race twice, is raised. Returns the tables granted.
    """
    extra = list(extra)
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                return grant_checks_role(conn, role, [*project_tables(conn), *extra])
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not any(race in str(exc.orig) for race in _RACES):
                raise
            run_logger(__name__).warning(
                "Granting SELECT to the checks role %s raced another session (%s): retried once",
                role, str(exc.orig).strip().splitlines()[0],
            )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def create_project_tables(engine: sa.Engine, checks_role: str | None = None) -> list[str]:
    """Create (or migrate) the project's tables; with ``checks_role``, grant it SELECT on those it cannot read yet.

    The enrichment calls it before its first batch (flows/enrich.py), so the checks role reads
    the enrichment's tables from the moment they exist (a run after the first grants nothing and
    takes no lock). Returns the tables granted.
    """
    wh.ensure_tables(engine)
    return ensure_checks_grants(engine, checks_role) if checks_role else []


def create_checks_role(warehouse_block: str, role: str = DEFAULT_CHECKS_ROLE) -> str:
    """Create ``role`` (if missing) with SELECT on the project's tables only; name it in the block.

    The project's tables are created first (:func:`tasks.warehouse.ensure_tables`: the
    summary's, the enrichment's, the results'), so the grants cover them all up front. The
    dialect's ``checks_role_sql`` makes the role: PostgreSQL ``CREATE ROLE ... NOLOGIN`` and
    membership for the connecting user (so it may ``SET ROLE``); Redshift ``CREATE USER ...
    PASSWORD DISABLE``. Then USAGE on the schema, SELECT on the project's tables (the models'
    are granted by the run that builds them, each run's staging table by that run), and the
    Warehouse block's ``checks_role`` set and saved. Needs a connecting user that may create
    roles. Returns what was done, for people.
    """
    from blocks.loading import load_block
    from blocks.warehouse import Warehouse

    warehouse = load_block(Warehouse, warehouse_block)
    with warehouse.engine() as engine:
        _role_sql(engine)  # a warehouse without a checks role is refused before anything is created
        wh.ensure_tables(engine)
        with engine.begin() as conn:
            exists, schema, granted = _create_and_grant(conn, role)
    warehouse.checks_role = role
    warehouse.save(warehouse_block, overwrite=True)
    return (
        f"Checks role {role!r} {'existed' if exists else 'created'} in schema {schema!r}: SELECT on "
        f"{', '.join(granted) or 'no new tables'}; block {warehouse_block!r} runs its checks as it."
    )


def _create_and_grant(conn: sa.Connection, role: str) -> tuple[bool, str, list[str]]:
    """Create ``role`` if missing, let it use the schema and read the project's tables: (existed, schema, granted)."""
    role_sql = _role_sql(conn)
    exists = conn.execute(_text(conn, role_sql.exists), {"role": role}).scalar()
    if not exists:
        conn.execute(_text(conn, role_sql.create, role=role))
    if role_sql.member is not None:
        conn.execute(_text(conn, role_sql.member, role=role))
    schema = _schema(conn)
    conn.execute(_text(conn, "checks_role/grant_usage.sql", schema=schema, role=role))
    granted = grant_checks_role(conn, role, project_tables(conn))
    return bool(exists), schema, granted
