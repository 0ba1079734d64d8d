"""Imports run one way (flows -> tasks -> blocks), and the Warehouse block's engine context manager."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

import blocks
import tasks
from blocks.warehouse import SINGLE_SESSION_BACKENDS, Warehouse
from tasks.warehouse import dialects
from tests.conftest import split_pg_url

BLOCKS_DIR = Path(blocks.__file__).parent


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file, those inside functions included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_imported_modules_sees_nested_imports(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import os\n\ndef f():\n    from tasks.warehouse import render\n    import flows.cli\n")
    assert list(imported_modules(source)) == [(1, "os"), (4, "tasks.warehouse"), (5, "flows.cli")]


def test_nothing_in_blocks_imports_tasks_or_flows() -> None:
    files = sorted(BLOCKS_DIR.glob("*.py"))
    assert len(files) >= 4
    upward = [
        f"{path.name}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if module.split(".")[0] in ("tasks", "flows")
    ]
    assert upward == [], "blocks/ must not import tasks/ or flows/ (flows -> tasks -> blocks): " + "; ".join(upward)


TASKS_DIR = Path(tasks.__file__).parent
SUBPACKAGES = ("strava", "warehouse", "quality", "insight", "kudos", "state", "webhooks")


def test_nothing_in_tasks_imports_flows() -> None:
    upward = [
        f"{path.relative_to(TASKS_DIR)}:{line} imports {module}"
        for path in sorted(TASKS_DIR.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] == "flows"
    ]
    assert upward == [], "tasks/ must not import flows/ (flows -> tasks -> blocks): " + "; ".join(upward)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_tasks_subpackage_has_a_small_public_surface(name: str) -> None:
    """Every subpackage lists what it exports in ``__all__``, and each name exists."""
    import importlib

    package = importlib.import_module(f"tasks.{name}")
    exported = package.__all__
    assert exported and len(exported) == len(set(exported)), name
    missing = [n for n in exported if not hasattr(package, n)]
    assert missing == [], f"tasks.{name}.__all__ names what it does not hold: {missing}"
    assert not [n for n in exported if n.startswith("_")], "private names are not exported"
    assert sorted(p.name for p in TASKS_DIR.iterdir() if (p / "__init__.py").is_file()) == sorted(SUBPACKAGES)


def test_the_single_session_backends_are_the_dialects_that_need_one() -> None:
    assert {name for name, cls in dialects._DIALECTS.items() if cls.single_session} == SINGLE_SESSION_BACKENDS


# Where a warehouse may be named by its backend: its dialect class, and the block's engine options.
_BACKEND_NAMED_IN = {"tasks/warehouse/dialects.py", "blocks/warehouse.py"}
# tasks/quality/checks.py picks its read-only BEGIN by name until it calls SqlDialect.begin_read_only.
_NOT_YET = {"tasks/quality/checks.py"}


def test_only_the_dialects_and_the_block_name_a_warehouse_backend() -> None:
    """A new warehouse is a dialect class (and maybe a BACKENDS entry): no module branches on a backend's name."""
    root = TASKS_DIR.parent
    names = ("duckdb", "postgresql", "redshift")
    found = []
    for path in sorted([*TASKS_DIR.rglob("*.py"), *BLOCKS_DIR.glob("*.py")]):
        where = path.relative_to(root).as_posix()
        if where in _BACKEND_NAMED_IN | _NOT_YET:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{where}:{node.lineno} names {node.value!r}")
    # A SQLAlchemy type variant ("redshift": VARCHAR(65535) for TEXT) is the one declared exception.
    allowed = {f"tasks/warehouse/schema.py:{_line_of('tasks/warehouse/schema.py', 'TEXT_TYPE = ')} names 'redshift'"}
    assert set(found) <= allowed, "; ".join(sorted(set(found) - allowed))


def _line_of(relative: str, text: str) -> int:
    lines = (TASKS_DIR.parent / relative).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


# --------------------------------------------------------------------------- Warehouse.engine()


def _disposals(engine: sa.Engine, seen: list[str]) -> None:
    sa.event.listen(engine, "engine_disposed", lambda _engine: seen.append("disposed"))


def _warehouse(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Warehouse, str]:
    if kind == "duckdb":
        return Warehouse(url=SecretStr(f"duckdb:///{tmp_path / 'w.duckdb'}"), schema_name="strava"), "strava"
    url, schema_name = split_pg_url(request.getfixturevalue("pg_url"))
    return Warehouse(url=SecretStr(url), schema_name=schema_name), schema_name


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_engine_points_at_the_block_schema_and_is_disposed_after(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, schema_name = _warehouse(kind, tmp_path, request)
    seen: list[str] = []
    real_get_engine = Warehouse.get_engine

    def get_engine(self: Warehouse, **kwargs: object) -> sa.Engine:
        engine = real_get_engine(self, **kwargs)
        _disposals(engine, seen)
        return engine

    monkeypatch.setattr(Warehouse, "get_engine", get_engine)
    with warehouse.engine() as engine, engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT current_schema()").scalar() == schema_name
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert seen == ["disposed"]
    with pytest.raises(RuntimeError, match="boom"), warehouse.engine() as engine:
        with engine.connect() as conn:  # the table went to the block's schema, not the default one
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {schema_name}.t").scalar() == 0
        raise RuntimeError("boom")
    assert seen == ["disposed", "disposed"]
