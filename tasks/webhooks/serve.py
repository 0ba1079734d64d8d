"""The receiver wired to Prefect: events go to the Prefect API of this process, the roster comes from its blocks."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import anyio
from prefect.events import Event
from prefect.events.clients import get_events_client
from pydantic import SecretStr
from starlette.applications import Starlette

from tasks.webhooks.receiver import ReceiverConfig, build_app

__all__ = ["emit_to_prefect", "receiver_app"]

EMIT_DEADLINE_SECONDS = 30.0


async def emit_to_prefect(event: Event) -> None:
    """Send one event to the Prefect API (``PREFECT_API_URL``: a server or a Cloud workspace)."""
    with anyio.fail_after(EMIT_DEADLINE_SECONDS):
        async with get_events_client() as client:
            await client.emit(event)


def receiver_app(
    application: str,
    verify_token: SecretStr,
    *,
    subscription_id: int | None = None,
    application_block: Any | None = None,
) -> Starlette:
    """The receiver for ``application``'s athletes (the roster), emitting to Prefect.

    Without ``subscription_id``, the id is read once from Strava (``webhook list``) with the
    application block's credentials.
    """

    async def athletes() -> Collection[int]:
        from tasks.strava.roster import alist_roster

        return {e.athlete_id for e in await alist_roster(application) if e.athlete_id is not None}

    async def listed_subscription() -> int | None:
        from tasks.strava.subscriptions import list_subscriptions

        if application_block is None:
            return None
        found = await anyio.to_thread.run_sync(list_subscriptions, application_block)
        return found[0].id if found else None

    source: Any = subscription_id if subscription_id is not None else listed_subscription
    return build_app(
        ReceiverConfig(
            verify_token=verify_token,
            application=application,
            emit=emit_to_prefect,
            athletes=athletes,
            subscription_id=source,
        )
    )
