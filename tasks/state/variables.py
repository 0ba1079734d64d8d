"""Prefect Variables read and written in one request, with a short wait when the server is busy.

``Variable.set(overwrite=True)`` reads the Variable, writes it and reads it again: three
requests where one PATCH does (a create only when it does not exist yet).

A Prefect server on SQLite (``prefect server start``'s default) answers 503 ("database is
locked") when a write meets its own event writer, which is often right after a task ends.
Prefect's client then sleeps 2 s, 4 s, 8 s ... before it tries again (even with
``PREFECT_CLIENT_MAX_RETRIES=0`` it sleeps once before giving up): about two seconds of every
run that hit it, for a write that succeeds at once a moment later. Here the write is sent once
without the client's retrying, and a busy answer is tried again after 0.05 s, doubling to
about 1.5 s in all; then Prefect's own retrying takes over, so a server that stays busy gets as
much patience as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectAlreadyExists

from blocks import prefect_compat

__all__ = ["BUSY_DELAYS", "read_variable", "write_variable"]

BUSY_DELAYS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
"""Seconds to wait before each quick retry of a busy (502/503) answer; then Prefect's own retries."""
_BUSY = frozenset({502, 503})


def read_variable(name: str) -> Any:
    """The Variable's value, or None when there is none."""
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(name)
    return None if variable is None else variable.value


def write_variable(name: str, value: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Create or overwrite the Variable ``name`` with ``value`` (JSON, at most 5,000 characters)."""
    update = VariableUpdate(name=name, value=value)
    with get_client(sync_client=True) as client:
        for delay in BUSY_DELAYS:
            status = _patch_once(client, update)
            if status not in _BUSY:
                break
            sleep(delay)
        else:
            status = None
        if status is not None and 200 <= status < 300:
            return
        if status != 404:  # still busy, or an answer to leave to Prefect's client (it raises what it must)
            try:
                client.update_variable(update)
                return
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
        try:
            client.create_variable(VariableCreate(name=name, value=value))
        except ObjectAlreadyExists:  # created by another run since: overwrite it
            client.update_variable(update)


def _patch_once(client: SyncPrefectClient, update: VariableUpdate) -> int:
    """Send the PATCH once, without the client's retrying (whose first wait is 2 s); its status code."""
    return prefect_compat.send_once(
        client, "PATCH", f"/variables/name/{update.name}", update.model_dump(mode="json", exclude_unset=True)
    )
