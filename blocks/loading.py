"""Load blocks by name with errors that say how to create what is missing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TypeVar, cast

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from pydantic import ValidationError

from blocks.prefect_compat import call_sync

if TYPE_CHECKING:
    from prefect.filesystems import WritableFileSystem

B = TypeVar("B", bound=Block)

# Block types the pipeline accepts as a lake, tried in order when a bare name is given.
LAKE_TYPES = ("local-file-system", "s3-bucket")


class MissingBlockError(LookupError):
    """A block the flow needs does not exist on the Prefect server it talks to."""


class InvalidBlockError(ValueError):
    """A block document exists but its fields do not pass the block's validation."""


class AmbiguousBlockError(LookupError):
    """A bare block name is held by blocks of more than one accepted type."""


class AmbiguousLakeError(AmbiguousBlockError):
    """A bare lake name is held by blocks of more than one lake type."""


# The command that creates each kind of block, where it is not one of `setup local|postgres|aws`.
_CREATED_BY = {
    "Strava Application": "`strava-elt setup application --name NAME --client-id ID` (then "
    "`strava-elt auth --application NAME` for each athlete)",
    "Strava Credentials": "`strava-elt auth --client-id ID` (or `strava-elt setup local` with "
    "--client-id/--client-secret/--refresh-token)",
}


def _hint(kind: str) -> str:
    command = _CREATED_BY.get(kind, "`strava-elt setup local` (embedded default) or `strava-elt setup postgres|aws`")
    return (
        f"Create it with {command}, "
        f"or in the Prefect UI under Blocks > + > {kind} (after `prefect block register -m blocks`); "
        "`prefect block ls` lists what exists."
    )


def load_block(block_type: type[B], name: str) -> B:
    """Load a block of ``block_type`` named ``name`` or raise :class:`MissingBlockError`."""
    try:
        # _sync: this function is synchronous, also when an async flow or handler calls it.
        return cast(B, call_sync(block_type.load, name))
    except RuntimeError as exc:
        if not isinstance(exc.__cause__, ValidationError):
            raise
        # Saved without validation (the UI does): say which field is wrong and why.
        kind = block_type.get_block_type_name()
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.__cause__.errors())
        raise InvalidBlockError(
            f"The {kind} block {name!r} is not valid: {reasons}. Edit it in the Prefect UI (Blocks) or "
            "save it again (`strava-elt setup ...`)."
        ) from None
    except ValueError as exc:
        if "Unable to find block document" not in str(exc) and "not found" not in str(exc).lower():
            raise
        kind = block_type.get_block_type_name()
        raise MissingBlockError(f"No {kind} block named {name!r}. {_hint(kind)}") from None


# The class of each lake type, imported only when a block of that type is loaded: resolving a
# block through Prefect's registry imports every installed collection (prefect-aws and boto3:
# about half a second) even for a local lake.
_LAKE_CLASSES = {
    "local-file-system": ("prefect.filesystems", "LocalFileSystem"),
    "s3-bucket": ("prefect_aws", "S3Bucket"),
}


def _lake_class(slug: str) -> type[Block]:
    module, attribute = _LAKE_CLASSES[slug]
    return cast(type[Block], getattr(importlib.import_module(module), attribute))


def load_lake_block(name: str) -> WritableFileSystem:
    """Load the lake's block: ``type-slug/name``, or a bare name that only one lake type has.

    Callers hold the lake as a typed ``tasks.lake.Lake``: ``tasks.lake.load_lake(name)`` wraps this.

    A bare name held by blocks of two lake types is refused with both listed: choosing one
    silently once kept runs writing a local folder after the user had moved the lake to S3.
    """
    if "/" in name:
        slug, _, bare = name.partition("/")
        try:
            block = load_block(_lake_class(slug), bare) if slug in _LAKE_CLASSES else Block.load(name)
        except (MissingBlockError, ValueError):
            raise MissingBlockError(f"No lake block {name!r}. {_hint('Local File System or S3 Bucket')}") from None
        if not callable(getattr(block, "write_path", None)):
            raise InvalidBlockError(
                f"The block {name!r} cannot hold files (a lake is a Local File System or S3 Bucket block)."
            )
        return cast("WritableFileSystem", block)
    found = [slug for slug, _ in _documents_named(name) if slug in LAKE_TYPES]
    if len(found) > 1:
        both = " and ".join(f"'{slug}/{name}'" for slug in sorted(found, key=LAKE_TYPES.index))
        raise AmbiguousLakeError(
            f"The lake name {name!r} matches {len(found)} blocks, {both}: name the one to use with its "
            f"type (lake_block {both.replace(' and ', ' or ')}), or delete the other with `prefect block "
            "delete TYPE/NAME` (`strava-elt setup aws` and `setup local` replace the other lake type themselves)."
        )
    if found:
        return cast("WritableFileSystem", load_block(_lake_class(found[0]), name))
    raise MissingBlockError(
        f"No lake block named {name!r} (looked for types {', '.join(LAKE_TYPES)}). "
        f"{_hint('Local File System or S3 Bucket')}"
    )


def delete_other_lakes(name: str, keep: str) -> list[str]:
    """Delete the lake blocks named ``name`` of every lake type but ``keep``; return what was deleted."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deleted = []
    with get_client(sync_client=True) as client:
        for slug in LAKE_TYPES:
            if slug == keep:
                continue
            try:
                document = client.read_block_document_by_name(name, block_type_slug=slug)
            except ObjectNotFound:
                continue
            client.delete_block_document(document.id)
            deleted.append(f"{slug}/{name}")
    return deleted


NOTIFICATION_TYPES = (
    "Slack Webhook, Slack Incoming Webhook (prefect-slack), Microsoft Teams Webhook or other notification block"
)
_NOTIFICATION_HINT = (
    "Create one with `strava-elt setup slack --url WEBHOOK_URL` (a Slack Incoming Webhook block named "
    "strava-slack), or in the Prefect UI under Blocks > + > Slack Webhook; `prefect block ls` lists what exists."
)


def _documents_named(name: str) -> list[tuple[str, str]]:
    """(type slug, type name) of every saved block document called ``name``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import BlockDocument

    body = {"block_documents": {"name": {"any_": [name]}}, "include_secrets": False}
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/block_documents/filter", json=body)
    documents = BlockDocument.model_validate_list(response.json())
    return [(d.block_type.slug, d.block_type.name) for d in documents if d.block_type is not None]


def load_notification_block(name: str) -> NotificationBlock:
    """Load the notification block ``name`` (or ``type-slug/name``) of any NotificationBlock type.

    Raises:
        MissingBlockError: No block of that name can send notifications; the message names
            what the name holds, the expected types and how to create one.
        AmbiguousBlockError: A bare name held by two notification block types.

    """
    if "/" in name:
        slug, name = name.split("/", 1)
        candidates = [(slug, slug)]
    else:
        candidates = _documents_named(name)
    found: dict[str, NotificationBlock] = {}
    wrong: list[str] = []
    for slug, type_name in candidates:
        try:
            block = Block.load(f"{slug}/{name}")
        except (ValueError, KeyError):
            continue
        if isinstance(block, NotificationBlock):
            found[slug] = block
        else:
            wrong.append(type_name)
    if len(found) > 1:
        listed = " and ".join(f"'{slug}/{name}'" for slug in found)
        raise AmbiguousBlockError(f"The notification block name {name!r} matches {listed}: pass one with its type.")
    if found:
        return next(iter(found.values()))
    held = f" ({name!r} is a {' and a '.join(wrong)} block, which cannot send messages)" if wrong else ""
    raise MissingBlockError(
        f"No notification block named {name!r}{held}: expected a {NOTIFICATION_TYPES}. {_NOTIFICATION_HINT}"
    )
