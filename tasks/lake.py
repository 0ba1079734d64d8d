"""The lake: raw API pages and the run's typed staging file, on any writable filesystem block."""

from __future__ import annotations

import gzip
import inspect
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

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
    """Write ``data`` at ``path`` (relative to the block's base path or bucket folder)."""
    return str(_call_sync(lake.write_path, path, data))


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

    rows: int = 0
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
            self.rows += len(rows)

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
