"""One run per athlete, whichever way it starts: the slot ``strava-athlete-<key>`` (tasks/state/slots.py).

Two CLI processes of one athlete (emulator over HTTP, one DuckDB file) make one full sequence of
Strava requests, not two; a reaction landing during a weekly run waits for it, or ends at once,
before it opens the warehouse or spends a request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from flows.react import strava_elt_react
from tasks.state import slots
from tests.conftest import Env
from tests.test_webhooks_react import hint

LIST = "/api/v3/athlete/activities"


def _list_afters(env: Env) -> list[int]:
    """The ``after`` of every list request, in order (0: the whole history)."""
    return [int(r.query.get("after", 0) or 0) for r in env.emu.requests if r.path == LIST]


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(slots.WAIT_ENV, "0")


@pytest.fixture
def holder(env: Env) -> Iterator[dict[str, Any]]:
    """A "weekly run" of the env's athlete: a flow run holding the athlete's slot until released."""
    release, holding = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    @flow(name="weekly-stand-in")
    def weekly() -> None:
        with slots.athlete_slot(block_name=env.strava_block) as name:
            seen["slot"] = name
            holding.set()
            release.wait(120)

    thread = threading.Thread(target=weekly, daemon=True)
    thread.start()
    assert holding.wait(60), "the stand-in weekly run never took the slot"
    seen["release"] = release
    yield seen
    release.set()
    thread.join(60)


def test_the_key_is_known_before_any_request() -> None:
    class Block:
        athlete_id: int | None = 4711

    assert slots.slot_key(Block(), "strava") == "4711"
    Block.athlete_id = None
    assert slots.slot_key(Block(), "My Strava") == "block-my-strava"  # a bare refresh-token block
    assert slots.slot_key(None, None, athlete_id=12) == "12"
    assert slots.slot_name("4711") == "strava-athlete-4711"
    with pytest.raises(ValueError, match="athlete id or the credentials block"):
        slots.slot_key()


def test_a_bad_wait_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(slots.WAIT_ENV, "soon")
    with pytest.raises(ValueError, match="STRAVA_ELT_SLOT_WAIT_SECONDS='soon' is not a number"):
        slots.wait_seconds()


def test_a_second_run_ends_at_once_before_the_warehouse_or_a_request(
    env: Env, holder: dict[str, Any], no_wait: None
) -> None:
    with pytest.raises(slots.AthleteBusy) as caught:
        env.run()
    message = str(caught.value)
    assert f"holds its slot {holder['slot']!r}" in message
    assert "flow run '" in message  # the stand-in's flow run, by name and id
    assert "ended before opening the warehouse or sending a Strava request" in message
    assert env.emu.request_count() == 0
    assert not env.duckdb_path.exists()  # the warehouse was never opened


def test_a_reaction_during_a_weekly_run_ends_at_once_naming_it(env: Env, holder: dict[str, Any], no_wait: None) -> None:
    athlete = env.emu.athlete["id"]
    with pytest.raises(slots.AthleteBusy, match=r"flow run '[^']+' \([0-9a-f-]{36}\) since"):
        strava_elt_react(
            athlete_id=athlete,
            strava_block=env.strava_block,
            lake_block=env.lake_block,
            warehouse_block=env.warehouse_block,
            events=[hint(athlete, 1, "create")],
        )
    assert env.emu.request_count() == 0
    assert not env.duckdb_path.exists()


def test_a_reaction_during_a_weekly_run_waits_and_then_loads(env: Env, holder: dict[str, Any]) -> None:
    athlete = env.emu.athlete["id"]
    [new] = env.emu.add_activities(1)
    result: dict[str, Any] = {}

    def react() -> None:
        result["summary"] = strava_elt_react(
            athlete_id=athlete,
            strava_block=env.strava_block,
            lake_block=env.lake_block,
            warehouse_block=env.warehouse_block,
            events=[hint(athlete, new["id"], "create")],
        )

    thread = threading.Thread(target=react, daemon=True)
    thread.start()
    thread.join(3)  # the reaction is waiting for the slot meanwhile: nothing is read or opened
    assert thread.is_alive()
    assert env.emu.request_count() == 0 and not env.duckdb_path.exists()
    holder["release"].set()
    thread.join(240)
    assert not thread.is_alive()
    assert result["summary"]["incremental"]["inserted"] == len(env.emu.activities)
    assert new["id"] in env.production()


def test_two_cli_runs_of_one_athlete_make_one_sequence_of_requests(env: Env) -> None:
    from prefect.settings import PREFECT_API_URL

    args = ["--strava-block", env.strava_block, "--lake-block", env.lake_block]
    args += ["--warehouse-block", env.warehouse_block]
    code = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
    child_env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), slots.WAIT_ENV: "300"}
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, "run", "--json", *args],
            env=child_env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    summaries = [json.loads(out) for out, _ in outputs]
    # One of them loaded the whole history; the other waited for it, then found nothing new.
    assert sorted(s["inserted"] for s in summaries) == [0, len(env.emu.activities)]
    afters = _list_afters(env)
    full = [a for a in afters if a == 0]
    assert full, afters
    # One sequence: every whole-history page first, then only the second run's incremental read.
    assert afters[: len(full)] == full and all(a > 0 for a in afters[len(full) :]), afters
    [first] = [s for s in summaries if s["inserted"]]
    assert len(full) == first["pages"], (afters, first)
    assert len(env.production()) == len(env.emu.activities)


def test_the_slot_frees_itself_when_its_holder_ends(env: Env, no_wait: None) -> None:
    env.run()
    summary = env.run()  # the first run released the slot: the second takes it at once, no wait
    assert summary["inserted"] == 0 and summary["status"] == "complete"


def _limit(name: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None


def _elsewhere(athlete_id: int) -> BaseException | None:
    """Take the athlete's slot in another thread (a fresh context: not a subflow of this run)."""
    caught: list[BaseException | None] = [None]

    def take() -> None:
        try:
            with slots.athlete_slot(athlete_id=athlete_id):
                pass
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            caught[0] = exc

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(60)
    return caught[0]


def test_a_missing_limit_is_created_then_taken_in_the_same_run(no_wait: None) -> None:
    name = slots.slot_name("777003")
    assert _limit(name) is None  # the athlete never ran: Prefect knows no such limit
    with slots.athlete_slot(athlete_id=777003) as held:
        assert held == name
        made = _limit(name)
        assert made is not None and made.limit == 1 and made.active_slots == 1  # created, and held
        assert isinstance(_elsewhere(777003), slots.AthleteBusy)  # another run (thread), no wait: busy
    assert _limit(name).active_slots == 0  # released on the way out
    with slots.athlete_slot(athlete_id=777003):
        assert _limit(name).active_slots == 1  # the limit exists now: taken at once


def test_the_slot_is_released_when_the_run_fails(no_wait: None) -> None:
    name = slots.slot_name("777001")
    with pytest.raises(ZeroDivisionError):
        with slots.athlete_slot(athlete_id=777001):
            assert _limit(name).active_slots == 1
            _ = 1 / 0
    assert _limit(name).active_slots == 0


def test_a_long_run_renews_its_lease(monkeypatch: pytest.MonkeyPatch, no_wait: None) -> None:
    """The lease is renewed while the run lasts (a crashed run's slot frees itself at the lease's end)."""
    import time

    from prefect.client.orchestration import SyncPrefectClient

    renewed: list[Any] = []
    real = SyncPrefectClient.renew_concurrency_lease

    def counted(self: SyncPrefectClient, lease_id: Any, lease_duration: float) -> Any:
        renewed.append(lease_id)
        return real(self, lease_id=lease_id, lease_duration=lease_duration)  # the real request, counted

    monkeypatch.setattr(SyncPrefectClient, "renew_concurrency_lease", counted)
    monkeypatch.setattr(slots, "RENEW_SECONDS", 0.2)
    with slots.athlete_slot(athlete_id=777002):
        time.sleep(1.5)
        assert _limit(slots.slot_name("777002")).active_slots == 1
    assert len(renewed) >= 3 and len(set(renewed)) == 1, renewed  # one lease, renewed while held
    count = len(renewed)
    time.sleep(0.5)
    assert len(renewed) == count  # released: no renewal after the run
    assert _limit(slots.slot_name("777002")).active_slots == 0
