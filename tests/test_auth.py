"""`strava-elt auth`: authorize URL, code exchange with the emulator, scope check, block saved, no secret shown."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from blocks import StravaCredentials
from blocks.loading import MissingBlockError, load_block
from blocks.strava import authorize_url, parse_authorization_response
from emulator import StravaEmulator
from flows.cli import main
from tasks.strava.auth import check_scope
from tasks.strava.errors import ForbiddenError
from tests.conftest import Env

HEX_TOKEN = re.compile(r"\b[0-9a-f]{40}\b")


@pytest.fixture
def emu() -> Iterator[StravaEmulator]:
    with StravaEmulator(activities=20, seed=3) as emulator:
        yield emulator


@pytest.fixture
def block_name() -> str:
    return f"strava-auth-{uuid.uuid4().hex[:8]}"


def auth_args(emu: StravaEmulator, block: str, *extra: str) -> list[str]:
    return [
        "auth",
        "--client-id",
        emu.client_id,
        "--client-secret",
        emu.client_secret,
        "--base-url",
        emu.base_url,
        "--block",
        block,
        *extra,
    ]


def assert_no_secrets(text: str, emu: StravaEmulator) -> None:
    assert emu.client_secret not in text
    assert not HEX_TOKEN.search(text)  # the emulator's tokens, like Strava's, are 40 hex digits


# --- helpers -------------------------------------------------------------------------------


def test_authorize_url_is_stravas() -> None:
    assert authorize_url("12345") == (
        "https://www.strava.com/oauth/authorize?client_id=12345&response_type=code"
        "&redirect_uri=http://localhost/exchange_token&approval_prompt=force&scope=read,activity:read_all"
    )
    custom = authorize_url("7", redirect_uri="http://127.0.0.1:8080/cb", base_url="http://emu:1/")
    assert custom.startswith("http://emu:1/oauth/authorize?client_id=7&")
    assert "redirect_uri=http://127.0.0.1:8080/cb&" in custom


def test_parse_code_or_redirect_url() -> None:
    assert parse_authorization_response("  abc123 \n") == ("abc123", None)
    url = "http://localhost/exchange_token?state=&code=abc123&scope=read,activity:read_all"
    assert parse_authorization_response(url) == ("abc123", "read,activity:read_all")
    assert parse_authorization_response("code=abc123&scope=read") == ("abc123", "read")
    with pytest.raises(ValueError, match="error='access_denied'"):
        parse_authorization_response("http://localhost/exchange_token?state=&error=access_denied")
    with pytest.raises(ValueError, match="no code"):
        parse_authorization_response("http://localhost/exchange_token?state=&scope=read")
    with pytest.raises(ValueError, match="No authorization code"):
        parse_authorization_response("   ")


def test_scope_check() -> None:
    check_scope(None)  # unknown: nothing to check
    check_scope("read,activity:read_all")
    check_scope("activity:read_all")
    for granted in ("read", "read,activity:read", ""):
        with pytest.raises(ForbiddenError, match="without activity:read_all"):
            check_scope(granted)


# --- the command, against the emulator -----------------------------------------------------


def test_auth_with_code_argument_saves_a_working_block(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    emu = env.emu
    code = emu.authorization_code("first-code")
    assert main(auth_args(emu, env.strava_block, "--code", code)) == 0
    out, err = capsys.readouterr()
    assert f"{emu.base_url}/oauth/authorize?client_id={emu.client_id}&response_type=code" in out
    athlete = emu.athlete
    assert f"for athlete {athlete['firstname']} {athlete['lastname']} (id {athlete['id']})" in out
    assert_no_secrets(out + err, emu)
    saved = load_block(StravaCredentials, env.strava_block)
    assert saved.refresh_token.get_secret_value() == emu.current_refresh_token
    assert saved.base_url == emu.base_url and saved.client_id == emu.client_id
    # The old refresh token was replaced by the exchange; the pipeline runs on the new block.
    summary = env.run()
    assert summary["inserted"] == len(emu.activities)
    assert load_block(StravaCredentials, env.strava_block).refresh_token.get_secret_value() == emu.current_refresh_token


def test_auth_prompts_for_the_redirect_url(
    emu: StravaEmulator, block_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = emu.authorization_code("pasted-code")
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return f"http://localhost/exchange_token?state=&code={code}&scope=read,activity:read_all\n"

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(auth_args(emu, block_name, "--redirect-uri", "http://127.0.0.1:9/cb")) == 0
    out, err = capsys.readouterr()
    assert prompts == ["3. Paste the code (or the whole address): "]
    assert "redirect_uri=http://127.0.0.1:9/cb&" in out
    assert_no_secrets(out + err, emu)
    assert load_block(StravaCredentials, block_name).refresh_token.get_secret_value() == emu.current_refresh_token


def test_auth_refuses_a_grant_without_activity_read_all(
    emu: StravaEmulator, block_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.authorization_code("narrow")
    monkeypatch.setattr("builtins.input", lambda _="": "http://localhost/exchange_token?code=narrow&scope=read")
    assert main(auth_args(emu, block_name)) == 1
    _, err = capsys.readouterr()
    assert "granted the scope 'read' without activity:read_all" in err
    assert emu.request_count("/oauth/token") == 0  # refused before the code was spent
    with pytest.raises(MissingBlockError):
        load_block(StravaCredentials, block_name)


def test_auth_with_a_bad_code_says_what_to_do(
    emu: StravaEmulator, block_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(auth_args(emu, block_name, "--code", "never-issued")) == 1
    out, err = capsys.readouterr()
    assert "Strava rejected the authorisation code (expired or already used)" in err
    assert "strava-elt auth" in err
    assert_no_secrets(out + err, emu)
