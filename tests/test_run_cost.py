"""What keeps a run cheap without changing what it does.

- Models are rebuilt only when they may be stale: production changed (in the same transaction,
  by the merge or a confirmed deletion), their SQL changed, or a model table is gone.
- A Prefect Variable is written in one request; a busy server (503, SQLite's "database is
  locked") is asked again after a short wait instead of Prefect's 2 s.
- A rotated refresh token is written into the saved block document in one request; a block
  whose document is gone is saved whole again.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.strava import StravaCredentials
from tasks.state import variables
from tasks.strava.auth import athlete_http_client
from tests.conftest import WAREHOUSES, Env


@pytest.fixture(params=WAREHOUSES)
def warehouse(request: pytest.FixtureRequest) -> str:
    """The models' state is SQL of its own: checked on DuckDB and PostgreSQL."""
    return str(request.param)


def _built(env: Env) -> list[tuple[Any, ...]]:
    return env.query(
        "SELECT version, fingerprint, model_rows, recorded_at FROM strava_elt_model_state WHERE kind = 'built'"
    )


def _inputs(env: Env) -> int:
    return int(env.query("SELECT MAX(version) FROM strava_elt_model_state WHERE kind = 'inputs'")[0][0])


def test_models_are_rebuilt_only_when_they_may_be_stale(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = env.run()
    [built] = _built(env)
    assert built[0] == _inputs(env) >= 1  # the first merge changed production, the build recorded it
    assert json.loads(built[2]) == first["models"]

    again = env.run()  # nothing new on Strava: the lookback re-reads, the merge changes nothing
    assert (again["inserted"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert _built(env) == [built]  # not rebuilt: same record, same time
    assert again["models"] == first["models"]

    activity = max(env.emu.activities, key=lambda a: a["start_date"])  # inside the lookback
    env.emu.modify_activity(activity["id"], name="Renamed on Strava")
    changed = env.run()
    assert changed["updated"] == 1
    [rebuilt] = _built(env)
    assert rebuilt[0] == _inputs(env) == built[0] + 1
    assert rebuilt[3] != built[3]

    # A model table dropped by hand is built again, with the others.
    _execute_write(env, "DROP TABLE activity_summary_monthly")
    dropped = env.run()
    assert dropped["models"] == changed["models"]
    assert "activity_summary_monthly" in {r[0] for r in env.query("SELECT table_name FROM information_schema.tables")}
    [after_drop] = _built(env)
    assert after_drop[3] != rebuilt[3]

    # Another release's (or an edited) model: a new fingerprint, so a rebuild.
    edited = tmp_path / "sql"
    from tasks.warehouse import models as models_module

    shutil.copytree(models_module.SQL_DIR, edited)
    spine = sorted((edited / "models").glob("10_*.sql"))[0]
    spine.write_text(spine.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
    monkeypatch.setattr(models_module, "SQL_DIR", edited)
    env.run()
    [after_edit] = _built(env)
    assert after_edit[1] != after_drop[1]
    assert after_edit[3] != after_drop[3]


def _execute_write(env: Env, sql: str) -> None:
    """One write statement in the test's warehouse (the runs have released it)."""
    import sqlalchemy as sa

    from blocks.loading import load_block
    from blocks.warehouse import Warehouse

    with load_block(Warehouse, env.warehouse_block).engine() as engine, engine.begin() as conn:
        conn.execute(sa.text(sql))


# --------------------------------------------------------------------------- variables


def test_write_variable_creates_then_overwrites_in_place() -> None:
    name = "strava_test_write_variable"
    with get_client(sync_client=True) as client:
        client.delete_variable_by_name(name) if client.read_variable_by_name(name) else None
    variables.write_variable(name, {"n": 1})
    assert variables.read_variable(name) == {"n": 1}
    with get_client(sync_client=True) as client:
        created = client.read_variable_by_name(name)
    variables.write_variable(name, {"n": 2, "text": "é \u2028"})
    with get_client(sync_client=True) as client:
        updated = client.read_variable_by_name(name)
    assert created is not None and updated is not None
    assert updated.id == created.id  # overwritten, not deleted and created again
    assert updated.value == {"n": 2, "text": "é \u2028"}
    assert variables.read_variable("strava_test_no_such_variable") is None


class _BusyPrefect(BaseHTTPRequestHandler):
    """Prefect's Variables API as a busy SQLite server answers it: ``busy`` 503s, then 204."""

    busy = 0
    patches: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("/admin/version"):
            self._answer(200, "3.9.0")
        else:
            self._answer(404, {"detail": "Not found"})

    def do_PATCH(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        type(self).patches.append(json.loads(self.rfile.read(length)))
        if type(self).busy > 0:
            type(self).busy -= 1
            self._answer(503, {"exception_message": "Service Unavailable"})
        else:
            self._answer(204)


@pytest.fixture
def busy_prefect() -> Iterator[type[_BusyPrefect]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BusyPrefect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _BusyPrefect.patches = []
    try:
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{server.server_port}/api"}):
            yield _BusyPrefect
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_server_is_asked_again_at_once_not_after_two_seconds(busy_prefect: type[_BusyPrefect]) -> None:
    waits: list[float] = []
    busy_prefect.busy = 2
    variables.write_variable("strava_watermark_x", {"start_date": "2025-01-01T00:00:00Z"}, sleep=waits.append)
    assert waits == list(variables.BUSY_DELAYS[:2])  # 0.05 s, then 0.1 s: not Prefect's 2 s, 4 s
    assert len(busy_prefect.patches) == 3
    assert busy_prefect.patches[-1]["value"] == {"start_date": "2025-01-01T00:00:00Z"}


# --------------------------------------------------------------------------- token


def test_rotated_token_goes_into_the_saved_document_or_a_new_one(env: Env) -> None:
    credentials = StravaCredentials.load(env.strava_block)
    with athlete_http_client(credentials) as http:
        assert http.get("/athlete").status_code == 200
    saved = StravaCredentials.load(env.strava_block)
    assert saved.refresh_token.get_secret_value() == env.emu.current_refresh_token
    assert saved.client_secret.get_secret_value() == credentials.client_secret.get_secret_value()

    # The document is deleted while a run holds the block: the next rotation saves it whole again.
    with get_client(sync_client=True) as client:
        client.delete_block_document(saved._block_document_id)  # type: ignore[arg-type]
    env.emu.expire_access_tokens()
    with athlete_http_client(saved) as http:
        assert http.get("/athlete").status_code == 200
    again = StravaCredentials.load(env.strava_block)
    assert again.refresh_token.get_secret_value() == env.emu.current_refresh_token
