"""The enrichment's fetch side against the emulator over real HTTP: requests, lake files, staging files, state.

One fake clock for the emulator and the client (the daily budget resets at the emulator's
midnight, never today's). Few activities: each stream set costs the emulator ~0.1 s.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from blocks import StravaCredentials
from blocks.loading import load_block
from tasks.entities.batch import StagedBatch
from tasks.entities.catalog import DETAIL_CHILDREN, SPECS, STREAM_KEYS, STREAMS
from tasks.entities.fetch import EnrichmentFetch, fetch_enrichment
from tasks.lake import Lake, load_lake, raw_page_keys, raw_resource_path
from tasks.strava import StravaClient
from tasks.strava.client import resource_path
from tests.conftest import Env, make_env
from tests.strava_support import FakeClock

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RUN = "20261102t100000_abcdef12"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def env(tmp_path: Path, clock: FakeClock) -> Iterator[Env]:
    """Six activities (three runs, two rides, a swim) behind the emulator, on the fake clock."""
    yield from make_env(tmp_path, activities=6, clock=clock)


def client_of(env: Env, clock: FakeClock) -> StravaClient:
    return StravaClient(load_block(StravaCredentials, env.strava_block), clock=clock, sleep=clock.sleep)


def fetch(env: Env, clock: FakeClock, **asked: Any) -> tuple[StagedBatch, Lake]:
    lake = load_lake(env.lake_block)
    with client_of(env, clock) as client:
        batch = fetch_enrichment(client, lake, env.emu.athlete["id"], RUN, NOW, **asked)
    return batch, lake


def raw_json(lake: Lake, path: str) -> Any:
    return json.loads(gzip.decompress(lake.read(path)))


def staged(lake: Lake, batch: StagedBatch, entity: str) -> list[dict[str, Any]]:
    with lake.local_file(batch.files[entity]) as local:
        table = pq.read_table(local)
    assert table.schema == SPECS[entity].arrow_schema
    return table.to_pylist()


def test_resource_paths_fill_each_id_as_one_segment() -> None:
    assert resource_path("/activities/{activity_id}/streams", activity_id=12) == "/activities/12/streams"
    assert resource_path("/gear/{gear_id}", gear_id="b1/../x") == "/gear/b1%2F..%2Fx"
    with pytest.raises(ValueError, match="needs"):
        resource_path("/gear/{gear_id}")
    with pytest.raises(ValueError, match="empty"):
        resource_path("/gear/{gear_id}", gear_id="")


def test_everything_of_an_athlete_lands_and_stages_with_exactly_one_request_each(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    athlete = emu.athlete["id"]
    activities = emu.activities
    manual = activities[2]["id"]  # the swim, entered by hand: no streams
    emu.modify_activity(manual, manual=True)
    ids = [a["id"] for a in activities]
    gear_ids = sorted({a["gear_id"] for a in activities if a.get("gear_id")})
    emu.reset_counts()

    batch, lake = fetch(env, clock, detail_ids=ids, stream_ids=ids, gear_ids=gear_ids, stats=True, zones=True)

    # Requests: one per detail, per stream set (the manual one's 404 included), per gear; stats and zones once.
    assert batch.requests == 2 * len(ids) + len(gear_ids) + 2
    counts = emu.route_counts()
    assert (counts["activity"], counts["streams"], counts["gear"], counts["stats"], counts["zones"]) == (
        len(ids),
        len(ids),
        len(gear_ids),
        1,
        1,
    )
    assert batch.partial_reason is None and batch.rejected == () and not batch.unfit
    queries = {r.path.removeprefix("/api/v3"): r.query for r in emu.requests}
    assert queries[f"/activities/{ids[0]}"] == {"include_all_efforts": "true"}
    assert queries[f"/activities/{ids[0]}/streams"] == {"keys": ",".join(STREAM_KEYS), "key_by_type": "true"}

    # Raw: each response as the API sent it, under its entity's prefix.
    for activity_id in ids:
        detail_key = raw_resource_path("activity_detail", athlete, RUN, "activity_detail", activity_id)
        assert raw_json(lake, detail_key) == emu.activity_detail(activity_id)
    streams_key = raw_resource_path("activity_streams", athlete, RUN, "activity_streams", ids[0])
    sent = raw_json(lake, streams_key)
    assert set(sent) >= {"time", "distance", "latlng", "heartrate"} and "type" not in sent  # keyed by type
    assert sent["time"]["data"] == emu.activity_streams(ids[0])["time"]
    assert raw_page_keys(lake, athlete, "gear") == [
        raw_resource_path("gear", athlete, RUN, "gear", g) for g in gear_ids
    ]
    assert raw_json(lake, raw_resource_path("athlete_zones", athlete, RUN, "athlete_zones", athlete))["heart_rate"]
    assert raw_page_keys(lake, athlete, "activity_streams") == sorted(
        raw_resource_path("activity_streams", athlete, RUN, "activity_streams", i) for i in ids if i != manual
    )  # a 404 lands nothing

    # Staging: one file per entity, its spec's schema, the rows counted.
    for entity, path in batch.files.items():
        spec = SPECS[entity]
        assert path == f"staging/{spec.lake_prefix}/athlete_id={athlete}/run={RUN}/{entity}.parquet"
        assert len(staged(lake, batch, entity)) == batch.rows[entity] > 0
    assert set(batch.files) == {
        "activity_detail",
        "activity_laps",
        "activity_splits_metric",
        "activity_splits_standard",
        "activity_best_efforts",
        "activity_segment_efforts",
        "activity_streams",
        "gear",
        "athlete_stats",
        "athlete_zones",
    }
    details = {r["activity_id"]: r for r in staged(lake, batch, "activity_detail")}
    assert set(details) == set(ids) and all(r["athlete_id"] == athlete for r in details.values())
    assert sum(r["lap_count"] for r in details.values()) == batch.rows["activity_laps"]
    samples = {i: a["elapsed_time"] + 1 for i, a in zip(ids, activities, strict=True) if i != manual}
    assert batch.rows["activity_streams"] == sum(samples.values())  # every sample, one a second
    with lake.local_file(batch.files["activity_streams"]) as local:
        assert pq.ParquetFile(local).metadata.num_row_groups >= 2  # written row group by row group
    assert batch.rows["athlete_stats"] == 9 and batch.rows["athlete_zones"] == 12
    assert batch.rows["gear"] == len(gear_ids)

    # Parents: every activity fetched replaces its children, also those with none.
    for spec in (*DETAIL_CHILDREN, STREAMS):
        assert batch.parents[spec.name] == tuple(ids)
    state = {s["activity_id"]: s for s in batch.state}
    assert list(state) == ids
    for activity_id, row in state.items():
        assert row["athlete_id"] == athlete and row["detail_at"] == NOW and row["detail_due"] is False
        assert row["streams_at"] == NOW and row["attempts"] == 0 and row["last_error"] is None
        if activity_id == manual:
            assert (row["streams_outcome"], row["streams_samples"]) == ("none", 0)
        else:
            assert (row["streams_outcome"], row["streams_samples"]) == ("loaded", samples[activity_id])

    # Secrets never in lake files.
    secrets = [emu.client_secret.encode(), emu.current_refresh_token.encode()]
    files = sorted(p for p in env.lake_dir.rglob("*") if p.is_file())
    assert len(files) == len(ids) * 2 - 1 + len(gear_ids) + 2 + len(batch.files)
    for path in files:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        assert not any(s in data for s in secrets), path


def test_a_deleted_activity_is_not_found_an_outcome_not_a_failure(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    first, gone, streams_only = (a["id"] for a in emu.activities[:3])
    emu.delete_activity(gone)
    emu.delete_activity(streams_only)
    emu.reset_counts()
    batch, lake = fetch(env, clock, detail_ids=[first, gone], stream_ids=[gone, streams_only])
    # The deleted activity's detail is a 404: its streams are not requested; streams alone cost one.
    assert batch.requests == 3 == emu.route_counts()["activity"] + emu.route_counts()["streams"]
    state = {s["activity_id"]: s for s in batch.state}
    assert state[first]["detail_at"] == NOW and state[first]["detail_due"] is False
    assert "streams_at" not in state[first] and "streams_outcome" not in state[first]  # not asked: kept as stored
    assert (state[gone]["streams_outcome"], state[gone]["detail_at"]) == ("not_found", NOW)
    assert state[streams_only]["streams_outcome"] == "not_found"
    assert "detail_at" not in state[streams_only] and "detail_due" not in state[streams_only]  # not asked
    assert batch.parents["activity_laps"] == (first, gone)  # a gone activity's children go too
    assert batch.parents["activity_streams"] == (gone, streams_only)
    assert batch.partial_reason is None and batch.rejected == ()
    assert "activity_streams" not in batch.files  # no rows, no file
    assert raw_page_keys(lake, emu.athlete["id"], "activity_detail") == [
        raw_resource_path("activity_detail", emu.athlete["id"], RUN, "activity_detail", first)
    ]


def test_the_daily_limit_ends_the_batch_partial_with_what_was_fetched(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    ids = [a["id"] for a in emu.activities[:4]]
    emu.set_limits(read=(100, 5))  # five reads today: two activities, then the third's detail
    batch, lake = fetch(env, clock, detail_ids=ids, stream_ids=ids)
    assert batch.requests == 5 and emu.usage["read"][1] == 5  # stopped before a sixth, not refused
    assert batch.partial_reason is not None
    assert batch.partial_reason.startswith(
        f"partial: resumes next run (daily budget spent at the streams of activity {ids[2]}"
    )
    state = {s["activity_id"]: s for s in batch.state}
    assert list(state) == ids[:3]  # the fourth was not touched
    assert [state[i].get("streams_outcome") for i in ids[:3]] == ["loaded", "loaded", None]
    assert state[ids[2]]["detail_at"] == NOW  # its detail is kept
    assert batch.parents["activity_streams"] == tuple(ids[:2])
    assert {r["activity_id"] for r in staged(lake, batch, "activity_detail")} == set(ids[:3])
    assert {r["activity_id"] for r in staged(lake, batch, "activity_streams")} == set(ids[:2])


def test_a_429_mid_batch_from_a_budget_spent_elsewhere_ends_it_partial(
    env: Env, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = env.emu
    ids = [a["id"] for a in emu.activities[:3]]
    original = StravaClient.get_resource
    calls: list[str] = []

    def spend_elsewhere_after_two(self: StravaClient, path: str, *args: Any, **ids_: Any) -> Any:
        calls.append(path)
        if len(calls) == 3:  # another athlete of the application spends today's budget
            used = emu.usage["read"][1]
            emu.set_limits(read=(100, used))
        return original(self, path, *args, **ids_)

    monkeypatch.setattr(StravaClient, "get_resource", spend_elsewhere_after_two)
    batch, lake = fetch(env, clock, detail_ids=ids, stream_ids=ids)
    assert batch.requests == 3  # two answered, the third refused with a 429 (counted, as Strava counts it)
    assert emu.request_count(route="activity") == 2 and emu.request_count(route="streams") == 1
    assert batch.partial_reason is not None and "daily budget spent at the detail of activity" in batch.partial_reason
    assert [s["activity_id"] for s in batch.state] == ids[:1]  # the second stopped before its detail: no row
    assert clock.slept == []  # no wait for a budget that resets at midnight
    assert batch.rows["activity_detail"] == 1 and batch.rows["activity_streams"] > 0


def test_broken_resources_are_rejected_with_a_reason_and_their_raw_files_kept(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    athlete = emu.athlete["id"]
    short, no_pair, hot, other = (a["id"] for a in emu.activities[:4])
    n = len(emu.activity_streams(short)["time"])
    emu.set_stream(short, "heartrate", [90] * (n - 1))
    m = len(emu.activity_streams(no_pair)["time"])
    emu.set_stream(no_pair, "latlng", [[51.5, -0.1]] * (m - 1) + [[51.5]])
    k = len(emu.activity_streams(hot)["time"])
    emu.set_stream(hot, "heartrate", [1e20] * k)
    emu.modify_detail(hot, calories=1e20)
    emu.modify_detail(other, athlete={"id": athlete + 1})
    ids = [short, no_pair, hot, other]
    batch, lake = fetch(env, clock, detail_ids=ids, stream_ids=ids, gear_ids=["b999", "../x"])

    reasons = {(r.entity, r.key): r for r in batch.rejected}
    assert reasons[("activity_streams", str(short))].reason.startswith("channels differ in length")
    assert reasons[("activity_streams", str(no_pair))].reason == (
        f"latlng sample {m - 1} is not a [lat, lng] pair: [51.5]"
    )
    assert (
        reasons[("activity_detail", str(other))].reason
        == f"belongs to athlete {athlete + 1}, not this run's athlete {athlete}"
    )
    assert reasons[("gear", "b999")].reason == "not found (404) at gear b999"
    assert reasons[("gear", "../x")].reason == "not a gear id: not requested"
    for key in (short, no_pair):
        raw = reasons[("activity_streams", str(key))].raw_path
        assert raw == raw_resource_path("activity_streams", athlete, RUN, "activity_streams", key)
        assert raw_json(lake, raw)  # the raw file stays
    state = {s["activity_id"]: s for s in batch.state}
    assert [state[i]["streams_outcome"] for i in ids] == ["rejected", "rejected", "loaded", "loaded"]
    assert state[short]["last_error"].startswith("channels differ in length") and state[short]["attempts"] == 1
    assert state[other]["last_error"].startswith(f"belongs to athlete {athlete + 1}")
    assert batch.parents["activity_streams"] == (hot, other)  # a rejected set replaces nothing
    assert other not in batch.parents["activity_laps"]
    # 10^20 beats a minute and 10^20 calories: loaded as NULL, counted.
    assert batch.unfit == {"activity_streams.heartrate": k, "activity_detail.calories": 1}
    hot_rows = [r for r in staged(lake, batch, "activity_streams") if r["activity_id"] == hot]
    assert len(hot_rows) == k and all(r["heartrate"] is None for r in hot_rows)
    assert batch.requests == 2 * len(ids) + 1  # the gear id that is not one cost nothing


def test_the_fetch_object_and_the_function_agree(env: Env, clock: FakeClock) -> None:
    lake = load_lake(env.lake_block)
    athlete = env.emu.athlete["id"]
    with client_of(env, clock) as client:
        batch = EnrichmentFetch(client, lake, athlete, RUN, NOW).fetch(stats=True)
    assert batch.requests == 1 and batch.files == {
        "athlete_stats": f"staging/athlete_stats/athlete_id={athlete}/run={RUN}/athlete_stats.parquet"
    }
    assert {r["observed_at"] for r in staged(lake, batch, "athlete_stats")} == {NOW}
    assert batch.state == () and batch.parents == {}


def test_strava_failing_past_the_retries_ends_the_batch_partial_too(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    ids = [a["id"] for a in emu.activities[:3]]
    emu.fail_requests(f"/api/v3/activities/{ids[1]}/streams", "503", times=5)  # every try of the default policy
    batch, lake = fetch(env, clock, detail_ids=ids, stream_ids=ids)
    assert batch.partial_reason is not None
    assert batch.partial_reason.startswith(
        f"partial: resumes next run (Strava kept failing at the streams of activity {ids[1]}"
    )
    assert batch.requests == 3 + 5 and len(clock.slept) == 4  # backoff between the five tries, on the fake clock
    state = {s["activity_id"]: s for s in batch.state}
    assert list(state) == ids[:2] and "streams_at" not in state[ids[1]] and state[ids[1]]["detail_at"] == NOW
    assert batch.parents["activity_streams"] == (ids[0],) and batch.rows["activity_detail"] == 2
    assert {r["activity_id"] for r in staged(lake, batch, "activity_streams")} == {ids[0]}


def test_a_four_hour_activity_is_every_sample_staged_in_row_groups(env: Env, clock: FakeClock) -> None:
    emu = env.emu
    long = emu.activities[0]["id"]
    emu.modify_activity(long, elapsed_time=4 * 3600, moving_time=4 * 3600 - 300)
    batch, lake = fetch(env, clock, stream_ids=[long])
    assert batch.requests == 1 and batch.rows["activity_streams"] == 14_401  # one a second, both ends
    assert batch.state[0]["streams_samples"] == 14_401
    with lake.local_file(batch.files["activity_streams"]) as local:
        meta = pq.ParquetFile(local).metadata
        groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert groups == [5_000, 5_000, 4_401]  # written a row group at a time
    rows = staged(lake, batch, "activity_streams")
    assert [r["sample_index"] for r in rows] == list(range(14_401))
    assert rows[-1]["time"] == 4 * 3600 and sum(1 for r in rows if r["moving"]) == 4 * 3600 - 300


def test_an_s3_lake_gets_the_same_raw_and_staging_keys(env: Env, clock: FakeClock) -> None:
    import boto3
    from moto.server import ThreadedMotoServer
    from prefect_aws import S3Bucket

    from tests.test_s3 import FOLDER, REGION, S3

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        )
        s3 = S3(endpoint, client)
        bucket = s3.new_bucket()
        lake = Lake(S3Bucket(bucket_name=bucket, bucket_folder=FOLDER, credentials=s3.credentials()))
        athlete = env.emu.athlete["id"]
        activity = env.emu.activities[0]["id"]
        with client_of(env, clock) as strava:
            batch = EnrichmentFetch(strava, lake, athlete, RUN, NOW).fetch([activity], [activity], zones=True)
        assert batch.partial_reason is None and batch.requests == 3
        raw = [
            raw_resource_path(prefix, athlete, RUN, prefix, key)
            for prefix, key in (
                ("athlete_zones", athlete),
                ("activity_detail", activity),
                ("activity_streams", activity),
            )
        ]
        assert s3.keys(bucket) == sorted(f"{FOLDER}/{k}" for k in [*raw, *batch.files.values()])
        assert raw_page_keys(lake, athlete, "activity_streams") == [raw[2]]
        assert json.loads(gzip.decompress(s3.get(bucket, f"{FOLDER}/{raw[1]}")))["id"] == activity
        assert len(staged(lake, batch, "activity_streams")) == batch.rows["activity_streams"] > 0
        secrets = [env.emu.client_secret.encode(), env.emu.current_refresh_token.encode()]
        assert not any(s in gzip.decompress(s3.get(bucket, f"{FOLDER}/{k}")) for k in raw for s in secrets)
    finally:
        server.stop()
