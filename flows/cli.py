"""The ``strava-elt`` command line.

Prefect is imported inside the commands, after the environment is set, so that
``demo`` can point Prefect at its own home folder before Prefect reads its settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows import cli_webhook

DEFAULT_HOME = Path(".strava-elt")
DEMO_BLOCKS = ("strava-demo", "strava-demo-lake", "strava-demo-warehouse")


class CliError(Exception):
    """A user-facing error: printed to stderr without a traceback, exit code 1."""


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value or None


# --------------------------------------------------------------------------- setup


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
    names: Sequence[str] = ("strava", "strava-lake", "strava-warehouse"),
) -> dict[str, str]:
    """Create (or overwrite) the embedded-default blocks; return what was created."""
    from prefect.filesystems import LocalFileSystem
    from pydantic import SecretStr

    from blocks import StravaCredentials, Warehouse

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
    strava_args = (client_id, client_secret, refresh_token)
    if all(strava_args):
        StravaCredentials(
            client_id=str(client_id),
            client_secret=SecretStr(str(client_secret)),
            refresh_token=SecretStr(str(refresh_token)),
            base_url=strava_base_url or "https://www.strava.com",
        ).save(strava_name, overwrite=True)
        created[strava_name] = f"StravaCredentials for {strava_base_url or 'https://www.strava.com'}"
    elif any(strava_args):
        raise CliError(
            "Give all three of --client-id, --client-secret and --refresh-token (or none, "
            "and create the Strava block later with `strava-elt auth`)."
        )
    return created


def setup_emulator_blocks(home: Path, emu: Any, names: Sequence[str]) -> dict[str, str]:
    """Create local blocks whose Strava credentials point at a running emulator."""
    return setup_local_blocks(
        home,
        strava_base_url=emu.base_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        refresh_token=emu.current_refresh_token,
        names=names,
    )


def cmd_setup_local(args: argparse.Namespace) -> int:
    """Create the embedded-default blocks."""
    created = setup_local_blocks(
        Path(args.home),
        strava_base_url=args.strava_base_url or _env("STRAVA_BASE_URL"),
        client_id=args.client_id or _env("STRAVA_CLIENT_ID"),
        client_secret=args.client_secret or _env("STRAVA_CLIENT_SECRET"),
        refresh_token=args.refresh_token or _env("STRAVA_REFRESH_TOKEN"),
    )
    for name, what in created.items():
        print(f"block {name!r}: {what}")
    if "strava" not in created:
        print(
            "No Strava block created: run `strava-elt auth --client-id ID --client-secret S` "
            "or pass --client-id/--client-secret/--refresh-token."
        )
    return 0


def _redacted(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _check_url(url: str, backend: str, driver: str) -> None:
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise CliError(f"Not a SQLAlchemy URL; expected {backend}+{driver}://user:password@host:port/db") from None
    if parsed.get_backend_name() != backend or parsed.get_driver_name() != driver:
        raise CliError(
            f"Expected a {backend}+{driver}:// URL, got {parsed.drivername}:// (the pipeline loads "
            f"{backend} through {driver})"
        )


def setup_postgres_blocks(
    url: str, schema_name: str | None = None, *, warehouse_name: str = "strava-warehouse"
) -> dict[str, str]:
    """Create (or overwrite) a Warehouse block for PostgreSQL; return what was created."""
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
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
    from pydantic import SecretStr

    from blocks import Warehouse

    _check_url(redshift_url, "redshift", "redshift_connector")
    if bool(aws_access_key_id) != bool(aws_secret_access_key):
        raise CliError("Give both --aws-access-key-id and --aws-secret-access-key, or neither")
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

    from prefect_slack import SlackWebhook
    from pydantic import SecretStr

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise CliError("Expected the webhook's URL, https://hooks.slack.com/services/...")
    SlackWebhook(url=SecretStr(url)).save(name, overwrite=True)
    return {name: f"Slack Incoming Webhook to {parts.netloc} (URL kept secret)"}


def cmd_setup_slack(args: argparse.Namespace) -> int:
    """Create the Slack notification block."""
    url = _need(args.url or _env("STRAVA_ELT_SLACK_URL"), "--url", "STRAVA_ELT_SLACK_URL")
    _print_created(setup_slack_block(url, args.name))
    print(f"Runs send one message each with the parameter slack_block={args.name} (strava-elt run --slack-block ...).")
    return 0


def _need(value: str | None, flag: str, env: str) -> str:
    if not value:
        raise CliError(f"{flag} is required (or set {env})")
    return value


def _print_created(created: dict[str, str]) -> None:
    for name, what in created.items():
        print(f"block {name!r}: {what}")


def cmd_setup_postgres(args: argparse.Namespace) -> int:
    """Create the Warehouse block for a PostgreSQL warehouse."""
    url = _need(args.url or _env("STRAVA_ELT_POSTGRES_URL"), "--url", "STRAVA_ELT_POSTGRES_URL")
    created = setup_postgres_blocks(url, args.schema or _env("STRAVA_ELT_SCHEMA"), warehouse_name=args.warehouse_block)
    _print_created(created)
    print("The lake stays as it is: a local folder from `strava-elt setup local`, or S3 from `setup aws`.")
    return 0


def cmd_setup_aws(args: argparse.Namespace) -> int:
    """Create the AwsCredentials, S3 lake and Redshift warehouse blocks."""
    created = setup_aws_blocks(
        bucket=_need(args.bucket or _env("STRAVA_ELT_S3_BUCKET"), "--bucket", "STRAVA_ELT_S3_BUCKET"),
        bucket_folder=args.bucket_folder or _env("STRAVA_ELT_S3_BUCKET_FOLDER") or "",
        region=args.region or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION"),
        endpoint_url=args.endpoint_url or _env("STRAVA_ELT_S3_ENDPOINT_URL"),
        redshift_url=_need(
            args.redshift_url or _env("STRAVA_ELT_REDSHIFT_URL"), "--redshift-url", "STRAVA_ELT_REDSHIFT_URL"
        ),
        iam_role_arn=_need(
            args.iam_role_arn or _env("STRAVA_ELT_IAM_ROLE_ARN"), "--iam-role-arn", "STRAVA_ELT_IAM_ROLE_ARN"
        ),
        schema_name=args.schema or _env("STRAVA_ELT_SCHEMA"),
        aws_access_key_id=_env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=_env("AWS_SECRET_ACCESS_KEY"),
        names=(args.aws_block, args.lake_block, args.warehouse_block),
    )
    _print_created(created)
    return 0


# --------------------------------------------------------------------------- auth


def ask_code(url: str, code: str | None) -> str:
    """Show the authorize URL, take the code (``code``, or pasted: the code or the redirect URL), check its scope."""
    from blocks.strava import parse_authorization_response as parse
    from tasks.strava.auth import check_scope
    from tasks.strava.errors import StravaError

    print("1. Open this URL in a browser signed in to Strava and click Authorize:")
    print(f"   {url}")
    print("2. The browser lands on a page that may not load; its address holds code=...")
    if code is None:
        code = input("3. Paste the code (or the whole address): ")
    try:
        parsed_code, scope = parse(code)
        check_scope(scope)
    except (ValueError, StravaError) as exc:
        raise CliError(str(exc)) from None
    return parsed_code


def authorize(
    client_id: str,
    client_secret: str,
    *,
    code: str | None = None,
    base_url: str = "https://www.strava.com",
    redirect_uri: str | None = None,
    block: str = "strava",
) -> dict[str, Any]:
    """Walk the athlete through Strava's OAuth and save the StravaCredentials block.

    Prints the authorize URL, takes the code (``code``, or pasted at a prompt: the code or
    the whole redirect URL), exchanges it, checks the scope and saves ``block``. Never
    prints the secret or a token.

    Returns:
        The athlete Strava sent with the tokens (may be empty).

    """
    from blocks.strava import DEFAULT_REDIRECT_URI, authorize_url
    from tasks.strava.auth import from_authorization_code
    from tasks.strava.errors import StravaError

    url = authorize_url(client_id, redirect_uri=redirect_uri or DEFAULT_REDIRECT_URI, base_url=base_url)
    parsed_code = ask_code(url, code)
    try:
        credentials, athlete = from_authorization_code(client_id, client_secret, parsed_code, base_url=base_url)
    except (ValueError, StravaError) as exc:
        raise CliError(str(exc)) from None
    credentials.save(block, overwrite=True)
    name = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip() or "(name not sent)"
    who = f"athlete {name} (id {athlete.get('id', '?')})"
    print(f"Saved StravaCredentials block {block!r} for {who}; the refresh token rotates and is kept there.")
    return athlete


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise the application for an athlete and save the Strava block."""
    secret = args.client_secret or _env("STRAVA_CLIENT_SECRET")
    if not secret:
        import getpass

        secret = getpass.getpass("Client secret (input hidden): ")
    authorize(
        _need(args.client_id or _env("STRAVA_CLIENT_ID"), "--client-id", "STRAVA_CLIENT_ID"),
        _need(secret, "--client-secret", "STRAVA_CLIENT_SECRET"),
        code=args.code,
        base_url=args.base_url or _env("STRAVA_BASE_URL") or "https://www.strava.com",
        redirect_uri=args.redirect_uri,
        block=args.block,
    )
    return 0


# --------------------------------------------------------------------------- run


def run_pipeline(**parameters: Any) -> dict[str, Any]:
    """Run the main flow in this process and return its summary."""
    from flows.pipeline import strava_elt

    return strava_elt(**parameters)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the main flow once and print its summary (``--all``: the round over an application's athletes)."""
    if args.all:
        from flows.cli_round import print_round, run_round

        params = {"lake_block": args.lake_block, "warehouse_block": args.warehouse_block, "mode": args.mode}
        result = run_round(application_block=args.application, lookback_days=args.lookback_days, **params)
        print_round(f"Round over {args.application}", result)
        return 0 if not any(a["outcome"] == "failed" for a in result["athletes"]) else 1
    summary = run_pipeline(
        strava_block=args.strava_block,
        lake_block=args.lake_block,
        warehouse_block=args.warehouse_block,
        lookback_days=args.lookback_days,
        full_refresh=args.full_refresh,
        slack_block=args.slack_block,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------- demo


def _print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n== {title}")
    print(
        f"   {summary['requests']} API requests ({summary['pages']} pages), {summary['extracted']} activities extracted"
    )
    print(
        f"   production: {summary['inserted']} inserted, {summary['updated']} updated, "
        f"{summary['unchanged']} unchanged, {summary['deleted']} marked deleted"
    )
    print(f"   watermark: {summary['watermark']}  status: {summary['status']}")
    checks = summary.get("checks") or []
    if checks:
        failed = [c for c in checks if str(c.get("outcome", "")).startswith("fail")]
        skipped = [c for c in checks if str(c.get("outcome", "")).startswith("skip")]
        print(
            f"   validation: {len(checks)} checks, {len(checks) - len(failed) - len(skipped)} passed, "
            f"{len(skipped)} skipped, {len(failed)} failed"
            + "".join(f"\n     {c.get('severity')} {c.get('name')}: {c.get('detail')}" for c in failed)
        )


def _monthly_rows(duckdb_path: Path, limit: int = 6) -> tuple[list[str], list[tuple[Any, ...]]]:
    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        cursor = conn.execute("SELECT * FROM activity_summary_monthly ORDER BY month DESC LIMIT ?", [limit])
        return [d[0] for d in cursor.description], cursor.fetchall()


def duckdb_hint(path: Path, sql: str = "FROM strava_activity_data LIMIT 5") -> str:
    """A command that prints a query on the DuckDB file with this Python (no duckdb CLI needed)."""
    import shlex

    code = f"import duckdb; duckdb.connect({json.dumps(str(path))}, read_only=True).sql({json.dumps(sql)}).show()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def cmd_demo(args: argparse.Namespace) -> int:
    """Two runs against the emulator, with a change in between, and what happened."""
    home = Path(args.home).expanduser().resolve()
    if not _env("PREFECT_API_URL"):
        # A self-contained Prefect home: the demo never touches the user's own blocks.
        (home / "prefect").mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server can take a while to start on a small, busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for leftover in ("lake", "warehouse.duckdb", "warehouse.duckdb.wal"):
        target = home / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    from datetime import datetime, timedelta

    from emulator import StravaEmulator

    print(f"strava-elt demo: emulator, DuckDB and lake under {home}")
    if args.athletes > 1:  # one application, several athletes: two rounds (flows/cli_round.py)
        from flows.cli_round import demo_rounds

        return demo_rounds(home, args.athletes, min(args.activities, 300), DEMO_BLOCKS)
    with StravaEmulator(activities=args.activities) as emu:
        print(f"Strava API emulator on {emu.base_url} with {len(emu.activities)} activities")
        # A new DuckDB file is a new warehouse (its own id): no watermark carries over from an earlier demo.
        setup_emulator_blocks(home, emu, DEMO_BLOCKS)
        params = dict(zip(("strava_block", "lake_block", "warehouse_block"), DEMO_BLOCKS, strict=True))
        first = run_pipeline(**params)
        _print_summary("Run 1: first load", first)

        newest = max(datetime.fromisoformat(a["start_date"].replace("Z", "+00:00")) for a in emu.activities)
        added = emu.add_activities(3)
        late = emu.add_activities(1, start_date=newest - timedelta(days=3))
        recent = [a for a in emu.activities if a["id"] not in {x["id"] for x in added + late}][:5]
        for activity in recent:
            emu.modify_activity(activity["id"], kudos_count=activity["kudos_count"] + 7)
        print(
            f"\nIn the emulator: {len(added)} new activities, 1 late upload dated "
            f"{late[0]['start_date']}, kudos +7 on {len(recent)} recent activities"
        )
        second = run_pipeline(**params)
        _print_summary("Run 2: incremental", second)

    duckdb_path = home / "warehouse.duckdb"
    columns, rows = _monthly_rows(duckdb_path)
    print("\nactivity_summary_monthly (latest months):")
    print("   " + " | ".join(columns))
    for row in rows:
        print("   " + " | ".join("" if v is None else str(v) for v in row))
    print(f"\nWarehouse: {duckdb_path}")
    print(f"   look inside: {duckdb_hint(duckdb_path)}")
    print(f"Lake:      {home / 'lake'}")
    dashboard = (second.get("dashboard") or {}).get("url")
    if dashboard:
        print(f"Dashboard: {dashboard}")
    ok = first["inserted"] > 0 and second["inserted"] == len(added) + len(late) and second["updated"] >= len(recent)
    print("\nDemo " + ("succeeded." if ok else "finished, but the numbers are not what was expected."))
    return 0 if ok else 1


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    """Run one ad-hoc check; exit 1 only when a halt check fails."""
    from tasks.quality import describe, run_adhoc

    result = run_adhoc(
        args.script_1, args.script_2, args.operator, args.severity, args.warehouse_block, args.athlete_id
    )
    print(f"{result.name} ({result.severity}): {describe(result)}")
    return 1 if result.halts else 0


# --------------------------------------------------------------------------- insight


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Render the self-contained dashboard from the warehouse into one HTML file."""
    from flows.insight import write_dashboard_file

    path, size = write_dashboard_file(args.warehouse_block, Path(args.out), args.athlete_id)
    print(f"dashboard written to {path} ({size:,} bytes); open it in any browser, it needs no network")
    return 0


def cmd_predict_kudos(args: argparse.Namespace) -> int:
    """Predict the kudos of one activity with the latest accepted kudos model."""
    from datetime import datetime

    from flows.kudos import predict

    start = datetime.fromisoformat(args.start) if args.start else None
    result = predict(
        args.lake_block,
        args.athlete_id,
        distance_km=args.distance,
        sport_type=args.sport_type,
        moving_minutes=args.moving_time,
        elevation_m=args.elevation,
        workout_type=args.workout_type,
        start_local=start,
        photos=args.photos,
        achievements=args.achievements,
        athlete_count=args.athlete_count,
        commute=args.commute,
        trainer=args.trainer,
        visibility=args.visibility,
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    f, p = result["features"], result["pointer"]
    print(f"Predicted kudos: {result['kudos']:.1f}")
    print(
        f"   for {f['distance_km']:g} km of {f['sport_type']} in {f['moving_minutes']:.0f} min, "
        f"{f['elevation_m']:.0f} m climb, workout type {f['workout_type']}, "
        f"{start.strftime('%A %H:%M') if start else 'now'}"
    )
    print(
        f"   model {p['model']} (MAE {p['mae_model']} vs baseline {p['mae_baseline']}), trained {result['trained_at']}"
    )
    return 0


# --------------------------------------------------------------------------- deploy


DEFAULT_POOL = "strava-elt-pool"  # prefect.yaml's work pool (`prefect deploy --all` ignores --pool)


def project_root() -> Path:
    """The checkout holding prefect.yaml (with ``pip install -e .``, the one this file is in)."""
    return Path(__file__).resolve().parents[1]


def deploy_local_steps(*, port: int = 4200, home: Path = DEFAULT_HOME, emulator: bool = False) -> list[tuple[str, str]]:
    """The commands that deploy strava-elt on a local Prefect server: (what it does, command) pairs."""
    import shlex

    root = shlex.quote(str(project_root()))
    home_arg = shlex.quote(str(home.expanduser().resolve()))
    steps: list[tuple[str, str]] = []
    if sys.prefix != sys.base_prefix:
        steps.append(("In each terminal: this virtualenv", f"source {shlex.quote(sys.prefix)}/bin/activate"))
    steps += [
        (
            f"Terminal 1: the Prefect server, UI at http://127.0.0.1:{port} (leave it running)",
            f"prefect server start --host 127.0.0.1 --port {port}",
        ),
        ("Terminal 2, and every other one: talk to that server", f"export PREFECT_API_URL=http://127.0.0.1:{port}/api"),
        ("Register the block types, once per server", "prefect block register -m blocks"),
    ]
    if emulator:
        steps.append(("Another terminal: the Strava emulator, instead of Strava", "strava-elt emulator --port 8765"))
        strava = (
            "--strava-base-url http://127.0.0.1:8765 --client-id 12345 "
            "--client-secret emulator-secret --refresh-token emulator-refresh-token"
        )
    else:
        strava = "--client-id ID --client-secret SECRET --refresh-token TOKEN"
    steps += [
        (
            "The blocks the deployments name: DuckDB warehouse and lake folder under --home, Strava credentials",
            f"strava-elt setup local --home {home_arg} {strava}",
        ),
        ("The process work pool", f"prefect work-pool create --type process {DEFAULT_POOL}"),
        (
            "The deployments in prefect.yaml: weekly (Sunday 00:00 UTC), backfill, retrain-kudos-model",
            f"cd {root} && prefect --no-prompt deploy --all",
        ),
        (
            "Another terminal (PREFECT_API_URL exported): a worker for the scheduled, triggered and manual runs",
            f"prefect worker start --pool {DEFAULT_POOL}",
        ),
        (
            "Run the weekly deployment once, now (or in the UI: Deployments > weekly > Run > Quick run)",
            "prefect deployment run 'strava-elt/weekly'",
        ),
    ]
    return steps


def cmd_deploy_local(args: argparse.Namespace) -> int:
    """Print the commands that deploy strava-elt on a local Prefect server; start nothing."""
    steps = deploy_local_steps(port=args.port, home=Path(args.home), emulator=args.emulator)
    print("strava-elt deploy-local: nothing has been started. Run these, in order (docs/deploy.md explains them):")
    current = _env("PREFECT_API_URL")
    if current:
        print(f"(PREFECT_API_URL is already {current}: with that server, skip the server and export steps.)")
    for number, (what, command) in enumerate(steps, start=1):
        print(f"\n# {number}. {what}\n{command}")
    return 0


# --------------------------------------------------------------------------- emulator


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve the emulator until Ctrl-C."""
    from emulator.server import serve_forever

    serve_forever(port=args.port, activities=args.activities, seed=args.seed, host=args.host, athletes=args.athletes)
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="strava-elt",
        description="Keep your Strava activities in a warehouse with Prefect: extract, validate, merge.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setup = sub.add_parser("setup", help="create the Prefect blocks the pipeline needs")
    setup_sub = setup.add_subparsers(dest="target", required=True, metavar="TARGET")
    local = setup_sub.add_parser(
        "local", help="embedded default: DuckDB file and lake folder under --home, plus the Strava block"
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
    local.set_defaults(func=cmd_setup_local)

    postgres = setup_sub.add_parser(
        "postgres", help="PostgreSQL warehouse: a Warehouse block for a postgresql+psycopg:// URL"
    )
    postgres.add_argument(
        "--url",
        help="postgresql+psycopg://user:password@host:5432/db (env STRAVA_ELT_POSTGRES_URL; password never printed)",
    )
    postgres.add_argument("--schema", help="schema for the tables, created if missing (env STRAVA_ELT_SCHEMA)")
    postgres.add_argument("--warehouse-block", default="strava-warehouse", help="block name (default strava-warehouse)")
    postgres.set_defaults(func=cmd_setup_postgres)

    aws = setup_sub.add_parser(
        "aws", help="production on AWS: AwsCredentials, S3Bucket lake and Redshift Warehouse blocks"
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
    aws.set_defaults(func=cmd_setup_aws)

    slack = setup_sub.add_parser(
        "slack", help="a Slack Incoming Webhook block for one message per run (any notification block works)"
    )
    slack.add_argument("--url", help="the webhook URL, https://hooks.slack.com/services/... (env STRAVA_ELT_SLACK_URL)")
    slack.add_argument("--name", default="strava-slack", help="block name (default strava-slack)")
    slack.set_defaults(func=cmd_setup_slack)

    auth = sub.add_parser(
        "auth", help="authorise your Strava API application for your athlete and save the Strava block"
    )
    auth.add_argument("--client-id", help="client id from strava.com/settings/api (env STRAVA_CLIENT_ID)")
    auth.add_argument(
        "--client-secret", help="client secret (env STRAVA_CLIENT_SECRET; prompted, hidden, when missing)"
    )
    auth.add_argument("--code", help="the code from the redirect (default: prompt for it)")
    auth.add_argument("--base-url", help="Strava base URL (default https://www.strava.com; env STRAVA_BASE_URL)")
    auth.add_argument(
        "--redirect-uri",
        help="redirect URI, whose host must be the app's Authorization Callback Domain "
        "(default http://localhost/exchange_token)",
    )
    auth.add_argument("--block", default="strava", help="StravaCredentials block name (default strava)")
    auth.set_defaults(func=cmd_auth)

    run = sub.add_parser("run", help="run the pipeline once, in this process")
    run.add_argument("--strava-block", default="strava", help="StravaCredentials block name (default strava)")
    run.add_argument("--lake-block", default="strava-lake", help="lake block name (default strava-lake)")
    run.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    run.add_argument("--lookback-days", type=int, default=14, help="days re-read before the watermark (default 14)")
    run.add_argument("--full-refresh", action="store_true", help="re-read the whole history")
    run.add_argument("--slack-block", help="notification block for one message per run (default: none)")
    run.add_argument("--all", action="store_true", help="the round: every active athlete of --application")
    run.add_argument("--application", default="strava-application", help="StravaApplication block (with --all)")
    run.add_argument("--mode", choices=("inline", "deployment"), default="inline", help="with --all (default inline)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="two runs against the built-in emulator: no credentials, no network")
    demo.add_argument("--home", default=str(DEFAULT_HOME / "demo"), help="demo folder (default ./.strava-elt/demo)")
    demo.add_argument("--activities", type=int, default=1500, help="size of the emulated athlete (default 1500)")
    demo.add_argument("--verbose", action="store_true", help="show Prefect's flow and task logs")
    demo.add_argument("--athletes", type=int, default=1, help="athletes of one application: two rounds (default 1)")
    demo.set_defaults(func=cmd_demo)

    validate = sub.add_parser(
        "validate", help="run one ad-hoc check: SCRIPT_1's value OPERATOR SCRIPT_2's value (or a number)"
    )
    validate.add_argument("script_1", metavar="SCRIPT_1", help="SQL file returning one value (value 1)")
    validate.add_argument("script_2", metavar="SCRIPT_2", help="SQL file returning one value, or a number (value 2)")
    validate.add_argument(
        "operator",
        metavar="OPERATOR",
        choices=("equals", "not_equals", "greater", "greater_equals", "less", "less_equals"),
        help="equals, not_equals, greater, greater_equals, less or less_equals",
    )
    validate.add_argument("severity", choices=("warn", "halt"), help="halt: exit code 1 when the check fails")
    validate.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    validate.add_argument("--athlete-id", type=int, help="bound as :athlete_id in the scripts (default NULL)")
    validate.set_defaults(func=cmd_validate)

    dash = sub.add_parser("dashboard", help="write the self-contained HTML dashboard from the warehouse")
    dash.add_argument(
        "--warehouse-block", default="strava-warehouse", help="Warehouse block name (default strava-warehouse)"
    )
    dash.add_argument("--out", default="dashboard.html", help="HTML file to write (default ./dashboard.html)")
    dash.add_argument(
        "--athlete-id", type=int, help="whose dashboard (required when the warehouse holds several athletes)"
    )
    dash.set_defaults(func=cmd_dashboard)

    kudos = sub.add_parser("predict-kudos", help="predict an activity's kudos with the latest kudos model")
    kudos.add_argument("--distance", type=float, required=True, help="distance in km")
    kudos.add_argument("--sport-type", required=True, help="Strava sport type, e.g. Run, Ride, TrailRun")
    kudos.add_argument("--moving-time", type=float, help="moving time in minutes (default: your usual pace)")
    kudos.add_argument("--elevation", type=float, help="climb in metres (default: your usual climb per km)")
    kudos.add_argument("--workout-type", type=int, help="Strava workout type, e.g. 1 race, 2 long run, 3 workout")
    kudos.add_argument("--start", help="local start time, ISO 8601 (default now)")
    kudos.add_argument("--photos", type=int, default=0, help="number of photos (default 0)")
    kudos.add_argument("--achievements", type=int, default=0, help="achievements (default 0)")
    kudos.add_argument("--athlete-count", type=int, default=1, help="athletes in the group (default 1)")
    kudos.add_argument("--commute", action="store_true", help="a commute")
    kudos.add_argument("--trainer", action="store_true", help="indoors, on a trainer or treadmill")
    kudos.add_argument(
        "--visibility", default="everyone", choices=("everyone", "followers_only", "only_me"), help="who can see it"
    )
    kudos.add_argument("--lake-block", default="strava-lake", help="lake block name (default strava-lake)")
    kudos.add_argument("--athlete-id", type=int, help="whose model (default: the newest model of any athlete)")
    kudos.add_argument("--json", action="store_true", help="print the prediction and its features as JSON")
    kudos.set_defaults(func=cmd_predict_kudos)

    deploy = sub.add_parser(
        "deploy-local", help="print the commands that deploy the flows on a local Prefect server (runs nothing)"
    )
    deploy.add_argument("--port", type=int, default=4200, help="port of the Prefect server (default 4200)")
    deploy.add_argument(
        "--home", default=str(DEFAULT_HOME), help="folder for the DuckDB file and the lake (default ./.strava-elt)"
    )
    deploy.add_argument("--emulator", action="store_true", help="use the Strava emulator instead of real credentials")
    deploy.set_defaults(func=cmd_deploy_local)

    emu = sub.add_parser("emulator", help="serve the Strava API v3 emulator until Ctrl-C")
    emu.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    emu.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    emu.add_argument("--activities", type=int, default=1500, help="number of synthetic activities")
    emu.add_argument("--seed", type=int, default=42, help="seed of the first synthetic athlete (athlete k: seed + k)")
    emu.add_argument(
        "--athletes", type=int, default=1, help="athletes of the one application, each with --activities (default 1)"
    )
    emu.set_defaults(func=cmd_emulator)
    from flows import cli_athletes

    cli_athletes.register(sub)  # setup application, auth --application, athletes, dashboard --index
    cli_webhook.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``strava-elt`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: reason on stderr
        print(f"strava-elt {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
