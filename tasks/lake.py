"""The lake (:class:`Lake`): raw API pages, the run's typed staging file, dashboards and models."""

from __future__ import annotations

import builtins
import gzip
import inspect
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from prefect.filesystems import LocalFileSystem, WritableFileSystem

from blocks.loading import load_lake_block
from blocks.prefect_compat import call_sync
from tasks.warehouse import schema


def _call_sync(method: Any, *args: Any) -> Any:
    """Call a filesystem block method synchronously, wherever it is called from.

    Prefect's filesystem blocks (LocalFileSystem, prefect-aws S3Bucket) dispatch to their async
    twin when they think they are in an async context (a running event loop, an async task)
    and then return a coroutine; ``_sync=True`` pins the blocking implementation.
    """
    result = call_sync(method, *args)
    if inspect.isawaitable(result):
        raise TypeError(f"{method!r} returned an awaitable; the lake block must offer a sync read/write")
    return result


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


COPY_CHUNK = 1 << 20
"""Bytes per read when a file is copied into the lake: a file never sits in memory whole."""


def _replace_atomically(target: Path, data: bytes | Path) -> None:
    """Write a temporary sibling of ``target``, fsync it, rename it over ``target``, fsync the folder.

    ``data`` is the bytes, or a local file copied in chunks of :data:`COPY_CHUNK`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # hidden; same filesystem
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, Path):
                with data.open("rb") as source:
                    shutil.copyfileobj(source, handle, COPY_CHUNK)
            else:
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


def _missing(exc: BaseException) -> bool:
    """Whether a read failed only because the object is not there (local, fsspec or S3)."""
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)  # botocore's ClientError
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) in _S3_MISSING_CODES


_S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

LIST_LIMIT = 100_000
"""The most keys :meth:`Lake.list` returns: an athlete's raw pages or staging files of many years fit."""


def _too_many(where: str, limit: int) -> str:
    return f"More than {limit:,} keys under {where}: list a narrower prefix (one athlete, one run)."


class Lake:
    """The lake over a Prefect writable filesystem block: LocalFileSystem or prefect-aws S3Bucket.

    Keys are relative to the block's base path or bucket folder. Writes are atomic; a read of
    a missing key raises :class:`FileNotFoundError` (on S3 as well), so :meth:`read_if_present`
    tells "not there" from "there but unreadable". Load one by block name with :func:`load_lake`,
    or wrap a block: ``Lake(LocalFileSystem(basepath=...))``.
    """

    def __init__(self, block: WritableFileSystem) -> None:
        if isinstance(block, Lake):
            raise TypeError("Lake(...) takes a filesystem block, not a Lake: pass the Lake itself")
        self.block: Any = block  # LocalFileSystem, S3Bucket (its bucket fields are not on the base type)

    def __repr__(self) -> str:
        return f"Lake({type(self.block).__name__})"

    @property
    def is_s3(self) -> bool:
        """Whether the block is an S3 bucket (it has a ``bucket_name``)."""
        return bool(getattr(self.block, "bucket_name", None))

    @property
    def region(self) -> str | None:
        """The AWS region of an S3 lake's credentials, when they name one."""
        return getattr(getattr(self.block, "credentials", None), "region_name", None)

    def write(self, path: str, data: bytes) -> str:
        """Write ``data`` at ``path``, atomically; return where it went (a local path or the block's key).

        A reader sees the previous object or the new one, never part of one. On a local lake
        (``LocalFileSystem``) the bytes go to a temporary file in the target's folder, are
        fsynced, then renamed over the target (``os.replace``); a failed write (a full disk,
        say) leaves the previous file as it was. On S3 the block's ``write_path`` is one PUT
        (or a multipart upload, above boto3's 8 MiB threshold), which S3 makes visible only
        once complete.
        """
        if isinstance(self.block, LocalFileSystem):
            target = local_path(self.block, path)
            _replace_atomically(target, data)
            return str(target)
        return str(_call_sync(self.block.write_path, path, data))

    def write_file(self, path: str, source: Path) -> str:
        """Write the local file ``source`` at ``path`` as :meth:`write` does, without reading it into memory.

        A local lake copies it in chunks to a temporary sibling and renames that; S3 uploads it
        with the block's ``upload_from_path`` (boto3's managed, multipart transfer). Another
        filesystem block, which can only write bytes, gets the bytes.
        """
        if isinstance(self.block, LocalFileSystem):
            target = local_path(self.block, path)
            _replace_atomically(target, source)
            return str(target)
        if self.is_s3:
            return str(_call_sync(self.block.upload_from_path, str(source), self._in_folder(path)))
        return self.write(path, source.read_bytes())

    @contextmanager
    def local_file(self, path: str) -> Iterator[Path]:
        """A local file with the object at ``path``, for readers that stream it (Parquet, say).

        On a local lake it is the lake's own file; otherwise a temporary download (S3: boto3's
        managed transfer, in chunks), removed on exit.

        Raises:
            FileNotFoundError: Nothing is stored at ``path``.

        """
        if isinstance(self.block, LocalFileSystem):
            target = local_path(self.block, path)
            if not target.is_file():
                raise FileNotFoundError(f"Nothing at {self.url(path)} in the lake")
            yield target
            return
        fd, name = tempfile.mkstemp(prefix="strava-elt-lake-", suffix=PurePosixPath(path).suffix)
        os.close(fd)
        tmp = Path(name)
        try:
            if self.is_s3:
                try:
                    _call_sync(self.block.download_object_to_path, self._in_folder(path), str(tmp))
                except Exception as exc:
                    if _missing(exc):
                        raise FileNotFoundError(f"Nothing at {self.url(path)} in the lake") from exc
                    raise
            else:
                tmp.write_bytes(self.read(path))
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def _in_folder(self, path: str) -> str:
        """``path`` relative to an S3 bucket folder, for the block methods that always prefix the folder.

        (``upload_from_path`` and ``download_object_to_path`` join the folder even when ``path``
        already starts with it, ``read_path``/``write_path`` do not: this gives all the same key,
        the one :meth:`s3_uri` names.)
        """
        folder = str(getattr(self.block, "bucket_folder", "") or "").strip("/")
        if folder and path.startswith(folder + "/"):
            return path[len(folder) + 1 :]
        return path

    def read(self, path: str) -> bytes:
        """The bytes at ``path``.

        Raises:
            FileNotFoundError: Nothing is stored at ``path`` (S3's 404 / NoSuchKey included).

        """
        if isinstance(self.block, LocalFileSystem):
            return local_path(self.block, path).read_bytes()
        try:
            return bytes(_call_sync(self.block.read_path, path))
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(f"Nothing at {self.url(path)} in the lake") from exc
            raise

    def read_if_present(self, path: str) -> bytes | None:
        """The bytes at ``path``, or None when nothing is stored there; any other failure is raised."""
        try:
            return self.read(path)
        except FileNotFoundError:
            return None

    def list(self, prefix: str, limit: int = LIST_LIMIT) -> list[str]:
        """The keys under ``prefix`` (a text prefix: end it with ``/`` for a folder), sorted.

        Keys are as :meth:`read` takes them (relative to the base path or bucket folder). A local
        lake walks the folder (temporary files of a write in progress are left out); S3 lists with
        the block's client, a page of 1,000 keys a request.

        Raises:
            ValueError: More than ``limit`` keys are under ``prefix`` (listing is bounded).
            TypeError: The block is neither a local folder nor an S3 bucket.

        """
        if isinstance(self.block, LocalFileSystem):
            keys = self._list_local(prefix, limit)
        elif self.is_s3:
            keys = self._list_s3(prefix, limit)
        else:
            raise TypeError(
                f"Listing the lake needs a LocalFileSystem or an S3Bucket block, not {type(self.block).__name__}"
            )
        return sorted(keys)

    def _list_local(self, prefix: str, limit: int) -> builtins.list[str]:
        base = local_path(self.block, ".")
        folder, _, _ = prefix.rpartition("/")
        top = local_path(self.block, folder) if folder else base
        if not top.is_dir():
            return []
        keys: list[str] = []
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # a write in progress (_replace_atomically)
                key = (Path(root) / name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
                    if len(keys) > limit:
                        raise ValueError(_too_many(self.url(prefix), limit))
        return keys

    def _list_s3(self, prefix: str, limit: int) -> builtins.list[str]:
        folder = str(getattr(self.block, "bucket_folder", "") or "").strip("/")
        full = self.s3_uri(prefix).removeprefix(f"s3://{self.block.bucket_name}/")
        if prefix.endswith("/") and not full.endswith("/"):
            full += "/"
        client = self.block.credentials.get_s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.block.bucket_name,
            Prefix=full,
            PaginationConfig={"MaxItems": limit + 1, "PageSize": 1000},
        )
        keys: list[str] = []
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                keys.append(key[len(folder) + 1 :] if folder and key.startswith(folder + "/") else key)
        if len(keys) > limit:
            raise ValueError(_too_many(self.url(prefix), limit))
        return keys

    def url(self, path: str) -> str:
        """Where a person opens ``path``: ``file://`` on a local lake, ``s3://bucket/key`` on S3."""
        basepath = getattr(self.block, "basepath", None)
        if isinstance(self.block, LocalFileSystem) and "://" not in str(basepath or ""):
            return local_path(self.block, path).as_uri()
        if self.is_s3:  # before basepath: an S3Bucket's basepath is its bucket folder
            return self.s3_uri(path)
        if basepath:
            return f"{str(basepath).rstrip('/')}/{path}"
        return path

    def http_url(self, path: str, base_url: str) -> str:
        """``path`` under ``base_url``, the lake's root served over http(s) (a CDN, a static site, ``--serve``).

        ``base_url`` maps to the lake's root (an S3 bucket folder, a local basepath); each
        segment of ``path`` is percent-encoded (``athlete_id=1`` keeps its ``=``).

        Raises:
            ValueError: ``base_url`` is not an http(s) URL.

        """
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ValueError(f"The lake's base URL must be an http(s) URL, not {base_url!r}")
        return f"{base_url.rstrip('/')}/{quote(path.lstrip('/'), safe='/=')}"

    def presigned_url(self, path: str, expires_in: int) -> str:
        """An https URL that reads ``path`` from an S3 lake for ``expires_in`` seconds, no credentials needed.

        Signed with the block's own credentials (SigV4, so at most 7 days, and no longer than
        temporary credentials themselves last); the object is served as ``text/html`` when its
        key ends in ``.html``.

        Raises:
            TypeError: The lake is not an S3 bucket.

        """
        bucket, _, key = self.s3_uri(path).removeprefix("s3://").partition("/")
        params: dict[str, str] = {"Bucket": bucket, "Key": key}
        if key.endswith(".html"):
            params["ResponseContentType"] = "text/html; charset=utf-8"
        return str(
            self._signing_client().generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires_in))
        )

    def _signing_client(self) -> Any:
        """An S3 client of the block's credentials and client parameters that signs with SigV4.

        (boto3 may presign with SigV2, which newer regions refuse; the block's own ``config``,
        an endpoint URL included, is kept.)
        """
        from botocore.config import Config

        credentials = self.block.credentials
        params = dict(credentials.aws_client_parameters.get_params_override())
        config = params.pop("config", None)
        sigv4 = Config(signature_version="s3v4")
        config = config.merge(sigv4) if config is not None else sigv4
        return credentials.get_boto3_session().client("s3", config=config, **params)

    def s3_uri(self, path: str) -> str:
        """``s3://bucket/<bucket_folder>/<path>``: the object Redshift's COPY reads.

        The key follows the S3Bucket block's rule: ``path`` under ``bucket_folder``, unless
        ``path`` already starts with that folder.

        Raises:
            TypeError: The lake is not an S3 bucket.

        """
        if not self.is_s3:
            raise TypeError(
                f"Redshift loads with COPY from S3: the lake must be a prefect-aws S3Bucket block, "
                f"not {type(self.block).__name__}"
            )
        folder = str(getattr(self.block, "bucket_folder", "") or "").strip("/")
        inside = not folder or path == folder or path.startswith(folder + "/")
        key = path if inside else (PurePosixPath(folder) / path).as_posix()
        return f"s3://{self.block.bucket_name}/{key}"


def load_lake(name: str) -> Lake:
    """The lake of the block ``name`` (``type-slug/name``, or a bare name only one lake type has).

    :func:`blocks.loading.load_lake_block` finds and loads the block (blocks import nothing
    from ``tasks/``); this wraps it, so every caller holds a :class:`Lake`.
    """
    return Lake(load_lake_block(name))


SUMMARY_ENTITY = "activities"
"""The activity summary's entity: its lake prefix (``raw/activities/...``, ``staging/activities/...``)."""


def raw_page_path(athlete_id: int, run_key: str, page: int, entity: str = SUMMARY_ENTITY) -> str:
    """Key of one raw page: the entity, then run-scoped, Hive-style partitions.

    ``raw/activities/athlete_id=<id>/run=<run key>/page-00001.json.gz``. A lake written before the
    entity segment holds ``raw/athlete_id=<id>/...``: :func:`raw_page_keys` reads both layouts.
    """
    return f"raw/{entity}/athlete_id={athlete_id}/run={run_key}/page-{page:05d}.json.gz"


def raw_resource_path(lake_prefix: str, athlete_id: int, run_key: str, entity: str, key: object) -> str:
    """Key of one raw response of a resource that does not page (a detail, a stream set, a gear).

    ``raw/<lake prefix>/athlete_id=<id>/run=<run key>/<entity>-<key>.json.gz``.

    Raises:
        ValueError: ``key`` would not stay one path segment.

    """
    text = str(key)
    if not _KEY_SEGMENT.fullmatch(text):
        raise ValueError(f"A lake key segment must be letters, digits, '_' or '-' (at most 64): {text!r}")
    return f"raw/{lake_prefix}/athlete_id={athlete_id}/run={run_key}/{entity}-{text}.json.gz"


_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def staging_file_path(
    athlete_id: int, run_key: str, entity: str = SUMMARY_ENTITY, lake_prefix: str | None = None
) -> str:
    """Key of the run's typed Parquet file of one entity.

    ``staging/<lake prefix>/athlete_id=<id>/run=<run key>/<entity>.parquet`` (the prefix is the
    entity's own unless given: a detail's laps sit under ``activity_detail``).
    """
    return f"staging/{lake_prefix or entity}/athlete_id={athlete_id}/run={run_key}/{entity}.parquet"


def raw_page_keys(lake: Lake, athlete_id: int, entity: str = SUMMARY_ENTITY) -> list[str]:
    """Every raw file of the athlete's ``entity``, sorted: ``raw/<entity>/athlete_id=<id>/...``.

    For the activity summary, also the pages of a lake written before the entity segment
    (``raw/athlete_id=<id>/run=.../page-00001.json.gz``): an existing lake keeps working.
    """
    keys = lake.list(f"raw/{entity}/athlete_id={athlete_id}/")
    if entity == SUMMARY_ENTITY:
        keys += lake.list(f"raw/athlete_id={athlete_id}/")
    return sorted(k for k in keys if k.endswith(".json.gz"))


def land_raw_page(
    lake: Lake,
    athlete_id: int,
    run_key: str,
    page: int,
    activities: list[dict[str, Any]],
    body: bytes | None = None,
) -> str:
    r"""Write one page as the API returned it (all fields, unknown ones too), as strict JSON, gzipped.

    ``body`` is the response body as received: kept byte for byte when it is JSON in UTF-8, as
    Strava sends it (``1e999`` and a ``"\ud800"`` escape are JSON text and stay as sent).
    Without it (a webhook's single activities) ``activities`` is encoded. Either way what only
    Python's parser accepts is rewritten (:func:`strict_json`), so a strict JSON reader can
    read every page and no page can fail a later run.
    """
    path = raw_page_path(athlete_id, run_key, page)
    if body is None:
        try:
            body = json.dumps(activities, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") has no UTF-8: keep it as the escape Strava sent
            body = json.dumps(activities, separators=(",", ":")).encode("ascii")
    lake.write(path, gzip.compress(strict_json(body), mtime=0))
    return path


def land_raw_response(lake: Lake, path: str, body: bytes) -> str:
    """Write one response body at ``path`` as received (as strict JSON: :func:`strict_json`), gzipped."""
    lake.write(path, gzip.compress(strict_json(body), mtime=0))
    return path


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_strict_json(body: bytes) -> bool:
    """Whether ``body`` is JSON as RFC 8259 has it: UTF-8, no NaN/Infinity, no byte order mark."""
    try:
        json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    return True


_STRING_OR_CONSTANT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|-?Infinity|NaN', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def strict_json(body: bytes) -> bytes:
    r"""``body`` as strict JSON in UTF-8: unchanged when it already is, else minimally rewritten.

    Python's parser (and so ``response.json()``) also takes what JSON does not have; each is
    rewritten to the nearest JSON, everything else left byte for byte:

    - the constants ``NaN``, ``Infinity`` and ``-Infinity`` become the strings ``"NaN"``,
      ``"Infinity"``, ``"-Infinity"`` (the text that was sent; no JSON number holds them);
    - UTF-16 or UTF-32 becomes UTF-8, a byte order mark is dropped;
    - a surrogate encoded in the bytes (invalid UTF-8) becomes its ``\uXXXX`` escape.

    Raises:
        ValueError: ``body`` is not JSON even to Python's parser.

    """
    if _is_strict_json(body):
        return body
    text = body.decode(json.detect_encoding(body), "surrogatepass").removeprefix("\ufeff")
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    text = _STRING_OR_CONSTANT.sub(lambda m: m[0] if m[0].startswith('"') else f'"{m[0]}"', text)
    fixed = text.encode("utf-8")
    if not _is_strict_json(fixed):
        raise ValueError("A raw page is not JSON, so it was not written to the lake; report it with the page.")
    return fixed


@dataclass
class StagingFileWriter:
    """Streams typed rows to a local Parquet file page by page, then uploads it once.

    Memory holds at most one row group (:data:`~tasks.warehouse.schema.ROW_GROUP_ROWS` rows, in Arrow) and a page,
    whatever the number of activities. Rows come from
    :func:`tasks.warehouse.schema.flatten_activity`, so every value already fits its column.
    """

    arrow_schema: pa.Schema = field(default_factory=lambda: schema.ARROW_SCHEMA)
    """The file's schema: the activity summary's unless an entity's (``spec.arrow_schema``) is given."""
    rows: int = field(init=False, default=0)
    """Rows written so far."""
    _tmp: Path = field(init=False)
    _writer: pq.ParquetWriter = field(init=False)
    _pending: list[pa.Table] = field(init=False, default_factory=list)
    _pending_rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="strava-elt-", suffix=".parquet")
        os.close(fd)
        self._tmp = Path(name)
        self._writer = pq.ParquetWriter(self._tmp, self.arrow_schema, compression="zstd")

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        """Append one page's typed rows (written out once a row group's worth is held)."""
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self.arrow_schema))

    def write_table(self, table: pa.Table) -> None:
        """Append typed rows already in Arrow, of the file's schema (written out once a row group's worth is held)."""
        if table.num_rows:
            self._pending.append(table)
            self._pending_rows += table.num_rows
            self.rows += table.num_rows
        if self._pending_rows >= schema.ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the held pages as row groups of :data:`~tasks.warehouse.schema.ROW_GROUP_ROWS` rows."""
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=schema.ROW_GROUP_ROWS)
        self._pending, self._pending_rows = [], 0

    def upload(self, lake: Lake, path: str) -> str:
        """Close the file and copy it to the lake (in chunks: :meth:`Lake.write_file`); the local copy is removed."""
        try:
            self._flush()
            self._writer.close()
            lake.write_file(path, self._tmp)
        finally:
            self.discard()
        return path

    def discard(self) -> None:
        """Remove the local file (idempotent)."""
        self._tmp.unlink(missing_ok=True)


def upload_staging_file(writer: StagingFileWriter, lake: Lake, path: str) -> str:
    """Upload the run's typed Parquet file to the lake."""
    return writer.upload(lake, path)
