"""Many athletes of one application: the blocks, the nested reference, revocation and the roster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from pydantic import SecretStr, ValidationError

from blocks import StravaApplication, StravaCredentials
from blocks.loading import MissingBlockError, load_block
from tasks.strava import roster
from tasks.strava.auth import api_client, athlete_http_client, authorize_athlete
from tasks.strava.errors import AthleteRevoked
from tests.roster_support import Roster, athlete_credentials, make_roster, save_application

REVOKED_AT = datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Roster]:
    """Three athletes of one application, 60 activities each."""
    yield from make_roster(tmp_path)


def _document(name: str, slug: str = "strava-credentials", secrets: bool = False):  # type: ignore[no-untyped-def]
    with get_client(sync_client=True) as client:
        return client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=secrets)


# --------------------------------------------------------------------------- blocks


def test_the_athlete_block_references_the_application_and_holds_no_secret(app: Roster) -> None:
    athlete_id = app.athlete_ids[1]
    name = app.athlete_blocks[athlete_id]
    assert name == f"{app.application_block}-athlete-{athlete_id}"
    application = _document(app.application_block, "strava-application")
    document = _document(name, secrets=True)
    reference = document.block_document_references["application"]["block_document"]
    assert str(reference["id"]) == str(application.id) and reference["name"] == app.application_block
    assert document.data["client_secret"] is None and document.data["client_id"] is None
    assert document.data["athlete_id"] == athlete_id and document.data["status"] == "active"

    # A reference, not a copy: a new secret in the application is what the athlete block loads.
    new = StravaApplication.load(app.application_block)
    new.client_secret = SecretStr("rotated-application-secret")
    new.save(app.application_block, overwrite=True)
    loaded = athlete_credentials(app, athlete_id)
    assert loaded.application is not None
    assert loaded.application.client_secret.get_secret_value() == "rotated-application-secret"
    assert (loaded.token_url, loaded.api_url) == (f"{app.emu.base_url}/oauth/token", f"{app.emu.base_url}/api/v3")


def test_token_rotation_saves_the_athlete_block_only(app: Roster) -> None:
    athlete_id = app.athlete_ids[2]
    before_app = _document(app.application_block, "strava-application")
    before = athlete_credentials(app, athlete_id).refresh_token.get_secret_value()
    credentials = athlete_credentials(app, athlete_id)
    with athlete_http_client(credentials) as http:
        assert http.get("/athlete").json()["id"] == athlete_id
    rotated = app.emu.for_athlete(athlete_id).current_refresh_token
    assert rotated != before
    assert athlete_credentials(app, athlete_id).refresh_token.get_secret_value() == rotated
    after_app = _document(app.application_block, "strava-application")
    assert after_app.updated == before_app.updated  # the application document was not written
    # The other athletes' tokens are untouched.
    other = app.athlete_ids[0]
    assert athlete_credentials(app, other).refresh_token.get_secret_value() == (
        app.emu.for_athlete(other).current_refresh_token
    )


def test_an_unsaved_application_is_never_copied_into_an_athlete_block() -> None:
    application = StravaApplication(client_id="1", client_secret=SecretStr("app-secret"))
    athlete = StravaCredentials(application=application, refresh_token=SecretStr("t"), athlete_id=5)
    with pytest.raises(ValueError, match="Save the StravaApplication block first"):
        athlete.save(f"orphan-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ValueError, match="before adding athletes"):
        application.athlete_block_name(5)


def test_credentials_need_a_client_or_an_application_and_never_both_secrets() -> None:
    with pytest.raises(ValidationError, match="client id and client secret"):
        StravaCredentials(refresh_token=SecretStr("t"))
    application = StravaApplication(client_id="1", client_secret=SecretStr("s"))
    with pytest.raises(ValidationError, match="holds no client secret of its own"):
        StravaCredentials(application=application, client_secret=SecretStr("s"), refresh_token=SecretStr("t"))
    with pytest.raises(ValidationError, match="limits"):
        StravaApplication(client_id="1", client_secret=SecretStr("s"), read_limits=(1000, 100))
    # The single-block setup is unchanged.
    single = StravaCredentials(client_id="1", client_secret=SecretStr("s"), refresh_token=SecretStr("t"))
    assert single.application is None and single.status == "active"


def test_the_application_speaks_for_client_credential_calls() -> None:
    application = StravaApplication(
        client_id="77", client_secret=SecretStr("app-secret"), base_url="http://emu:1/api/v3/", timeout_seconds=5
    )
    assert application.client_credentials() == {"client_id": "77", "client_secret": "app-secret"}
    assert "app-secret" not in repr(application)
    with api_client(application) as http:
        assert str(http.base_url) == "http://emu:1/api/v3/"
        assert http.timeout.read == 5


# --------------------------------------------------------------------------- revocation


def test_a_revoked_athlete_is_marked_and_its_run_fails_clearly_while_the_others_load(
    app: Roster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import blocks.strava

    monkeypatch.setattr(blocks.strava, "_utcnow", lambda: REVOKED_AT)
    revoked, other = app.athlete_ids[0], app.athlete_ids[1]
    app.emu.for_athlete(revoked).revoke_refresh_token()

    with pytest.raises(AthleteRevoked) as info:
        app.run(revoked)
    message = str(info.value)
    assert f"athlete {revoked}'s authorisation was revoked" in message
    assert f"strava-elt auth --application {app.application_block}" in message
    assert app.emu.client_secret not in message
    block = athlete_credentials(app, revoked)
    assert (block.status, block.revoked_at) == ("revoked", REVOKED_AT.isoformat())
    assert block.revoked_reason and "refresh token" in block.revoked_reason
    entry = roster.find_athlete(app.application_block, revoked)
    assert entry is not None and not entry.active and entry.revoked_at == REVOKED_AT.isoformat()

    # A revoked block spends nothing: the next run fails before any request.
    requests = app.emu.request_count()
    with pytest.raises(AthleteRevoked, match="was revoked on 2026-11-02T06:30:00"):
        app.run(revoked)
    assert app.emu.request_count() == requests

    # Another athlete of the application is not affected.
    assert app.run(other)["inserted"] == len(app.emu.for_athlete(other).activities)

    # Authorising again (what `strava-elt auth --application` does) re-activates it.
    view = app.emu.for_athlete(revoked)
    application = StravaApplication.load(app.application_block)
    credentials, _ = authorize_athlete(application, view.authorization_code())
    roster.reactivate(app.athlete_blocks[revoked], credentials.refresh_token.get_secret_value())
    entry = roster.find_athlete(app.application_block, revoked)
    assert entry is not None and (entry.status, entry.revoked_at, entry.revoked_reason) == ("active", None, None)
    assert app.run(revoked)["inserted"] == len(view.activities)


def test_a_rejected_client_secret_marks_no_athlete(app: Roster) -> None:
    import pickle

    from tasks.strava.errors import RefreshTokenRejected

    wrong = StravaApplication.load(app.application_block)
    wrong.client_secret = SecretStr("not-the-secret")
    wrong.save(app.application_block, overwrite=True)
    athlete_id = app.athlete_ids[0]
    with pytest.raises(RefreshTokenRejected) as info, athlete_http_client(athlete_credentials(app, athlete_id)) as http:
        http.get("/athlete")
    assert type(info.value) is RefreshTokenRejected and info.value.blames_client
    assert "client secret" in str(info.value) and "not-the-secret" not in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).fields == ("client_secret",)
    assert athlete_credentials(app, athlete_id).status == "active"  # the application is wrong, not the athlete


def test_a_single_block_with_a_rejected_token_is_not_marked(tmp_path: Path) -> None:
    from emulator import StravaEmulator

    with StravaEmulator(activities=5, seed=1) as emu:
        name = f"single-{uuid.uuid4().hex[:8]}"
        StravaCredentials(
            client_id=emu.client_id,
            client_secret=SecretStr(emu.client_secret),
            refresh_token=SecretStr(emu.current_refresh_token),
            base_url=emu.base_url,
        ).save(name)
        emu.revoke_refresh_token()
        credentials = load_block(StravaCredentials, name)
        with pytest.raises(Exception) as info, athlete_http_client(credentials) as http:
            http.get("/athlete")
        assert type(info.value).__name__ == "RefreshTokenRejected"
        assert load_block(StravaCredentials, name).status == "active"


# --------------------------------------------------------------------------- roster


def test_the_roster_lists_the_applications_athletes_sorted(app: Roster, tmp_path: Path) -> None:
    # Another application's athlete, and a single block, are not in this roster.
    other_app = save_application(app.emu, f"other-{uuid.uuid4().hex[:8]}")
    credentials, _ = authorize_athlete(other_app, app.emu.for_athlete(app.athlete_ids[0]).authorization_code("x-1"))
    credentials.save(other_app.athlete_block_name(app.athlete_ids[0]))

    entries = roster.list_roster(app.application_block)
    assert [e.athlete_id for e in entries] == sorted(app.athlete_ids)
    assert [e.block_name for e in entries] == [app.athlete_blocks[i] for i in sorted(app.athlete_ids)]
    assert all(e.active and e.revoked_at is None for e in entries)
    assert asyncio.run(roster.alist_roster(app.application_block)) == entries
    assert [e.athlete_id for e in roster.list_roster(str(other_app.block_name))] == [app.athlete_ids[0]]

    async def webhook_handler() -> None:  # under an event loop, as a webhook receiver calls it
        roster.mark_revoked(app.athlete_blocks[app.athlete_ids[2]], "deauthorised (webhook)", REVOKED_AT)

    asyncio.run(webhook_handler())
    athlete = app.emu.for_athlete(app.athlete_ids[2]).athlete
    entry = roster.find_athlete(app.application_block, app.athlete_ids[2])
    assert entry == roster.RosterEntry(
        app.athlete_blocks[app.athlete_ids[2]],
        app.athlete_ids[2],
        "revoked",
        REVOKED_AT.isoformat(),
        "deauthorised (webhook)",
        f"{athlete['firstname']} {athlete['lastname']}",
    )
    # Marking saved the athlete block only: its token and the reference are intact.
    block = athlete_credentials(app, app.athlete_ids[2])
    assert block.application is not None and block.application.block_name == app.application_block
    assert roster.find_athlete(app.application_block, 1) is None
    with pytest.raises(MissingBlockError, match="strava-elt setup application"):
        roster.list_roster("no-such-application")


# --------------------------------------------------------------------------- the commands


def test_setup_application_and_auth_add_and_reactivate_athletes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator import StravaEmulator
    from flows.cli import main

    name = f"club-{uuid.uuid4().hex[:8]}"
    with StravaEmulator(activities=5, seed=9, athletes=2) as emu:
        setup = ["setup", "application", "--name", name, "--client-id", emu.client_id]
        assert main([*setup, "--client-secret", emu.client_secret, "--base-url", emu.base_url]) == 0
        first, second = emu.athlete_ids
        for athlete_id in (first, second):
            code = emu.for_athlete(athlete_id).authorization_code()
            assert main(["auth", "--application", name, "--code", code]) == 0
        out = capsys.readouterr().out
        assert f"{emu.base_url}/oauth/authorize?client_id={emu.client_id}&response_type=code" in out
        assert f"(id {second}) to application {name!r}: block '{name}-athlete-{second}'" in out
        # How to schedule the round instead of weekly: the switch prefect.yaml has (tests/test_deploy_variants.py).
        assert "`active: false` under definitions.weekly_schedule" in out
        assert "`active: true` under definitions.round_schedule" in out
        assert emu.client_secret not in out and emu.for_athlete(first).current_refresh_token not in out
        assert [e.athlete_id for e in roster.list_roster(name)] == sorted((first, second))
        assert load_block(StravaCredentials, f"{name}-athlete-{first}").client_secret is None

        # Setting the application up again keeps its document: the athletes still reference it.
        assert main([*setup, "--client-secret", "new-secret", "--base-url", emu.base_url]) == 0
        block = load_block(StravaCredentials, f"{name}-athlete-{first}")
        assert block.application is not None and block.application.client_secret.get_secret_value() == "new-secret"
        assert main([*setup, "--client-secret", emu.client_secret, "--base-url", emu.base_url]) == 0

        roster.mark_revoked(f"{name}-athlete-{first}", "Strava rejected the refresh token", REVOKED_AT)
        capsys.readouterr()
        code = emu.for_athlete(first).authorization_code("again")
        assert main(["auth", "--application", name, "--code", code]) == 0
        assert f"(id {first}) re-activated in application {name!r}" in capsys.readouterr().out
        block = load_block(StravaCredentials, f"{name}-athlete-{first}")
        assert (block.status, block.revoked_at, block.revoked_reason) == ("active", None, None)
        assert block.refresh_token.get_secret_value() == emu.for_athlete(first).current_refresh_token

        # A bad code says what is wrong; the single-block auth still needs its client id.
        assert main(["auth", "--application", name, "--code", "no-such-code"]) == 1
        assert "authorisation code" in capsys.readouterr().err
        assert main(["auth", "--application", "no-such-app", "--code", "x"]) == 1
        assert "No Strava Application block named 'no-such-app'" in capsys.readouterr().err


def test_athletes_lists_status_watermark_and_last_run(app: Roster, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from flows.cli import main

    loaded, revoked, idle = app.athlete_ids
    summary = app.run(loaded)
    roster.mark_revoked(app.athlete_blocks[revoked], "Strava rejected the refresh token", REVOKED_AT)

    args = ["athletes", "--application", app.application_block, "--warehouse-block", app.warehouse_block]
    assert main(args) == 0
    out = capsys.readouterr().out
    ids = {str(i) for i in app.athlete_ids}
    lines = {int(line.split()[0]): line for line in out.splitlines() if line.split()[0] in ids}
    assert set(lines) == set(app.athlete_ids)
    assert summary["watermark"].replace("+00:00", "Z") in lines[loaded] and "Completed" in lines[loaded]
    assert " revoked " in lines[revoked] and " active " in lines[idle]
    assert lines[idle].split()[3:] == ["-", "-", "-"]  # no watermark, no load, no run
    assert f"athlete {revoked} revoked at {REVOKED_AT.isoformat()}: Strava rejected the refresh token" in out
    assert f"1 revoked: runs skip them until `strava-elt auth --application {app.application_block}`" in out

    assert main([*args, "--json"]) == 0
    rows = {row["athlete_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[loaded]["block"] == app.athlete_blocks[loaded]
    assert rows[loaded]["last_run"].startswith("Completed ") and rows[loaded]["last_loaded"]
    assert rows[revoked]["status"] == "revoked" and rows[revoked]["revoked_at"] == REVOKED_AT.isoformat()


def test_subscription_calls_use_the_blocks_client_credentials_and_deadline() -> None:
    from emulator import StravaEmulator
    from tasks.strava.subscriptions import BadApplicationCredentials, list_subscriptions

    with StravaEmulator(activities=[3], seed=7) as emu:
        application = StravaApplication(
            client_id="12345", client_secret=SecretStr("emulator-secret"), base_url=emu.base_url
        )
        single = StravaCredentials(
            client_id="12345",
            client_secret=SecretStr("emulator-secret"),
            refresh_token=SecretStr("t"),
            base_url=emu.base_url,
        )
        athlete = StravaCredentials(application=application, refresh_token=SecretStr("t"))
        assert list_subscriptions(application) == list_subscriptions(single) == list_subscriptions(athlete) == []
        wrong = StravaApplication(client_id="12345", client_secret=SecretStr("not-it"), base_url=emu.base_url)
        with pytest.raises(BadApplicationCredentials) as info:
            list_subscriptions(wrong)
        assert "not-it" not in str(info.value)
