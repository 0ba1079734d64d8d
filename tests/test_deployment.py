"""End to end: prefect.yaml on a real Prefect server, a process work pool and workers.

The module starts its own ``prefect server start`` (tests/prefect_server_support.py: a free
localhost port, its own PREFECT_HOME and SQLite database) and drives it the way a user does: the ``prefect`` and
``strava-elt`` commands of this virtualenv, in subprocesses. The Strava API is the emulator,
in this process; the warehouse a DuckDB file under the test's tmp folder. Nothing touches
``~/.prefect``. The project must be installed (``pip install -e .``): the worker's flow
runs, and ``prefect block register -m blocks``, import it like a user's would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import httpx
import pytest
from install_support import commented_variant, fresh_venv
from prefect_server_support import BIN, REPO, private_prefect_server, register_blocks, run_command, stop, tail

from emulator import StravaEmulator
from flows.cli import main
from flows.cli.deploy import DEFAULT_POOL
from tasks import quality
from tasks.insight import dashboard, notify, report
from tasks.state.events import LOADED_EVENT
from tests.conftest import EMULATOR_END, EMULATOR_SEED

pytestmark = pytest.mark.e2e

ACTIVITIES = 300
CONCURRENCY_REASON = "Deployment concurrency limit reached."


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide test harness: this module starts its own server."""
    yield


# --------------------------------------------------------------------------- deploy-local


def test_deploy_local_prints_the_commands_and_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy-local", "--port", "4321", "--home", "/tmp/strava-elt-home"]) == 0
    out = capsys.readouterr().out
    assert "nothing has been started" in out
    commands = [
        "export PREFECT_API_URL=http://127.0.0.1:4321/api",  # first: the server tells its UI this address
        "prefect server start --host 127.0.0.1 --port 4321",
        "prefect block register -m blocks",
        "strava-elt setup local --home /tmp/strava-elt-home --client-id ID",
        f"prefect work-pool create --type process {DEFAULT_POOL}",
        f"cd {REPO} && prefect --no-prompt deploy --all",
        f"prefect worker start --pool {DEFAULT_POOL}",
        "prefect deployment run 'strava-elt/weekly'",
    ]
    positions = [out.find(command) for command in commands]
    assert -1 not in positions, [c for c, p in zip(commands, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "printed out of order"
    assert f"name: {DEFAULT_POOL}" in (REPO / "prefect.yaml").read_text()


def test_deploy_local_with_the_emulator_gives_its_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy-local", "--emulator"]) == 0
    out = capsys.readouterr().out
    emu = StravaEmulator(activities=1)  # not started: only its default credentials
    assert "strava-elt emulator --port 8765" in out
    assert (
        f"--strava-base-url http://127.0.0.1:8765 --client-id {emu.client_id} "
        f"--client-secret {emu.client_secret} --refresh-token {emu.current_refresh_token}"
    ) in out


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A private Prefect server with the deployments of prefect.yaml, and the emulator they read."""

    api: str
    env: dict[str, str]
    tmp: Path
    emu: StravaEmulator
    http: httpx.Client
    timings: dict[str, float] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def duckdb_path(self) -> Path:
        return self.tmp / "data" / "warehouse.duckdb"

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one of this virtualenv's commands (``prefect ...``) from the repository root."""
        return run_command(self.env, *args, timeout=timeout, check=check)

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
    ) -> subprocess.Popen[bytes]:
        """Start a long-running command in its own process group; output in ``<tmp>/<name>.log``."""
        with open(self.tmp / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                cwd=cwd,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop the processes this stack started, newest first, and its HTTP client."""
        for proc in reversed(self.procs):
            stop(proc)
        self.http.close()

    def worker_once(self, name: str) -> subprocess.Popen[bytes]:
        """``prefect worker start --run-once``: one poll, then it waits for the runs it took."""
        return self.start(name, "prefect", "worker", "start", "--pool", DEFAULT_POOL, "--run-once")

    def deployment_run(self, name: str, *params: str) -> str:
        """``prefect deployment run NAME [--param k=v ...]``; return the new flow run's id."""
        out = self.run("prefect", "deployment", "run", name, *[a for p in params for a in ("--param", p)]).stdout
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert match, out
        return match.group(1)

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def flow_run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/flow_runs/{run_id}")
        return result

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 120, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def timed(self, stage: str, started: float) -> None:
        self.timings[stage] = round(time.monotonic() - started, 1)


def _check_installed() -> None:
    """The worker's runs import the project like a user's do: from the install, this checkout."""
    probe = subprocess.run(
        [sys.executable, "-c", "import blocks, flows; print(blocks.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    where = Path(probe.stdout.strip()).resolve().parents[1] if probe.returncode == 0 else None
    if where != REPO:
        pytest.fail(
            f"The project is not installed from this checkout ({where or probe.stderr.strip()}): "
            f"run `{sys.executable} -m pip install -e '{REPO}[dev]'` first"
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Server, block types, blocks, process pool and ``prefect deploy --all``; all stopped at the end."""
    _check_installed()
    tmp = tmp_path_factory.mktemp("deployment")
    emu = StravaEmulator(
        activities=ACTIVITIES, athlete_id=int(uuid.uuid4().int % 10**9) + 10**9, seed=EMULATOR_SEED, end=EMULATOR_END
    )
    started = time.monotonic()
    with emu, private_prefect_server(tmp / "prefect-home") as server:
        env = server.env | {"PREFECT_CLI_WRAP_LINES": "false", "COLUMNS": "240"}
        stack = Stack(api=server.api, env=env, tmp=tmp, emu=emu, http=httpx.Client(base_url=server.api, timeout=30))
        stack.timed("server start", started)
        try:
            started = time.monotonic()
            # A clean checkout's block types, then the blocks the deployments name (the defaults).
            out = register_blocks(stack.env)
            assert "Successfully registered 3 blocks" in out, out  # StravaApplication, StravaCredentials, Warehouse
            stack.timed("block register", started)
            started = time.monotonic()
            stack.run(
                "strava-elt", "setup", "local", "--home", str(tmp / "data"), "--strava-base-url", emu.base_url,
                "--client-id", emu.client_id, "--client-secret", emu.client_secret,
                "--refresh-token", emu.current_refresh_token,
            )  # fmt: skip
            stack.timed("setup local", started)
            started = time.monotonic()
            stack.run("prefect", "work-pool", "create", "--type", "process", DEFAULT_POOL)
            stack.timed("work-pool create", started)
            started = time.monotonic()
            deployed = stack.run("prefect", "--no-prompt", "deploy", "--all").stdout
            for name in ("strava-elt/weekly", "strava-elt/backfill", "retrain-kudos-model/retrain-kudos-model"):
                assert f"Deployment '{name}' successfully created" in deployed, deployed
            stack.timed("deploy --all", started)
            yield stack
        finally:
            stack.close()
            print(f"e2e timings (s): {stack.timings}")


class Gate:
    """Holds the emulator's activity-list requests until opened: a run that stays running.

    ``meet``: open by itself once that many requests wait at once (runs proven to overlap).
    """

    def __init__(self, emu: StravaEmulator, path: str = "/api/v3/athlete/activities", meet: int | None = None) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.waiting = 0
        self.met = False
        lock = threading.Lock()
        original = emu._handle

        def handle(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
            if urlsplit(target).path == path and not self.opened.is_set():
                self.reached.set()
                with lock:
                    self.waiting += 1
                    if meet is not None and self.waiting >= meet:
                        self.met = True
                        self.opened.set()
                self.opened.wait(timeout=150)  # never hangs a failed test for long
            return original(method, target, headers, body)

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(emu, "_handle", handle)

    def open(self) -> None:
        self.opened.set()
        self._patch.undo()


@pytest.fixture(scope="module")
def weekly(stack: Stack) -> dict[str, Any]:
    """Run A of ``weekly`` held running by the emulator; run B meanwhile; then A to the end.

    Returns the flow run ids ``a`` and ``b``, and Strava's ``/athlete`` request counts around B.
    """
    started = time.monotonic()
    gate = Gate(stack.emu)
    try:
        run_a = stack.deployment_run("strava-elt/weekly")
        worker_a = stack.worker_once("worker-a")

        def held() -> bool:
            if worker_a.poll() is not None:
                raise AssertionError(f"worker A exited early:\n{tail(stack.tmp / 'worker-a.log')}")
            return gate.reached.is_set()

        stack.wait_for("run A to reach Strava's activity list", held, timeout=300)
        assert stack.flow_run(run_a)["state_type"] == "RUNNING"
        stack.timed("run A running", started)
        before_b = stack.emu.request_count("/api/v3/athlete")

        # Run A is running and holds the deployment's only slot: B, as a worker takes it, is cancelled.
        started = time.monotonic()
        run_b = stack.deployment_run("strava-elt/weekly")
        worker_b = stack.worker_once("worker-b")
        assert worker_b.wait(timeout=300) == 0, tail(stack.tmp / "worker-b.log")
        stack.wait_for("run B to end", lambda: stack.flow_run(run_b)["state_type"] != "SCHEDULED", timeout=60)
        assert stack.flow_run(run_a)["state_type"] == "RUNNING"
        after_b = stack.emu.request_count("/api/v3/athlete")
        stack.timed("run B cancelled", started)
    finally:
        gate.open()
    started = time.monotonic()
    assert worker_a.wait(timeout=600) == 0, tail(stack.tmp / "worker-a.log")
    stack.timed("run A to the end", started)
    return {"a": run_a, "b": run_b, "athlete_requests_before_b": before_b, "athlete_requests_after_b": after_b}


# --------------------------------------------------------------------------- the tests


def test_weekly_is_sunday_midnight_utc_one_run_at_a_time(stack: Stack) -> None:
    deployment = stack.get("/deployments/name/strava-elt/weekly")
    [schedule] = deployment["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == "0 0 * * 0"
    assert schedule["schedule"]["timezone"] == "UTC"
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert deployment["work_pool_name"] == DEFAULT_POOL
    assert deployment["entrypoint"] == "flows/pipeline.py:strava_elt"
    assert deployment["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    assert deployment["parameters"] == {
        "strava_block": "strava",
        "lake_block": "strava-lake",
        "warehouse_block": "strava-warehouse",
        "lookback_days": 14,
        "full_refresh": False,
        "slack_block": None,
    }

    # The server's scheduler has put the next runs on Sundays at 00:00 UTC.
    def upcoming() -> list[dict[str, Any]]:
        body = {
            "flow_runs": {"deployment_id": {"any_": [deployment["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}}
        }
        return [r for r in stack.post("/flow_runs/filter", body) if r["auto_scheduled"]]

    for run in stack.wait_for("the scheduler's weekly runs", upcoming, timeout=120):
        start = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00")).astimezone(UTC)
        assert (start.weekday(), start.hour, start.minute) == (6, 0, 0), start
    inspected = stack.run("prefect", "deployment", "inspect", "strava-elt/weekly").stdout
    (stack.tmp / "inspect-weekly.txt").write_text(inspected)
    print(inspected)
    assert "'cron': '0 0 * * 0'" in inspected and "'timezone': 'UTC'" in inspected


def test_backfill_and_the_kudos_trigger_are_deployed(stack: Stack) -> None:
    backfill = stack.get("/deployments/name/strava-elt/backfill")
    assert backfill["schedules"] == []
    assert backfill["parameters"]["full_refresh"] is True
    assert backfill["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    kudos = stack.get("/deployments/name/retrain-kudos-model/retrain-kudos-model")
    assert kudos["entrypoint"] == "flows/kudos.py:retrain_kudos_model"
    [automation] = stack.get(f"/automations/related-to/prefect.deployment.{kudos['id']}")
    trigger = automation["trigger"]
    assert trigger["expect"] == [LOADED_EVENT]
    assert trigger["match"] == {"prefect.resource.id": "strava.athlete.*"}
    assert trigger["posture"] == "Reactive"
    [action] = automation["actions"]
    assert action["type"] == "run-deployment" and action["deployment_id"] == kudos["id"]
    for name in ("strava-credentials", "strava-warehouse"):
        assert stack.get(f"/block_types/slug/{name}")["slug"] == name


def test_a_second_run_while_one_runs_is_cancelled(stack: Stack, weekly: dict[str, Any]) -> None:
    cancelled = stack.flow_run(weekly["b"])
    assert cancelled["state_type"] == "CANCELLED", cancelled["state"]
    assert cancelled["state"]["message"] == CONCURRENCY_REASON
    # It never ran: Scheduled, Pending refused, Cancelled; no subflow, no request to Strava.
    states = stack.get(f"/flow_run_states/?flow_run_id={weekly['b']}")
    assert "RUNNING" not in {state["type"] for state in states}
    assert stack.post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [weekly["b"]]}}}) == []
    assert weekly["athlete_requests_after_b"] == weekly["athlete_requests_before_b"]


def test_the_weekly_run_loads_the_warehouse_through_the_worker(stack: Stack, weekly: dict[str, Any]) -> None:
    run = stack.flow_run(weekly["a"])
    assert run["state_type"] == "COMPLETED", run["state"]
    # The run graph the UI draws (the server's graph-v2): the main run holds the extract, load and
    # models subflow runs, each a node of kind flow-run; each subflow's own graph holds its tasks.
    graph = stack.get(f"/flow_runs/{weekly['a']}/graph-v2")
    # A subflow's label is "<flow name> / <flow run name>", its id the subflow run's.
    found = {n["label"].split(" / ")[0]: n for _, n in graph["nodes"] if n["kind"] == "flow-run"}
    assert sorted(found) == ["build-models", "extract-activities", "load-activities"], graph["nodes"]
    subflows = {
        "extract": found["extract-activities"],
        "load": found["load-activities"],
        "models": found["build-models"],
    }
    own = {n["label"] for _, n in graph["nodes"] if n["kind"] == "task-run"}
    assert {"open_warehouse", "publish_dashboard"} <= {label.rsplit("-", 1)[0] for label in own}, own
    children = stack.post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [weekly["a"]]}}})
    assert {c["id"] for c in children} == {n["id"] for n in subflows.values()}
    assert {c["state_type"] for c in children} == {"COMPLETED"}

    def task_names(flow_run_id: str) -> set[str]:
        found = stack.get(f"/flow_runs/{flow_run_id}/graph-v2")["nodes"]
        return {n["label"] if n["label"].startswith("fetch-page-") else n["label"].rsplit("-", 1)[0] for _, n in found}

    assert "fetch-page-1" in task_names(subflows["extract"]["id"])
    assert task_names(subflows["load"]["id"]) == {"run_validation", "merge_staging", "advance_watermark"}
    assert task_names(subflows["models"]["id"]) == set()
    tasks = stack.post("/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [c["id"] for c in children]}}})
    assert {t["state_type"] for t in tasks} == {"COMPLETED"}

    def artifact_keys(flow_run_id: str) -> set[str]:
        found = stack.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
        return {a["key"] for a in found}

    # The run's summary, report and dashboard link on the main run; the validation table on the load's.
    assert {notify.SUMMARY_ARTIFACT_KEY, report.ARTIFACT_KEY, dashboard.ARTIFACT_KEY} <= artifact_keys(weekly["a"])
    assert quality.ARTIFACT_KEY in artifact_keys(subflows["load"]["id"])

    query = {"filter": {"event": {"name": [LOADED_EVENT]}, "order": "ASC"}, "limit": 50}
    # The server stores events a moment after the run ends (its event persister batches them).
    [event] = stack.wait_for("the run's load event", lambda: stack.post("/events/filter", query)["events"])
    athlete_id = stack.emu.athlete["id"]
    assert event["resource"]["prefect.resource.id"] == f"strava.athlete.{athlete_id}"
    assert event["payload"]["inserted"] == ACTIVITIES
    assert (event["payload"]["updated"], event["payload"]["deleted"]) == (0, 0)
    newest = max(a["start_date"] for a in stack.emu.activities)
    assert event["payload"]["watermark"].replace("+00:00", "Z") == newest
    related = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
    assert related["flow-run"] == f"prefect.flow-run.{weekly['a']}"
    assert related["deployment"].startswith("prefect.deployment.")

    # The worker has exited: the DuckDB file is free to read.
    with duckdb.connect(str(stack.duckdb_path), read_only=True) as conn:
        rows = conn.execute("SELECT id, name FROM strava_activity_data WHERE deleted_at IS NULL").fetchall()
    assert dict(rows) == {a["id"]: a["name"] for a in stack.emu.activities}


def test_the_event_triggers_the_kudos_model_and_a_missing_block_says_how_to_create_it(
    stack: Stack, weekly: dict[str, Any]
) -> None:
    kudos = stack.get("/deployments/name/retrain-kudos-model/retrain-kudos-model")

    def triggered() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = stack.post(
            "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [kudos["id"]]}}}
        )
        return result

    [retrain] = stack.wait_for("the trigger's kudos run", triggered, timeout=120)
    # The event's payload became the parameters: the same blocks and athlete as the load.
    assert retrain["parameters"] == {
        "warehouse_block": "strava-warehouse",
        "lake_block": "strava-lake",
        "athlete_id": stack.emu.athlete["id"],
    }
    started = time.monotonic()
    missing = stack.deployment_run("strava-elt/backfill", "strava_block=no-such-strava")
    worker = stack.worker_once("worker-c")  # takes both: the retrain and the doomed backfill
    assert worker.wait(timeout=600) == 0, tail(stack.tmp / "worker-c.log")
    stack.timed("kudos run and missing-block run", started)

    done = stack.flow_run(retrain["id"])
    assert done["state_type"] == "COMPLETED", done["state"]
    failed = stack.flow_run(missing)
    assert failed["state_type"] == "FAILED"
    message = failed["state"]["message"]
    assert "No Strava Credentials block named 'no-such-strava'" in message, message
    assert "strava-elt setup local" in message and "Blocks > + > Strava Credentials" in message, message


# --------------------------------------------------------------------------- code from git


def git_variant(prefect_yaml: str, repository: str) -> str:
    """prefect.yaml with its build/push/pull replaced by the commented git_clone variant, as docs/deploy.md says."""
    steps = commented_variant(prefect_yaml, "git_clone")
    head = prefect_yaml[: prefect_yaml.index("build:")]
    rest = prefect_yaml[prefect_yaml.index("definitions:") :]
    assert "https://github.com/YOUR-ACCOUNT/strava-elt.git" in steps
    return head + steps.replace("https://github.com/YOUR-ACCOUNT/strava-elt.git", repository) + "\n" + rest


def test_a_git_clone_deployment_installs_the_clone_and_loads_where_the_block_says(
    stack: Stack, weekly: dict[str, Any]
) -> None:
    """The Cloud/remote-worker recipe: code from a git URL, the project installed non-editable with its extras.

    The worker runs in its own fresh virtualenv without strava-elt (dependencies through a .pth
    line); the run's pull steps clone a bare repository holding this checkout's HEAD, install
    the clone with requirements-worker.txt, and run it. Afterwards the worker's virtualenv
    still works without the clone, and the DuckDB file is the block's absolute path.
    """
    started = time.monotonic()
    origin = stack.tmp / "origin.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(origin)], check=True, timeout=60)
    push = ["git", "-C", str(REPO), "push", "--quiet", str(origin), "HEAD:refs/heads/main"]
    subprocess.run(push, check=True, timeout=60)
    variant = git_variant((REPO / "prefect.yaml").read_text(), f"file://{origin}")
    prefect_file = stack.tmp / "prefect-git.yaml"
    prefect_file.write_text(variant.replace("  - name: weekly\n", "  - name: weekly-git\n", 1))
    deployed = stack.run(
        "prefect", "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", "weekly-git"
    )
    assert "Deployment 'strava-elt/weekly-git' successfully created" in deployed.stdout, deployed.stdout
    deployment = stack.get("/deployments/name/strava-elt/weekly-git")
    assert [next(iter(step)) for step in deployment["pull_steps"]] == [
        "prefect.deployments.steps.git_clone",
        "prefect.deployments.steps.pip_install_requirements",
        "prefect.deployments.steps.set_working_directory",
    ]
    stack.timed("git variant deployed", started)

    started = time.monotonic()
    worker_home = stack.tmp / "git-worker"
    worker_home.mkdir()
    python = fresh_venv(worker_home / "venv")
    run_id = stack.deployment_run("strava-elt/weekly-git")
    worker = stack.start(
        "worker-git", str(python), "-m", "prefect", "worker", "start", "--pool", DEFAULT_POOL, "--run-once",
        cwd=worker_home,
    )  # fmt: skip
    assert worker.wait(timeout=600) == 0, tail(stack.tmp / "worker-git.log")
    stack.timed("git run", started)
    run = stack.flow_run(run_id)
    assert run["state_type"] == "COMPLETED", (run["state"], tail(stack.tmp / "worker-git.log"))

    # The run's own load event: its run key names its lake folder next to the block's DuckDB file.
    query = {"filter": {"event": {"name": [LOADED_EVENT]}, "related": {"id": [f"prefect.flow-run.{run_id}"]}}}
    # The server stores events a moment after the run ends (its event persister batches them).
    [event] = stack.wait_for("the git run's load event", lambda: stack.post("/events/filter", query)["events"])
    lake = stack.duckdb_path.parent / "lake" / "raw" / "activities" / f"athlete_id={stack.emu.athlete['id']}"
    assert (lake / f"run={event['payload']['run_key']}").is_dir()
    with duckdb.connect(str(stack.duckdb_path), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM strava_activity_data WHERE deleted_at IS NULL").fetchone()
    assert rows is not None and rows[0] == ACTIVITIES

    # The worker's environment now holds a real (non-editable) install that outlives the clone.
    probe = subprocess.run(
        [str(python), "-c", "import tasks.warehouse as wh; print(wh.SQL_DIR)"],
        cwd=worker_home, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    sql_dir = Path(probe.stdout.strip())
    assert sql_dir.is_relative_to(worker_home / "venv") and (sql_dir / "validation" / "checks.toml").is_file()
    assert not list(worker_home.glob("strava-elt*")), "the clone is left in the worker's folder"
    helped = subprocess.run(
        [str(worker_home / "venv" / "bin" / "strava-elt"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "predict-kudos" in helped.stdout, helped.stderr
