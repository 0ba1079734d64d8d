"""The warehouse block: where production lives, as one SQLAlchemy URL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

_URL_EXAMPLES = (
    "duckdb:////absolute/path/warehouse.duckdb, postgresql+psycopg://user:pw@host:5432/db or "
    "redshift+redshift_connector://user:pw@host:5439/db"
)


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

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        """A SQLAlchemy URL; a DuckDB file by absolute path (``~`` allowed), never relative."""
        try:
            parsed = sa.engine.make_url(url.get_secret_value())
        except sa.exc.ArgumentError:
            raise ValueError(f"not a SQLAlchemy URL; expected e.g. {_URL_EXAMPLES}") from None
        path = parsed.database
        if parsed.get_backend_name() == "duckdb" and path not in (None, "", ":memory:"):
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

    def get_engine(self, **kwargs: object) -> sa.Engine:
        """Create a SQLAlchemy engine (the caller disposes it).

        Redshift engines hold one connection (the staging table is a session TEMP table).
        """
        from tasks.warehouse import engine_options

        url = sa.engine.make_url(self.url.get_secret_value())
        if url.get_backend_name() == "duckdb" and url.database not in (None, "", ":memory:"):
            path = Path(url.database).expanduser()
            if not url.database.startswith("md:"):
                path.parent.mkdir(parents=True, exist_ok=True)
                url = url.set(database=str(path))
        return sa.create_engine(url, **{**engine_options(url), **kwargs})  # type: ignore[arg-type]
