"""The lake: raw API pages and the run's typed staging file, on any writable filesystem block."""

from __future__ import annotations

import gzip
import inspect
import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem

from tasks import schema


def _call_sync(method: Any, *args: Any) -> Any:
    """Call a filesystem block method synchronously, wherever it is called from.

    Prefect's filesystem blocks (LocalFileSystem, prefect-aws S3Bucket) dispatch to their async
    twin when they think they are in an async context (a running event loop, an async task)
    and then return a coroutine; ``_sync=True`` pins the blocking implementation.
    """
    result = method(*args, _sync=True) if hasattr(method, "aio") else method(*args)
    if inspect.isawaitable(result):
        raise TypeError(f"{method!r} returned an awaitable; the lake block must offer a sync read/write")
    return result


def write_bytes(lake: Any, path: str, data: bytes) -> str:
    """Write ``data`` at ``path`` (relative to the block's base path or bucket folder), atomically.

    A reader sees the previous object or the new one, never part of one. On a local lake
    (``LocalFileSystem``) the bytes go to a temporary file in the target's folder, are fsynced,
    then renamed over the target (``os.replace``); a failed write (a full disk, say) leaves
    the previous file as it was. On S3 the block's ``write_path`` is one PUT (or a multipart
    upload, above boto3's 8 MiB threshold), which S3 makes visible only once complete.
    """
    if isinstance(lake, LocalFileSystem):
        target = local_path(lake, path)
        _replace_atomically(target, data)
        return str(target)
    return str(_call_sync(lake.write_path, path, data))


def local_path(lake: LocalFileSystem, path: str) -> Path:
    """Where ``path`` lives under a LocalFileSystem's ``basepath`` (the block's own rules).

    Raises:
        ValueError: The path leads outside the base path.

    """
    base = Path(lake.basepath).expanduser().resolve() if lake.basepath else Path(".").resolve()
    target = (base / Path(path).expanduser()).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"Lake path {path!r} is outside the lake's base path {base}")
    return target


def _replace_atomically(target: Path, data: bytes) -> None:
    """Write a temporary sibling of ``target``, fsync it, rename it over ``target``, fsync the folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # hidden; same filesystem
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


def read_bytes(lake: Any, path: str) -> bytes:
    """Read the object at ``path`` (relative to the block's base path or bucket folder)."""
    return bytes(_call_sync(lake.read_path, path))


def raw_page_path(athlete_id: int, run_key: str, page: int) -> str:
    """Key of one raw page: run-scoped, Hive-style partitions."""
    return f"raw/athlete_id={athlete_id}/run={run_key}/page-{page:05d}.json.gz"


def staging_file_path(athlete_id: int, run_key: str) -> str:
    """Key of the run's typed Parquet file."""
    return f"staging/athlete_id={athlete_id}/run={run_key}/activities.parquet"


@task(cache_policy=NO_CACHE, task_run_name="land-page-{page}")
def land_raw_page(lake: Any, athlete_id: int, run_key: str, page: int, activities: list[dict[str, Any]]) -> str:
    """Write one page exactly as the API returned it (all fields, unknown ones too), gzipped."""
    path = raw_page_path(athlete_id, run_key, page)
    try:
        body = json.dumps(activities, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") has no UTF-8: keep it as the escape Strava sent
        body = json.dumps(activities, separators=(",", ":")).encode("ascii")
    write_bytes(lake, path, gzip.compress(body, mtime=0))
    return path


@dataclass
class StagingFileWriter:
    """Streams typed rows to a local Parquet file page by page, then uploads it once.

    Memory holds one page at a time, whatever the number of activities. Rows come from
    :func:`tasks.schema.flatten_activity`, so every value already fits its column.
    """

    _tmp: Path = field(init=False)
    _writer: pq.ParquetWriter = field(init=False)

    def __post_init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="strava-elt-", suffix=".parquet")
        os.close(fd)
        self._tmp = Path(name)
        self._writer = pq.ParquetWriter(self._tmp, schema.ARROW_SCHEMA, compression="zstd")

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        """Append one page's typed rows."""
        if rows:
            self._writer.write_table(schema.to_arrow(rows))

    def upload(self, lake: Any, path: str) -> str:
        """Close the file and write it to the lake; the local copy is removed."""
        try:
            self._writer.close()
            write_bytes(lake, path, self._tmp.read_bytes())
        finally:
            self.discard()
        return path

    def discard(self) -> None:
        """Remove the local file (idempotent)."""
        self._tmp.unlink(missing_ok=True)


@task(cache_policy=NO_CACHE)
def upload_staging_file(writer: StagingFileWriter, lake: Any, path: str) -> str:
    """Upload the run's typed Parquet file to the lake."""
    return writer.upload(lake, path)
