"""The S3 lake: prefect-aws S3Bucket against moto's S3 server over HTTP, the whole pipeline on top.

The warehouse reads the staging object back through the block (DuckDB and PostgreSQL); keys are
run-scoped and sit under the block's ``bucket_folder``.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from prefect import flow, task
from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
from pydantic import SecretStr

from blocks import Warehouse
from flows.cli import main
from tasks import lake as lake_tasks
from tasks.lake import load_lake
from tests.conftest import WAREHOUSES, Env
from tests.test_lake import assert_both_layouts_are_read
from tests.test_pipeline import assert_matches_emulator

REGION = "eu-west-1"
FOLDER = "strava/prod"


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    """The S3 lake is exercised with DuckDB and with PostgreSQL behind it."""
    return str(request.param)


@dataclass
class S3:
    """moto's S3 server on a free localhost port, and a boto3 client that talks to it."""

    endpoint_url: str
    client: Any

    def credentials(self) -> AwsCredentials:
        return AwsCredentials(
            aws_access_key_id="testing",
            aws_secret_access_key=SecretStr("testing"),
            region_name=REGION,
            aws_client_parameters=AwsClientParameters(endpoint_url=self.endpoint_url),
        )

    def new_bucket(self) -> str:
        name = f"strava-lake-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
    )
    try:
        yield S3(endpoint, client)
    finally:
        server.stop()


@pytest.fixture
def s3_lake(s3: S3) -> tuple[str, str]:
    """A fresh bucket and an S3Bucket block (bucket_folder set) saved under a unique name."""
    bucket = s3.new_bucket()
    name = f"s3-lake-{uuid.uuid4().hex[:10]}"
    S3Bucket(bucket_name=bucket, bucket_folder=FOLDER, credentials=s3.credentials()).save(name, overwrite=True)
    return bucket, name


def test_whole_pipeline_with_s3_lake(env: Env, s3: S3, s3_lake: tuple[str, str]) -> None:
    bucket, lake_block = s3_lake
    first = env.run(lake_block=lake_block)
    assert first["inserted"] == len(env.emu.activities)
    assert_matches_emulator(env)

    athlete = env.emu.athlete["id"]
    first_ids = sorted(a["id"] for a in env.emu.activities)
    env.emu.add_activities(3)
    second = env.run(lake_block=lake_block)
    assert second["inserted"] == 3
    assert_matches_emulator(env)

    keys = s3.keys(bucket)
    assert keys and all(k.startswith(FOLDER + "/") for k in keys)
    assert not (env.home / "lake" / "raw").exists()  # nothing went to the local lake
    for summary in (first, second):
        run = f"run={summary['run_key']}"
        raw = [k for k in keys if k.startswith(f"{FOLDER}/raw/activities/athlete_id={athlete}/{run}/")]
        assert len(raw) == summary["pages"]
        staging = f"{FOLDER}/staging/activities/athlete_id={athlete}/{run}/activities.parquet"
        assert staging in keys
        table = pq.read_table(io.BytesIO(s3.get(bucket, staging)))
        assert table.num_rows == summary["extracted"]
    first_raw = sorted(k for k in keys if f"run={first['run_key']}/" in k and "/raw/" in k)
    ids = [a["id"] for k in first_raw for a in json.loads(gzip.decompress(s3.get(bucket, k)))]
    assert sorted(ids) == first_ids
    secrets = [env.emu.client_secret, env.emu.current_refresh_token]
    assert not any(s.encode() in s3.get(bucket, k) for k in keys for s in secrets)


def test_staging_object_uri_is_the_exact_key_written(s3: S3, s3_lake: tuple[str, str]) -> None:
    bucket, lake_block = s3_lake
    lake = load_lake(lake_block)
    assert isinstance(lake.block, S3Bucket)
    path = lake_tasks.staging_file_path(42, "20250101t000000_abcdef12")
    written = lake.write(path, b"PAR1")
    uri = lake.s3_uri(path)
    assert uri == f"s3://{bucket}/{FOLDER}/{path}" == f"s3://{bucket}/{written}"
    assert s3.get(bucket, f"{FOLDER}/{path}") == b"PAR1"
    assert lake.read(path) == b"PAR1"


def test_lake_on_s3_writes_one_object_and_tells_missing_from_failing(s3: S3, s3_lake: tuple[str, str]) -> None:
    bucket, lake_block = s3_lake
    lake = load_lake(lake_block)
    key = "models/kudos/athlete_id=1/latest.json"
    lake.write(key, b"old")
    lake.write(key, b"new")
    assert s3.keys(bucket) == [f"{FOLDER}/{key}"] and s3.get(bucket, f"{FOLDER}/{key}") == b"new"
    assert lake.read(key) == lake.read_if_present(key) == b"new"
    assert lake.url(key) == lake.s3_uri(key) == f"s3://{bucket}/{FOLDER}/{key}"
    assert lake.region == REGION

    assert lake.read_if_present("models/kudos/nothing.json") is None  # moto's 404: absent
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/{FOLDER}/models/kudos/nothing.json"):
        lake.read("models/kudos/nothing.json")

    # Any other failure is raised: here an endpoint that refuses connections.
    closed = S3(endpoint_url="http://127.0.0.1:9", client=None).credentials()
    closed.aws_client_parameters.config = {"retries": {"max_attempts": 1, "mode": "standard"}}
    down = lake_tasks.Lake(S3Bucket(bucket_name=bucket, bucket_folder=FOLDER, credentials=closed))
    with pytest.raises(Exception, match="Could not connect") as caught:
        down.read_if_present(key)
    assert not isinstance(caught.value, FileNotFoundError)


def test_lake_helpers_stay_sync_inside_event_loops_and_task_threads(s3: S3, s3_lake: tuple[str, str]) -> None:
    bucket, lake_block = s3_lake
    lake = load_lake(lake_block)

    async def inside_a_running_loop() -> bytes:
        # A bare lake.write_path here would return a coroutine (async_dispatch sees the loop).
        assert asyncio.iscoroutine(coro := lake.block.read_path("missing-is-fine-never-awaited"))
        coro.close()
        lake.write("loop.bin", b"from a loop")
        return lake.read("loop.bin")

    assert asyncio.run(inside_a_running_loop()) == b"from a loop"

    @task
    def write_in_task(key: str) -> bytes:
        lake.write(key, key.encode())
        return lake.read(key)

    @flow
    def many_tasks() -> list[bytes]:
        futures = [write_in_task.submit(f"thread-{i}.bin") for i in range(4)]
        return [f.result() for f in futures]

    assert many_tasks() == [f"thread-{i}.bin".encode() for i in range(4)]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda k: lake.read(k), ["thread-0.bin", "thread-1.bin"])) == [
            b"thread-0.bin",
            b"thread-1.bin",
        ]
    assert f"{FOLDER}/thread-3.bin" in s3.keys(bucket)


def test_setup_aws_creates_the_three_blocks_without_echoing_secrets(
    s3: S3, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {"aws": f"aws-{suffix}", "lake": f"lake-{suffix}", "warehouse": f"wh-{suffix}"}
    password = "redshift-pa55word"  # noqa: S105 - test value that must not be printed
    arn = "arn:aws:iam::123456789012:role/strava-elt-copy"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-never-printed")
    monkeypatch.setenv("STRAVA_ELT_REDSHIFT_URL", f"redshift+redshift_connector://etl:{password}@cluster:5439/dev")
    code = main(
        [
            "setup", "aws", "--bucket", "my-bucket", "--bucket-folder", "/strava/prod/", "--region", REGION,
            "--endpoint-url", s3.endpoint_url, "--iam-role-arn", arn, "--schema", "strava",
            "--aws-block", names["aws"], "--lake-block", names["lake"], "--warehouse-block", names["warehouse"],
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert password not in out.out + out.err and "aws-secret-never-printed" not in out.out + out.err
    assert "***" in out.out
    lake = load_lake(names["lake"]).block
    assert isinstance(lake, S3Bucket) and lake.bucket_folder == FOLDER and lake.bucket_name == "my-bucket"
    assert lake.credentials.aws_client_parameters.endpoint_url == s3.endpoint_url
    assert lake.credentials.region_name == REGION
    assert AwsCredentials.load(names["aws"]).aws_secret_access_key.get_secret_value() == "aws-secret-never-printed"
    block = Warehouse.load(names["warehouse"])
    assert block.backend == "redshift" and block.iam_role_arn == arn and block.schema_name == "strava"
    assert block.region == REGION and password in block.url.get_secret_value()


def test_setup_refuses_wrong_urls_and_missing_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "postgres", "--url", "postgresql+psycopg2://u:secret@h/db"]) == 1
    err = capsys.readouterr().err
    assert "postgresql+psycopg" in err and "secret" not in err
    assert main(["setup", "aws", "--bucket", "b", "--iam-role-arn", "arn:aws:iam::123456789012:role/r"]) == 1
    assert "--redshift-url is required" in capsys.readouterr().err


def test_files_go_to_and_come_from_s3_without_a_bytes_copy_under_the_same_keys(
    s3: S3, s3_lake: tuple[str, str], tmp_path: Any
) -> None:
    bucket, lake_block = s3_lake
    lake = load_lake(lake_block)
    source = tmp_path / "local.parquet"
    source.write_bytes(b"PAR1" * 1000)
    path = lake_tasks.staging_file_path(42, "20250101t000000_abcdef12")
    for key in (path, f"{FOLDER}/{path}"):  # a key already under the folder is not prefixed twice
        lake.write_file(key, source)
        assert s3.keys(bucket) == [f"{FOLDER}/{path}"]
        assert lake.s3_uri(key) == f"s3://{bucket}/{FOLDER}/{path}"
        with lake.local_file(key) as local:
            assert local.read_bytes() == b"PAR1" * 1000
        assert not local.exists()  # the temporary download is removed
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/{FOLDER}/staging/nothing.parquet"):
        with lake.local_file("staging/nothing.parquet"):
            pass


def test_an_s3_lake_lists_both_layouts_under_its_folder(s3: S3, s3_lake: tuple[str, str]) -> None:
    bucket, lake_block = s3_lake
    lake = load_lake(lake_block)
    s3.client.put_object(
        Bucket=bucket, Key="raw/athlete_id=7/run=z/page-00001.json.gz", Body=b"x"
    )  # outside the folder
    assert_both_layouts_are_read(lake)
    assert all(k.startswith(f"{FOLDER}/") for k in s3.keys(bucket) if "run=z" not in k)
    assert lake.list(f"{FOLDER}/raw/athlete_id=7/") == lake.list("raw/athlete_id=7/")  # the folder is not added twice
