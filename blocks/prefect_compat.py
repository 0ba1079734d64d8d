"""Every use of a private Prefect API, in one room, each with why and for which Prefect version.

strava-elt pins ``prefect>=3.9,<3.10`` (pyproject.toml) because of this module: each function
below leans on something Prefect 3.9 does not promise to keep (a leading underscore, a
function's inner shape, a keyword the public signature hides). A new Prefect minor may move
any of them, so the pin moves only together with this file: raise it, run
``tests/test_prefect_compat.py`` (contract tests that fail loudly, naming what changed), adapt
the function here, and nothing else in the project needs to know.

This is the bottom layer (``blocks``): blocks, tasks and flows all import it. It imports only
Prefect's public top level at import time; the rest inside the functions, so importing it
costs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

__all__ = [
    "PREFECT_PIN",
    "block_document_id",
    "call_sync",
    "check_before_saving",
    "install_prompt_heartbeat_stop",
    "send_once",
    "stop_flow_run_retries",
]

PREFECT_PIN = ">=3.9,<3.10"
"""The Prefect versions this module is written for (pyproject.toml pins the same range)."""

B = TypeVar("B", bound=type)


def call_sync(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a Prefect method that may dispatch to its async twin, and pin its blocking implementation.

    Why: Prefect 3.9's ``@async_dispatch`` methods (``Block.load``, ``Block.save``,
    ``LocalFileSystem.read_path``/``write_path``, prefect-aws ``S3Bucket``'s) return a
    coroutine when they think they run in an async context (an async flow or task, a webhook
    handler under an event loop). Their hidden keyword ``_sync=True`` forces the blocking path;
    it is not in the public signature. Methods without ``.aio`` (not dispatched) are called
    as they are.
    """
    if hasattr(method, "aio"):
        return method(*args, _sync=True, **kwargs)
    return method(*args, **kwargs)


def block_document_id(block: Any) -> UUID | None:
    """The id of the saved document a loaded block came from; None for a block built in memory.

    Why: Prefect 3.9 keeps it in ``Block._block_document_id`` only (set by ``load`` and
    ``save``); the rotated refresh token is written into that document with one PATCH
    (blocks/strava.py), and a nested block is referenced by it.
    """
    value = getattr(block, "_block_document_id", None)
    return value if isinstance(value, UUID) or value is None else UUID(str(value))


def block_document_name(block: Any) -> str | None:
    """The name of the saved document a loaded block came from; None for a block built in memory.

    Why: Prefect 3.9 keeps it in ``Block._block_document_name`` only (set by ``load`` and
    ``save``); a lake's dashboard links are configured per lake block name (tasks/insight/links.py).
    """
    value = getattr(block, "_block_document_name", None)
    return str(value) if value else None


def check_before_saving(check: Callable[[Any], None]) -> Callable[[B], B]:
    """Class decorator: run ``check(block)`` before the block is turned into a document to save.

    Why: Prefect 3.9 has no public hook before ``Block.save`` builds the document; every save
    (``save``, ``save(overwrite=True)``, a block nested in another's save) goes through the
    private ``Block._to_block_document``. The StravaCredentials block refuses there to store an
    unsaved application inline (its client secret would be copied into the athlete's block).
    """

    def decorate(cls: B) -> B:
        original = cls._to_block_document  # type: ignore[attr-defined]

        @functools.wraps(original)
        def _to_block_document(self: Any, *args: Any, **kwargs: Any) -> Any:
            check(self)
            return original(self, *args, **kwargs)

        cls._to_block_document = _to_block_document  # type: ignore[attr-defined]
        return cls

    return decorate


def send_once(client: Any, method: str, url: str, json: Mapping[str, Any]) -> int:
    """Send one request with a Prefect client, without its retry loop; the response's status code.

    Why: Prefect 3.9's ``PrefectHttpxSyncClient.send`` retries a 502/503 answer only after
    sleeping 2 s (also with ``PREFECT_CLIENT_MAX_RETRIES=0``), and a busy SQLite server answers
    503 for a moment; ``tasks/state/variables.py`` asks again after 0.05 s instead. The
    underlying httpx client is the private ``SyncPrefectClient._client``; ``httpx.Client.send``
    called on it is the send without the loop (same base URL, headers and auth).
    """
    import httpx

    http = client._client
    request = http.build_request(method, url, json=dict(json))
    response = httpx.Client.send(http, request)
    response.close()
    return response.status_code


def stop_flow_run_retries() -> bool:
    """Set the running flow run's retry budget to zero (server and engine); False outside a flow run or with none.

    Why: Prefect 3.9 has no public call to make a flow run's failure final. The server decides a
    retry from the run's ``empirical_policy.retries`` (its ``RetryFailedFlows`` rule), which the
    engine sends when the run starts and keeps on ``FlowRunContext.flow_run``; both are
    updated here so a permanent failure (a missing block, a halting gate) is not retried.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or not run.empirical_policy.retries:
        return False
    policy = run.empirical_policy.model_copy(update={"retries": 0})
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run_id=run.id, empirical_policy=policy)
    run.empirical_policy = policy
    return True


_HEARTBEAT_SHIM = "__strava_elt_prompt_stop__"


def install_prompt_heartbeat_stop() -> None:
    """Make a sync flow run stop its heartbeat thread without waiting for it, as an async flow run does.

    Why: in Prefect 3.9 every flow run starts a heartbeat thread
    (``flow_engine._send_heartbeats``; ``flows.heartbeat_frequency``, 180 s by default) that
    sleeps in whole seconds (``time.sleep(1)`` in a loop, checking its stop event between
    sleeps). The sync engine then joins it (``join(timeout=2)``), so every sync flow run,
    each subflow included, waits up to a second at its end; the async engine passes
    ``join_on_exit=False`` and does not wait. This shim makes the sync engine do the same:
    the stop event is set as before, the thread sends no heartbeat after it and ends within
    the second, on its own (a daemon thread). Heartbeats run unchanged while the flow runs, so
    Prefect's detection of crashed ("zombie") flow runs keeps working.

    Idempotent: installing twice wraps once. ``docs/performance.md`` has the figures.
    """
    from prefect import flow_engine

    current = flow_engine._send_heartbeats
    if getattr(current, _HEARTBEAT_SHIM, False):
        return
    original = current

    @contextmanager
    def _send_heartbeats(engine: Any, join_on_exit: bool = True) -> Generator[None, None, None]:
        with original(engine, join_on_exit=False):
            yield

    setattr(_send_heartbeats, _HEARTBEAT_SHIM, True)
    _send_heartbeats.__wrapped__ = original  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = _send_heartbeats
