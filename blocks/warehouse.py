"""The warehouse block: where production lives, as one SQLAlchemy URL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

_URL_EXAMPLES = (
    "duckdb:////absolute/path/warehouse.duckdb, postgresql+psycopg://user:pw@host:5432/db or "
    "redshift+redshift_connector://user:pw@host:5439/db"
)
_TIMED_OUT = re.compile(r"time[ds]? ?out|timeout", re.IGNORECASE)
_SOCKET_MARGIN_SECONDS = 60

DEFAULT_MEMORY_LIMIT = "128MB"
"""DuckDB's buffer pool in the flow's process (measured in docs/enrichment.md, "Memory and storage")."""
MIN_MEMORY_LIMIT_BYTES = 32_000_000
"""The smallest limit a block takes: a floor against a slipped unit (``128KB`` for ``128MB``) that
would leave DuckDB no room for the merge; the pipeline's benches run at 32MB (docs/production.md)."""
_MEMORY_LIMIT = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b|bytes)?", re.IGNORECASE)
_MEMORY_UNITS = {"b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_MEMORY_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def memory_limit_bytes(text: str) -> int:
    """Bytes of a DuckDB size such as ``256MB``, ``1.5 GB`` or ``512MiB`` (KB, MB: powers of 10, as DuckDB reads them).

    Raises:
        ValueError: not a size with a unit DuckDB knows, or less than :data:`MIN_MEMORY_LIMIT_BYTES`.

    """
    match = _MEMORY_LIMIT.fullmatch(text.strip())
    if match is None or not match.group(2):
        raise ValueError(
            f"memory_limit {text!r} is not a size: give a number and a unit, e.g. 128MB, 512MB or 2GB "
            "(KB, MB, GB, TB, or KiB, MiB, GiB, TiB); leave it empty for DuckDB's default (80% of the machine's memory)"
        )
    size = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    if size < MIN_MEMORY_LIMIT_BYTES:
        raise ValueError(
            f"memory_limit {text!r} is too small: give at least {MIN_MEMORY_LIMIT_BYTES // 10**6}MB, room for the "
            f"pipeline's merges (default {DEFAULT_MEMORY_LIMIT})"
        )
    return size


@dataclass(frozen=True)
class Backend:
    """What creating an engine for one warehouse backend needs; everything else is its SQL dialect's.

    The SQL differences (staging, bulk load, read-only transactions, locks, migrations) live in
    the dialect classes of ``tasks/warehouse/dialects.py``; blocks import nothing from ``tasks/``,
    so what an engine needs at creation is here, in :data:`BACKENDS`.
    """

    connect_timeout_arg: str | None = None
    """The driver's connect-timeout argument; with it, every session also gets a ``statement_timeout``."""
    default_port: int | None = None
    """The port a URL without one connects to (named in connection errors)."""
    single_session: bool = False
    """The staging table is a session ``TEMP`` table: the engine holds exactly one connection."""
    file_database: bool = False
    """The database is a local file (its folder is created; a relative path is refused)."""
    set_schema: str = "SET search_path TO {quoted}"
    """How a session switches to the block's schema (``{quoted}``: the quoted name; ``{name}``: as is)."""
    commits_on_connect: bool = True
    """Whether the driver's connection must commit the schema set-up (DuckDB's needs not)."""
    memory_limit_sql: str | None = None
    """How a session caps the embedded database's memory in the flow's process (``{value}``: the
    block's ``memory_limit``); None: the backend's memory is its server's, the block sets nothing."""


BACKENDS: dict[str, Backend] = {
    "duckdb": Backend(
        file_database=True,
        set_schema="SET schema = '{name}'",
        commits_on_connect=False,
        memory_limit_sql="SET memory_limit = '{value}'",
    ),
    "postgresql": Backend(connect_timeout_arg="connect_timeout", default_port=5432),
    "redshift": Backend(connect_timeout_arg="timeout", default_port=5439, single_session=True),
}
"""The ONE place in ``blocks/`` that names warehouse backends, by SQLAlchemy backend name.

A backend missing here gets :class:`Backend`'s defaults (a plain SQLAlchemy engine,
``SET search_path``). ``tests/test_layers.py`` checks that ``single_session`` agrees with the
dialect classes.
"""

SINGLE_SESSION_BACKENDS = frozenset(name for name, backend in BACKENDS.items() if backend.single_session)
"""Warehouses whose staging table is a session ``TEMP`` table: their engines hold one connection."""


def backend_of(url: str | sa.URL) -> Backend:
    """The engine needs of the URL's backend (defaults for one not in :data:`BACKENDS`)."""
    return BACKENDS.get(sa.make_url(url).get_backend_name(), Backend())


def engine_options(url: str | sa.URL) -> dict[str, Any]:
    """Extra ``create_engine`` options a warehouse needs: one pooled session for Redshift."""
    if backend_of(url).single_session:
        return {"poolclass": sa.pool.StaticPool}
    return {}


def use_schema(engine: sa.Engine, schema_name: str | None) -> None:
    """Make every connection of ``engine`` create and use ``schema_name`` (search path)."""
    if not schema_name:
        return
    backend = backend_of(engine.url)
    quoted = engine.dialect.identifier_preparer.quote(schema_name)
    if "{name}" in backend.set_schema and "'" in schema_name:
        raise ValueError(f"schema name {schema_name!r} may not contain a quote")
    set_path = backend.set_schema.format(quoted=quoted, name=schema_name)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            cursor.execute(set_path)
        finally:
            cursor.close()
        if backend.commits_on_connect:
            dbapi_connection.commit()


class WarehouseUnreachable(ConnectionError):
    """The warehouse did not accept a connection; the message names the block and host, never the URL."""


class WarehouseStatementTimeout(TimeoutError):
    """The warehouse cancelled a statement that ran longer than the block's ``statement_timeout_seconds``."""


class Warehouse(Block):
    """A SQL warehouse: DuckDB (embedded default), PostgreSQL or Redshift."""

    _block_type_name = "Strava Warehouse"
    _block_type_slug = "strava-warehouse"
    _description = "SQLAlchemy URL and schema of the warehouse that holds Strava activities."

    url: SecretStr = Field(
        title="URL",
        description=(
            f"SQLAlchemy URL, e.g. {_URL_EXAMPLES}. A DuckDB file needs an absolute path (four "
            "slashes): a relative one would land in whatever folder the flow runs in. "
            "Secret: it may hold a password."
        ),
    )
    schema_name: str | None = Field(
        default=None,
        title="Schema",
        description="Schema for the tables (created if missing). Empty: the database's default schema.",
    )
    iam_role_arn: str | None = Field(
        default=None,
        title="IAM role ARN",
        description=(
            "Redshift only: ARN of the IAM role attached to the cluster that COPY assumes to read the "
            "S3 lake, e.g. arn:aws:iam::123456789012:role/strava-elt-copy."
        ),
    )
    region: str | None = Field(
        default=None,
        description=(
            "Redshift only: AWS region of the cluster, e.g. eu-west-1. COPY from Parquet reads only a "
            "bucket in the cluster's region; the load checks the lake's region against it."
        ),
    )
    checks_role: str | None = Field(
        default=None,
        title="Checks role",
        description=(
            "PostgreSQL and Redshift: the role the validation checks run as, inside their read-only "
            "transaction: one that can only SELECT the project's tables (`strava-elt setup postgres "
            "--checks-role NAME` creates it; docs/validation.md). Empty: checks run as the loader."
        ),
    )
    connect_timeout_seconds: int = Field(
        default=10,
        ge=2,
        description=(
            "PostgreSQL and Redshift: seconds to wait for the server to accept a connection; then the "
            "run fails with a message naming this block and the host. At least 2 (libpq's minimum). "
            "DuckDB, a local file, does not use it."
        ),
    )
    statement_timeout_seconds: int = Field(
        default=1800,
        ge=0,
        description=(
            "PostgreSQL and Redshift: the server cancels a statement that runs longer (0: no limit). "
            "The largest merge measured, 100,000 rows into 1,000,000, took about 20 s. DuckDB has "
            "no statement timeout; the flow's timeout_seconds bounds a run there."
        ),
    )

    memory_limit: str | None = Field(
        default=DEFAULT_MEMORY_LIMIT,
        title="DuckDB memory limit",
        description=(
            "DuckDB only: the most memory DuckDB may hold in the flow's process, e.g. 128MB, 512MB or 2GB "
            "(MB: 10^6 bytes). Beyond it DuckDB evicts cached data and spills large joins to a folder "
            "beside the database file (<file>.tmp). Empty: DuckDB's own default, 80% of the machine's "
            "memory, which a long load fills as cache. A memory_limit in the URL's query is used instead. "
            "An in-memory database (:memory:) is not capped. PostgreSQL and Redshift do not use it."
        ),
    )

    @field_validator("memory_limit")
    @classmethod
    def _check_memory_limit(cls, value: str | None) -> str | None:
        """A size DuckDB reads (``128MB``), at least :data:`MIN_MEMORY_LIMIT_BYTES`; empty: None."""
        if value is None or not value.strip():
            return None
        memory_limit_bytes(value)
        return value.strip()

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        """A SQLAlchemy URL; a DuckDB file by absolute path (``~`` allowed), never relative."""
        try:
            parsed = sa.engine.make_url(url.get_secret_value())
        except sa.exc.ArgumentError:
            raise ValueError(f"not a SQLAlchemy URL; expected e.g. {_URL_EXAMPLES}") from None
        path = parsed.database
        if backend_of(parsed).file_database and path not in (None, "", ":memory:"):
            if not (path.startswith("md:") or Path(path).expanduser().is_absolute()):
                raise ValueError(
                    f"the DuckDB path {path!r} is relative: the file would be written in whatever folder "
                    f"the flow runs in (on a worker, a temporary clone deleted after the run). Give an absolute "
                    f"path, duckdb:///{Path('/abs/path') / Path(path).name} (four slashes), or ~/...; "
                    "`strava-elt setup local --home DIR` writes one"
                )
        return url

    @property
    def backend(self) -> str:
        """The dialect's name: duckdb, postgresql or redshift."""
        return sa.engine.make_url(self.url.get_secret_value()).get_backend_name()

    @contextmanager
    def engine(self, **kwargs: object) -> Iterator[sa.Engine]:
        """``with warehouse.engine() as engine:`` a new engine pointed at the block's schema, disposed after.

        Every connection creates the schema if missing and sets it as the search path
        (:func:`use_schema`); ``kwargs`` go to :meth:`get_engine`. The engine is always this
        context's own: steps that share one engine take the engine, not the block
        (:func:`tasks.warehouse.engine_of`).
        """
        engine = self.get_engine(**kwargs)
        try:
            use_schema(engine, self.schema_name)
            yield engine
        finally:
            engine.dispose()

    def get_engine(self, **kwargs: object) -> sa.Engine:
        """Create a SQLAlchemy engine on the database's default schema (the caller disposes it).

        Prefer :meth:`engine`, which points it at the block's schema and disposes it.

        Redshift engines hold one connection (the staging table is a session TEMP table).
        PostgreSQL and Redshift engines connect within ``connect_timeout_seconds`` and set
        ``statement_timeout`` on every new connection (:meth:`_bound`).
        """
        url = sa.engine.make_url(self.url.get_secret_value())
        backend = backend_of(url)
        if backend.file_database and url.database not in (None, "", ":memory:"):
            path = Path(url.database).expanduser()
            if not url.database.startswith("md:"):
                path.parent.mkdir(parents=True, exist_ok=True)
                url = url.set(database=str(path))
        # The driver's connect timeout: psycopg's connect_timeout, redshift_connector's socket timeout.
        timeout_arg = backend.connect_timeout_arg
        connect_args: dict[str, Any] = {timeout_arg: self.connect_timeout_seconds} if timeout_arg else {}
        connect_args.update(kwargs.pop("connect_args", None) or {})  # type: ignore[call-overload]
        engine = sa.create_engine(url, connect_args=connect_args, **{**engine_options(url), **kwargs})  # type: ignore[arg-type]
        if timeout_arg:
            self._bound(engine, url)
        self._cap_memory(engine, url)
        return engine

    def _cap_memory(self, engine: sa.Engine, url: sa.URL) -> None:
        """DuckDB: ``SET memory_limit`` on every new connection (a setting of the whole database).

        A ``SET``, not a connect option: another engine on the same file in this process (a test, a
        notebook) built without the option would be refused by DuckDB ("different configuration").
        Skipped for an in-memory database, for a URL that sets ``memory_limit`` itself, and for
        backends without :attr:`Backend.memory_limit_sql`.
        """
        template = backend_of(url).memory_limit_sql
        if template is None or self.memory_limit is None or "memory_limit" in url.query:
            return
        if url.database in (None, "", ":memory:"):
            return
        memory_limit_bytes(self.memory_limit)  # a block made in the UI skips the validators
        statement = template.format(value=self.memory_limit)

        @sa.event.listens_for(engine, "connect")
        def _set_memory_limit(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(statement)
            finally:
                cursor.close()

    def _bound(self, engine: sa.Engine, url: sa.URL) -> None:
        """Set each new session's statement timeout; explain connect failures and timeouts.

        The timeout is a ``SET`` on connect, so a URL's own ``options`` (a search_path, say)
        stay as they are. redshift_connector's ``timeout`` bounds every socket read, not only
        the connect: once connected it is raised past the statement timeout, which the server
        enforces itself.
        """
        seconds = self.statement_timeout_seconds
        backend = url.get_backend_name()
        where = f"{backend} at {url.host}:{url.port or backend_of(url).default_port or '?'}"
        name = getattr(self, "_block_document_name", None) or "(unsaved)"

        @sa.event.listens_for(engine, "connect")
        def _set_statement_timeout(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET statement_timeout TO {int(seconds) * 1000}")
            finally:
                cursor.close()
            dbapi_connection.commit()
            sock = getattr(dbapi_connection, "_usock", None)  # redshift_connector's socket
            if sock is not None:
                sock.settimeout(seconds + _SOCKET_MARGIN_SECONDS if seconds else None)

        @sa.event.listens_for(engine, "handle_error")
        def _explain(context: sa.engine.ExceptionContext) -> BaseException | None:
            reason = " ".join(str(context.original_exception).split())
            if url.password:
                reason = reason.replace(str(url.password), "***")
            if context.connection is None:  # the error came while connecting
                if _TIMED_OUT.search(reason):
                    hint = (
                        f"It did not answer within connect_timeout_seconds={self.connect_timeout_seconds}: check "
                        "that this is the database's address and that it is up; if it is only slow to answer, "
                        "raise connect_timeout_seconds in the block."
                    )
                else:
                    hint = "Check the block's URL and that the server is up and reachable."
                return WarehouseUnreachable(
                    f"Cannot connect to the warehouse of block {name!r} ({where}): {reason}. {hint}"
                )
            if "statement timeout" in reason:
                return WarehouseStatementTimeout(
                    f"The warehouse of block {name!r} ({where}) cancelled a statement after "
                    f"statement_timeout_seconds={seconds}: {reason}. If the work is legitimately that "
                    "long, raise statement_timeout_seconds in the block."
                )
            return None
