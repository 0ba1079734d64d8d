"""The enrichment subflow over the emulator: newest first, exactly 2 requests an activity, resumes across runs.

Real parts: the emulator over HTTP, DuckDB files and PostgreSQL schemas, the lake on disk.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conftest import WAREHOUSES, Env
from tests.strava_support import ts


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def routes(env: Env) -> Counter[str]:
    """Requests per path kind: detail, streams, gear, stats, zones (the summary's too)."""
    kinds: Counter[str] = Counter()
    for r in env.emu.requests:
        path = r.path.removeprefix("/api/v3")
        if path.startswith("/activities/") and path.endswith("/streams"):
            kinds["streams " + path.split("/")[2]] += 1
        elif path.startswith("/activities/"):
            kinds["detail " + path.split("/")[2]] += 1
        elif path.startswith("/gear/"):
            kinds["gear " + path.split("/")[2]] += 1
        elif path.endswith("/stats"):
            kinds["stats"] += 1
        else:
            kinds[path] += 1
    return kinds


def enriched_ids(env: Env, athlete_id: int) -> set[int]:
    rows = env.query(
        "SELECT activity_id FROM strava_enrichment_state WHERE athlete_id = ? "
        "AND detail_at IS NOT NULL AND streams_at IS NOT NULL",
        [athlete_id],
    )
    return {int(r[0]) for r in rows}


def test_enrichment_goes_newest_first_resumes_across_runs_and_spends_two_requests_an_activity(
    tmp_path: Any, request: pytest.FixtureRequest, warehouse: str
) -> None:
    from tests.conftest import make_env, warehouse_pg_url

    for env in make_env(tmp_path, pg_url=warehouse_pg_url(request, warehouse), activities=24):
        athlete_id = env.emu.athlete["id"]
        newest_first = [a["id"] for a in sorted(env.emu.activities, key=lambda a: ts(a["start_date"]), reverse=True)]
        first = env.run(enrich=True, enrich_max_requests=20)
        assert first["status"] == "complete" and first["inserted"] == 24
        enrichment = first["enrichment"]
        assert enrichment["requests"] <= 20 and enrichment["stats"] and enrichment["zones"]
        assert enrichment["total"] == 24 and 0 < enrichment["enriched"] < 24
        done = enriched_ids(env, athlete_id)
        assert len(done) == enrichment["enriched"]
        assert done == set(newest_first[: len(done)])  # newest first
        # The summary's requests are the summary's; the round's message counts both.
        assert first["requests"] == 2

        runs = [first]
        while runs[-1]["enrichment"]["enriched"] < 24:
            runs.append(env.run(enrich=True, enrich_max_requests=20))
            assert len(runs) < 6, [r["enrichment"] for r in runs]
        last = runs[-1]["enrichment"]
        assert last["queued"] == 0 and last["partial_reason"] is None
        assert not any(r["enrichment"]["stats"] for r in runs[1:])  # the stats and zones: once a UTC day

        kinds = routes(env)
        details = {k: v for k, v in kinds.items() if k.startswith("detail ")}
        streams = {k: v for k, v in kinds.items() if k.startswith("streams ")}
        gear = {k: v for k, v in kinds.items() if k.startswith("gear ")}
        assert set(details.values()) == {1} and len(details) == 24  # exactly 2 requests an activity
        assert set(streams.values()) == {1} and len(streams) == 24  # a manual activity's: one 404
        assert gear and set(gear.values()) == {1}  # 1 a gear
        assert kinds["stats"] == 1 and kinds["/athlete/zones"] == 1

        # A further run: nothing queued, no request; the detail counts hold in the warehouse.
        idle = env.run(enrich=True)["enrichment"]
        assert idle["requests"] == 0 and idle["skipped"] == "nothing to enrich"
        assert env.query("SELECT COUNT(*) FROM strava_activity_detail WHERE athlete_id = ?", [athlete_id]) == [(24,)]
        samples = env.query("SELECT COUNT(*) FROM strava_activity_streams WHERE athlete_id = ?", [athlete_id])[0][0]
        assert samples > 24 * 100


def test_a_changed_activity_gets_its_detail_again_never_its_streams(env: Env) -> None:
    athlete_id = env.emu.athlete["id"]
    env.run(enrich=True, enrich_max_requests=20)  # stats and zones, the gear, then the newest activities
    newest = max(env.emu.activities, key=lambda a: ts(a["start_date"]))
    assert newest["id"] in enriched_ids(env, athlete_id)
    env.emu.modify_activity(newest["id"], name="renamed on Strava")
    env.emu.reset_counts()
    second = env.run(enrich=True, enrich_max_requests=1)
    assert second["updated"] == 1
    assert second["enrichment"]["details"] == 1 and second["enrichment"]["streams"] == 0
    kinds = routes(env)
    assert kinds[f"detail {newest['id']}"] == 1 and kinds[f"streams {newest['id']}"] == 0
    due = env.query(
        "SELECT detail_due FROM strava_enrichment_state WHERE athlete_id = ? AND activity_id = ?",
        [athlete_id, newest["id"]],
    )
    assert due == [(False,)]


def test_every_batch_has_a_run_key_whose_staging_tables_fit_63_characters() -> None:
    from flows.enrich import _Plan
    from tasks.entities.catalog import SPECS
    from tasks.entities.store import entity_staging_name

    plan = _Plan.__new__(_Plan)
    plan.run_key = "20261204t230500_fa6632e5"
    keys = {plan._batch_key() for _ in range(30)}  # a run of 30 batches (3,000 requests)
    assert len(keys) == 30
    for key in keys:
        assert key.startswith("20261204t230500_") and len(key) == len(plan.run_key)
        assert all(len(entity_staging_name(key, name)) <= 63 for name in SPECS if name != "activities")
