"""Shared fixtures: one Prefect test server per session (per xdist worker), the emulator over real HTTP."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from emulator import StravaEmulator


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """A real (temporary, SQLite-backed) Prefect API for the whole session (~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shared_prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``prefect server start`` for the end-to-end modules of this process, started when the first asks.

    Each takes it through ``prefect_server_support.fresh_server`` (emptied of the earlier
    module's state); :func:`pytest_xdist_make_scheduler` runs a chain of them on one worker, in turn.
    """
    from prefect_server_support import private_prefect_server

    with private_prefect_server(tmp_path_factory.mktemp("shared-prefect") / "prefect-home") as server:
        yield server


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with each chain of modules that share one Prefect server as one unit of work.

    xdist hands a unit (here: a module) to one worker; a chain of shared-server modules
    (``prefect_server_support.SHARED_SERVER_MODULES``) becomes one unit, so one worker runs its
    modules in turn on one server, and the others take the other modules.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from prefect_server_support import SHARED_SERVER_MODULES
    from xdist.scheduler import LoadFileScheduling

    class SharedServerScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            chain = SHARED_SERVER_MODULES.get(Path(nodeid.split("::", 1)[0]).name)
            return chain or str(super()._split_scope(nodeid))

    return SharedServerScheduling(config, log)


# Every emulator in the tests draws its data from this seed and ends at this moment (the
# newest activity's start), never from today's date: a failure reproduces on any day.
EMULATOR_SEED = 42
EMULATOR_END = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


# The warehouses a test can be parametrised over (override the ``warehouse`` fixture with these).
WAREHOUSES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def warehouse() -> str:
    """The warehouse behind ``env``: DuckDB unless a module overrides this fixture with WAREHOUSES."""
    return "duckdb"


def split_pg_url(url: str) -> tuple[str, str]:
    """Split a ``pg_url`` (search_path in ``options``) into the plain URL and the schema name."""
    parsed = sa.engine.make_url(url)
    schema = str(parsed.query.get("options", "")).removeprefix("-csearch_path=")
    return parsed.difference_update_query(["options"]).render_as_string(hide_password=False), schema


@dataclass
class Env:
    """One test's emulator, blocks and warehouse (a DuckDB file, or a PostgreSQL schema)."""

    emu: StravaEmulator
    home: Path
    strava_block: str
    lake_block: str
    warehouse_block: str
    pg_url: str | None = None  # PostgreSQL warehouse: a URL whose search_path is the test's schema

    @property
    def warehouse(self) -> str:
        return "duckdb" if self.pg_url is None else "postgres"

    @property
    def duckdb_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    def params(self, **overrides: Any) -> dict[str, Any]:
        return {
            "strava_block": self.strava_block,
            "lake_block": self.lake_block,
            "warehouse_block": self.warehouse_block,
            **overrides,
        }

    def run(self, **overrides: Any) -> dict[str, Any]:
        from flows.pipeline import strava_elt

        return strava_elt(**self.params(**overrides))

    def _execute(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read in the warehouse (``?`` placeholders on both); return column names and rows."""
        if self.pg_url is None:
            with duckdb.connect(str(self.duckdb_path), read_only=True) as conn:
                cur = conn.execute(sql, params or [])
                return [d[0] for d in cur.description], cur.fetchall()
        import psycopg

        conninfo = sa.engine.make_url(self.pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as conn:
            cur = conn.execute(sql.replace("?", "%s") if params else sql, params or None)
            return [d.name for d in cur.description or []], cur.fetchall()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._execute(sql, params)[1]

    def production(self) -> dict[int, dict[str, Any]]:
        cols, rows = self._execute("SELECT * FROM strava_activity_data")
        return {row[0]: dict(zip(cols, row, strict=True)) for row in rows}

    @property
    def warehouse_id(self) -> str:
        """The warehouse's identity (created with its tables by the first run)."""
        return str(self.query("SELECT MIN(warehouse_id) FROM strava_elt_warehouse")[0][0])

    def watermark(self, athlete_id: int | None = None) -> datetime | None:
        """The watermark of this warehouse and the athlete (default: the emulator's)."""
        from tasks.state.watermark import read_watermark

        return read_watermark(self.warehouse_id, self.emu.athlete["id"] if athlete_id is None else athlete_id)


def make_env(tmp_path: Path, pg_url: str | None = None, **emulator_kwargs: Any) -> Iterator[Env]:
    """Emulator plus local blocks; with ``pg_url`` the Warehouse block points at that PostgreSQL schema."""
    from tasks.setup import setup_emulator_blocks, setup_postgres_blocks

    suffix = uuid.uuid4().hex[:10]
    emulator_kwargs.setdefault("activities", 450)
    emulator_kwargs.setdefault("seed", EMULATOR_SEED)
    if "clock" not in emulator_kwargs:  # a fake clock fixes the end itself: one day before its now
        emulator_kwargs.setdefault("end", EMULATOR_END)
    # A distinct athlete per test: the watermark Variable is per athlete.
    emulator_kwargs.setdefault("athlete_id", int(uuid.uuid4().int % 10**9) + 10**9)
    # A distinct application per test too: the budget Variable is per application (client id),
    # and tests sharing a Prefect server would otherwise plan with each other's recorded usage.
    emulator_kwargs.setdefault("client_id", str(int(uuid.uuid4().int % 10**8) + 10**8))
    emu = StravaEmulator(**emulator_kwargs)
    emu.start()
    names = (f"strava-{suffix}", f"lake-{suffix}", f"warehouse-{suffix}")
    setup_emulator_blocks(tmp_path, emu, names)
    if pg_url is not None:
        setup_postgres_blocks(*split_pg_url(pg_url), warehouse_name=names[2])
    try:
        yield Env(emu, tmp_path, *names, pg_url=pg_url)
    finally:
        emu.stop()


def warehouse_pg_url(request: pytest.FixtureRequest, warehouse: str) -> str | None:
    """The ``pg_url`` fixture's value when ``warehouse`` is postgres (it skips or fails without a server)."""
    return request.getfixturevalue("pg_url") if warehouse == "postgres" else None


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest, warehouse: str) -> Iterator[Env]:
    """A 450-activity athlete behind the emulator, fresh local blocks and the ``warehouse`` under test."""
    yield from make_env(tmp_path, pg_url=warehouse_pg_url(request, warehouse))


# PostgreSQL for tests marked ``postgres``: override with STRAVA_ELT_PG_URL.
PG_URL = os.environ.get("STRAVA_ELT_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL SQLAlchemy URL whose connections use a fresh schema, dropped (CASCADE) after.

    Skips when the server does not answer, unless STRAVA_ELT_REQUIRE_POSTGRES=1 (CI): then it fails.
    The schema name is the URL's ``options`` (``-csearch_path=...``).
    """
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(PG_URL)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {url.render_as_string()} does not answer: {str(exc).strip()}"
        if os.environ.get("STRAVA_ELT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (STRAVA_ELT_REQUIRE_POSTGRES=1 forbids skipping)")
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
