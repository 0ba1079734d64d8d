"""Load blocks by name with errors that say how to create what is missing."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)

# Block types the pipeline accepts as a lake, tried in order when a bare name is given.
LAKE_TYPES = ("local-file-system", "s3-bucket")


class MissingBlockError(LookupError):
    """A block the flow needs does not exist on the Prefect server it talks to."""


def _hint(kind: str) -> str:
    return (
        f"Create it with `strava-elt setup local` (embedded default) or `strava-elt setup postgres|aws`, "
        f"or in the Prefect UI under Blocks > + > {kind} (after `prefect block register -m blocks`); "
        "`prefect block ls` lists what exists."
    )


def load_block(block_type: type[B], name: str) -> B:
    """Load a block of ``block_type`` named ``name`` or raise :class:`MissingBlockError`."""
    try:
        return cast(B, block_type.load(name))
    except ValueError as exc:
        if "Unable to find block document" not in str(exc) and "not found" not in str(exc).lower():
            raise
        kind = block_type.get_block_type_name()
        raise MissingBlockError(f"No {kind} block named {name!r}. {_hint(kind)}") from None


def load_lake(name: str) -> Any:
    """Load the lake block: ``type-slug/name``, or a bare name tried as each lake type."""
    if "/" in name:
        try:
            return Block.load(name)
        except ValueError:
            raise MissingBlockError(f"No lake block {name!r}. {_hint('Local File System or S3 Bucket')}") from None
    for slug in LAKE_TYPES:
        try:
            return Block.load(f"{slug}/{name}")
        except (ValueError, KeyError):
            continue
    raise MissingBlockError(
        f"No lake block named {name!r} (looked for types {', '.join(LAKE_TYPES)}). "
        f"{_hint('Local File System or S3 Bucket')}"
    )
