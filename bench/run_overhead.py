"""What a run costs against a long-lived Prefect server: the fixed cost, the cost per page, peak RSS.

Starts a local Prefect server (``prefect server start`` on a free port, SQLite, a temporary
PREFECT_HOME; or uses ``PREFECT_API_URL`` when set) and the emulator over HTTP, creates the
blocks with :func:`flows.cli.setup_emulator_blocks`, then for each size runs the main flow in a
child process (as a deployment's worker would; the child's ``ru_maxrss`` is the flow's peak
RSS): a first load, then an incremental run with nothing new. The floor is a bare httpx loop
fetching the same pages from the same emulator with the same token flow. Prints a table;
asserts nothing.

Usage: ``python bench/run_overhead.py [--quick] [--sizes N ...]`` (default 1234 20000;
``--quick``: 200 and 1234, for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

END = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
"""The newest activity's start: fixed, and before any run's time (nothing future-dated)."""
SEED = 42
LIMITS = (100_000, 1_000_000)  # (15 minutes, daily): the bench measures cost, not rate-limit waits
PER_PAGE = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prefect_server() -> Iterator[str]:
    """Yield the API URL of a long-lived Prefect server: ``PREFECT_API_URL`` or one started here."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    import httpx

    with tempfile.TemporaryDirectory(prefix="strava-elt-bench-prefect-") as home:
        port = _free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
        }
        prefect = Path(sys.executable).with_name("prefect")
        command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"The Prefect server did not start on port {port}")
                time.sleep(0.5)
            os.environ["PREFECT_HOME"] = home
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def floor(emu: Any) -> float:
    """Seconds a bare httpx loop takes to refresh the token and read /athlete and every page."""
    import httpx

    started = time.perf_counter()
    with httpx.Client(base_url=emu.base_url) as http:
        token = http.post(
            "/oauth/token",
            data={
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": emu.current_refresh_token,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        http.get("/api/v3/athlete", headers=headers).raise_for_status()
        page = 1
        while True:
            params = {"after": 0, "page": page, "per_page": PER_PAGE}
            response = http.get("/api/v3/athlete/activities", params=params, headers=headers)
            response.raise_for_status()
            if len(response.json()) < PER_PAGE:
                break
            page += 1
    return time.perf_counter() - started


def run_child(api_url: str, names: tuple[str, str, str], full_refresh: bool) -> dict[str, Any]:
    """Run the main flow once in a child process; return its flow time, wall time and peak RSS."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, __file__, "--child", *names, *(["--full-refresh"] if full_refresh else [])]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"The flow run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def child(names: list[str], full_refresh: bool) -> None:
    """In the child: run the flow, print seconds, peak RSS and counts as one JSON line."""
    from flows.pipeline import strava_elt

    strava, lake, warehouse = names
    started = time.perf_counter()
    summary = strava_elt(strava, lake, warehouse, full_refresh=full_refresh)
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out = {"seconds": seconds, "rss_mb": rss_mb, "pages": summary["pages"], "extracted": summary["extracted"]}
    print(json.dumps(out))


def task_runs(api_url: str) -> int:
    """How many task runs the server holds (all runs so far)."""
    import httpx

    response = httpx.post(f"{api_url}/task_runs/count", json={}, timeout=10)
    response.raise_for_status()
    return int(response.json())


def main(sizes: list[int]) -> None:
    """Measure each size; print the table."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    rows = []
    with prefect_server() as api_url:
        os.environ["PREFECT_API_URL"] = api_url
        from emulator import StravaEmulator
        from flows.cli import setup_emulator_blocks

        with tempfile.TemporaryDirectory(prefix="strava-elt-bench-") as tmp:
            for index, n in enumerate([200, *sizes]):  # the first is a warm-up (server caches), not printed
                with StravaEmulator(activities=n, seed=SEED, end=END, read_limits=LIMITS, overall_limits=LIMITS) as emu:
                    serve = floor(emu)
                    suffix = uuid.uuid4().hex[:8]
                    names = (f"bench-strava-{suffix}", f"bench-lake-{suffix}", f"bench-warehouse-{suffix}")
                    setup_emulator_blocks(Path(tmp) / suffix, emu, names)
                    before = task_runs(api_url)
                    first = run_child(api_url, names, full_refresh=True)
                    middle = task_runs(api_url)
                    again = run_child(api_url, names, full_refresh=False)
                    after = task_runs(api_url)
                if index:
                    rows.append((n, serve, first, middle - before, again, after - middle))
    print(f"strava-elt run overhead: Prefect server {api_url}, emulator over HTTP, DuckDB, local lake")
    print(
        f"{'activities':>10} {'floor':>7} {'first load':>10} {'x floor':>7} {'tasks':>5} "
        f"{'incremental':>11} {'tasks':>5} {'peak RSS first/incr':>20} {'child wall first/incr':>22}"
    )
    for n, serve, first, first_tasks, again, again_tasks in rows:
        print(
            f"{n:>10,} {serve:>6.2f}s {first['seconds']:>9.2f}s {first['seconds'] / serve:>6.1f}x {first_tasks:>5} "
            f"{again['seconds']:>10.2f}s {again_tasks:>5} "
            f"{first['rss_mb']:>8.0f} / {again['rss_mb']:>4.0f} MB {first['wall']:>10.1f} / {again['wall']:>5.1f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--sizes", type=int, nargs="+", help="activities per athlete (default 1234 20000)")
    parser.add_argument("--child", nargs=3, metavar="BLOCK", help=argparse.SUPPRESS)
    parser.add_argument("--full-refresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.full_refresh)
    else:
        main(args.sizes or ([200, 1234] if args.quick else [1234, 20000]))
