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
        default=None, description="Redshift only: IAM role ARN that COPY uses to read the S3 lake."
    )
    region: str | None = Field(
        default=None, description="Redshift only: AWS region of the S3 lake bucket, for COPY."
    )

    @property
    def backend(self) -> str:
        """The dialect's name: duckdb, postgresql or redshift."""
        return sa.engine.make_url(self.url.get_secret_value()).get_backend_name()

    def get_engine(self, **kwargs: object) -> sa.Engine:
        """Create a SQLAlchemy engine (the caller disposes it)."""
        url = sa.engine.make_url(self.url.get_secret_value())
        if url.get_backend_name() == "duckdb" and url.database not in (None, "", ":memory:"):
            from pathlib import Path

            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, **kwargs)  # type: ignore[arg-type]
