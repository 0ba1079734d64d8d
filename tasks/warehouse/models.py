"""SQL models under ``sql/models/``: each file's SELECT rebuilt as a table after the merge.

A build is skipped when the models are current: the same SQL (:func:`models_fingerprint`), no
change of production since the last complete build (:class:`ModelState`), every table there. A
run that changed nothing then costs two queries, not a rebuild of every model over every athlete.

A model over the enrichment's tables (streams, best efforts, zones, ...) names them in a header
line, ``-- requires: strava_activity_streams, strava_athlete_zones``: before it is built, those
of them the warehouse lacks are created empty from their declaration
(:mod:`tasks.entities.catalog`), so the model builds (with no rows) on a warehouse the
enrichment has not reached yet, instead of failing the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from tasks.warehouse.dialects import dialect_for
from tasks.warehouse.sql_files import SQL_DIR, scalar
from tasks.warehouse.tables import TABLE_NAMES


def model_files() -> list[Path]:
    """The models under ``sql/models/``, in name order (prefix numbers set dependencies)."""
    return sorted((SQL_DIR / "models").glob("*.sql"))


def model_name(path: Path) -> str:
    """``sql/models/10_activity_summary_monthly.sql`` builds ``activity_summary_monthly``."""
    return re.sub(r"^\d+_", "", path.stem)


_REQUIRES = re.compile(r"^--\s*requires:\s*(.+)$", re.MULTILINE)


def required_tables(sql: str) -> list[str]:
    """The tables a model's ``-- requires: a, b`` header lines name (none without one)."""
    return [name.strip() for line in _REQUIRES.findall(sql) for name in line.split(",") if name.strip()]


def ensure_required_tables(engine: sa.Engine, names: Sequence[str]) -> list[str]:
    """Create, empty, those of the catalog's tables ``names`` that the warehouse lacks; the names created.

    Raises:
        ValueError: A name is no table of the entity catalog (a typo in a model's header).

    """
    from tasks.entities.catalog import SPECS  # the catalog builds on this package: imported when used

    by_table = {spec.table: spec for spec in SPECS.values()}
    unknown = [n for n in names if n not in by_table]
    if unknown:
        raise ValueError(f"A model requires {unknown}, which the entity catalog does not declare")
    inspector = sa.inspect(engine)
    missing = [n for n in names if not inspector.has_table(n)]
    if missing:
        metadata = sa.MetaData()
        tables = [by_table[n].table_of(metadata) for n in missing]
        metadata.create_all(engine, tables=tables, checkfirst=True)
    return missing


def build_model(engine: sa.Engine, path: Path) -> int:
    """Rebuild one model table from its SELECT in one transaction; return its row count.

    The tables its ``-- requires:`` header names are created first when missing (empty).
    """
    dialect = dialect_for(engine)
    name = model_name(path)
    select = path.read_text(encoding="utf-8").strip().rstrip(";")
    if not select:
        raise ValueError(f"model file {path} is empty")
    if required := required_tables(select):
        ensure_required_tables(engine, required)
    q = dialect.preparer.quote(name)
    with engine.begin() as conn:
        dialect.lock_models(conn, **TABLE_NAMES)  # another run's build of it finishes first
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q}")
        conn.execute(sa.text(f"CREATE TABLE {q} AS {select}"))
        return scalar(conn, sa.text(f"SELECT COUNT(*) FROM {q}"))  # noqa: S608 - quoted identifier


@dataclass(frozen=True)
class ModelState:
    """What the warehouse says about its models: the inputs version now, and the last complete build."""

    inputs: int | None
    """Bumped by every change of production; None when the row is missing (then always rebuild)."""
    built_from: int | None
    """The inputs version the last complete build started from."""
    fingerprint: str | None
    """The models' SQL fingerprint at that build."""
    rows: dict[str, int] | None
    """Rows per model at that build."""

    def current_rows(self, fingerprint: str, existing: set[str]) -> dict[str, int] | None:
        """The last build's rows when it is still current (same SQL, nothing changed since, every table there)."""
        if self.inputs is None or self.rows is None or self.built_from != self.inputs:
            return None
        if self.fingerprint != fingerprint or set(self.rows) != existing:
            return None
        return self.rows


def models_fingerprint(paths: Sequence[Path] | None = None) -> str:
    """A digest of the models' names and SQL: another release's or an edited model changes it."""
    digest = hashlib.sha256()
    for path in model_files() if paths is None else paths:
        digest.update(model_name(path).encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_model_state(engine: sa.Engine) -> ModelState:
    """The models' state as recorded (see :data:`~tasks.warehouse.tables.MODEL_STATE_TABLE`)."""
    dialect = dialect_for(engine)
    with engine.connect() as conn:
        found = conn.execute(dialect.sql("model_state/read.sql", **TABLE_NAMES)).all()
    inputs = [int(r.version) for r in found if r.kind == "inputs"]
    built = [r for r in found if r.kind == "built"]
    if len(built) != 1:  # none yet, or two builds raced to record: build again
        return ModelState(max(inputs, default=None), None, None, None)
    try:
        rows = {str(k): int(v) for k, v in json.loads(built[0].model_rows or "").items()}
    except (TypeError, ValueError, AttributeError):
        rows = None
    return ModelState(max(inputs, default=None), int(built[0].version), built[0].fingerprint, rows)


def existing_models(engine: sa.Engine, names: Sequence[str]) -> set[str]:
    """Which of the model tables ``names`` exist in the warehouse's schema."""
    statement = dialect_for(engine).sql("model_state/model_tables.sql", **TABLE_NAMES)
    statement = statement.bindparams(sa.bindparam("names", expanding=True))
    with engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(statement, {"names": list(names)})}


def record_models_built(engine: sa.Engine, inputs: int, fingerprint: str, rows: Mapping[str, int]) -> None:
    """Record a complete build that started from inputs version ``inputs`` (replacing the last record)."""
    dialect = dialect_for(engine)
    values = {
        "version": inputs,
        "fingerprint": fingerprint,
        "model_rows": json.dumps(dict(rows), separators=(",", ":")),
        "recorded_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        conn.execute(dialect.sql("model_state/built_delete.sql", **TABLE_NAMES))
        conn.execute(dialect.sql("model_state/built_insert.sql", **TABLE_NAMES), values)
