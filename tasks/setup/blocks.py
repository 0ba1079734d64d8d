"""Save the blocks the flows load: warehouse, lake, Strava credentials, application, Slack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOCAL_BLOCKS = ("strava", "strava-lake", "strava-warehouse")
STRAVA_URL = "https://www.strava.com"


class SetupError(ValueError):
    """The input cannot make a block; the message says what to give instead."""


def _replaced(lake_name: str, kept: str) -> str:
    """Delete the other lake types' blocks named ``lake_name`` (never two lakes of one name); say so."""
    from blocks.loading import delete_other_lakes

    deleted = delete_other_lakes(lake_name, kept)
    if not deleted:
        return ""
    return f"; replaces the lake block {', '.join(deleted)} (its files stay where they are)"


def setup_local_blocks(
    home: Path,
    *,
    strava_base_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
    names: Sequence[str] = LOCAL_BLOCKS,
) -> dict[str, str]:
    """Create (or overwrite) the embedded-default blocks: DuckDB warehouse and lake folder under ``home``.

    The Strava block is saved too when all of ``client_id``, ``client_secret`` and
    ``refresh_token`` are given; ``names`` are the Strava, lake and warehouse block names.

    Raises:
        SetupError: Only some of the three Strava values are given.

    """
    from prefect.filesystems import LocalFileSystem
    from pydantic import SecretStr

    from blocks import StravaCredentials, Warehouse

    strava_args = (client_id, client_secret, refresh_token)
    if any(strava_args) and not all(strava_args):
        raise SetupError(
            "Give all three of --client-id, --client-secret and --refresh-token (or none, "
            "and create the Strava block later with `strava-elt auth`)."
        )
    home = home.expanduser().resolve()
    lake_dir = home / "lake"
    lake_dir.mkdir(parents=True, exist_ok=True)
    strava_name, lake_name, warehouse_name = names
    created: dict[str, str] = {}
    LocalFileSystem(basepath=str(lake_dir)).save(lake_name, overwrite=True)
    created[lake_name] = f"LocalFileSystem at {lake_dir}" + _replaced(lake_name, "local-file-system")
    duckdb_path = home / "warehouse.duckdb"
    Warehouse(url=SecretStr(f"duckdb:///{duckdb_path}")).save(warehouse_name, overwrite=True)
    created[warehouse_name] = f"Warehouse duckdb:///{duckdb_path}"
    if all(strava_args):
        StravaCredentials(
            client_id=str(client_id),
            client_secret=SecretStr(str(client_secret)),
            refresh_token=SecretStr(str(refresh_token)),
            base_url=strava_base_url or STRAVA_URL,
        ).save(strava_name, overwrite=True)
        created[strava_name] = f"StravaCredentials for {strava_base_url or STRAVA_URL}"
    return created


def setup_emulator_blocks(home: Path, emu: Any, names: Sequence[str] = LOCAL_BLOCKS) -> dict[str, str]:
    """Create local blocks whose Strava credentials point at a running emulator (``emulator.StravaEmulator``)."""
    return setup_local_blocks(
        home,
        strava_base_url=emu.base_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        refresh_token=emu.current_refresh_token,
        names=names,
    )


def _redacted(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _check_url(url: str, backend: str, driver: str) -> None:
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise SetupError(f"Not a SQLAlchemy URL; expected {backend}+{driver}://user:password@host:port/db") from None
    if parsed.get_backend_name() != backend or parsed.get_driver_name() != driver:
        raise SetupError(
            f"Expected a {backend}+{driver}:// URL, got {parsed.drivername}:// (the pipeline loads "
            f"{backend} through {driver})"
        )


def setup_postgres_blocks(
    url: str, schema_name: str | None = None, *, warehouse_name: str = "strava-warehouse"
) -> dict[str, str]:
    """Create (or overwrite) a Warehouse block for PostgreSQL (a ``postgresql+psycopg://`` URL)."""
    from pydantic import SecretStr

    from blocks import Warehouse

    _check_url(url, "postgresql", "psycopg")
    Warehouse(url=SecretStr(url), schema_name=schema_name or None).save(warehouse_name, overwrite=True)
    return {warehouse_name: f"Warehouse {_redacted(url)} schema {schema_name or '(default)'}"}


def setup_aws_blocks(
    *,
    bucket: str,
    redshift_url: str,
    iam_role_arn: str,
    bucket_folder: str = "",
    region: str | None = None,
    endpoint_url: str | None = None,
    schema_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    names: Sequence[str] = ("strava-aws", "strava-lake", "strava-warehouse"),
) -> dict[str, str]:
    """Create (or overwrite) AwsCredentials, an S3Bucket lake and a Redshift Warehouse block.

    Without access keys the AwsCredentials block holds none, and boto3's default chain
    (instance or task role, environment, profile) authenticates wherever the flow runs.
    """
    _check_url(redshift_url, "redshift", "redshift_connector")
    if bool(aws_access_key_id) != bool(aws_secret_access_key):
        raise SetupError("Give both --aws-access-key-id and --aws-secret-access-key, or neither")
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
    from pydantic import SecretStr

    from blocks import Warehouse

    aws_name, lake_name, warehouse_name = names
    credentials = AwsCredentials(
        aws_access_key_id=aws_access_key_id or None,
        aws_secret_access_key=SecretStr(aws_secret_access_key) if aws_secret_access_key else None,
        region_name=region or None,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint_url or None),
    )
    credentials.save(aws_name, overwrite=True)
    keys = "access keys given" if aws_access_key_id else "no keys: boto3 default chain"
    created = {aws_name: f"AwsCredentials ({keys}, region {region or 'default'})"}
    S3Bucket(bucket_name=bucket, bucket_folder=bucket_folder.strip("/"), credentials=credentials).save(
        lake_name, overwrite=True
    )
    where = f"s3://{bucket}/{bucket_folder.strip('/')}".rstrip("/")
    created[lake_name] = (
        f"S3Bucket {where}" + (f" via {endpoint_url}" if endpoint_url else "") + _replaced(lake_name, "s3-bucket")
    )
    Warehouse(
        url=SecretStr(redshift_url), schema_name=schema_name or None, iam_role_arn=iam_role_arn, region=region or None
    ).save(warehouse_name, overwrite=True)
    created[warehouse_name] = f"Warehouse {_redacted(redshift_url)}, COPY role {iam_role_arn}"
    return created


def setup_slack_block(url: str, name: str = "strava-slack") -> dict[str, str]:
    """Create (or overwrite) a Slack Incoming Webhook block (prefect-slack); the URL is never echoed."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise SetupError("Expected the webhook's URL, https://hooks.slack.com/services/...")
    from prefect_slack import SlackWebhook
    from pydantic import SecretStr

    SlackWebhook(url=SecretStr(url)).save(name, overwrite=True)
    return {name: f"Slack Incoming Webhook to {parts.netloc} (URL kept secret)"}


def setup_application_block(
    name: str, client_id: str, client_secret: str, *, base_url: str | None = None
) -> dict[str, str]:
    """Create (or update) the StravaApplication block ``name``; its athletes' blocks keep referencing it."""
    from pydantic import SecretStr

    from blocks import StravaApplication
    from blocks.loading import MissingBlockError, load_block

    try:
        application = load_block(StravaApplication, name)
    except MissingBlockError:
        application = StravaApplication(client_id=client_id, client_secret=SecretStr(client_secret))
    # Updating the loaded block keeps its document id: the athletes' references stay valid.
    application.client_id = client_id
    application.client_secret = SecretStr(client_secret)
    application.base_url = base_url or STRAVA_URL
    application.save(name, overwrite=True)
    return {name: f"StravaApplication {client_id} at {application.base_url} (secret kept in the block)"}


def setup_application_blocks(
    application_block: str, client_id: str, client_secret: str, base_url: str, refresh_tokens: dict[int, str]
) -> list[str]:
    """Save a StravaApplication block and one athlete block per ``{athlete id: refresh token}``.

    Returns:
        The athlete blocks' names, ``<application block>-athlete-<athlete id>``.

    """
    from pydantic import SecretStr

    from blocks.loading import load_block
    from blocks.strava import StravaApplication, StravaCredentials

    StravaApplication(client_id=client_id, client_secret=SecretStr(client_secret), base_url=base_url).save(
        application_block, overwrite=True
    )
    # The loaded block carries its document id: athletes reference it, never copy its secret.
    application = load_block(StravaApplication, application_block)
    names = []
    for athlete_id, token in refresh_tokens.items():
        name = application.athlete_block_name(athlete_id)
        StravaCredentials(application=application, refresh_token=SecretStr(token), athlete_id=athlete_id).save(
            name, overwrite=True
        )
        names.append(name)
    return names


def setup_emulator_application(emu: Any, application_block: str) -> list[str]:
    """The application and athlete blocks of a running emulator (every athlete's current token)."""
    tokens = {a: emu.for_athlete(a).current_refresh_token for a in emu.athlete_ids}
    return setup_application_blocks(application_block, str(emu.client_id), emu.client_secret, emu.base_url, tokens)
