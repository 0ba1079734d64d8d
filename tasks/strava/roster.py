"""The roster: the athletes of a Strava application, one StravaCredentials block each.

An athlete belongs to an application when its credentials block references that application's
saved block document (a nested block), whatever the athlete block is called; ``strava-elt auth
--application A`` names it ``A-athlete-<id>``. Listing reads the block documents without
secrets: no refresh token or client secret leaves the Prefect server for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import BlockDocument
from prefect.exceptions import ObjectNotFound

from blocks.loading import MissingBlockError, load_block
from blocks.strava import StravaApplication, StravaCredentials

__all__ = [
    "RosterEntry",
    "alist_roster",
    "find_athlete",
    "list_roster",
    "mark_revoked",
    "reactivate",
]

_PAGE = 200  # the Prefect API's default page size: list in pages of it
_APPLICATION = StravaApplication.get_block_type_slug()
_CREDENTIALS = StravaCredentials.get_block_type_slug()


@dataclass(frozen=True)
class RosterEntry:
    """One athlete of an application, as its credentials block says.

    Attributes:
        block_name: The athlete's StravaCredentials block.
        athlete_id: Strava's id of the athlete (None if the block was made without it).
        status: ``active`` or ``revoked``.
        revoked_at: When it was marked revoked (ISO 8601), else None.
        revoked_reason: Why (Strava's answer), else None.

    """

    block_name: str
    athlete_id: int | None
    status: str
    revoked_at: str | None
    revoked_reason: str | None

    @property
    def active(self) -> bool:
        """Whether runs should load this athlete."""
        return self.status == "active"


def _missing(application_block: str) -> MissingBlockError:
    return MissingBlockError(
        f"No Strava Application block named {application_block!r}. Create it with `strava-elt setup application "
        "--name NAME --client-id ID --client-secret SECRET` (or in the Prefect UI under Blocks > + > Strava "
        "Application); `prefect block ls` lists what exists."
    )


def _entry(document: BlockDocument) -> RosterEntry:
    data: dict[str, Any] = document.data
    athlete_id = data.get("athlete_id")
    return RosterEntry(
        block_name=str(document.name),
        athlete_id=int(athlete_id) if athlete_id is not None else None,
        status=str(data.get("status") or "active"),
        revoked_at=data.get("revoked_at"),
        revoked_reason=data.get("revoked_reason"),
    )


def _references(document: BlockDocument, application_id: UUID) -> bool:
    reference = document.block_document_references.get("application") or {}
    referenced = (reference.get("block_document") or {}).get("id")
    return referenced is not None and str(referenced) == str(application_id)


def _roster(application_id: UUID, documents: Iterable[BlockDocument]) -> list[RosterEntry]:
    entries = [_entry(d) for d in documents if d.name and _references(d, application_id)]
    return sorted(entries, key=lambda e: (e.athlete_id is None, e.athlete_id or 0, e.block_name))


def list_roster(application_block: str) -> list[RosterEntry]:
    """The athletes of the application block ``application_block``, sorted by athlete id.

    Raises:
        MissingBlockError: No Strava Application block of that name.

    """
    with get_client(sync_client=True) as client:
        try:
            application = client.read_block_document_by_name(
                application_block, block_type_slug=_APPLICATION, include_secrets=False
            )
        except ObjectNotFound:
            raise _missing(application_block) from None
        documents: list[BlockDocument] = []
        while True:
            page = client.read_block_documents_by_type(
                _CREDENTIALS, offset=len(documents), limit=_PAGE, include_secrets=False
            )
            documents += page
            if len(page) < _PAGE:
                break
    return _roster(application.id, documents)


async def alist_roster(application_block: str) -> list[RosterEntry]:
    """:func:`list_roster` for async callers."""
    async with get_client() as client:
        try:
            application = await client.read_block_document_by_name(
                application_block, block_type_slug=_APPLICATION, include_secrets=False
            )
        except ObjectNotFound:
            raise _missing(application_block) from None
        documents: list[BlockDocument] = []
        while True:
            page = await client.read_block_documents_by_type(
                _CREDENTIALS, offset=len(documents), limit=_PAGE, include_secrets=False
            )
            documents += page
            if len(page) < _PAGE:
                break
    return _roster(application.id, documents)


def find_athlete(application_block: str, athlete_id: int) -> RosterEntry | None:
    """The roster entry of ``athlete_id`` in the application, or None when it has not authorised it."""
    return next((e for e in list_roster(application_block) if e.athlete_id == int(athlete_id)), None)


def mark_revoked(block_name: str, reason: str, at: datetime) -> None:
    """Mark the athlete of ``block_name`` revoked at ``at`` for ``reason`` and save its block (only that one)."""
    load_block(StravaCredentials, block_name).mark_revoked(reason, at)


def reactivate(block_name: str, refresh_token: str) -> None:
    """Give the athlete of ``block_name`` a new refresh token and mark it active again."""
    load_block(StravaCredentials, block_name).reactivate(refresh_token)
