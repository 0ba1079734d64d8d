"""End to end: the round in deployment mode, child runs shared by two workers under one budget.

The end-to-end modules' shared ``prefect server`` (emptied first), ``prefect deploy --all``
of prefect.yaml, three process workers
(``--limit 1`` each: one takes the round, two take its children), a PostgreSQL warehouse
(children write in parallel) and the emulator with five athletes whose application may spend
only nine reads today: four athletes fit, the fifth ends partial, and no request of any run
is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import EMULATOR_END, EMULATOR_SEED, split_pg_url
from prefect_server_support import REPO, PrefectServer, fresh_server, register_blocks, tail
from test_deployment import Gate, Stack, _check_installed

from emulator import StravaEmulator
from flows.cli.deploy import DEFAULT_POOL

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DAILY_READS = 9


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide test harness: this module uses the shared server."""
    yield


@pytest.fixture
def stack(tmp_path: Path, pg_url: str, shared_prefect_server: PrefectServer) -> Iterator[tuple[Stack, str]]:
    """Server, blocks (application, five athletes, lake, PostgreSQL warehouse), pool, deployments."""
    _check_installed()
    emu = StravaEmulator(
        activities=[40, 50, 60, 45, 55],
        athletes=5,
        seed=EMULATOR_SEED,
        end=EMULATOR_END,
        client_id=str(2 * 10**6 + int(uuid.uuid4().int % 10**6)),
        read_limits=(100, DAILY_READS),
    )
    with emu:
        server = fresh_server(shared_prefect_server, tmp_path / "prefect-home")
        env = server.env
        stack = Stack(
            api=server.api, env=env, tmp=tmp_path, emu=emu, http=httpx.Client(base_url=server.api, timeout=30)
        )
        try:
            register_blocks(env)
            url, schema = split_pg_url(pg_url)
            tokens = {a: emu.for_athlete(a).current_refresh_token for a in emu.athlete_ids}
            code = (
                "import json, sys; from pathlib import Path\n"
                "from tasks.setup import setup_application_blocks, setup_local_blocks, setup_postgres_blocks\n"
                "a = json.loads(sys.argv[1])\n"
                "setup_local_blocks(Path(a['home']), names=('unused', 'strava-lake', 'strava-warehouse'))\n"
                "setup_postgres_blocks(a['url'], a['schema'])\n"
                "setup_application_blocks('strava-application', a['id'], a['secret'], a['base'],"
                " {int(k): v for k, v in a['tokens'].items()})\n"
            )
            args = {"home": str(tmp_path / "data"), "url": url, "schema": schema, "id": emu.client_id,
                    "secret": emu.client_secret, "base": emu.base_url, "tokens": tokens}  # fmt: skip
            subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, cwd=REPO, check=True, timeout=300)
            stack.run("prefect", "work-pool", "create", "--type", "process", DEFAULT_POOL)
            stack.run("prefect", "--no-prompt", "deploy", "--all")
            for number in range(3):
                stack.start(f"worker-{number}", "prefect", "worker", "start", "--pool", DEFAULT_POOL, "--limit", "1")
            yield stack, pg_url
        finally:
            stack.close()


def test_two_workers_take_the_children_in_parallel_within_one_budget(stack: tuple[Stack, str]) -> None:
    s, _ = stack
    # A child's run takes about two seconds now: hold the activity list until two children wait
    # at it at once (the gate opens itself then), so that the overlap is shown, not hoped for.
    gate = Gate(s.emu, meet=2)
    round_id = s.deployment_run("strava-elt-round/weekly-all", "parallel=2")

    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = s.flow_run(round_id)
        return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    try:
        run = s.wait_for("the round to end", ended, timeout=900, every=2)
    except AssertionError:
        raise AssertionError("\n".join(tail(s.tmp / f"worker-{n}.log") for n in range(3))) from None
    workers = "\n".join(tail(s.tmp / f"worker-{n}.log") for n in range(3))
    assert run["state"]["type"] == "COMPLETED", (run["state"]["message"], workers)
    assert run["state"]["message"] == "5 athletes: 4 complete, 1 partial, 0 failed, 0 revoked"
    children = s.post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [round_id]}}})
    pipeline = [c for c in children if any(t.startswith("strava-athlete:") for t in c["tags"])]
    assert len(pipeline) == 4
    # Two children ran at the same time on different workers' processes.
    assert gate.met, "two children never waited at Strava's activity list at the same time"
    spans = sorted((c["start_time"], c["end_time"]) for c in pipeline)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), spans
    # Never past the day's budget: the emulator answers 429 only past the limit, and usage stops at it.
    assert s.emu.usage["read"][1] <= DAILY_READS
    assert all(c["state"]["type"] == "COMPLETED" for c in pipeline)
