"""The receiver wired to Prefect: events go to the Prefect API of this process, the roster comes from its blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import anyio
from prefect.events import Event
from prefect.events.clients import EventsClient, get_events_client
from pydantic import SecretStr

from tasks.webhooks.receiver import ReceiverApp, ReceiverConfig, build_app

__all__ = ["PrefectEmitter", "emit_to_prefect", "receiver_app"]

EMIT_DEADLINE_SECONDS = 30.0


async def emit_to_prefect(event: Event) -> None:
    """Send one event to the Prefect API (``PREFECT_API_URL``: a server or a Cloud workspace)."""
    with anyio.fail_after(EMIT_DEADLINE_SECONDS):
        async with get_events_client() as client:
            await client.emit(event)


class PrefectEmitter:
    """One long-lived Prefect events client for the receiver's life; batches go out over it.

    The client (a websocket to ``PREFECT_API_URL``) reconnects and resends what the server has
    not confirmed by itself; when a batch fails anyway, the client is dropped and the next
    attempt opens a new one (a resend is harmless: the events' ids are fixed).
    """

    def __init__(self, deadline_seconds: float = EMIT_DEADLINE_SECONDS) -> None:
        self.deadline_seconds = deadline_seconds
        self._client: EventsClient | None = None

    async def _open(self) -> EventsClient:
        if self._client is None:
            client = get_events_client(checkpoint_interval=5.0)
            await client.__aenter__()
            self._client = client
        return self._client

    async def warm(self) -> None:
        """Open the client now (the receiver's startup), not on the first event."""
        try:
            with anyio.fail_after(self.deadline_seconds):
                await self._open()
        except BaseException:
            await self.close()
            raise

    async def emit_batch(self, events: list[Event]) -> None:
        """Send ``events`` in order, within the deadline."""
        try:
            with anyio.fail_after(self.deadline_seconds):
                client = await self._open()
                for i, event in enumerate(events, 1):
                    await client.emit(event)
                    if i % 20 == 0:  # let the loop answer requests between sends
                        await asyncio.sleep(0)
        except BaseException:
            await self.close()
            raise

    async def emit(self, event: Event) -> None:
        """Send one event."""
        await self.emit_batch([event])

    async def close(self) -> None:
        """Close the client (its last unconfirmed events are flushed by the websocket's close)."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.move_on_after(self.deadline_seconds):
                await client.__aexit__(None, None, None)


def receiver_app(
    application: str,
    verify_token: SecretStr,
    *,
    subscription_id: int | None = None,
    application_block: Any | None = None,
) -> ReceiverApp:
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
    emitter = PrefectEmitter()
    return build_app(
        ReceiverConfig(
            verify_token=verify_token,
            application=application,
            emit=emitter.emit,
            emit_batch=emitter.emit_batch,
            close=emitter.close,
            warm=emitter.warm,
            athletes=athletes,
            subscription_id=source,
        )
    )
