"""The warehouse block: where production lives, as one SQLAlchemy URL."""

from __future__ import annotations

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

DEFAULT_URL = "duckdb:///.strava-elt/warehouse.duckdb"


class Warehouse(Block):
    """A SQL warehouse: DuckDB (embedded default), PostgreSQL or Redshift."""

    _block_type_name = "Strava Warehouse"
    _block_type_slug = "strava-warehouse"
    _description = "SQLAlchemy URL and schema of the warehouse that holds Strava activities."

    url: SecretStr = Field(
        default=SecretStr(DEFAULT_URL),
        description=(
            "SQLAlchemy URL, e.g. duckdb:///path/warehouse.duckdb, "
            "postgresql+psycopg://user:pw@host:5432/db or redshift+redshift_connector://user:pw@host:5439/db. "
            "Secret: it may hold a password."
        ),
    )
    schema_name: str | None = Field(
        default=None,
        description="Schema for the tables (created if missing). Empty: the database's default schema.",
    )
    iam_role_arn: str | None = Field(
        default=None,
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
            from pathlib import Path

            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, **{**engine_options(url), **kwargs})  # type: ignore[arg-type]
