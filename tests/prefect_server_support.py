"""A private ``prefect server start`` for the end-to-end modules, and the processes around it.

Each e2e module starts its own server (pytest-xdist ``--dist loadfile`` runs modules on
different workers) with :func:`private_prefect_server`, in place of conftest's session-wide
test harness: a free localhost port, its own PREFECT_HOME with a SQLite database in it,
analytics and the UI off, never ``~/.prefect``. The commands run are this virtualenv's, as a
user would run them.
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

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this virtualenv's console scripts: prefect, strava-elt
STARTUP_SECONDS = 240.0  # a cold start on a busy 2-core machine, beside other test workers


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
    """A running private server: its API URL, its home (database and ``server.log`` inside)."""

    api: str
    home: Path

    @property
    def log(self) -> Path:
        return self.home / "server.log"

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
