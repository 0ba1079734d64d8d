"""The enrichment's warehouse side: a :class:`~tasks.entities.batch.StagedBatch` loaded, checked and merged.

:func:`load_batch` does for the entities what the summary's load does for activities: per
entity a per-run staging table filled from its Parquet file in the lake
(:meth:`~tasks.warehouse.dialects.SqlDialect.load_file`: Redshift COPYs it from S3), then the
gate (:data:`CHECKS_DIR`: a halt check per staged entity, warn checks on the athlete's
production), then ONE transaction that merges every entity by its spec's rule and upserts the
enrichment state rows, then the staging tables are dropped. A halt merges nothing: the raw and
staging files stay in the lake. Every statement reads or writes the batch's athlete's rows only.

The rules (:class:`~tasks.entities.spec.Merge`), all in ``sql/entities/``:

- ``UPSERT``: the athlete's rows whose key is staged are deleted, the staged rows inserted;
  "updated" counts the keys whose ``row_hash`` changed (every existing key without a hash).
- ``REPLACE_CHILDREN``: every row of the batch's ``parents[entity]`` (and of every staged row's
  parent) is deleted, by the parents' keys, the staged rows inserted: children a parent no longer has go.
- ``APPEND``: delete-then-insert by key, and the key holds ``observed_at``: a run's snapshot is
  added to the history, the same run loaded again replaces its own rows.
- ``REPLACE_ATHLETE``: the athlete's rows are replaced as a whole.

Docs: docs/entities.md ("Merge and checks").
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tasks import warehouse as wh
from tasks.entities.batch import StagedBatch
from tasks.entities.catalog import ENRICHMENT_TABLE, SPECS, enrichment_state_table
from tasks.entities.spec import EntitySpec, Merge
from tasks.logs import run_logger
from tasks.quality.manifest import (
    OPERATORS,
    PASSED,
    SEVERITIES,
    Check,
    CheckResult,
    ValidationConfigError,
    refuse_unsafe_file,
    validation_dir,
)
from tasks.quality.roles import grant_checks_role, project_tables
from tasks.quality.runner import enforce_gate, run_check
from tasks.warehouse.merge import delete_children_of_deleted, sweep_staging
from tasks.warehouse.sql_files import read_sql, render, scalar
from tasks.warehouse.tables import ENTITY_SPECS, TABLE_NAMES, ensure_tables, production_changed

if TYPE_CHECKING:
    from tasks.lake import Lake

__all__ = ["CHECKS_DIR", "EntityCounts", "EntityLoad", "entity_checks", "entity_staging_name", "load_batch"]

CHECKS_DIR = "entities"
"""The entity checks' manifest folder, under the validation folder (``sql/validation/entities``)."""
CHECK_ORDER_OFFSET = 1000
"""Entity check results are recorded after the summary's (``check_order`` from here)."""
PARENTS_CHUNK = 500
"""Parent keys per DELETE of REPLACE_CHILDREN (a statement stays small on every warehouse)."""
STATE_COLUMNS: tuple[str, ...] = tuple(c.name for c in enrichment_state_table(sa.MetaData()).columns)
_MAX_IDENTIFIER = 63  # PostgreSQL's limit (Redshift's is 127)


@dataclass(frozen=True)
class EntityCounts:
    """What one entity's merge did to the athlete's production rows.

    ``inserted``: staged keys production did not hold; ``updated``: staged keys it held with other
    values (by ``row_hash``; for an entity without one, every key it held: replaced);
    ``unchanged``: the rest of the staged keys; ``deleted``: rows that went and were not staged
    again (a parent's stale children, an athlete's replaced rows).
    """

    staged: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)


@dataclass(frozen=True)
class EntityLoad:
    """What :func:`load_batch` merged: counts per entity, state rows upserted, the gate's results."""

    athlete_id: int
    run_key: str
    entities: Mapping[str, EntityCounts] = field(default_factory=dict)
    state_rows: int = 0
    checks: tuple[CheckResult, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether production changed (then the models were marked stale in the same transaction)."""
        return any(c.changed for c in self.entities.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for summaries and artifacts."""
        return {
            "athlete_id": self.athlete_id,
            "run_key": self.run_key,
            "entities": {name: asdict(c) for name, c in self.entities.items()},
            "state_rows": self.state_rows,
            "checks": [c.as_dict() for c in self.checks],
        }


# ------------------------------------------------------------------ names and SQL


def _short(name: str) -> str:
    return "_".join(word[:3] for word in name.split("_"))


_SHORT = {name: _short(name) for name in SPECS}
if len(set(_SHORT.values())) != len(_SHORT):  # pragma: no cover - a catalog edit that must rename
    raise RuntimeError(f"two entities share a staging suffix: {_SHORT}")


def entity_staging_name(run_key: str, entity: str) -> str:
    """The per-run staging table of ``entity``: the summary's staging name and a short suffix.

    It starts like every staging table (:data:`~tasks.warehouse.sql_files.STAGING_PREFIX` and the
    run key), so a run that crashed leaves tables the next runs sweep by age. A run key too long
    for that (PostgreSQL names hold 63 characters) keeps its start (the run's time, which the
    sweep reads) and a digest of the rest.
    """
    name = f"{wh.staging_name(run_key)}_{_SHORT[entity]}"
    if len(name) > _MAX_IDENTIFIER:
        digest = hashlib.sha256(run_key.encode()).hexdigest()[:8]
        name = f"{wh.staging_name(run_key[:15])}_{digest}_{_SHORT[entity]}"
    return name


def _key_match(preparer: sa.sql.compiler.IdentifierPreparer, spec: EntitySpec, target: str) -> str:
    """``target.k = s.k AND ...`` over the spec's key (quoted identifiers only)."""
    q = preparer.quote
    return " AND ".join(f"{q(target)}.{q(k)} = s.{q(k)}" for k in spec.key)


def _entity_sql(
    dialect: wh.SqlDialect, relative: str, spec: EntitySpec, staging: str | None = None, **identifiers: str
) -> sa.TextClause:
    """``sql/entities/<relative>`` for ``spec``: its table, staging table, columns and key filled in, quoted."""
    text = read_sql(f"entities/{relative}")
    if "{key_match}" in text:
        text = text.replace("{key_match}", _key_match(dialect.preparer, spec, spec.table))
    names = {"target": spec.table, **({"staging": staging} if staging else {}), **identifiers}
    if spec.parent_column:
        names.setdefault("parent_column", spec.parent_column)
    statement = sa.text(render(text, dialect.preparer, columns=spec.columns, **names))
    if ":parents" in text:
        statement = statement.bindparams(sa.bindparam("parents", expanding=True))
    return statement


def _state_sql(dialect: wh.SqlDialect, relative: str) -> sa.TextClause:
    statement = sa.text(render(read_sql(f"entities/{relative}"), dialect.preparer, state=ENRICHMENT_TABLE))
    if ":activity_ids" in statement.text:
        statement = statement.bindparams(sa.bindparam("activity_ids", expanding=True))
    return statement


# ------------------------------------------------------------------ the checks


@dataclass(frozen=True)
class EntityCheck:
    """A check of the entities' manifest and where it runs (``scope``, see ``checks.toml``)."""

    check: Check
    scope: str


SCOPES = ("activity_entities", "athlete_entities", "production")


def entity_checks(directory: Path | None = None) -> list[EntityCheck]:
    """Read ``sql/validation/entities/checks.toml``: the summary manifest's keys plus ``scope``.

    Every SQL file must be one read-only query (:func:`~tasks.quality.manifest.refuse_unsafe_file`).
    """
    directory = directory or validation_dir() / CHECKS_DIR
    path = directory / "checks.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        raise ValidationConfigError(f"The entity checks' manifest {path} cannot be read: {exc}") from None
    checks = []
    for i, entry in enumerate(data.get("check", []), 1):
        where = f"{path} [[check]] #{i}"
        scope = entry.get("scope")
        if scope not in SCOPES:
            raise ValidationConfigError(f"{where}: scope must be one of {', '.join(SCOPES)}")
        if entry.get("operator") not in OPERATORS or entry.get("severity") not in SEVERITIES:
            raise ValidationConfigError(
                f"{where}: operator must be one of {', '.join(OPERATORS)}, severity warn or halt"
            )
        if ("threshold" in entry) == ("compare_sql" in entry):
            raise ValidationConfigError(f"{where}: give exactly one of compare_sql or threshold")
        compare = entry.get("compare_sql")
        check = Check(
            name=str(entry["name"]),
            description=str(entry["description"]),
            severity=str(entry["severity"]),
            operator=str(entry["operator"]),
            sql=directory / str(entry["sql"]),
            compare_sql=directory / str(compare) if compare is not None else None,
            threshold=entry.get("threshold"),
            params=dict(entry.get("params", {})),
            skip_reason=str(entry.get("skip_reason", "no value")),
        )
        for sql_file in (check.sql, check.compare_sql):
            refuse_unsafe_file(sql_file, where)
        checks.append(EntityCheck(check, scope))
    return checks


def _named(check: Check, name: str) -> Check:
    return Check(
        name=name,
        description=check.description,
        severity=check.severity,
        operator=check.operator,
        sql=check.sql,
        compare_sql=check.compare_sql,
        threshold=check.threshold,
        params=check.params,
        skip_reason=check.skip_reason,
    )


def _run_gate(
    engine: sa.Engine,
    batch: StagedBatch,
    stagings: Mapping[str, str],
    loaded: Mapping[str, int],
    role: str | None,
) -> list[CheckResult]:
    """Every entity check (each in its own read-only transaction), then the staged row counts."""
    params = {"athlete_id": int(batch.athlete_id), "run_started_at": batch.extracted_at, "expected_rows": None}
    results: list[CheckResult] = []
    for entity_check in entity_checks():
        check = entity_check.check
        if entity_check.scope == "production":
            results.append(run_check(engine, check, params=params, role=role))
            continue
        for entity, staging in stagings.items():
            has_activity = "activity_id" in SPECS[entity].column_names
            if has_activity != (entity_check.scope == "activity_entities"):
                continue
            named = _named(check, f"{entity}_{check.name}")
            results.append(run_check(engine, named, staging=staging, params=params, role=role))
    for entity, rows in loaded.items():
        expected = batch.rows.get(entity)
        if expected is None:
            continue
        outcome = PASSED if rows == expected else "failed"
        results.append(
            CheckResult(
                name=f"{entity}_staged_rows_match",
                severity="halt",
                operator="equals",
                value_1=rows,
                value_2=expected,
                outcome=outcome,
                detail=""
                if outcome == PASSED
                else f"{rows} rows loaded from the staging file, the fetch wrote {expected}",
                description="The entity's staging table holds exactly as many rows as the fetch wrote.",
            )
        )
    return results


# ------------------------------------------------------------------ the load


def _entities_of(batch: StagedBatch) -> list[EntitySpec]:
    """The batch's entities (a file, or parents whose rows it replaces), in the catalog's order."""
    named = set(batch.files) | set(batch.parents)
    unknown = sorted(n for n in named if n not in SPECS or SPECS[n] not in ENTITY_SPECS)
    if unknown:
        raise ValueError(f"StagedBatch names entities load_batch does not merge: {unknown}")
    for name in batch.files:
        if SPECS[name].merge is Merge.REPLACE_CHILDREN and name not in batch.parents:
            raise ValueError(
                f"StagedBatch has a file for {name} but no parents: say whose rows it replaces (batch.parents)"
            )
    return [s for s in ENTITY_SPECS if s.name in named]


def load_batch(
    engine: sa.Engine,
    lake: Lake,
    batch: StagedBatch,
    *,
    checks_role: str | None = None,
    iam_role_arn: str | None = None,
    region: str | None = None,
) -> EntityLoad:
    """Load one athlete's staged batch: staging tables, the gate, ONE merge transaction, staging dropped.

    Loading the same batch twice leaves production as once. A failed halt check raises
    :class:`~tasks.quality.runner.ValidationHalted` and merges nothing (the lake keeps the files).
    ``checks_role`` (PostgreSQL, Redshift) runs the checks as that role; ``iam_role_arn`` and
    ``region`` are Redshift's COPY options (the Warehouse block's).
    """
    logger = run_logger(__name__)
    specs = _entities_of(batch)
    ensure_tables(engine)
    dialect = wh.dialect_for(engine, iam_role_arn=iam_role_arn, region=region)
    stagings = {s.name: entity_staging_name(batch.run_key, s.name) for s in specs if s.name in batch.files}
    q = dialect.preparer.quote
    try:
        with engine.begin() as conn:
            sweep_staging(conn)
            for name, staging in stagings.items():
                dialect.create_staging(conn, staging, SPECS[name].table)
        loaded: dict[str, int] = {}
        with engine.begin() as conn:
            for name, staging in stagings.items():
                spec = SPECS[name]
                loaded[name] = dialect.load_file(
                    conn, staging, lake, batch.files[name], columns=spec.columns, target=spec.table
                )
                dialect.analyze_staging(conn, staging)
        if checks_role:  # the project's tables (the enrichment's among them) and this batch's staging tables
            with engine.begin() as conn:
                grant_checks_role(conn, checks_role, [*project_tables(conn), *stagings.values()])
        checks = _run_gate(engine, batch, stagings, loaded, checks_role)
        enforce_gate(checks)
        with engine.begin() as conn:
            counts = {s.name: _merge_entity(conn, dialect, s, stagings.get(s.name), batch) for s in specs}
            state_rows = _upsert_state(conn, dialect, batch)
            # An activity marked deleted while its batch was fetched keeps no rows (nor a state row).
            delete_children_of_deleted(conn, batch.athlete_id)
            changed = any(c.changed for c in counts.values())
            if changed:
                production_changed(conn)  # the models are stale from this commit on
            _record_checks(conn, dialect, batch, checks)
    finally:
        with engine.begin() as conn:
            for staging in stagings.values():
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(staging)}")
    dialect.checkpoint()  # DuckDB: the batch leaves memory for the file (a no-op elsewhere)
    logger.info(
        "Enrichment batch of athlete %s merged: %s; %s state rows",
        batch.athlete_id,
        ", ".join(f"{n} +{c.inserted} ~{c.updated} -{c.deleted}" for n, c in counts.items()) or "no entity",
        state_rows,
    )
    return EntityLoad(int(batch.athlete_id), batch.run_key, counts, state_rows, tuple(checks))


def _merge_entity(
    conn: sa.Connection, dialect: wh.SqlDialect, spec: EntitySpec, staging: str | None, batch: StagedBatch
) -> EntityCounts:
    """Merge one entity's staging table (None: nothing staged) into the athlete's rows by its rule."""
    athlete = {"athlete_id": int(batch.athlete_id)}
    staged = existing = changed = 0
    if staging is not None:
        staged = scalar(conn, _entity_sql(dialect, "count_staged.sql", spec, staging), athlete)
        existing = scalar(conn, _entity_sql(dialect, "count_existing.sql", spec, staging), athlete)
        has_hash = "row_hash" in spec.column_names
        changed = scalar(conn, _entity_sql(dialect, "count_changed.sql", spec, staging), athlete) if has_hash else 0
    removed = 0
    if spec.merge is Merge.REPLACE_CHILDREN:
        listed = batch.parents.get(spec.name, ())
        if staging is not None:  # a staged row's parent is replaced too, listed or not
            found = conn.execute(_entity_sql(dialect, "staged_parents.sql", spec, staging), athlete)
            listed = (*listed, *(r[0] for r in found))
        parents = list(dict.fromkeys(listed))
        statement = _entity_sql(dialect, "delete_parents.sql", spec)
        for start in range(0, len(parents), PARENTS_CHUNK):
            chunk = {"parents": parents[start : start + PARENTS_CHUNK], **athlete}
            removed += max(conn.execute(statement, chunk).rowcount, 0)
    elif spec.merge is Merge.REPLACE_ATHLETE:
        removed += max(conn.execute(_entity_sql(dialect, "delete_athlete.sql", spec), athlete).rowcount, 0)
    elif spec.merge not in (Merge.UPSERT, Merge.APPEND):
        raise ValueError(f"Entity {spec.name}: merge rule {spec.merge} is not the enrichment's")
    if staging is not None:
        if spec.merge is not Merge.REPLACE_CHILDREN:  # those went with their parents, by the parents' keys
            removed += max(conn.execute(_entity_sql(dialect, "delete_keys.sql", spec, staging), athlete).rowcount, 0)
        conn.execute(_entity_sql(dialect, "insert.sql", spec, staging), athlete)
    if spec.merge in (Merge.UPSERT, Merge.APPEND) and "row_hash" in spec.column_names:
        updated = changed
    elif spec.merge is Merge.APPEND:
        updated = 0  # a key holds observed_at: the same run's snapshot again
    else:
        updated = existing  # replaced: no fingerprint says whether a value changed
    return EntityCounts(
        staged=staged,
        inserted=staged - existing,
        updated=updated,
        unchanged=existing - updated,
        deleted=max(removed - existing, 0),
    )


def _upsert_state(conn: sa.Connection, dialect: wh.SqlDialect, batch: StagedBatch) -> int:
    """Upsert the batch's enrichment state rows; a row's omitted columns keep their stored values."""
    if not batch.state:
        return 0
    athlete_id = int(batch.athlete_id)
    rows: dict[int, dict[str, Any]] = {}
    for row in batch.state:
        unknown = sorted(set(row) - set(STATE_COLUMNS))
        if unknown:
            raise ValueError(f"StagedBatch state row has columns {ENRICHMENT_TABLE} does not: {unknown}")
        if "athlete_id" in row and row["athlete_id"] is not None and int(row["athlete_id"]) != athlete_id:
            raise ValueError(f"StagedBatch of athlete {athlete_id} holds a state row of athlete {row['athlete_id']}")
        activity_id = int(row["activity_id"])
        rows.setdefault(activity_id, {}).update(row)
    ids = sorted(rows)
    stored: dict[int, dict[str, Any]] = {}
    read = _state_sql(dialect, "state_read.sql")
    for start in range(0, len(ids), PARENTS_CHUNK):
        params = {"athlete_id": athlete_id, "activity_ids": ids[start : start + PARENTS_CHUNK]}
        for found in conn.execute(read, params).mappings():
            stored[int(found["activity_id"])] = dict(found)
    merged = []
    for activity_id in ids:
        row = {c: None for c in STATE_COLUMNS} | stored.get(activity_id, {}) | rows[activity_id]
        merged.append({**row, "athlete_id": athlete_id, "activity_id": activity_id})
    conn.execute(_state_sql(dialect, "state_delete.sql"), [{"athlete_id": athlete_id, "activity_id": i} for i in ids])
    conn.execute(_state_sql(dialect, "state_insert.sql"), merged)
    return len(merged)


def _record_checks(
    conn: sa.Connection, dialect: wh.SqlDialect, batch: StagedBatch, checks: Sequence[CheckResult]
) -> None:
    """The gate's results in the validation table under the batch's run key (again: replaced)."""
    if not checks:
        return
    rows = wh.validation_rows([c.as_dict() for c in checks], batch.athlete_id, batch.run_key, datetime.now(UTC))
    for row in rows:
        row["check_order"] += CHECK_ORDER_OFFSET
    keys = [{"athlete_id": r["athlete_id"], "run_key": r["run_key"], "name": r["name"]} for r in rows]
    conn.execute(dialect.sql("entities/delete_validation_results.sql", **TABLE_NAMES), keys)
    conn.execute(dialect.sql("load/record_validation_results.sql", **TABLE_NAMES), rows)
