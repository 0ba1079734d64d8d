"""One run per athlete, whichever way it starts: the athlete's slot.

Every run that reads an athlete's activities from Strava or writes them to the warehouse (the
CLI's ``run``, the ``weekly``, ``backfill`` and ``athlete`` deployments, a round's children and
the webhook reaction) holds the athlete's slot: the Prefect global concurrency limit
``strava-athlete-<key>`` with limit 1, created on demand by the run itself (Prefect 3.9's
``concurrency()`` has no ``create_if_missing``; ``setup`` and ``auth`` need not create it): the run
tries to take it first and creates it only when Prefect answers that it does not exist, so a run
whose athlete ran before spends one request on its slot, and the holder's name (for a waiting
run's message) is written in the background. A
second run of the same athlete waits for the slot, at most :func:`wait_seconds`, then ends with
:class:`AthleteBusy` naming the run that holds it; either way before it opens the warehouse or
sends a request.

The key is known before any request: the credentials block's ``athlete_id`` when it is set (the
blocks ``strava-elt auth`` and the roster make), else ``block-<block name>`` (a single-athlete block
made from a bare refresh token, whose athlete Strava names only at ``/athlete``). Every starter
keys the same block the same way, so the CLI, the deployments, the round and the reaction meet
at one slot. A run nested in one that holds the slot (the reaction's incremental subflow, the
main flow's extract subflow) holds it already and does not wait for itself.
"""

from __future__ import annotations

import contextvars
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "WAIT_ENV",
    "AthleteBusy",
    "HeldSlot",
    "athlete_slot",
    "hold_slot",
    "slot_key",
    "slot_name",
    "wait_seconds",
]

WAIT_ENV = "STRAVA_ELT_SLOT_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 900.0
LEASE_SECONDS = 60.0  # a crashed holder's slot frees itself this long after its process died (Prefect's least)
RENEW_SECONDS = LEASE_SECONDS / 3  # a held slot's lease is renewed this often while the run lasts
_HELD: ContextVar[frozenset[str]] = ContextVar("strava_elt_held_slots", default=frozenset())
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


class AthleteBusy(RuntimeError):
    """Another run of the athlete holds the slot; this one ended before reading or loading anything."""


def slot_key(credentials: Any = None, block_name: str | None = None, athlete_id: int | None = None) -> str:
    """The athlete's slot key: the block's ``athlete_id`` (or ``athlete_id``), else ``block-<name>``."""
    known = getattr(credentials, "athlete_id", None) if credentials is not None else None
    if known is None:
        known = athlete_id
    if known is not None:
        return str(int(known))
    if not block_name:
        raise ValueError("an athlete's slot needs the athlete id or the credentials block's name")
    return "block-" + _UNSAFE.sub("-", block_name.lower())


def slot_name(key: int | str) -> str:
    """The global concurrency limit of one athlete: ``strava-athlete-<key>``."""
    return f"strava-athlete-{key}"


def wait_seconds(default: float = DEFAULT_WAIT_SECONDS) -> float:
    """How long a run waits for its athlete's slot: ``$STRAVA_ELT_SLOT_WAIT_SECONDS`` or ``default``.

    ``0`` ends a second run at once.
    """
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{WAIT_ENV}={raw!r} is not a number of seconds (0 ends a second run at once)") from None
    if value < 0:
        raise ValueError(f"{WAIT_ENV}={raw!r} is negative; give 0 or more seconds")
    return value


@dataclass
class HeldSlot:
    """A held slot (or a no-op when an enclosing run holds it); :meth:`release` gives it back."""

    name: str
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        self._stack.close()


def hold_slot(
    credentials: Any = None,
    block_name: str | None = None,
    athlete_id: int | None = None,
    timeout_seconds: float | None = None,
) -> HeldSlot:
    """Take the athlete's slot for this run; call :meth:`HeldSlot.release` when the run ends.

    For flows whose body is a ``try``/``finally``: one line at the start, one in the ``finally``.
    ``credentials`` may be the StravaCredentials block itself or None (then it is loaded by
    ``block_name`` to read its ``athlete_id``: a Prefect API read, not a Strava request).

    Raises:
        AthleteBusy: The slot stayed taken for the whole wait; names the run holding it.

    """
    if credentials is None and athlete_id is None and block_name:
        credentials = _credentials(block_name)
    key = slot_key(credentials, block_name, athlete_id)
    held = HeldSlot(slot_name(key))
    held._stack.enter_context(_slot(key, wait_seconds() if timeout_seconds is None else timeout_seconds))
    return held


@contextmanager
def athlete_slot(
    credentials: Any = None,
    block_name: str | None = None,
    athlete_id: int | None = None,
    timeout_seconds: float | None = None,
) -> Iterator[str]:
    """Hold the athlete's slot around a block of code (see :func:`hold_slot`); yields its name."""
    held = hold_slot(credentials, block_name, athlete_id, timeout_seconds)
    try:
        yield held.name
    finally:
        held.release()


def _credentials(block_name: str) -> Any:
    from blocks.loading import load_block
    from blocks.strava import StravaCredentials

    return load_block(StravaCredentials, block_name)


@contextmanager
def _slot(key: str, timeout_seconds: float) -> Iterator[None]:
    name = slot_name(key)
    if name in _HELD.get():  # an enclosing run of this athlete holds it (a subflow of that run)
        yield
        return
    from prefect.client.orchestration import get_client

    holder, who = _this_run()
    with get_client(sync_client=True) as client:  # one client for taking, keeping and giving back
        lease_id = _take(client, key, timeout_seconds, holder)
        try:
            with _kept(lease_id, client):
                note = _note_holder(key, who)  # in the background: a waiting run's message, not this run's
                token = _HELD.set(_HELD.get() | {name})
                try:
                    yield
                finally:
                    _HELD.reset(token)
                    note.join()  # before the release: a late note never names a run that gave the slot back
        finally:
            _give_back(client, lease_id)


def _take(client: Any, key: str, timeout_seconds: float, holder: Any) -> UUID:
    """Take the athlete's slot (one request when its limit exists); the lease's id.

    Prefect answers an acquisition of a missing limit with an empty grant (nothing held): the
    athlete's first run creates the limit then and tries again. A taken slot answers 423 Locked
    with a ``Retry-After``: tried again until ``timeout_seconds`` (0: one try), then
    :class:`AthleteBusy`.
    """
    from prefect.exceptions import PrefectHTTPStatusError

    name = slot_name(key)
    deadline = time.monotonic() + timeout_seconds
    created = False
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS, holder=holder
            )
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 423:  # noqa: PLR2004 - HTTP 423 Locked: another run holds it
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise AthleteBusy(_busy_message(key, timeout_seconds)) from None
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
            time.sleep(min(left, retry_after * random.uniform(0.8, 1.2)))  # noqa: S311 - jitter, not secrecy
            continue
        granted = response.json()
        if granted.get("limits"):
            return UUID(str(granted["lease_id"]))
        if created:  # created, yet still missing: deleted meanwhile; say so rather than loop
            raise RuntimeError(f"The concurrency limit {name!r} vanished as it was created; run again.")
        _create_limit(client, name)
        created = True


@contextmanager
def _kept(lease_id: UUID, client: Any) -> Iterator[None]:
    """Renew the lease while the run lasts (a crashed run's lease ends :data:`LEASE_SECONDS` later).

    The renewer sleeps :data:`RENEW_SECONDS` between renewals, so a run shorter than that sends
    no renewal at all; it uses its own client (opened at its first renewal).
    """
    del client  # the renewer runs in its own thread: it opens its own client when it first renews
    stop = threading.Event()
    context = contextvars.copy_context()  # the caller's Prefect settings (API URL) in the thread too
    thread = threading.Thread(
        target=context.run, args=(_renew, lease_id, stop), name=f"strava-elt-slot-lease-{lease_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _renew(lease_id: UUID, stop: threading.Event) -> None:
    from prefect.client.orchestration import get_client

    if stop.wait(RENEW_SECONDS):
        return
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - say so, and keep trying while the run lasts
                _logger().warning("Could not renew the athlete slot's lease %s: %s", lease_id, exc)
            if stop.wait(RENEW_SECONDS):
                return


def _give_back(client: Any, lease_id: UUID) -> None:
    """Release the lease (on every exit path); if that fails, the lease ends by itself."""
    try:
        client.release_concurrency_slots_with_lease(lease_id=lease_id)
    except Exception as exc:  # noqa: BLE001 - the lease expires LEASE_SECONDS later anyway
        _logger().warning(
            "Could not release the athlete slot's lease %s (%s); it frees itself within %g s.",
            lease_id,
            exc,
            LEASE_SECONDS,
        )


def _logger() -> Any:
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run: the module's logger
        return get_logger("strava_elt.slots")


def _create_limit(client: Any, name: str) -> None:
    """Create the athlete's limit (limit 1); a racing creator wins harmlessly."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    try:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    except ObjectAlreadyExists:
        pass


def _this_run() -> tuple[Any, str]:
    """The lease holder (this flow run, when there is one) and how to name it to a waiting run."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if run_id is None:
        return None, f"process {os.getpid()} since {started}"
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(str(run_id)))
    return holder, f"flow run {flow_run.get_name()!r} ({run_id}) since {started}"


def _holder_variable(key: str) -> str:
    return "strava_athlete_slot_" + re.sub(r"[^a-z0-9_]", "_", key)


def _note_holder(key: str, who: str) -> threading.Thread:
    """Leave the holder's name where a waiting run can read it, in a background thread.

    Best effort (only for a waiting run's message), so the run does not wait for the request;
    the slot's release joins the thread, so a note never lands after its run gave the slot back.
    """
    from tasks.state.variables import write_variable

    def note() -> None:
        try:
            write_variable(_holder_variable(key), who)
        except Exception:  # noqa: BLE001, S110 - a message's detail must never fail a run
            pass

    context = contextvars.copy_context()  # the caller's Prefect settings (API URL) in the thread too
    thread = threading.Thread(target=context.run, args=(note,), name=f"strava-elt-slot-note-{key}", daemon=True)
    thread.start()
    return thread


def _busy_message(key: str, waited: float) -> str:
    from tasks.state.variables import read_variable

    try:
        who = read_variable(_holder_variable(key)) or "another run"
    except Exception:  # noqa: BLE001 - a message's detail must never fail a run
        who = "another run"
    return (
        f"Another run of athlete {key} holds its slot {slot_name(key)!r}: {who}. This run waited "
        f"{waited:g} s and ended before opening the warehouse or sending a Strava request; nothing "
        f"was read or loaded. Let that run finish (or raise {WAIT_ENV}), then run again."
    )
