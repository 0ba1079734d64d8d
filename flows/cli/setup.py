"""``strava-elt setup local|postgres|aws|slack|application``: save the blocks (see :mod:`tasks.setup`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flows.cli.common import DEFAULT_HOME, add_command, env, need, print_created, prompt_secret

__all__ = ["application_next_steps", "register"]


def application_next_steps(name: str) -> list[str]:
    """What ``setup application`` prints after saving the block (one place to edit the wording)."""
    return [
        f"Add athletes with `strava-elt auth --application {name}` (each athlete authorises once).",
        "To load every athlete on Sunday: in prefect.yaml set `active: false` under definitions.weekly_schedule "
        "and `active: true` under definitions.round_schedule, then `prefect --no-prompt deploy --all` "
        "(the round weekly-all replaces weekly; docs/deploy.md, Deployments).",
    ]


def cmd_setup_local(args: argparse.Namespace) -> int:
    """Create the embedded-default blocks."""
    from tasks.setup import setup_local_blocks

    created = setup_local_blocks(
        Path(args.home),
        strava_base_url=args.strava_base_url or env("STRAVA_BASE_URL"),
        client_id=args.client_id or env("STRAVA_CLIENT_ID"),
        client_secret=args.client_secret or env("STRAVA_CLIENT_SECRET"),
        refresh_token=args.refresh_token or env("STRAVA_REFRESH_TOKEN"),
    )
    print_created(created)
    if "strava" not in created:
        print(
            "No Strava block created: run `strava-elt auth --client-id ID --client-secret S` "
            "or pass --client-id/--client-secret/--refresh-token."
        )
    return 0


def cmd_setup_postgres(args: argparse.Namespace) -> int:
    """Create the Warehouse block for a PostgreSQL warehouse."""
    from tasks.setup import setup_postgres_blocks

    url = need(args.url or env("STRAVA_ELT_POSTGRES_URL"), "--url", "STRAVA_ELT_POSTGRES_URL")
    print_created(
        setup_postgres_blocks(url, args.schema or env("STRAVA_ELT_SCHEMA"), warehouse_name=args.warehouse_block)
    )
    if args.checks_role:  # the checks role: tasks/quality/roles.py, docs/validation.md
        from tasks.quality.roles import create_checks_role

        print(create_checks_role(args.warehouse_block, args.checks_role))
    print("The lake stays as it is: a local folder from `strava-elt setup local`, or S3 from `setup aws`.")
    return 0


def cmd_setup_aws(args: argparse.Namespace) -> int:
    """Create the AwsCredentials, S3 lake and Redshift warehouse blocks."""
    from tasks.setup import setup_aws_blocks

    created = setup_aws_blocks(
        bucket=need(args.bucket or env("STRAVA_ELT_S3_BUCKET"), "--bucket", "STRAVA_ELT_S3_BUCKET"),
        bucket_folder=args.bucket_folder or env("STRAVA_ELT_S3_BUCKET_FOLDER") or "",
        region=args.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
        endpoint_url=args.endpoint_url or env("STRAVA_ELT_S3_ENDPOINT_URL"),
        redshift_url=need(
            args.redshift_url or env("STRAVA_ELT_REDSHIFT_URL"), "--redshift-url", "STRAVA_ELT_REDSHIFT_URL"
        ),
        iam_role_arn=need(
            args.iam_role_arn or env("STRAVA_ELT_IAM_ROLE_ARN"), "--iam-role-arn", "STRAVA_ELT_IAM_ROLE_ARN"
        ),
        schema_name=args.schema or env("STRAVA_ELT_SCHEMA"),
        aws_access_key_id=env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY"),
        names=(args.aws_block, args.lake_block, args.warehouse_block),
    )
    print_created(created)
    return 0


def cmd_setup_slack(args: argparse.Namespace) -> int:
    """Create the Slack notification block."""
    from tasks.setup import setup_slack_block

    url = need(args.url or env("STRAVA_ELT_SLACK_URL"), "--url", "STRAVA_ELT_SLACK_URL")
    print_created(setup_slack_block(url, args.name))
    print(f"Runs send one message each with the parameter slack_block={args.name} (strava-elt run --slack-block ...).")
    return 0


def cmd_setup_application(args: argparse.Namespace) -> int:
    """Create the StravaApplication block."""
    from tasks.setup import setup_application_block

    secret = prompt_secret(args.client_secret, "STRAVA_CLIENT_SECRET")
    created = setup_application_block(
        args.name,
        need(args.client_id or env("STRAVA_CLIENT_ID"), "--client-id", "STRAVA_CLIENT_ID"),
        need(secret, "--client-secret", "STRAVA_CLIENT_SECRET"),
        base_url=args.base_url or env("STRAVA_BASE_URL"),
    )
    print_created(created)
    for line in application_next_steps(args.name):
        print(line)
    return 0


def register(sub: Any) -> None:
    """Add ``setup`` and its targets to the parser."""
    setup = add_command(
        sub,
        "setup",
        help="create the Prefect blocks the pipeline needs",
        description="Create (or overwrite) the Prefect blocks the flows load: warehouse, lake, Strava "
        "credentials, a Strava application shared by several athletes, Slack. Python callers: tasks.setup.",
        examples=["strava-elt setup local --home ./.strava-elt", "strava-elt setup local --help"],
    )
    targets = setup.add_subparsers(dest="target", required=True, metavar="TARGET")

    local = add_command(
        targets,
        "local",
        help="embedded default: DuckDB file and lake folder under --home, plus the Strava block",
        description="Save a LocalFileSystem lake (HOME/lake) and a DuckDB Warehouse (HOME/warehouse.duckdb); "
        "with --client-id, --client-secret and --refresh-token also the StravaCredentials block 'strava'.",
        examples=[
            "strava-elt setup local --home ~/.strava-elt",
            "strava-elt setup local --client-id 12345 --client-secret S --refresh-token T",
        ],
        func=cmd_setup_local,
    )
    local.add_argument(
        "--home", default=str(DEFAULT_HOME), help="folder for the DuckDB file and the lake (default ./.strava-elt)"
    )
    local.add_argument(
        "--strava-base-url", help="Strava base URL (default https://www.strava.com; env STRAVA_BASE_URL)"
    )
    local.add_argument("--client-id", help="Strava API application client id (env STRAVA_CLIENT_ID)")
    local.add_argument("--client-secret", help="Strava API application client secret (env STRAVA_CLIENT_SECRET)")
    local.add_argument("--refresh-token", help="refresh token with activity:read_all (env STRAVA_REFRESH_TOKEN)")

    postgres = add_command(
        targets,
        "postgres",
        help="PostgreSQL warehouse: a Warehouse block for a postgresql+psycopg:// URL",
        description="Save the Warehouse block for PostgreSQL; the lake stays as it is.",
        examples=[
            "strava-elt setup postgres --url postgresql+psycopg://me:pw@localhost:5432/strava --schema strava",
            "strava-elt setup postgres --url postgresql+psycopg://me@localhost:5432/strava --checks-role strava_checks",
        ],
        func=cmd_setup_postgres,
    )
    postgres.add_argument(
        "--url",
        help="postgresql+psycopg://user:password@host:5432/db (env STRAVA_ELT_POSTGRES_URL; password never printed)",
    )
    postgres.add_argument("--schema", help="schema for the tables, created if missing (env STRAVA_ELT_SCHEMA)")
    postgres.add_argument("--warehouse-block", default="strava-warehouse", help="block name (default strava-warehouse)")
    postgres.add_argument(
        "--checks-role",
        metavar="NAME",
        help="also create role NAME that can only SELECT the project's tables; the checks run as it",
    )

    aws = add_command(
        targets,
        "aws",
        help="production on AWS: AwsCredentials, S3Bucket lake and Redshift Warehouse blocks",
        description="Save AwsCredentials (keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else boto3's "
        "default chain), an S3Bucket lake and a Redshift Warehouse whose COPY assumes --iam-role-arn.",
        examples=[
            "strava-elt setup aws --bucket my-lake --region eu-west-1 "
            "--redshift-url redshift+redshift_connector://me:pw@cluster:5439/dev "
            "--iam-role-arn arn:aws:iam::123456789012:role/copy"
        ],
        func=cmd_setup_aws,
    )
    aws.add_argument("--bucket", help="S3 bucket of the lake (env STRAVA_ELT_S3_BUCKET)")
    aws.add_argument("--bucket-folder", help="folder (key prefix) inside the bucket (env STRAVA_ELT_S3_BUCKET_FOLDER)")
    aws.add_argument("--region", help="AWS region of bucket and cluster (env AWS_REGION or AWS_DEFAULT_REGION)")
    aws.add_argument(
        "--endpoint-url", help="S3 endpoint for S3-compatible stores or tests (env STRAVA_ELT_S3_ENDPOINT_URL)"
    )
    aws.add_argument(
        "--redshift-url",
        help=(
            "redshift+redshift_connector://user:password@host:5439/db "
            "(env STRAVA_ELT_REDSHIFT_URL; password never printed)"
        ),
    )
    aws.add_argument(
        "--iam-role-arn", help="IAM role the cluster's COPY assumes to read the bucket (env STRAVA_ELT_IAM_ROLE_ARN)"
    )
    aws.add_argument("--schema", help="Redshift schema for the tables (env STRAVA_ELT_SCHEMA)")
    aws.add_argument("--aws-block", default="strava-aws", help="AwsCredentials block name (default strava-aws)")
    aws.add_argument("--lake-block", default="strava-lake", help="S3Bucket block name (default strava-lake)")
    aws.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )

    slack = add_command(
        targets,
        "slack",
        help="a Slack Incoming Webhook block for one message per run (any notification block works)",
        description="Save a Slack Incoming Webhook block; runs given --slack-block send one message each.",
        examples=["STRAVA_ELT_SLACK_URL=https://hooks.slack.com/services/T/B/X strava-elt setup slack"],
        func=cmd_setup_slack,
    )
    slack.add_argument("--url", help="the webhook URL, https://hooks.slack.com/services/... (env STRAVA_ELT_SLACK_URL)")
    slack.add_argument("--name", default="strava-slack", help="block name (default strava-slack)")

    application = add_command(
        targets,
        "application",
        help="a Strava Application block shared by several athletes (client id and secret once)",
        description="Save (or update) a StravaApplication block; each athlete then authorises once with "
        "`strava-elt auth --application NAME`, and `strava-elt run --all --application NAME` runs them all. "
        "The weekly-all deployment and `run --all` without --application use the name strava-application.",
        examples=[
            "strava-elt setup application --name strava-application --client-id 12345",
            "strava-elt setup application --name strava-club --client-id 12345",
        ],
        func=cmd_setup_application,
    )
    application.add_argument("--name", required=True, help="block name, e.g. strava-club")
    application.add_argument("--client-id", help="client id from strava.com/settings/api (env STRAVA_CLIENT_ID)")
    application.add_argument(
        "--client-secret", help="client secret (env STRAVA_CLIENT_SECRET; prompted, hidden, when missing)"
    )
    application.add_argument("--base-url", help="Strava base URL (default https://www.strava.com; env STRAVA_BASE_URL)")
