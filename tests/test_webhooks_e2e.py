"""End to end: emulator POST -> receiver -> Prefect event -> trigger -> worker run -> committed row.

The end-to-end modules' shared ``prefect server`` (emptied first), the ``react`` deployment
of prefect.yaml, a process worker,
``strava-elt webhook serve`` and ``webhook subscribe`` as a user runs them, and the emulator
with two athletes of one application. Prints the latency from the emulator's first POST of an
event to the committed row.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prefect_server_support import PrefectServer, free_port, fresh_server, register_blocks, tail

from emulator import StravaEmulator
from flows.cli.deploy import DEFAULT_POOL
from tests.conftest import EMULATOR_END, EMULATOR_SEED
from tests.test_deployment import Stack, _check_installed

pytestmark = pytest.mark.e2e

TOKEN = "e2e-verify-token-" + uuid.uuid4().hex
APP = "strava-app"
SAVE_BLOCKS = """
import sys
from pydantic import SecretStr
from blocks import StravaApplication
from tasks.strava.auth import authorize_athlete
base_url, client_id, secret, *codes = sys.argv[1:]
app = StravaApplication(client_id=client_id, client_secret=SecretStr(secret), base_url=base_url)
app.save("strava-app", overwrite=True)
app = StravaApplication.load("strava-app")
for code in codes:
    credentials, athlete = authorize_athlete(app, code)
    credentials.save(app.athlete_block_name(int(athlete["id"])), overwrite=True)
"""


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide test harness: this module uses the shared server."""
    yield


@pytest.fixture(scope="module")
def hooks(
    tmp_path_factory: pytest.TempPathFactory, shared_prefect_server: PrefectServer
) -> Iterator[tuple[Stack, str]]:
    """Server, blocks, the react deployment, a worker, the receiver and the push subscription."""
    _check_installed()
    tmp = tmp_path_factory.mktemp("webhooks")
    receiver_port = free_port()
    emu = StravaEmulator(activities=[60, 30], athletes=2, seed=EMULATOR_SEED, end=EMULATOR_END)
    emu.push_timeout_seconds = 2.0  # Strava's deadline for the callback's answer
    with emu:
        server = fresh_server(shared_prefect_server, tmp / "prefect-home")
        env = server.env | {
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "COLUMNS": "240",
            "STRAVA_ELT_WEBHOOK_VERIFY_TOKEN": TOKEN,  # the receiver's and `webhook subscribe`'s
        }
        stack = Stack(api=server.api, env=env, tmp=tmp, emu=emu, http=httpx.Client(base_url=server.api, timeout=30))
        try:
            register_blocks(stack.env)
            stack.run("strava-elt", "setup", "local", "--home", str(tmp / "data"))
            codes = [emu.for_athlete(a).authorization_code() for a in emu.athlete_ids]
            stack.run("python", "-c", SAVE_BLOCKS, emu.base_url, emu.client_id, emu.client_secret, *codes)
            stack.run("prefect", "work-pool", "create", "--type", "process", DEFAULT_POOL)
            deployed = stack.run("prefect", "--no-prompt", "deploy", "--name", "react").stdout
            assert "Deployment 'strava-elt-react/react' successfully created" in deployed, deployed
            stack.start("worker", "prefect", "worker", "start", "--pool", DEFAULT_POOL)
            stack.start(
                "receiver", "strava-elt", "webhook", "serve", "--application", APP, "--port", str(receiver_port),
            )  # fmt: skip
            callback = f"http://127.0.0.1:{receiver_port}/strava/webhook"

            def answers() -> bool:
                try:
                    params = {"hub.mode": "subscribe", "hub.challenge": "ping", "hub.verify_token": TOKEN}
                    return httpx.get(callback, params=params, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            stack.wait_for("the receiver", answers, timeout=120)
            stack.run("strava-elt", "webhook", "subscribe", "--application", APP, "--callback-url", callback)
            listed = stack.run("strava-elt", "webhook", "list", "--application", APP).stdout
            assert str(emu.subscription_id) in listed and callback in listed
            yield stack, callback
        finally:
            stack.close()
            for name in ("receiver", "worker"):
                print(f"--- {name} log (tail)\n{tail(tmp / f'{name}.log', 30)}")


def rows(stack: Stack, athlete_id: int) -> dict[int, dict[str, Any]]:
    """The athlete's production rows, read from a copy ({} while absent or torn).

    A read-only connection to the file itself would lock out the runs' writes: copying takes no lock.
    """
    path = stack.tmp / "data" / "warehouse.duckdb"
    copy = stack.tmp / "reader" / "warehouse.duckdb"
    copy.parent.mkdir(exist_ok=True)
    try:
        for suffix in ("", ".wal"):
            source, target = Path(f"{path}{suffix}"), Path(f"{copy}{suffix}")
            target.unlink(missing_ok=True)
            if source.exists():
                shutil.copyfile(source, target)
        with duckdb.connect(str(copy), read_only=True) as conn:
            cur = conn.execute(
                "SELECT id, name, deleted_at FROM strava_activity_data WHERE athlete_id = ?", [athlete_id]
            )
            return {r[0]: {"name": r[1], "deleted_at": r[2]} for r in cur.fetchall()}
    except (duckdb.Error, OSError):
        return {}


def first_post(emu: StravaEmulator, aspect: str, object_id: int) -> float:
    delivery = next(
        d for d in emu.push_deliveries() if d.event["object_id"] == object_id and d.event["aspect_type"] == aspect
    )
    assert delivery.delivered, delivery
    return delivery.attempts[0].monotonic


def test_events_reach_the_warehouse_through_a_triggered_run(hooks: tuple[Stack, str]) -> None:
    stack, callback = hooks
    emu = stack.emu
    loaded, revoked = emu.athlete_ids
    athlete = emu.for_athlete(loaded)

    # An added activity: the first reaction has no watermark, so its incremental run loads everything.
    [new] = athlete.add_activities(1)
    row = stack.wait_for("the new activity's row", lambda: rows(stack, loaded).get(new["id"]), timeout=300, every=0.5)
    latency = time.monotonic() - first_post(emu, "create", new["id"])
    assert row["name"] == new["name"] and len(rows(stack, loaded)) == 61

    # A burst: an old activity renamed, another deleted, the other athlete revokes, and a forged event.
    before = rows(stack, loaded)
    oldest, second = sorted(athlete.activities, key=lambda a: a["start_date"])[:2]
    athlete.modify_activity(oldest["id"], name="Renamed years later")
    athlete.delete_activity(second["id"])
    emu.for_athlete(revoked).revoke_refresh_token()
    forged = {
        "aspect_type": "delete", "event_time": 1_793_000_000, "object_id": oldest["id"], "object_type": "activity",
        "owner_id": 424242, "subscription_id": emu.subscription_id, "updates": {},
    }  # fmt: skip
    answer = httpx.post(callback, json=forged, timeout=2)
    assert answer.status_code == 200 and answer.json()["reason"] == "unknown athlete"

    def burst_done() -> bool:
        now = rows(stack, loaded)
        return bool(now) and now[oldest["id"]]["name"] == "Renamed years later" and now[second["id"]]["deleted_at"]

    stack.wait_for("the rename and the deletion", burst_done, timeout=300, every=0.5)
    rename_latency = time.monotonic() - first_post(emu, "update", oldest["id"])
    after = rows(stack, loaded)
    assert {k for k in after if after[k] != before[k]} == {oldest["id"], second["id"]}

    def is_revoked() -> bool:
        out = stack.run(
            "python", "-c",
            "import sys; from blocks import StravaCredentials as S; print(S.load(sys.argv[1]).status)",
            f"{APP}-athlete-{revoked}",
        ).stdout  # fmt: skip
        return out.strip() == "revoked"

    stack.wait_for("the revoked athlete's block", is_revoked, timeout=300, every=2)
    assert rows(stack, revoked) == {}  # the revoked athlete's reaction read nothing
    runs = stack.post("/flow_runs/filter", {"flow_runs": {"name": {"like_": "react-athlete-424242"}}})
    assert runs == []  # the forged owner started nothing
    print(f"\nwebhook latency, emulator POST -> committed row: new {latency:.1f} s, rename {rename_latency:.1f} s")
