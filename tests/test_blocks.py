"""Blocks as the UI and remote workers see them: schemas, URLs, and one lake per name."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from prefect.filesystems import LocalFileSystem
from prefect_aws import AwsCredentials, S3Bucket
from pydantic import SecretStr, ValidationError

from blocks import StravaCredentials, Warehouse
from blocks.loading import AmbiguousLakeError, InvalidBlockError, load_block, load_lake_block
from blocks.warehouse import DEFAULT_MEMORY_LIMIT, memory_limit_bytes
from tasks.setup import setup_aws_blocks, setup_local_blocks

REDSHIFT = "redshift+redshift_connector://loader:pw@example.eu-west-1.redshift.amazonaws.com:5439/dev"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _schema(block: type[Warehouse] | type[StravaCredentials]) -> dict[str, dict[str, object]]:
    fields = block._to_block_schema(block_type_id=uuid.uuid4()).fields
    properties: dict[str, dict[str, object]] = fields["properties"]
    return properties


# --------------------------------------------------------------------------- what the UI shows


def test_the_warehouse_url_is_required_with_no_secret_default() -> None:
    properties = _schema(Warehouse)
    assert "default" not in properties["url"]  # it was '**********', unusable from the UI
    assert "url" in Warehouse._to_block_schema(block_type_id=uuid.uuid4()).fields["required"]
    assert properties["url"]["format"] == "password"
    assert {k: properties[k]["title"] for k in ("url", "schema_name", "iam_role_arn")} == {
        "url": "URL",
        "schema_name": "Schema",
        "iam_role_arn": "IAM role ARN",
    }
    with pytest.raises(ValidationError, match="url"):
        Warehouse()  # type: ignore[call-arg]


def test_strava_field_titles_read_well() -> None:
    titles = {name: field["title"] for name, field in _schema(StravaCredentials).items()}
    assert titles == {
        "client_id": "Client ID",
        "client_secret": "Client secret",
        "refresh_token": "Refresh token",
        "base_url": "Base URL",
        "timeout_seconds": "Timeout (seconds)",
        "application": "Application",
        "athlete_id": "Athlete ID",
        "athlete_name": "Athlete name",
        "status": "Status",
        "revoked_at": "Revoked at",
        "revoked_reason": "Revoked reason",
    }


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "base_url",
    [
        "https://www.strava.com",
        "https://www.strava.com/",
        "https://www.strava.com/api/v3",
        "https://www.strava.com/api/v3/",
    ],
)
def test_strava_base_url_accepts_the_site_and_the_api_root(base_url: str) -> None:
    block = StravaCredentials(
        client_id="1", client_secret=SecretStr("s"), refresh_token=SecretStr("t"), base_url=base_url
    )
    assert (block.base_url, block.api_url, block.token_url) == (
        "https://www.strava.com",
        "https://www.strava.com/api/v3",
        "https://www.strava.com/oauth/token",
    )


def test_strava_base_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        StravaCredentials(
            client_id="1", client_secret=SecretStr("s"), refresh_token=SecretStr("t"), base_url="strava.com"
        )


def test_a_relative_duckdb_path_is_refused_and_absolute_ones_are_kept(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"DuckDB path 'warehouse.duckdb' is relative.*absolute path"):
        Warehouse(url=SecretStr("duckdb:///warehouse.duckdb"))
    with pytest.raises(ValidationError, match="not a SQLAlchemy URL"):
        Warehouse(url=SecretStr("warehouse.duckdb"))
    for url in (f"duckdb:///{tmp_path}/w.duckdb", "duckdb:///~/w.duckdb", "duckdb:///:memory:", REDSHIFT):
        assert Warehouse(url=SecretStr(url)).url.get_secret_value() == url


def test_a_relative_duckdb_block_made_in_the_ui_fails_its_load_with_the_reason() -> None:
    name = _name("warehouse")
    # The UI posts the document without running the block's validators; model_construct does the same.
    Warehouse.model_construct(url=SecretStr("duckdb:///.strava-elt/warehouse.duckdb")).save(name)
    with pytest.raises(
        InvalidBlockError, match=r"block .* is not valid: url: Value error, the DuckDB path .* is relative"
    ):
        load_block(Warehouse, name)


def test_setup_local_writes_absolute_paths_from_a_relative_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names = (_name("strava"), _name("lake"), _name("warehouse"))
    setup_local_blocks(Path("data"), names=names)
    url = load_block(Warehouse, names[2]).url.get_secret_value()
    assert url == f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}"
    assert load_lake_block(names[1]).basepath == str(tmp_path / "data" / "lake")


# --------------------------------------------------------------------------- DuckDB's memory


def _setting(engine: sa.Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql(f"SELECT current_setting('{name}')").scalar())


@pytest.mark.parametrize(
    ("given", "kept", "size"),
    [
        ("128MB", "128MB", 128_000_000),
        (" 1.5 GB ", "1.5 GB", 1_500_000_000),
        ("512MiB", "512MiB", 512 * 2**20),
        ("64mb", "64mb", 64_000_000),
        ("40000000 bytes", "40000000 bytes", 40_000_000),
    ],
)
def test_the_memory_limit_takes_duckdbs_sizes(given: str, kept: str, size: int) -> None:
    block = Warehouse(url=SecretStr("duckdb:////srv/w.duckdb"), memory_limit=given)
    assert block.memory_limit == kept
    assert memory_limit_bytes(kept) == size


def test_the_memory_limit_defaults_to_128mb_and_empty_means_duckdbs_own() -> None:
    assert DEFAULT_MEMORY_LIMIT == "128MB"
    assert Warehouse(url=SecretStr("duckdb:////srv/w.duckdb")).memory_limit == "128MB"
    assert _schema(Warehouse)["memory_limit"]["title"] == "DuckDB memory limit"
    for empty in ("", "  ", None):
        assert Warehouse(url=SecretStr("duckdb:////srv/w.duckdb"), memory_limit=empty).memory_limit is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("128", r"'128' is not a size: give a number and a unit, e.g. 128MB"),
        ("lots", r"'lots' is not a size"),
        ("-1MB", r"'-1MB' is not a size"),
        ("128MB'; SELECT 1; --", r"is not a size"),
        ("10MB", r"'10MB' is too small: give at least 32MB"),
    ],
)
def test_a_memory_limit_that_is_not_a_size_is_refused_with_the_reason(bad: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Warehouse(url=SecretStr("duckdb:////srv/w.duckdb"), memory_limit=bad)


def test_a_bad_memory_limit_made_in_the_ui_fails_the_blocks_load_with_the_reason(tmp_path: Path) -> None:
    name = _name("warehouse")
    Warehouse.model_construct(url=SecretStr(f"duckdb:///{tmp_path}/w.duckdb"), memory_limit="lots").save(name)
    with pytest.raises(InvalidBlockError, match=r"memory_limit: Value error, memory_limit 'lots' is not a size"):
        load_block(Warehouse, name)


def test_a_duckdb_warehouse_gets_the_memory_limit_and_spills_beside_its_file(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    block = Warehouse(url=SecretStr(f"duckdb:///{path}"), schema_name="strava")
    with block.engine() as engine:
        assert _setting(engine, "memory_limit") == "122.0 MiB"  # 128MB: DuckDB prints MiB
        assert _setting(engine, "temp_directory") == f"{path}.tmp"
        # A SET, not a connect option: another engine on the file in this process still connects.
        plain = sa.create_engine(f"duckdb:///{path}")
        try:
            assert _setting(plain, "memory_limit") == "122.0 MiB"  # a setting of the whole database
        finally:
            plain.dispose()
    with Warehouse(url=SecretStr(f"duckdb:///{path}"), memory_limit="512MB").engine() as engine:
        assert _setting(engine, "memory_limit") == "488.2 MiB"


def test_without_a_memory_limit_or_with_the_urls_own_duckdb_keeps_its_setting(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with Warehouse(url=SecretStr(f"duckdb:///{path}?memory_limit=200MB")).engine() as engine:
        assert _setting(engine, "memory_limit") == "190.7 MiB"  # the URL's, not the block's 128MB
    with Warehouse(url=SecretStr(f"duckdb:///{path}"), memory_limit=None).engine() as engine:
        default = _setting(engine, "memory_limit")
    with duckdb.connect(str(tmp_path / "plain.duckdb")) as plain:
        assert plain.execute("SELECT current_setting('memory_limit')").fetchall() == [(default,)]
    with Warehouse(url=SecretStr("duckdb:///:memory:")).engine() as engine:
        assert _setting(engine, "memory_limit") == default  # an in-memory database's data is its memory


@pytest.mark.postgres
def test_a_postgres_warehouse_ignores_the_memory_limit(pg_url: str) -> None:
    # PostgreSQL has no memory_limit setting: a SET would fail every connection.
    with Warehouse(url=SecretStr(pg_url), memory_limit="64MB").engine() as engine, engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


# --------------------------------------------------------------------------- one lake per name


def test_a_lake_name_held_by_two_lake_types_is_refused_with_both_listed(tmp_path: Path) -> None:
    name = _name("lake")
    LocalFileSystem(basepath=str(tmp_path)).save(name)
    S3Bucket(bucket_name="strava-bucket", credentials=AwsCredentials()).save(name)
    with pytest.raises(AmbiguousLakeError) as caught:
        load_lake_block(name)
    message = str(caught.value)
    assert f"'local-file-system/{name}' and 's3-bucket/{name}'" in message
    assert "prefect block delete" in message
    assert isinstance(load_lake_block(f"s3-bucket/{name}"), S3Bucket)  # the typed name still chooses


def test_setup_aws_replaces_the_local_lake_of_the_same_name_and_says_so(tmp_path: Path) -> None:
    names = (_name("strava"), _name("lake"), _name("warehouse"))
    setup_local_blocks(tmp_path, names=names)
    created = setup_aws_blocks(
        bucket="strava-bucket", redshift_url=REDSHIFT, iam_role_arn="arn:aws:iam::123456789012:role/copy",
        region="eu-west-1", names=(_name("aws"), names[1], names[2]),
    )  # fmt: skip
    assert f"replaces the lake block local-file-system/{names[1]}" in created[names[1]]
    lake = load_lake_block(names[1])  # no longer ambiguous: the S3 bucket
    assert isinstance(lake, S3Bucket) and lake.bucket_name == "strava-bucket"
    # And back: setup local replaces the S3 lake block.
    again = setup_local_blocks(tmp_path, names=names)
    assert f"replaces the lake block s3-bucket/{names[1]}" in again[names[1]]
    assert isinstance(load_lake_block(names[1]), LocalFileSystem)
