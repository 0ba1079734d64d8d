"""Nothing hangs: a deadline per Strava request, connect and statement timeouts per warehouse.

Real parts only: a local HTTP server that drips its answer a byte at a time, a TCP listener that
accepts and never answers, PostgreSQL with a short statement timeout. The bounds asserted are
generous multiples of the configured limits (they prove "bounded", not a speed).
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from blocks import StravaCredentials, Warehouse
from blocks.warehouse import WarehouseStatementTimeout, WarehouseUnreachable
from tasks.strava import StravaClient, auth
from tasks.strava.errors import RetriableError, RetryPolicy
from tests.conftest import Env
from tests.strava_support import FakeClock

DEADLINE = 1.0
DRIP_INTERVAL = 0.2  # a byte every 0.2 s: each read gets data well within any per-read timeout
TOKEN_BODY = b'{"access_token": "a", "refresh_token": "r", "expires_in": 21600, "token_type": "Bearer"}'


class DripServer(socketserver.ThreadingTCPServer):
    """HTTP on 127.0.0.1 that drips chosen paths' answers (headers or body) one byte at a time."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, drip_paths: tuple[str, ...], phase: str) -> None:
        super().__init__(("127.0.0.1", 0), _DripHandler)
        self.drip_paths, self.phase = drip_paths, phase
        self.dripped: list[str] = []  # one entry per connection that was dripped to
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _DripHandler(socketserver.BaseRequestHandler):
    server: DripServer

    def handle(self) -> None:
        self.request.settimeout(30)
        while not self.server.stop.is_set():
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, path = head.split(b" ", 2)[:2]
            body = head.split(b"\r\n\r\n", 1)[1]
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length")
                ),
                0,
            )
            while len(body) < length:
                body += self.request.recv(4096)
            target = path.decode().split("?")[0]
            if not any(target.startswith(p) for p in self.server.drip_paths):
                answer = TOKEN_BODY if target.endswith("/oauth/token") else b'{"id": 1}'
                headers = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
                self.request.sendall(headers.encode() + answer)
                continue
            self.server.dripped.append(f"{method.decode()} {target}")
            payload = b'{"id": 1, "name": "' + b"x" * 150 + b'"}'
            headers = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            if self.server.phase == "body":
                self.request.sendall(headers.encode())
                drip = payload
            else:
                drip = headers.encode() + payload
            for byte in drip:  # bounded: ~200 bytes, and it stops when the client hangs up
                if self.server.stop.wait(DRIP_INTERVAL):
                    return
                try:
                    self.request.sendall(bytes([byte]))
                except OSError:
                    return
            return


@pytest.fixture(params=["headers", "body"])
def drip(request: pytest.FixtureRequest) -> Iterator[DripServer]:
    server = DripServer(("/api/v3/",), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


def credentials(base_url: str) -> StravaCredentials:
    return StravaCredentials(
        client_id="1", client_secret=SecretStr("s"), refresh_token=SecretStr("r"), base_url=base_url,
        timeout_seconds=DEADLINE,
    )  # fmt: skip


def test_a_drip_fed_api_response_fails_at_its_deadline_then_is_retried(drip: DripServer) -> None:
    clock = FakeClock(datetime(2025, 3, 12, 12, 0, tzinfo=UTC))
    policy = RetryPolicy(attempts=3, base_delay=1.0, jitter=0.0)
    started = time.monotonic()
    with (
        StravaClient(credentials(drip.url), clock=clock, sleep=clock.sleep, policy=policy) as client,
        pytest.raises(RetriableError, match="gave up after 3 attempts") as caught,
    ):
        client.athlete()
    took = time.monotonic() - started
    print(f"\n{drip.phase} drip: 3 attempts with a {DEADLINE:g} s deadline failed after {took:.2f} s")
    assert "timed out" in str(caught.value) and f"deadline of {DEADLINE:g} s" in str(caught.value)
    assert drip.dripped == ["GET /api/v3/athlete"] * 3  # the normal retry policy: 3 tries ...
    assert clock.slept == [1.0, 2.0]  # ... with its backoff between them
    # Per-read timeouts alone let one drip-fed answer run ~40 s; each try now ends at its deadline.
    assert took < 5 * 3 * DEADLINE


def test_the_token_endpoint_has_the_same_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    server = DripServer(("/oauth/token",), "headers")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(auth, "_TOKEN_RETRIES", RetryPolicy(attempts=2, base_delay=0.0))
    try:
        started = time.monotonic()
        with pytest.raises(RetriableError, match="gave up after 2 attempts.*deadline of 1 s"):
            auth.refresh_access_token(credentials(server.url))
        took = time.monotonic() - started
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
    print(f"\ntoken endpoint drip: 2 attempts with a {DEADLINE:g} s deadline failed after {took:.2f} s")
    assert server.dripped == ["POST /oauth/token"] * 2
    assert took < 5 * 2 * DEADLINE


# --------------------------------------------------------------------------- the warehouse


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


def test_a_warehouse_that_never_answers_fails_the_run_naming_it(env: Env, silent: SilentListener) -> None:
    password = "never-log-this-pw"  # noqa: S105 - a test value that must not appear in the error
    name = f"silent-{uuid.uuid4().hex[:8]}"
    Warehouse(
        url=SecretStr(f"postgresql+psycopg://etl:{password}@127.0.0.1:{silent.port}/strava"),
        connect_timeout_seconds=2,
    ).save(name, overwrite=True)
    started = time.monotonic()
    with pytest.raises(WarehouseUnreachable) as caught:
        env.run(warehouse_block=name)
    ended = time.monotonic()
    message = str(caught.value)
    assert silent.accepted, "the run never tried the warehouse"
    waited = ended - silent.accepted[0]
    print(
        f"\nnever-answering PostgreSQL (connect_timeout_seconds=2): the run failed {waited:.2f} s after "
        f"the warehouse accepted the connection, {ended - started:.2f} s after the run started"
    )
    assert f"block {name!r}" in message and f"127.0.0.1:{silent.port}" in message
    assert "connect_timeout_seconds=2" in message
    assert password not in message and "postgresql+psycopg://" not in message
    assert waited < 5 * 2  # bounded by the connect timeout, not psycopg's default 130 s


@pytest.mark.postgres
def test_statement_timeout_is_set_on_connect_and_cancels(pg_url: str) -> None:
    engine = Warehouse(url=SecretStr(pg_url), statement_timeout_seconds=1).get_engine()
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
            # The URL's own options (the test schema's search_path) are kept: the timeout is a SET.
            schema = str(sa.make_url(pg_url).query["options"]).removeprefix("-csearch_path=")
            assert conn.exec_driver_sql("SHOW search_path").scalar() == schema
            with pytest.raises(WarehouseStatementTimeout, match="statement_timeout_seconds=1") as caught:
                conn.exec_driver_sql("SELECT pg_sleep(5)")
            assert "raise statement_timeout_seconds" in str(caught.value)
    finally:
        engine.dispose()


def test_warehouse_timeouts_are_block_fields_with_defaults() -> None:
    fields: dict[str, Any] = Warehouse.model_fields
    assert fields["connect_timeout_seconds"].default == 10 and fields["connect_timeout_seconds"].description
    assert fields["statement_timeout_seconds"].default == 1800 and fields["statement_timeout_seconds"].description


# --------------------------------------------------------------------------- flow timeouts


def test_every_deployment_sets_its_flow_timeout() -> None:
    """prefect.yaml sets each deployment's timeout; the run's process gets it on its flow object."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from flows import FLOW_RETRIES_ENV, FLOW_TIMEOUT_ENV

    repo = Path(__file__).resolve().parents[1]
    deployments = yaml.safe_load((repo / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert {"weekly", "backfill", "retrain-kudos-model", "athlete", "weekly-all"} <= {d["name"] for d in deployments}
    for deployment in deployments:
        job_env = deployment["work_pool"]["job_variables"]["env"]
        seconds = job_env[FLOW_TIMEOUT_ENV]
        assert float(seconds) > 0, deployment["name"]
        # The loads retry transient failures once when deployed (in-process runs never do).
        retries = job_env.get(FLOW_RETRIES_ENV, "0")
        assert retries == ("1" if deployment["entrypoint"].startswith("flows/pipeline.py") else "0")
        # What a worker does with the deployment: its env, then the entrypoint loaded.
        code = (
            "from prefect.flows import load_flow_from_entrypoint; "
            f"f = load_flow_from_entrypoint({deployment['entrypoint']!r}); print(f.timeout_seconds, f.retries)"
        )
        env = {**os.environ, FLOW_TIMEOUT_ENV: seconds, FLOW_RETRIES_ENV: retries}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=True
        )
        timeout, flow_retries = out.stdout.strip().splitlines()[-1].split()
        assert float(timeout) == float(seconds), deployment["name"]
        assert int(flow_retries) == int(retries), deployment["name"]
