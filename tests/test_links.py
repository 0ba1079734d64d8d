"""Links that open from the Prefect UI, and the run report, round and index as a person reads them.

The dashboard artifact links an http(s) URL (a presigned S3 URL from moto's server over HTTP, a
base URL set in the lake's Variable, or ``strava-elt dashboard --serve`` on a local lake) or,
without one, names the file as text. The links are fetched over HTTP and opened in headless
Chromium (tests/cdp.py).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.filesystems import LocalFileSystem
from prefect.variables import Variable
from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
from pydantic import SecretStr

from flows.insight import serve_lake_pages
from tasks.insight import dashboard, links, report, serve
from tasks.insight.index import IndexEntry, render_index
from tasks.lake import Lake
from tasks.state.summary import ExtractResult, RunSummary
from tests.cdp import Chromium, find_chromium

REGION = "eu-west-1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>dash</title><link rel='icon' href='data:,'></head>"
    "<body><h1 id='t'>Strava dashboard 🏃</h1><script>window.loadedOk = 1;</script></body></html>"
)


# --------------------------------------------------------------------------- helpers


def _raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """A GET of ``target`` exactly as written (no client normalises its ``..``): status and body."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _local_lake(tmp_path: Path) -> tuple[str, LocalFileSystem]:
    name = f"lake-{uuid.uuid4().hex[:8]}"
    block = LocalFileSystem(basepath=str(tmp_path / "lake"))
    block.save(name)
    return name, LocalFileSystem.load(name)


@flow
def _publish(lake: Any, page: str, athlete_id: int, run_key: str) -> dict[str, Any]:
    result: dict[str, Any] = dashboard.publish_dashboard(lake, page, athlete_id, run_key, figures="3 inserted")
    return result


def _published(lake: Any, athlete_id: int) -> tuple[dict[str, Any], Any]:
    """Publish PAGE for ``athlete_id`` in a flow run; return the result and the run's dashboard artifact."""
    state = _publish(lake, PAGE, athlete_id, "20260301t120000_abc", return_state=True)
    result = state.result()
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[dashboard.ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    return result, artifact


def _open_in_chromium(url: str) -> tuple[str, list[str]]:
    """Open ``url`` in headless Chromium; the page's heading and the errors it logged."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium not installed (apt-get install -y chromium); the browser test needs it")
    with Chromium(binary) as browser:
        browser.open(url)
        browser.wait_for("window.loadedOk === 1", timeout=30)
        heading = browser.evaluate("document.getElementById('t').textContent")
        browser.pump(0.2)
        return str(heading), list(browser.events.errors)


# --------------------------------------------------------------------------- the local server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[serve.LakeServer, Path]]:
    root = tmp_path / "lake"
    (root / "dashboards" / "athlete_id=7").mkdir(parents=True)
    (root / "dashboards" / "athlete_id=7" / "dashboard.html").write_text(PAGE, encoding="utf-8")
    (root / "index.html").write_text("<html>index</html>", encoding="utf-8")
    (root / "raw").mkdir()
    (root / "raw" / "page-1.json.gz").write_bytes(b"\x1f\x8braw")
    (tmp_path / "secret.html").write_text("outside", encoding="utf-8")
    (root / "dashboards" / "escape.html").symlink_to(tmp_path / "secret.html")
    with serve.serving(root) as server:
        yield server, root


def test_the_local_server_serves_the_dashboard_and_the_index(served: tuple[serve.LakeServer, Path]) -> None:
    server, root = served
    assert server.base_url.startswith("http://127.0.0.1:")
    dash = httpx.get(f"{server.base_url}/dashboards/athlete_id=7/dashboard.html", timeout=10)
    assert dash.status_code == 200 and dash.content == PAGE.encode("utf-8")
    assert dash.headers["content-type"] == "text/html; charset=utf-8"
    for path in ("/", "/index.html"):
        index = httpx.get(server.base_url + path, timeout=10)
        assert index.status_code == 200 and index.text == "<html>index</html>"
    assert httpx.head(f"{server.base_url}/index.html", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.html",
        "/dashboards/../../secret.html",
        "/%2e%2e/secret.html",
        "/dashboards/%2E%2E/%2e%2e/secret.html",
        "/dashboards%2f..%2f..%2fsecret.html",
        "/..%5csecret.html",
    ],
)
def test_the_local_server_refuses_a_way_up(served: tuple[serve.LakeServer, Path], target: str) -> None:
    server, _ = served
    status, body = _raw_get(server.base_url, target)
    assert status == 400 and b"outside" not in body


def test_the_local_server_hands_out_pages_only(served: tuple[serve.LakeServer, Path]) -> None:
    server, _ = served
    for target in ("/dashboards/", "/dashboards/escape.html", "/raw/page-1.json.gz", "/nothing.html"):
        status, body = _raw_get(server.base_url, target)
        assert status == 404 and b"outside" not in body and b"raw" not in body, target
    assert httpx.post(f"{server.base_url}/index.html", timeout=10).status_code == 501  # read-only


def test_the_local_server_closes_an_idle_connection(
    served: tuple[serve.LakeServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    # A client that connects and says nothing is cut off after the timeout, not held forever.
    monkeypatch.setattr(serve._Handler, "timeout", 0.5)
    parts = urlsplit(server.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.settimeout(30)
        assert sock.recv(1024) == b""  # closed by the server
    assert httpx.get(f"{server.base_url}/index.html", timeout=10).status_code == 200  # still serving


# --------------------------------------------------------------------------- the links


def test_without_an_http_link_the_artifact_names_the_file_as_text(tmp_path: Path) -> None:
    _, lake = _local_lake(tmp_path)
    result, artifact = _published(lake, 7)
    current = tmp_path / "lake" / "dashboards" / "athlete_id=7" / "dashboard.html"
    assert current.read_text(encoding="utf-8") == PAGE
    assert result["link"] is None and result["location"] == str(current.resolve())
    assert artifact.type == "markdown" and str(artifact.data).startswith("# Strava dashboard, athlete 7")
    text = str(artifact.data)
    assert f"`{current.resolve()}`" in text and "strava-elt dashboard --serve" in text
    assert "file://" not in text and "](" not in text  # no dead link
    assert "3 inserted" in text


def test_dashboard_serve_links_the_artifact_and_the_link_opens_in_chromium(tmp_path: Path) -> None:
    name, lake = _local_lake(tmp_path)
    _published(lake, 7)  # a dashboard in the lake before the server starts
    lines: list[str] = []
    stop = threading.Event()
    serving = threading.Thread(target=serve_lake_pages, args=(name, 0), kwargs={"say": lines.append, "stop": stop})
    serving.start()
    variable = links.base_url_variable(name)
    try:
        deadline = time.monotonic() + 60
        while not any("/dashboards/athlete_id=7/dashboard.html" in line for line in lines):
            assert serving.is_alive() and time.monotonic() < deadline, lines
            time.sleep(0.1)
        base = Variable.get(variable)
        assert isinstance(base, str) and base.startswith("http://127.0.0.1:")
        result, artifact = _published(lake, 7)
        expected = f"{base}/dashboards/athlete_id=7/dashboard.html"
        assert result["link"] == expected
        assert artifact.data == f"[Strava dashboard, athlete 7]({expected})"  # a link artifact
        assert "3 inserted" in (artifact.description or "")
        assert httpx.get(expected, timeout=10).content == PAGE.encode("utf-8")
        heading, errors = _open_in_chromium(expected)
        assert heading == "Strava dashboard 🏃" and errors == []
    finally:
        stop.set()
        serving.join(timeout=30)
    assert not serving.is_alive()
    assert Variable.get(variable, default=None) is None  # the link goes with the server


def test_a_configured_base_url_is_linked(tmp_path: Path) -> None:
    name, lake = _local_lake(tmp_path)
    variable = links.base_url_variable(name)
    Variable.set(variable, "https://dash.example.test/lake/", overwrite=True)
    try:
        link = links.page_link(lake, "dashboards/athlete_id=7/dashboard.html")
    finally:
        Variable.unset(variable)
    assert link.url == "https://dash.example.test/lake/dashboards/athlete_id=7/dashboard.html"
    assert link.how == "served at https://dash.example.test/lake/"
    with pytest.raises(ValueError, match="http"):
        Lake(lake).http_url("x.html", "file:///tmp")


@pytest.fixture(scope="module")
def s3_lake() -> Iterator[S3Bucket]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        bucket = f"strava-lake-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        credentials = AwsCredentials(
            aws_access_key_id="testing",
            aws_secret_access_key=SecretStr("testing"),
            region_name=REGION,
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
        )
        block = S3Bucket(bucket_name=bucket, bucket_folder="strava/prod", credentials=credentials)
        yield block
    finally:
        server.stop()


def test_an_s3_dashboard_is_linked_by_a_presigned_url_that_serves_it(s3_lake: S3Bucket) -> None:
    result, artifact = _published(s3_lake, 9)
    url = result["link"]
    assert url and url.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in url and "X-Amz-Expires=604800" in url
    assert urlsplit(url).path.endswith("/strava/prod/dashboards/athlete_id%3D9/dashboard.html") or urlsplit(
        url
    ).path.endswith("/strava/prod/dashboards/athlete_id=9/dashboard.html")
    assert artifact.data == f"[Strava dashboard, athlete 9]({url})"  # a link artifact
    assert "presigned link, valid until" in (artifact.description or "") and "(168 h)" in (artifact.description or "")
    fetched = httpx.get(url, timeout=30)  # no credentials: the signature is the permission
    assert fetched.status_code == 200 and fetched.content == PAGE.encode("utf-8")
    assert fetched.headers["content-type"].startswith("text/html")
    heading, errors = _open_in_chromium(url)
    assert heading == "Strava dashboard 🏃" and errors == []

    # The expiry the artifact states is the one signed.
    link = links.page_link(s3_lake, "dashboards/athlete_id=9/dashboard.html", now=NOW, presign_seconds=3600)
    assert "X-Amz-Expires=3600" in (link.url or "")
    assert link.how == "presigned link, valid until 2026-03-01 13:00 UTC (1 h)"
    unsigned = httpx.get((link.url or "").split("?")[0], timeout=30)
    assert unsigned.status_code == 403  # the bucket itself stays private


# --------------------------------------------------------------------------- report and index


def test_the_run_report_has_a_real_header_and_plain_ids() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    extract = ExtractResult(140837370, "20260101t000000_abc", at, at, pages=3, requests=4, activities=1450)
    summary = RunSummary("20260101t000000_abc", started_at=at).with_extract(extract)
    summary = summary.with_(
        monthly_top=({"athlete_id": 140837370, "month": at.date(), "activity_count": 1200},),
        finished_at=at + timedelta(seconds=3),
    )
    md = report.run_report_markdown(summary)
    lines = md.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("|")))
    assert lines[first] == "| Figure | Value |" and lines[first + 1] == "|---|---|"
    assert "– | –" not in md
    assert "| Athlete | 140837370 |" in md and "140,837,370" not in md
    assert "| Activities extracted | 1,450 |" in md  # quantities keep their separators
    assert "| 140837370 | 2026-01-01 | 1,200 |" in md


def test_the_run_report_links_http_and_names_a_file_as_text() -> None:
    summary = RunSummary("r")
    linked = summary.with_(dashboard={"url": "s3://b/d.html", "link": "https://x.test/d.html", "link_note": "n"})
    assert "| Dashboard | [dashboard.html](https://x.test/d.html) (n) |" in report.run_report_markdown(linked)
    local = summary.with_(dashboard={"url": "file:///lake/d.html", "location": "/lake/d.html", "link": None})
    md = report.run_report_markdown(local)
    assert "| Dashboard | `/lake/d.html` |" in md and "file://" not in md


def test_the_index_names_each_athlete_once() -> None:
    entries = [IndexEntry(29642528, "b1"), IndexEntry(7, "b2", name="Ann Runner")]
    page = render_index(entries, NOW)
    assert "athlete 29642528</a>" in page and "(29642528)" not in page
    assert "Ann Runner</a> <small>(7)</small>" in page


def test_a_round_run_is_named_like_the_athletes_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from flows import run_names

    params: dict[str, Any] = {"application_block": "club", "warehouse_block": "wh", "lookback_days": 30}
    monkeypatch.setattr(run_names, "flow_run", SimpleNamespace(parameters=params))
    assert run_names.round_() == "round club to wh, lookback 30d"
    params |= {"mode": "deployment", "parallel": 3}
    assert run_names.round_() == "round club to wh, lookback 30d, 3 at a time"
    params["mode"] = "inline"  # inline runs one athlete at a time, whatever parallel says
    assert run_names.round_() == "round club to wh, lookback 30d"
