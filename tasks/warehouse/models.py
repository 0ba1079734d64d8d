"""SQL models under ``sql/models/``: each file's SELECT rebuilt as a table after the merge."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from tasks.warehouse.dialects import dialect_for
from tasks.warehouse.sql_files import SQL_DIR, scalar


def model_files() -> list[Path]:
    """The models under ``sql/models/``, in name order (prefix numbers set dependencies)."""
    return sorted((SQL_DIR / "models").glob("*.sql"))


def model_name(path: Path) -> str:
    """``sql/models/10_activity_summary_monthly.sql`` builds ``activity_summary_monthly``."""
    return re.sub(r"^\d+_", "", path.stem)


def build_model(engine: sa.Engine, path: Path) -> int:
    """Rebuild one model table from its SELECT in one transaction; return its row count."""
    dialect = dialect_for(engine)
    name = model_name(path)
    select = path.read_text(encoding="utf-8").strip().rstrip(";")
    if not select:
        raise ValueError(f"model file {path} is empty")
    q = dialect.preparer.quote(name)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q}")
        conn.execute(sa.text(f"CREATE TABLE {q} AS {select}"))
        return scalar(conn, sa.text(f"SELECT COUNT(*) FROM {q}"))  # noqa: S608 - quoted identifier
