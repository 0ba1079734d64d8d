"""What a run costs against a long-lived Prefect server: the fixed cost, the cost per page, peak RSS.

Starts a local Prefect server (``prefect server start`` on a free port, SQLite, a temporary
PREFECT_HOME; or uses ``PREFECT_API_URL`` when set) and the emulator over HTTP, creates the
blocks with :func:`tasks.setup.setup_emulator_blocks`, then for each size runs the main flow in a
child process (as a deployment's worker would; the child's ``VmHWM``, its resident high-water
mark, is the flow's peak RSS): a first load, then an incremental run with nothing new. The floor is a bare httpx loop
fetching the same pages from the same emulator with the same token flow. Prints a table;
asserts nothing.

Usage: ``python bench/run_overhead.py [--quick] [--sizes N ...] [--stages] [--repeat N]
[--duckdb-memory-limit 256MB|none]`` (default 1234 20000;
``--quick``: 200 and 1234, for a smoke test). ``--stages`` adds, per run, the peak RSS of each
stage of the run (sampled every 10 ms in the child; the bench wraps the stages, the product logs
nothing of it); ``--no-floor`` skips the bare httpx loop.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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


def run_child(api_url: str, names: tuple[str, str, str], full_refresh: bool, stages: bool) -> dict[str, Any]:
    """Run the main flow once in a child process; return its flow time, wall time and peak RSS."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [
        sys.executable,
        __file__,
        "--child",
        *names,
        *(["--full-refresh"] if full_refresh else []),
        *(["--stages"] if stages else []),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"The flow run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def _status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (Linux), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_mb() -> float:
    """The process's resident set now, in MB."""
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """The process's peak resident set so far, in MB: ``VmHWM``, the high-water mark of its own memory.

    Not ``ru_maxrss``: Linux carries that over from the parent across fork and exec, so a child
    of this bench (whose emulator holds every activity) would report at least the bench's size.
    """
    return _status_mb("VmHWM")


class StageMeter:
    """Peak RSS per stage of a run: a thread samples RSS every 10 ms and books it to the innermost stage."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {"imports": _rss_mb()}
        self.peak_stage = "imports"
        self._max_rss = _peak_rss_mb()
        self._stack: list[str] = ["other"]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _book(self) -> None:
        stage = self._stack[-1]
        self.peaks[stage] = max(self.peaks.get(stage, 0.0), _rss_mb())
        max_rss = _peak_rss_mb()  # catches peaks between samples
        if max_rss > self._max_rss:
            self._max_rss, self.peak_stage = max_rss, stage

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self._book()

    def wrap(self, module: Any, name: str, stage: str) -> None:
        """Replace ``module.name`` with a wrapper that books its time to ``stage``."""
        inner: Callable[..., Any] = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(stage)
            self._book()
            try:
                return inner(*args, **kwargs)
            finally:
                self._book()
                self._stack.pop()

        setattr(module, name, wrapper)

    def stop(self) -> dict[str, float]:
        """Stop sampling; the peaks, in MB, by stage."""
        self._done.set()
        self._thread.join()
        return self.peaks


STAGES = (
    ("flows.pipeline", "open_target", "open warehouse"),
    ("flows.extract", "extract", "extract: other"),
    ("tasks.strava", "fetch_page", "extract: pages"),
    ("tasks.lake", "upload_staging_file", "extract: upload file"),
    ("flows.load", "load", "load: other"),
    ("tasks.warehouse", "prepare_staging", "load: prepare"),
    ("tasks.warehouse", "load_staging", "load: staging load"),
    ("tasks.quality", "run_validation", "load: validation"),
    ("tasks.warehouse", "merge_staging", "load: merge"),
    ("tasks.warehouse", "drop_staging", "load: drop staging"),
    ("tasks.state.watermark", "advance_watermark", "watermark"),
    ("tasks.state.events", "emit_activities_loaded", "event"),
    ("flows.models", "build_all", "models"),
    ("flows.pipeline", "publish_insight", "dashboard"),
)
"""(module, attribute, stage) the ``--stages`` meter wraps; each is looked up at call time by its caller."""


def child(names: list[str], full_refresh: bool, stages: bool) -> None:
    """In the child: run the flow, print seconds, peak RSS and counts as one JSON line."""
    import importlib

    from flows.pipeline import strava_elt

    meter = StageMeter() if stages else None
    if meter:
        for module, name, stage in STAGES:
            meter.wrap(importlib.import_module(module), name, stage)
    strava, lake, warehouse = names
    started, cpu = time.perf_counter(), time.process_time()
    summary = strava_elt(strava, lake, warehouse, full_refresh=full_refresh)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_mb = _peak_rss_mb()
    out = {
        "seconds": seconds,
        "cpu": cpu,
        "rss_mb": rss_mb,
        "pages": summary["pages"],
        "extracted": summary["extracted"],
    }
    if meter:
        out["stages"] = meter.stop()
        out["peak_stage"] = meter.peak_stage
    print(json.dumps(out))


def task_runs(api_url: str) -> int:
    """How many task runs the server holds (all runs so far)."""
    import httpx

    response = httpx.post(f"{api_url}/task_runs/count", json={}, timeout=10)
    response.raise_for_status()
    return int(response.json())


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median flow time, its wall and CPU time replaced by their medians."""
    import statistics

    ordered = sorted(runs, key=lambda r: r["seconds"])
    middle = dict(ordered[len(ordered) // 2])
    middle["wall"] = statistics.median(r["wall"] for r in runs)
    middle["cpu"] = statistics.median(r["cpu"] for r in runs)
    middle["all"] = [round(r["seconds"], 2) for r in runs]
    return middle


def _set_memory_limit(warehouse_block: str, memory_limit: str | None) -> str | None:
    """Set the Warehouse block's ``memory_limit`` (``none``: DuckDB's default; None: keep it); the limit in force."""
    from blocks.warehouse import Warehouse

    block = Warehouse.load(warehouse_block)
    if memory_limit is not None:
        block.memory_limit = None if memory_limit.lower() == "none" else memory_limit
        block.save(warehouse_block, overwrite=True)
    return block.memory_limit


def main(
    sizes: list[int], stages: bool = False, with_floor: bool = True, repeat: int = 1, memory_limit: str | None = None
) -> None:
    """Measure each size; print the table (``memory_limit``: the Warehouse block's, ``none`` for DuckDB's default)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    rows = []
    with prefect_server() as api_url:
        os.environ["PREFECT_API_URL"] = api_url
        from emulator import StravaEmulator
        from tasks.setup import setup_emulator_blocks

        with tempfile.TemporaryDirectory(prefix="strava-elt-bench-") as tmp:
            for index, n in enumerate([200, *sizes]):  # the first is a warm-up (server caches), not printed
                with StravaEmulator(activities=n, seed=SEED, end=END, read_limits=LIMITS, overall_limits=LIMITS) as emu:
                    serve = floor(emu) if with_floor else float("nan")
                    suffix = uuid.uuid4().hex[:8]
                    names = (f"bench-strava-{suffix}", f"bench-lake-{suffix}", f"bench-warehouse-{suffix}")
                    setup_emulator_blocks(Path(tmp) / suffix, emu, names)
                    limit = _set_memory_limit(names[2], memory_limit)
                    before = task_runs(api_url)
                    first = run_child(api_url, names, full_refresh=True, stages=stages)
                    middle = task_runs(api_url)
                    again = run_child(api_url, names, full_refresh=False, stages=stages)
                    after = task_runs(api_url)
                    again = _median_run([again] + [run_child(api_url, names, False, stages) for _ in range(repeat - 1)])
                if index:
                    rows.append((n, serve, first, middle - before, again, after - middle))
    print(
        f"strava-elt run overhead: Prefect server {api_url}, emulator over HTTP, DuckDB "
        f"(memory_limit {limit or 'DuckDB default'}), local lake; "
        f"load average {os.getloadavg()[0]:.1f} (1 min) at the end"
    )
    print(
        f"{'activities':>10} {'floor':>7} {'first load':>10} {'x floor':>7} {'tasks':>5} "
        f"{'incremental':>11} {'tasks':>5} {'peak RSS first/incr':>20} {'child wall first/incr':>22} "
        f"{'flow CPU first/incr':>20}"
    )
    for n, serve, first, first_tasks, again, again_tasks in rows:
        print(
            f"{n:>10,} {serve:>6.2f}s {first['seconds']:>9.2f}s {first['seconds'] / serve:>6.1f}x {first_tasks:>5} "
            f"{again['seconds']:>10.2f}s {again_tasks:>5} "
            f"{first['rss_mb']:>8.0f} / {again['rss_mb']:>4.0f} MB {first['wall']:>10.1f} / {again['wall']:>5.1f} s "
            f"{first['cpu']:>10.2f} / {again['cpu']:>5.2f} s"
        )
        if repeat > 1:
            print(f"{'':>10} incremental runs (median of {repeat}): {again['all']} s")
    if stages:
        print("peak RSS (MB) by stage, first load / incremental run:")
        for n, _, first, _, again, _ in rows:
            cells = [f"{name} {mb:.0f}/{again['stages'].get(name, 0):.0f}" for name, mb in first["stages"].items()]
            print(f"{n:>10,}  " + ", ".join(cells))
            print(f"{'':>10}  the peak was reached in: {first['peak_stage']} / {again['peak_stage']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--sizes", type=int, nargs="+", help="activities per athlete (default 1234 20000)")
    parser.add_argument("--stages", action="store_true", help="also print the peak RSS of each stage")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare httpx loop")
    parser.add_argument("--repeat", type=int, default=1, help="incremental runs per size (the median is shown)")
    parser.add_argument(
        "--duckdb-memory-limit", help="the Warehouse block's memory_limit (e.g. 256MB; none: DuckDB's default)"
    )
    parser.add_argument("--child", nargs=3, metavar="BLOCK", help=argparse.SUPPRESS)
    parser.add_argument("--full-refresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.full_refresh, args.stages)
    else:
        sizes = args.sizes or ([200, 1234] if args.quick else [1234, 20000])
        main(sizes, args.stages, not args.no_floor, args.repeat, args.duckdb_memory_limit)
