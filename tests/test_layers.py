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
SUBPACKAGES = ("strava", "warehouse", "quality", "insight", "kudos", "state", "webhooks", "setup", "entities", "enrich")


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


# --------------------------------------------------------------------------- no import circle

REPO = BLOCKS_DIR.parent
GRAPH_PACKAGES = ("flows", "tasks", "blocks", "emulator")


def module_name(path: Path) -> str:
    """``flows/cli/app.py`` -> ``flows.cli.app``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_targets(path: Path, modules: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module of ours) for every import in a file, those inside functions included.

    ``from a.b import c`` names the module ``a.b.c`` when that is a module, else ``a.b``;
    relative imports are resolved against the file's package.
    """
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    yield node.lineno, f"{base}.{alias.name}"
                elif base in modules:
                    yield node.lineno, base


def import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported module of ours: line}} over flows/, tasks/, blocks/ and emulator/."""
    files = {module_name(path): path for name in GRAPH_PACKAGES for path in sorted((REPO / name).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        edges = graph.setdefault(module, {})
        for line, target in import_targets(path, set(files)):
            if target != module:
                edges.setdefault(target, line)
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, set(component)) for component in components]


def _one_cycle(graph: dict[str, dict[str, int]], members: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node]):
            if target == start:
                return [*paths[node], start]
            if target in members and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component always has one


def describe_cycle(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a``: each module with the line that imports the next."""
    steps = [f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
    return " -> ".join([*steps, cycle[-1]])


def test_the_cycle_finder_names_a_planted_cycle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    cycles = import_cycles(graph)
    assert cycles == [["a", "b", "c", "a"]]
    assert describe_cycle(graph, cycles[0]) == "a (line 1) -> b (line 2) -> c (line 3) -> a"


def test_import_targets_name_the_submodule_a_from_import_brings() -> None:
    app = import_graph()["flows.cli.app"]
    # `from flows.cli import run` imports the module flows.cli.run, not (only) the package.
    assert {"flows.cli.run", "flows.cli.setup", "flows.cli.common"} <= set(app) and "flows.cli" not in app


def test_no_module_imports_itself_in_a_circle() -> None:
    """No import cycle between modules of flows/, tasks/, blocks/, emulator/ (function-level imports count)."""
    graph = import_graph()
    assert {"flows.cli", "flows.cli.app", "flows.pipeline", "tasks.setup"} <= set(graph)
    assert "flows.pipeline" in graph["flows.cli.run"]  # the function-level imports are in the graph
    cycles = [describe_cycle(graph, cycle) for cycle in import_cycles(graph)]
    assert cycles == [], "import cycles (module (line of the import) -> ...):\n" + "\n".join(cycles)


def test_the_single_session_backends_are_the_dialects_that_need_one() -> None:
    assert {name for name, cls in dialects._DIALECTS.items() if cls.single_session} == SINGLE_SESSION_BACKENDS


# Where a warehouse may be named by its backend: its dialect class, and the block's engine options.
# tasks/setup/blocks.py names the backends `strava-elt setup postgres|aws` create (their URL schemes).
_BACKEND_NAMED_IN = {"tasks/warehouse/dialects.py", "blocks/warehouse.py", "tasks/setup/blocks.py"}
_NOT_YET: set[str] = set()


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
