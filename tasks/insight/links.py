"""Links a person can open from the Prefect UI: an http(s) URL to a lake page, or where the file is.

A browser opens neither ``file://`` nor ``s3://`` from a web page, so an artifact links a page
only through http(s), chosen in this order:

1. the lake's **base URL**, when one is set: the Prefect Variable
   ``strava_lake_base_url_<lake block>`` (:func:`base_url_variable`) holds the http(s) URL at
   which the lake's root is served: a CDN or static site in front of the bucket, set by you
   (``prefect variable set strava_lake_base_url_strava-lake https://...``), or
   ``http://127.0.0.1:<port>`` while ``strava-elt dashboard --serve`` serves a local lake;
2. on an S3 lake, a **presigned URL** (:data:`PRESIGN_SECONDS`, the artifact states until when);
3. otherwise no link: the artifact names the file as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from prefect.filesystems import LocalFileSystem

from blocks.prefect_compat import block_document_name
from tasks.lake import Lake, local_path
from tasks.state.variables import read_variable

__all__ = ["PRESIGN_SECONDS", "PageLink", "base_url_variable", "configured_base_url", "lake_block_name", "page_link"]

PRESIGN_SECONDS = 7 * 24 * 3600
"""How long a presigned link to an S3 lake page works: 7 days, the most SigV4 signs for."""


@dataclass(frozen=True)
class PageLink:
    """Where a lake page is, and the http(s) URL that opens it (None: there is none).

    Attributes:
        location: The file as a person finds it: a local path, or ``s3://bucket/key``.
        url: An http(s) URL a browser opens, or None.
        how: What the URL is (``presigned, valid until ...``), or why there is none.

    """

    location: str
    url: str | None
    how: str

    def markdown(self, text: str) -> str:
        """A markdown link to the URL, or, without one, the location as code text (never a dead link)."""
        if self.url:
            return f"[{text}]({self.url})"
        return f"`{self.location}` ({self.how})"


def lake_block_name(lake: Lake) -> str | None:
    """The name the lake block was saved under (None: an unsaved block)."""
    return block_document_name(lake.block)


def base_url_variable(lake_block: str) -> str:
    """The Variable holding a lake's base URL: ``strava_lake_base_url_<lake block>``."""
    return f"strava_lake_base_url_{lake_block}"


def configured_base_url(lake: Lake) -> str | None:
    """The lake's base URL from its Variable; None when unset, the block is unsaved, or it is not http(s)."""
    name = lake_block_name(lake)
    if name is None:
        return None
    value = read_variable(base_url_variable(name))
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def page_link(
    lake: Lake, path: str, *, now: datetime | None = None, presign_seconds: int = PRESIGN_SECONDS
) -> PageLink:
    """The link to the lake page ``path``: base URL, else presigned on S3, else none (the location as text)."""
    if isinstance(lake.block, LocalFileSystem) and "://" not in str(lake.block.basepath or ""):
        location = str(local_path(lake.block, path))
    else:
        location = lake.url(path)
    base = configured_base_url(lake)
    if base:
        return PageLink(location, lake.http_url(path, base), f"served at {base}")
    if lake.is_s3:
        until = (now or datetime.now(UTC)) + timedelta(seconds=presign_seconds)
        try:
            url = lake.presigned_url(path, presign_seconds)
        except Exception as exc:  # noqa: BLE001 - a link is a convenience: it never fails the run
            return PageLink(location, None, f"no presigned link: {type(exc).__name__}")
        return PageLink(
            location,
            url,
            f"presigned link, valid until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({presign_seconds // 3600} h)",
        )
    name = lake_block_name(lake) or "LAKE-BLOCK"
    return PageLink(
        location,
        None,
        "on the machine that ran the flow; for a link, run `strava-elt dashboard --serve` there, "
        f"or set the Variable {base_url_variable(name)} to an http(s) URL serving the lake",
    )
