"""Gear past its maintenance threshold: named in the dashboard and the run's Slack message (real run, local webhook)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from tasks.insight import dashboard, notify
from tests.conftest import Env
from tests.test_validation import SlackServer


@pytest.fixture
def slack(env: Env) -> Iterator[tuple[SlackServer, str]]:
    from prefect_slack import SlackWebhook

    server = SlackServer()
    name = f"slack-gear-{env.warehouse_block}"
    SlackWebhook(url=SecretStr(server.url)).save(name, overwrite=True)
    try:
        yield server, name
    finally:
        server.close()


@pytest.fixture
def thresholds() -> Iterator[dict[str, float]]:
    """Sets the Variable strava_gear_thresholds for the test (filled by it), deleted after."""
    chosen: dict[str, float] = {}
    yield chosen
    with get_client(sync_client=True) as client:
        try:
            client.delete_variable_by_name(dashboard.GEAR_THRESHOLDS_VARIABLE)
        except Exception:  # noqa: BLE001, S110 - not set: nothing to delete
            pass


def test_the_runs_slack_message_names_the_gear_due(
    env: Env, slack: tuple[SlackServer, str], thresholds: dict[str, float]
) -> None:
    from tasks.state.variables import write_variable

    server, name = slack
    gear: dict[str, Any] = {}
    for activity in env.emu.activities:
        if activity.get("gear_id"):
            gear.setdefault(str(activity["gear_id"]), 0.0)
            gear[str(activity["gear_id"])] += float(activity.get("distance") or 0) / 1000
    due, fine = sorted(gear)[0], sorted(gear)[-1]
    assert due != fine, "the emulator's athlete has two or more gear"
    thresholds.update({due: 1.0, fine: gear[fine] * 10})
    write_variable(dashboard.GEAR_THRESHOLDS_VARIABLE, json.dumps(thresholds))
    summary = env.run(slack_block=name)
    [text] = server.texts
    [line] = [x for x in text.splitlines() if x.startswith(notify.GEAR_DUE_TITLE)]
    assert f"{due}: " in line and " km of 1 km" in line, line
    assert fine not in line
    assert summary["dashboard"]["gear_due"] == [line.removeprefix(notify.GEAR_DUE_TITLE + ": ")]
    page = (env.lake_dir / summary["dashboard"]["path"]).read_text(encoding="utf-8")
    assert 'id="gear-warning"' in page


def test_gear_names_come_from_the_gear_table_else_the_id(tmp_path: Any) -> None:
    from tasks import warehouse as wh
    from tasks.entities import catalog
    from tests.test_models import _known_rows, insert

    engine = sa.create_engine(f"duckdb:///{tmp_path / 'g.duckdb'}")
    insert(engine, _known_rows(), [])
    metadata = sa.MetaData()
    table = catalog.GEAR.table_of(metadata)
    metadata.create_all(engine)
    rows = [
        {"id": "b1", "athlete_id": 7, "name": "Trek </b>", "nickname": "Old faithful"},
        {"id": "g1", "athlete_id": 7, "name": "", "brand_name": "Nike", "model_name": "Pegasus"},
        {"id": "b2", "athlete_id": 8, "name": "Someone else's bike"},  # another athlete's row
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{c.name: row.get(c.name) for c in table.columns} for row in rows])
    for path in wh.model_files():
        wh.build_model(engine, path)
    settings = dashboard.InsightSettings(gear_thresholds_km={"b1": 20, "b2": 10})
    data = dashboard.collect_data(engine, athlete_id=7, settings=settings)
    names = {g["gear_id"]: g["name"] for g in data["gear"]["rows"]}
    assert names == {"b1": "Old faithful", "g1": "Nike Pegasus", "b2": "b2"}
    assert dashboard.gear_due_lines(data) == ["b2: 50 km of 10 km", "Old faithful (b1): 22 km of 20 km"]
    page = dashboard.render_html(data)
    assert "Due for maintenance: b2, Old faithful" in page
    engine.dispose()
