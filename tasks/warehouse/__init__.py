"""The warehouse: tables, the per-run staging table, the load, the merge, models and SQL files.

One seam, :class:`SqlDialect`, holds what truly differs between DuckDB, PostgreSQL and
Redshift (creating a staging table, bulk-loading a file, pointing a session at a schema).
Everything else is shared SQL from the ``sql`` package, with values bound and identifiers
quoted by :func:`render`.

- :mod:`~tasks.warehouse.schema` the one column list (DDL, Arrow, flattening, value ranges)
- :mod:`~tasks.warehouse.sql_files` reading and rendering SQL files
- :mod:`~tasks.warehouse.dialects` DuckDB, PostgreSQL, Redshift
- :mod:`~tasks.warehouse.tables` production tables, the warehouse's identity, migrations
- :mod:`~tasks.warehouse.merge` staging, load and the merge in one transaction
- :mod:`~tasks.warehouse.models` SQL models rebuilt after the merge
"""

from __future__ import annotations

from tasks.warehouse import schema
from tasks.warehouse.dialects import (
    DuckDBDialect,
    PostgresDialect,
    RedshiftCopyError,
    RedshiftDialect,
    SqlDialect,
    dialect_for,
    staging_batches,
)
from tasks.warehouse.merge import (
    MergeResult,
    drop_staging,
    load_staging,
    mark_activity_deleted,
    merge_staging,
    prepare_staging,
    validation_rows,
)
from tasks.warehouse.models import (
    ModelState,
    build_model,
    existing_models,
    model_files,
    model_name,
    models_fingerprint,
    read_model_state,
    record_models_built,
)
from tasks.warehouse.sql_files import (
    RUN_KEY_TIME_FORMAT,
    SQL_DIR,
    STAGING_PREFIX,
    column_list,
    package_dir,
    read_sql,
    render,
    scalar,
    staging_name,
)
from tasks.warehouse.tables import (
    MODEL_STATE_TABLE,
    VALIDATION_TABLE,
    WAREHOUSE_TABLE,
    AthleteRows,
    WarehouseLocked,
    athlete_rows,
    athletes,
    choose_athlete,
    engine_of,
    ensure_tables,
    migrate_to_double,
    model_state_table,
    open_warehouse,
    read_warehouse_id,
    validation_results_table,
    warehouse_table,
)

__all__ = [
    "MODEL_STATE_TABLE",
    "RUN_KEY_TIME_FORMAT",
    "SQL_DIR",
    "STAGING_PREFIX",
    "VALIDATION_TABLE",
    "WAREHOUSE_TABLE",
    "AthleteRows",
    "DuckDBDialect",
    "MergeResult",
    "ModelState",
    "PostgresDialect",
    "RedshiftCopyError",
    "RedshiftDialect",
    "SqlDialect",
    "WarehouseLocked",
    "athlete_rows",
    "athletes",
    "build_model",
    "choose_athlete",
    "column_list",
    "dialect_for",
    "drop_staging",
    "engine_of",
    "ensure_tables",
    "existing_models",
    "load_staging",
    "mark_activity_deleted",
    "merge_staging",
    "migrate_to_double",
    "model_files",
    "model_name",
    "model_state_table",
    "models_fingerprint",
    "open_warehouse",
    "package_dir",
    "prepare_staging",
    "read_model_state",
    "read_sql",
    "read_warehouse_id",
    "record_models_built",
    "render",
    "scalar",
    "schema",
    "staging_batches",
    "staging_name",
    "validation_results_table",
    "validation_rows",
    "warehouse_table",
]
