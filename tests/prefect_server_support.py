"""One ``prefect server start`` shared by the end-to-end modules, and the processes around it.

The end-to-end modules (:data:`SHARED_SERVER_MODULES`) drive a real ``prefect server start``
in place of conftest's session-wide test harness: :func:`private_prefect_server` starts one on
a free localhost port, with its own PREFECT_HOME and SQLite database, analytics and the UI
off, never ``~/.prefect``. They share one: conftest's ``shared_prefect_server`` fixture starts
it the first time a module asks (session scope: it stops when the session, or the xdist
worker's session, ends), and conftest's xdist scheduler gives each chain of modules
(:data:`SHARED_SERVER_MODULES`) to one worker as one unit, so one server serves a chain's
modules in turn. Each module then takes :func:`fresh_server`: the
server emptied of what an earlier module left (deployments, flows and their runs, work pools,
blocks, automations, variables, concurrency limits; see :func:`reset_server`) and a
PREFECT_HOME of its own for its clients, so it sees what a private server would show it. They
cannot share it at the same time: prefect.yaml's deployment, pool and block names are global on
a server (a second module's ``deploy --all`` would move the first's deployments). The commands
run are this virtualenv's, as a user would run them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this virtualenv's console scripts: prefect, strava-elt
STARTUP_SECONDS = 240.0  # a cold start on a busy 2-core machine, beside other test workers
SHARED_SERVER_MODULES = {
    "test_deployment.py": "prefect-server-a",
    "test_deploy_variants.py": "prefect-server-a",
    "test_round_e2e.py": "prefect-server-b",
    "test_webhooks_e2e.py": "prefect-server-b",
}
"""The modules that take the shared server, by chain: xdist runs a chain on one worker, in turn.

Two chains of about equal length (8 to 9 minutes each at load 10): one chain of all four on
one server took twice the wall time of four servers side by side, two chains take about the
same with half the servers (docs/performance.md). Under ``-n 0``, or when both chains land on
one worker, all four share one server.
"""


def free_port() -> int:
    """A localhost TCP port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file, or a note that it was never written."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or f"({path} is empty)"
    except FileNotFoundError:
        return f"({path} not written)"


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process started in its own session: its whole group, by id; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its API URL, its clients' home and the server's log.

    ``home`` is the server's own (database and ``server.log`` inside) for the server itself, a
    module's own for a module's view of the shared server (:func:`fresh_server`).
    """

    api: str
    home: Path
    server_log: Path | None = None

    @property
    def log(self) -> Path:
        return self.server_log or self.home / "server.log"

    @property
    def env(self) -> dict[str, str]:
        """A fresh environment for clients of this server (``prefect``, workers, flows)."""
        return prefect_env(self.home) | {"PREFECT_API_URL": self.api}


def prefect_env(home: Path) -> dict[str, str]:
    """This process's environment without its PREFECT_* settings, pointed at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),  # never ~/.prefect
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }


@contextmanager
def private_prefect_server(home: Path, startup_seconds: float = STARTUP_SECONDS) -> Iterator[PrefectServer]:
    """Start ``prefect server start`` on a free port with ``home`` as PREFECT_HOME; stop it on exit.

    Yields once ``/api/health`` answers. The server's output goes to ``home/server.log``; a
    server that exits or is not healthy within ``startup_seconds`` fails with that log's tail.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = PrefectServer(api=f"http://127.0.0.1:{port}/api", home=home)
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with open(server.log, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=home,
            env=prefect_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(server, proc, startup_seconds)
        yield server
    finally:
        stop(proc)


def fresh_server(shared: PrefectServer, home: Path) -> PrefectServer:
    """The shared server emptied of earlier modules' state (:func:`reset_server`), with ``home`` for its clients."""
    reset_server(shared.api)
    home.mkdir(parents=True, exist_ok=True)
    return PrefectServer(api=shared.api, home=home, server_log=shared.log)


# What an end-to-end module makes on a server, each with its filter endpoint and how to delete one.
_RESET = (
    ("/automations/filter", lambda o: f"/automations/{o['id']}"),
    ("/deployments/filter", lambda o: f"/deployments/{o['id']}"),
    ("/flows/filter", lambda o: f"/flows/{o['id']}"),  # its flow runs, task runs and their states go too
    ("/flow_runs/filter", lambda o: f"/flow_runs/{o['id']}"),  # none left; here in case
    ("/work_pools/filter", lambda o: f"/work_pools/{o['name']}"),
    ("/block_documents/filter", lambda o: f"/block_documents/{o['id']}"),
    ("/variables/filter", lambda o: f"/variables/name/{o['name']}"),
    ("/v2/concurrency_limits/filter", lambda o: f"/v2/concurrency_limits/{o['id']}"),
    ("/concurrency_limits/filter", lambda o: f"/concurrency_limits/{o['id']}"),
)


def reset_server(api: str) -> None:
    """Delete what end-to-end modules make on a server: a module then starts as on a fresh one.

    Block types and schemas stay (``prefect block register`` updates them); events stay too
    (the API deletes none), so a module that reads events filters them by its own runs.
    """
    with httpx.Client(base_url=api, timeout=60) as http:
        for path, item in _RESET:
            for _ in range(100):  # pages of the API's default limit
                found = _patient(http, "POST", path, json={}).json()
                if not found:
                    break
                for obj in found:
                    _patient(http, "DELETE", item(obj))
            else:
                raise AssertionError(f"{api}{path}: still not empty after 100 pages deleted")


def _patient(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One API request; a busy SQLite server's 503 (database is locked) is asked again for up to a minute."""
    deadline = time.monotonic() + 60
    while True:
        response = http.request(method, path, **kwargs)
        if response.status_code not in (502, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if response.status_code != 404:  # deleted meanwhile (a flow's runs go with it)
        response.raise_for_status()
    return response


def _wait_healthy(server: PrefectServer, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=server.api, timeout=2) as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"prefect server exited {proc.returncode}; its log {server.log}:\n{tail(server.log)}"
                )
            try:
                if http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"prefect server at {server.api} not healthy after {seconds:.0f} s (on a busy machine, "
                    f"raise startup_seconds); its log {server.log}:\n{tail(server.log)}"
                )
            time.sleep(0.5)


def run_command(
    env: dict[str, str], *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one of this virtualenv's commands (``prefect ...``) from the repository root; fail with its output."""
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def register_blocks(env: dict[str, str]) -> str:
    """``prefect block register -m blocks`` on ``env``'s server, as a clean checkout needs; its output."""
    return run_command(env, "prefect", "block", "register", "-m", "blocks").stdout
