"""The Lake over a local filesystem block: atomic writes, missing vs unreadable, URLs, S3 URIs, raw pages.

The same on S3 (moto's server over HTTP) is in tests/test_s3.py.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.filesystems import LocalFileSystem
from prefect_aws import S3Bucket

from tasks import kudos
from tasks.lake import (
    COPY_CHUNK,
    Lake,
    StagingFileWriter,
    land_raw_page,
    raw_page_keys,
    raw_page_path,
    raw_resource_path,
    staging_file_path,
)
from tasks.warehouse import schema, staging_batches
from tests.test_after_commit import file_size_limit


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LocalFileSystem(basepath=str(tmp_path / "lake")))


def test_a_local_write_is_atomic_and_reads_back(lake: Lake, tmp_path: Path) -> None:
    key = "models/kudos/latest.json"
    target = tmp_path / "lake" / key
    assert lake.write(key, b"old" * 100) == str(target.resolve())
    assert lake.read(key) == b"old" * 100
    with file_size_limit(1024), pytest.raises(OSError):
        lake.write(key, b"new" * 1000)  # fails half way
    assert lake.read(key) == b"old" * 100  # the previous file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest.json"]  # no temporary file left
    with pytest.raises(TypeError, match="not a Lake"):
        Lake(lake)  # type: ignore[arg-type]


def test_only_a_missing_file_reads_as_absent(lake: Lake, tmp_path: Path) -> None:
    assert lake.read_if_present("raw/nothing-here.json.gz") is None
    with pytest.raises(FileNotFoundError):
        lake.read("raw/nothing-here.json.gz")
    (tmp_path / "lake" / "raw" / "a-folder.json").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):  # there, but not readable as a file: not "absent"
        lake.read_if_present("raw/a-folder.json")
    with pytest.raises(ValueError, match="outside the lake's base path"):
        lake.read_if_present("../outside.json")
    lake.write("raw/here.json", b"{}")
    assert lake.read_if_present("raw/here.json") == b"{}"


def test_urls_for_people(lake: Lake, tmp_path: Path) -> None:
    assert lake.url("dashboards/d.html") == (tmp_path / "lake" / "dashboards" / "d.html").resolve().as_uri()
    s3 = Lake(S3Bucket(bucket_name="b", bucket_folder="strava/prod"))
    assert s3.url("dashboards/d.html") == "s3://b/strava/prod/dashboards/d.html"


def test_s3_uri_with_and_without_a_bucket_folder(lake: Lake) -> None:
    key = "staging/activities/athlete_id=1/run=r/activities.parquet"
    assert Lake(S3Bucket(bucket_name="b")).s3_uri(key) == f"s3://b/{key}"
    for folder in ("strava/prod", "/strava/prod/", "strava/prod/"):
        assert Lake(S3Bucket(bucket_name="b", bucket_folder=folder)).s3_uri(key) == f"s3://b/strava/prod/{key}"
    # The S3Bucket block's own rule: a key already under the folder is not prefixed twice.
    assert Lake(S3Bucket(bucket_name="b", bucket_folder="staging")).s3_uri(key) == f"s3://b/{key}"
    with pytest.raises(TypeError, match="S3Bucket block, not LocalFileSystem"):
        lake.s3_uri(key)


def test_a_corrupt_model_pointer_is_an_error_not_no_model_yet(lake: Lake) -> None:
    assert kudos.latest_pointer(lake, 7) is None  # absent: no model yet
    with pytest.raises(kudos.KudosModelError, match="No kudos model for athlete 7"):
        kudos.load_latest_model(lake, 7)
    pointer = f"{kudos.athlete_root(7)}/latest.json"
    for body, problem in ((b'{"model": "models/kud', "is not valid JSON"), (b"[1, 2]", "holds a JSON list")):
        lake.write(pointer, body)
        with pytest.raises(kudos.KudosModelError, match=f"{problem}.*corrupt, not absent") as caught:
            kudos.load_latest_model(lake, 7)
        assert lake.url(pointer) in str(caught.value)
    lake.write(pointer, json.dumps({"model": "m.joblib"}).encode())
    assert kudos.latest_pointer(lake, 7) == {"model": "m.joblib"}


def test_a_file_is_copied_in_atomically_and_read_in_place(lake: Lake, tmp_path: Path) -> None:
    source = tmp_path / "local.bin"
    source.write_bytes(b"x" * (3 * COPY_CHUNK + 5))  # several chunks
    key = "staging/activities/athlete_id=1/run=r/activities.parquet"
    target = tmp_path / "lake" / key
    assert lake.write_file(key, source) == str(target.resolve())
    assert target.read_bytes() == source.read_bytes()
    with lake.local_file(key) as local:
        assert local == target.resolve()  # the lake's own file, no copy
    assert target.exists()  # and left in place
    source.write_bytes(b"y" * 5000)
    with file_size_limit(1024), pytest.raises(OSError):
        lake.write_file(key, source)  # fails half way
    assert target.read_bytes() == b"x" * (3 * COPY_CHUNK + 5)  # the previous file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["activities.parquet"]
    with pytest.raises(FileNotFoundError, match="Nothing at"):
        with lake.local_file("staging/nothing.parquet"):
            pass


def test_the_staging_file_is_written_in_row_groups_and_read_back_batch_by_batch(lake: Lake) -> None:
    extracted_at = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [
        schema.flatten_activity({"id": i, "start_date": "2025-01-01T00:00:00Z", "distance": i / 3}, extracted_at)
        for i in range(1, 2 * schema.ROW_GROUP_ROWS + 402)
    ]
    writer = StagingFileWriter()
    for start in range(0, len(rows), 200):  # pages of 200
        writer.write_page(rows[start : start + 200])
    key = "staging/activities/athlete_id=1/run=r/activities.parquet"
    writer.upload(lake, key)
    with lake.local_file(key) as local:
        groups = [pq.ParquetFile(local).metadata.row_group(g).num_rows for g in range(3)]
        assert pq.ParquetFile(local).metadata.num_row_groups == 3
    assert groups == [schema.ROW_GROUP_ROWS, schema.ROW_GROUP_ROWS, 401]
    with staging_batches(lake, key) as batches:
        sizes = []
        table = pa.Table.from_batches(list(_sized(batches, sizes)), schema.ARROW_SCHEMA)
    assert max(sizes) <= schema.ROW_GROUP_ROWS
    assert table.equals(schema.to_arrow(rows))  # every value back, doubles bit-exact


def _sized(batches: pa.RecordBatchReader, sizes: list[int]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        sizes.append(batch.num_rows)
        yield batch


# --------------------------------------------------------------------------- raw pages


def _refuse(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def strict_loads(data: bytes) -> object:
    """JSON as RFC 8259 has it: UTF-8 and no NaN/Infinity (what DuckDB, jq and Redshift expect)."""
    return json.loads(data.decode("utf-8"), parse_constant=_refuse)


def _landed(lake: Lake, page: int, activities: list[dict[str, object]], body: bytes | None = None) -> bytes:
    path = land_raw_page(lake, 7, "r", page, activities, body=body)
    assert path == raw_page_path(7, "r", page)
    return gzip.decompress(lake.read(path))


def test_a_raw_page_in_json_is_kept_byte_for_byte(lake: Lake) -> None:
    # JSON numbers no double holds, a lone surrogate escape, odd spacing: all JSON, all as sent.
    sent = (
        b'[ {"id": 1180591620717411303424, "distance": 1e999, "max_speed": -1E+999, "elev_high": 1.50,\n'
        b' "name": "NaN \\" Infinity \\ud83c\\udfc3 \xc3\xa9", "external_id": "\\ud800"} ]'
    )
    parsed = json.loads(sent)
    assert parsed[0]["distance"] == math.inf and parsed[0]["external_id"] == "\ud800"
    assert _landed(lake, 1, parsed, body=sent) == sent
    assert strict_loads(sent)[0]["name"] == 'NaN " Infinity \U0001f3c3 \u00e9'  # type: ignore[index]


def test_what_only_python_parses_is_rewritten_to_the_nearest_json(lake: Lake) -> None:
    sent = b'[{"average_speed":NaN,"max_speed":Infinity,"min":-Infinity,"name":"NaN, -Infinity","n":[NaN]}]'
    page = _landed(lake, 1, json.loads(sent), body=sent)
    assert page == (
        b'[{"average_speed":"NaN","max_speed":"Infinity","min":"-Infinity","name":"NaN, -Infinity","n":["NaN"]}]'
    )
    strict_loads(page)
    # UTF-16 (with its byte order mark), a UTF-8 one, a surrogate encoded in the bytes: UTF-8 and escapes.
    for sent, kept in (
        ('[{"name":"é🏃","x":1e999}]'.encode("utf-16"), '[{"name":"é🏃","x":1e999}]'.encode()),
        (b'\xef\xbb\xbf[{"x":1}]', b'[{"x":1}]'),
        (b'[{"name":"\xed\xa0\x80"}]', b'[{"name":"\\ud800"}]'),
    ):
        page = _landed(lake, 2, json.loads(sent), body=sent)
        assert page == kept, sent
        assert strict_loads(page) == json.loads(sent)  # the same values


def test_a_raw_page_without_its_body_is_encoded_as_strict_json(lake: Lake) -> None:
    """A webhook's activities come parsed: non-finite numbers become strings, a lone surrogate stays an escape."""
    activities: list[dict[str, object]] = [
        {"id": 1, "distance": math.inf, "max_speed": -math.inf, "average_speed": math.nan, "name": "é \ud800"},
        {"id": 2, "distance": 10.5, "name": "plain"},
    ]
    page = _landed(lake, 1, activities)
    assert strict_loads(page) == [
        {"id": 1, "distance": "Infinity", "max_speed": "-Infinity", "average_speed": "NaN", "name": "é \ud800"},
        activities[1],
    ]
    assert b'"name":"\\u00e9 \\ud800"' in page  # the lone surrogate kept as the escape Strava sent
    page = _landed(lake, 2, [activities[1]])
    assert page == b'[{"id":2,"distance":10.5,"name":"plain"}]'


def test_a_body_that_is_not_json_is_refused_before_anything_is_written(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not JSON, so it was not written"):
        land_raw_page(lake, 7, "r", 1, [], body=b'[{"id": 1,')
    assert lake.read_if_present(raw_page_path(7, "r", 1)) is None


# --- the layout: an entity segment, and the layout before it -------------------------------


def test_lake_paths_name_the_entity_then_the_athlete_and_the_run() -> None:
    assert raw_page_path(7, "r", 3) == "raw/activities/athlete_id=7/run=r/page-00003.json.gz"
    assert staging_file_path(7, "r") == "staging/activities/athlete_id=7/run=r/activities.parquet"
    laps = staging_file_path(7, "r", "activity_laps", "activity_detail")
    assert laps == "staging/activity_detail/athlete_id=7/run=r/activity_laps.parquet"
    detail = raw_resource_path("activity_detail", 7, "r", "activity_detail", 123)
    assert detail == "raw/activity_detail/athlete_id=7/run=r/activity_detail-123.json.gz"
    for key in ("../x", "b1/2", "", "x" * 65):
        with pytest.raises(ValueError, match="one path segment|letters, digits"):
            raw_resource_path("gear", 7, "r", "gear", key)


def assert_both_layouts_are_read(lake: Lake) -> None:
    """Pages of the layout before the entity segment and of the new one are all the athlete's pages."""
    old = ["raw/athlete_id=7/run=a/page-00001.json.gz", "raw/athlete_id=7/run=a/page-00002.json.gz"]
    new = [raw_page_path(7, "b", 1), raw_page_path(7, "c", 1)]
    others = [
        "raw/athlete_id=70/run=a/page-00001.json.gz",  # athlete 70 is not athlete 7
        raw_page_path(70, "b", 1),
        raw_resource_path("activity_detail", 7, "b", "activity_detail", 1),  # another entity
        staging_file_path(7, "b"),
    ]
    for key in old + new + others:
        lake.write(key, gzip.compress(b"[]", mtime=0))
    assert raw_page_keys(lake, 7) == sorted(old + new)
    assert raw_page_keys(lake, 70) == sorted(others[:2])
    assert raw_page_keys(lake, 7, "activity_detail") == [others[2]]
    assert raw_page_keys(lake, 8) == [] and lake.list("nothing/here/") == []
    assert lake.list("raw/athlete_id=7") == old + ["raw/athlete_id=70/run=a/page-00001.json.gz"]  # a text prefix
    assert [json.loads(gzip.decompress(lake.read(k))) for k in raw_page_keys(lake, 7)] == [[]] * 4
    with pytest.raises(ValueError, match="More than 3 keys under"):
        lake.list("raw/", limit=3)  # bounded


def test_a_local_lake_lists_both_layouts(lake: Lake, tmp_path: Path) -> None:
    assert_both_layouts_are_read(lake)
    leftover = tmp_path / "lake" / "raw" / "activities" / "athlete_id=7" / "run=b" / ".page-00002.json.gz.ab12.tmp"
    leftover.write_bytes(b"half")  # a write in progress is not a page
    assert len(raw_page_keys(lake, 7)) == 4
    with pytest.raises(ValueError, match="outside the lake's base path"):
        lake.list("../")
