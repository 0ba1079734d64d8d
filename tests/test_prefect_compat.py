"""Contract tests of blocks/prefect_compat.py: what each function relies on in Prefect 3.9 still holds.

Each test names the private Prefect API it checks. One failing after a Prefect upgrade means the
compat function beside it must change (and the pin with it: ``prefect>=3.9,<3.10``), nothing else.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import httpx
import prefect
import pytest
from prefect import flow, flow_engine
from prefect.blocks.core import Block
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRunPolicy
from prefect.context import FlowRunContext
from prefect.filesystems import LocalFileSystem
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings
from pydantic import SecretStr

from blocks import prefect_compat
from blocks.strava import StravaApplication, StravaCredentials


def test_the_pin_matches_the_installed_prefect_and_pyproject() -> None:
    import tomllib
    from pathlib import Path

    assert prefect.__version__.startswith("3.9."), prefect.__version__
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"prefect{prefect_compat.PREFECT_PIN}" in project["project"]["dependencies"]


# ---------------------------------------------------------------- _sync=True (call_sync)


def test_dispatched_methods_take_the_hidden_sync_keyword(tmp_path: Any) -> None:
    # Block.load/save and the filesystem blocks' read/write are @async_dispatch: they carry .aio
    # and accept _sync=True, which call_sync passes.
    for method in (Block.load, Block.save, LocalFileSystem.read_path, LocalFileSystem.write_path):
        assert hasattr(method, "aio"), method
    lake = LocalFileSystem(basepath=str(tmp_path))
    prefect_compat.call_sync(lake.write_path, "a.txt", b"x")
    assert prefect_compat.call_sync(lake.read_path, "a.txt") == b"x"
    assert prefect_compat.call_sync(len, "abc") == 3  # not dispatched: called as it is


# ---------------------------------------------------------------- _block_document_id, _to_block_document


def test_a_block_keeps_its_document_id_in_the_private_attribute() -> None:
    block = StravaApplication(client_id="1", client_secret=SecretStr("s"))
    assert prefect_compat.block_document_id(block) is None
    assert "_block_document_id" in Block.__private_attributes__
    assert "_block_document_name" in Block.__private_attributes__
    assert prefect_compat.block_document_name(block) is None
    assert callable(Block._to_block_document)
    assert "_to_block_document" in inspect.getsource(Block._save)  # every save builds the document there


def test_saving_an_athlete_with_an_unsaved_application_is_refused_before_the_document() -> None:
    application = StravaApplication(client_id="1", client_secret=SecretStr("s"))
    athlete = StravaCredentials(application=application, refresh_token=SecretStr("r"))
    with pytest.raises(ValueError, match="Save the StravaApplication block first"):
        athlete._to_block_document(name="x")


# ---------------------------------------------------------------- SyncPrefectClient._client (send_once)


def test_the_sync_client_holds_an_httpx_client_whose_plain_send_skips_the_retry_loop() -> None:
    with get_client(sync_client=True) as client:
        assert isinstance(client, SyncPrefectClient)
        http = client._client
        assert isinstance(http, httpx.Client)
        assert type(http).send is not httpx.Client.send  # Prefect's retrying send, which send_once avoids
        assert prefect_compat.send_once(client, "GET", "/health", {}) == 200


# ---------------------------------------------------------------- the running flow's retries


def test_a_flow_run_keeps_its_retries_in_its_context_and_the_server_reads_them() -> None:
    from prefect.server.orchestration.core_policy import RetryFailedFlows

    assert "retries" in FlowRunPolicy.model_fields
    assert "run_settings.retries" in inspect.getsource(RetryFailedFlows)
    seen: list[Any] = []

    @flow(retries=2)
    def probe() -> None:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        seen.append(context.flow_run.empirical_policy.retries)
        seen.append(prefect_compat.stop_flow_run_retries())
        seen.append(context.flow_run.empirical_policy.retries)
        with get_client(sync_client=True) as client:
            seen.append(client.read_flow_run(context.flow_run.id).empirical_policy.retries)

    probe()
    assert seen == [2, True, 0, 0]
    assert prefect_compat.stop_flow_run_retries() is False  # outside a flow run


# ---------------------------------------------------------------- the heartbeat thread (install_prompt_heartbeat_stop)


def test_the_heartbeat_loop_still_has_the_shape_the_shim_assumes() -> None:
    original = getattr(flow_engine._send_heartbeats, "__wrapped__", flow_engine._send_heartbeats)
    original = getattr(original, "__wrapped__", original)  # under contextmanager's own wrapper
    source = inspect.getsource(original)
    # Sleeps in whole seconds, checking its stop event between sleeps; joined only on request.
    assert "for _ in range(heartbeat_seconds):" in source
    assert "if stop_event.is_set():" in source and "time.sleep(1)" in source
    assert "if join_on_exit:" in source and "thread.join(" in source
    assert "daemon=True" in source
    assert list(inspect.signature(original).parameters) == ["engine", "join_on_exit"]
    # The sync engine calls it through the module's global name (so the shim replaces it there),
    # without join_on_exit; the async engine passes join_on_exit=False.
    assert "with _send_heartbeats(self):" in inspect.getsource(flow_engine.FlowRunEngine.run_context)
    assert "_send_heartbeats(self, join_on_exit=False)" in inspect.getsource(flow_engine.AsyncFlowRunEngine.run_context)
    assert get_current_settings().flows.heartbeat_frequency == 180
    assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.name == "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def test_with_the_shim_a_sync_flow_run_still_sends_heartbeats_and_does_not_join_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefect_compat.install_prompt_heartbeat_stop()
    prefect_compat.install_prompt_heartbeat_stop()  # idempotent
    shim = flow_engine._send_heartbeats
    assert getattr(shim, "__strava_elt_prompt_stop__", False)
    original = shim.__wrapped__  # type: ignore[attr-defined]
    assert not getattr(original, "__strava_elt_prompt_stop__", False)  # wrapped once

    calls: list[bool] = []
    sent = threading.Event()

    def spy(engine: Any, join_on_exit: bool = True) -> Any:
        calls.append(join_on_exit)
        return original(engine, join_on_exit=join_on_exit)

    def emitted(self: Any, *args: Any) -> None:
        sent.set()

    monkeypatch.setattr(flow_engine.FlowRunEngine, "_emit_flow_run_heartbeat", emitted)
    # The shim closes over the function it wraps: install it over a spy to see the call it makes.
    monkeypatch.setattr(flow_engine, "_send_heartbeats", spy)
    prefect_compat.install_prompt_heartbeat_stop()

    @flow
    def beating() -> bool:
        return sent.wait(10)  # the heartbeat thread sends its first beat at once

    assert beating() is True
    assert calls == [False]
