"""The command line's conventions, through the installed entry point where it matters.

``--version``; a description and examples in every subcommand's ``--help``; ``--json`` output;
one line per error (the traceback only with ``--debug``) naming the fix that works; no Prefect
queue noise after a successful command; live progress on a terminal only; ``deploy-local``'s
order; ``python flows/pipeline.py --help``; ``demo --athletes`` saying where to look.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow, get_run_logger

from flows.cli import build_parser, main
from flows.cli.app import describe_error
from flows.cli.console import EPHEMERAL_TIMEOUT_ENV, RUN_LOGGERS, Progress, prepare_environment, progress
from tests.conftest import Env

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINT = Path(sys.executable).parent / "strava-elt"


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess talking to this session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra


def strava_elt(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``strava-elt`` console script."""
    return subprocess.run(
        [str(ENTRY_POINT), *args], capture_output=True, text=True, timeout=timeout, env=env or command_env(), cwd=REPO
    )


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser: ("run",), ("setup", "local"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name)
                yield from subcommands(child, (*prefix, name))


# --------------------------------------------------------------------------- --version and --help


def test_version_and_every_subcommands_help_has_a_description_and_examples() -> None:
    from importlib.metadata import version

    shown = strava_elt("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"strava-elt {version('strava-elt')}", shown
    paths = list(subcommands(build_parser()))
    assert {("run",), ("setup", "application"), ("webhook", "list"), ("deploy-local",), ("demo",)} <= set(paths)
    assert len(paths) >= 20
    missing = []
    for path in paths:
        done = strava_elt(*path, "--help")
        out = done.stdout
        usage = out.split("\n\n")
        # usage, then the description paragraph, then options ... and the examples at the end.
        if (
            done.returncode != 0
            or len(usage) < 3
            or not usage[1].strip()
            or "strava-elt" not in out.partition("\nexamples:\n  ")[2]
        ):
            missing.append(" ".join(path))
    assert missing == [], f"--help without a description or examples: {missing}"


def test_the_pipeline_script_says_how_it_is_invoked() -> None:
    done = subprocess.run(
        [sys.executable, "flows/pipeline.py", "--help"], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python flows/pipeline.py"), done.stdout
    assert "strava-elt run" not in done.stdout.split("\n\n")[0]
    assert "--full-refresh" in done.stdout and "--lookback-days" in done.stdout and "watermark" in done.stdout


# --------------------------------------------------------------------------- deploy-local


def test_deploy_local_exports_the_api_url_before_the_server_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy-local", "--port", "4321"]) == 0
    out = capsys.readouterr().out
    export = "export PREFECT_API_URL=http://127.0.0.1:4321/api"
    server = "prefect server start --host 127.0.0.1 --port 4321"
    assert -1 < out.find(export) < out.find(server), out
    # What the server then tells its UI: the address exported first (without it: port 4200).
    ask = "from prefect.settings import get_current_settings as s; print(s().server.ui.api_url)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    shell = f"{export}; {sys.executable} -c '{ask}'"
    told = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120, env=env, check=True)
    assert told.stdout.strip() == "http://127.0.0.1:4321/api"
    bare = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, timeout=120, env=env, check=True)
    assert bare.stdout.strip() == "http://127.0.0.1:4200/api"  # the "Can't connect to Server API" of before


# --------------------------------------------------------------------------- errors


def test_the_missing_application_names_setup_application(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "--application", "no-such-application-cli", "--code", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("strava-elt auth: MissingBlockError: No Strava Application"), err
    assert "strava-elt setup application --name NAME" in err and "setup local" not in err


def test_the_temporary_server_timeout_says_what_to_do() -> None:
    error = RuntimeError(
        "Timed out while attempting to connect to ephemeral Prefect API server. stdout: noise\n stderr: more noise"
    )
    line = describe_error(error)
    assert "\n" not in line and "noise" not in line
    assert "`prefect server start`" in line and "PREFECT_API_URL" in line and EPHEMERAL_TIMEOUT_ENV in line


def test_the_temporary_server_gets_a_generous_start_unless_the_user_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv(EPHEMERAL_TIMEOUT_ENV, raising=False)
    prepare_environment()
    assert os.environ[EPHEMERAL_TIMEOUT_ENV] == "180"
    monkeypatch.setenv(EPHEMERAL_TIMEOUT_ENV, "45")
    prepare_environment()
    assert os.environ[EPHEMERAL_TIMEOUT_ENV] == "45"
    monkeypatch.delenv(EPHEMERAL_TIMEOUT_ENV)
    (tmp_path / "profiles.toml").write_text(
        f'active = "mine"\n[profiles.mine]\n{EPHEMERAL_TIMEOUT_ENV} = "90"\n', encoding="utf-8"
    )
    prepare_environment()
    assert EPHEMERAL_TIMEOUT_ENV not in os.environ  # the profile's 90 s stands


def test_a_failed_run_prints_one_line_and_the_traceback_only_with_debug(tmp_path: Path) -> None:
    from tasks.setup import setup_local_blocks

    names = ("cli-missing-strava", "cli-lake", "cli-warehouse")
    setup_local_blocks(tmp_path, names=names)
    args = ["run", "--strava-block", names[0], "--lake-block", names[1], "--warehouse-block", names[2]]
    done = strava_elt(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("strava-elt run: MissingBlockError: No Strava Credentials block named 'cli-missing-strava'")
    assert "strava-elt auth --client-id" in last
    debug = strava_elt(*args, "--debug")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == last


# --------------------------------------------------------------------------- --json, quiet queues


def test_run_json_through_the_entry_point_and_no_queue_noise(env: Env) -> None:
    done = strava_elt(
        "run", "--strava-block", env.strava_block, "--lake-block", env.lake_block,
        "--warehouse-block", env.warehouse_block, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"run_key", "status", "athlete_id", "requests", "pages", "extracted", "inserted", "watermark"} <= set(
        summary
    )
    assert summary["status"] == "complete" and summary["inserted"] == summary["extracted"] == 450
    assert "Still processing items" not in done.stderr, done.stderr
    assert "pages read" not in done.stderr and "in 15 min" not in done.stderr  # a pipe: no live progress


def test_validate_and_webhook_list_print_json(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1", encoding="utf-8")
    block = ["--warehouse-block", env.warehouse_block]
    assert main(["validate", str(script), "0", "greater", "halt", *block, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["value_1"], result["value_2"], result["halts"]) == ("passed", 1, 0, False)
    assert main(["validate", str(script), "5", "greater", "halt", *block, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["halts"] is True
    assert main(["webhook", "list", "--application", env.strava_block, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# --------------------------------------------------------------------------- live progress


@flow(name="cli-progress-probe")
def progress_probe() -> None:
    """Log what an extract logs: the athlete, two pages, a rate-limit wait, the totals."""
    logger = get_run_logger()
    logger.info("Athlete %s: watermark %s, reading activities started after %s", 7, "none", "1970-01-01")
    left = "Page %s: %s activities; requests left: %s in this 15-minute window, %s today"
    logger.info(left, 1, 200, 0, 998)
    logger.warning("Strava rate limit: %s", "15-minute read limit spent; waiting 540 s until 12:15:00 UTC")
    logger.info(left, 2, 37, 99, 997)
    logger.info("Extracted %s activities in %s pages with %s API requests", 237, 2, 3)


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_is_one_updating_line() -> None:
    controller, terminal = os.openpty()
    stream = os.fdopen(terminal, "w")
    try:
        with progress(stream) as handler:
            assert isinstance(handler, Progress)
            progress_probe()
        shown = _read_all(controller)
    finally:
        stream.close()
        os.close(controller)
    frames = [frame for frame in shown.split("\r\x1b[K") if frame.strip()]
    assert "strava-elt: athlete 7, 1 pages read, 200 activities, requests left 0 in 15 min, 998 today" in frames
    assert any("waiting until 12:15 UTC for the rate limit" in f for f in frames), frames
    assert (
        frames[-1].strip()
        == "strava-elt: athlete 7, 2 pages read, 237 activities, requests left 99 in 15 min, 997 today"
    )
    assert shown.endswith("\n")  # the line is ended: what follows starts on its own
    assert not any(isinstance(h, Progress) for name in RUN_LOGGERS for h in logging.getLogger(name).handlers)


_RUN_FRAME = re.compile(
    r"^strava-elt: athlete (\d+), (\d+) pages read, (\d+) activities, requests left (\d+) in 15 min, (\d+) today$"
)


def test_a_run_against_the_emulator_shows_pages_activities_and_requests_left_on_a_terminal(env: Env) -> None:
    controller, terminal = os.openpty()
    stream = os.fdopen(terminal, "w")
    try:
        with progress(stream):
            summary = env.run()
        shown = _read_all(controller)
    finally:
        stream.close()
        os.close(controller)
    frames = [frame.strip() for frame in shown.split("\r\x1b[K") if frame.strip()]
    # the athlete (before any page), then one frame per page (200, 200, 50) and one for the totals
    athlete = env.emu.athlete["id"]
    assert frames[0] == f"strava-elt: athlete {athlete}, 0 pages read, 0 activities", frames
    runs = [m for f in frames[1:] if (m := _RUN_FRAME.match(f))]
    assert len(runs) == len(frames) - 1 == 4, frames
    assert {m.group(1) for m in runs} == {str(athlete)}
    assert [(int(m.group(2)), int(m.group(3))) for m in runs] == [(1, 200), (2, 400), (3, 450), (3, 450)]
    short = [int(m.group(4)) for m in runs]
    daily = [int(m.group(5)) for m in runs]
    # read from the emulator's headers (read budget 100 per 15 minutes, 1000 a day): each page spends one
    assert short[0] < 100 and daily[0] < 1000, frames
    assert short[:3] == [short[0], short[0] - 1, short[0] - 2] and daily[:3] == [daily[0], daily[0] - 1, daily[0] - 2]
    assert summary["status"] == "complete"


def test_demo_on_a_terminal_shows_the_progress_of_both_runs(tmp_path: Path) -> None:
    """Through the entry point, stderr a pty: the demo quiets Prefect's INFO logs, the line still shows."""
    controller, terminal = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    demo = [str(ENTRY_POINT), "demo", "--activities", "450", "--home", str(tmp_path)]
    with subprocess.Popen(demo, stdout=subprocess.PIPE, stderr=terminal, env=env, cwd=REPO) as process:
        os.close(terminal)
        chunks = []
        while True:
            if select.select([controller], [], [], 1)[0]:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        process.wait(timeout=300)
    os.close(controller)
    shown = b"".join(chunks).decode()
    assert process.returncode == 0, shown
    frames = [frame.strip() for frame in shown.split("\r\x1b[K") if frame.strip()]
    runs = [m for f in frames if (m := _RUN_FRAME.match(f))]
    pages = [(int(m.group(2)), int(m.group(3))) for m in runs]
    # the first run reads 3 pages (the line shows each), the second the new and changed ones
    assert pages[:3] == [(1, 200), (2, 400), (3, 450)], frames
    assert len({m.group(1) for m in runs}) == 1 and len(runs) >= 5, frames
    assert "Page 1:" not in shown  # the INFO lines gave way to the line


def test_progress_stays_quiet_without_a_terminal() -> None:
    stream = io.StringIO()
    with progress(stream) as handler:
        assert handler is None
        assert not any(isinstance(h, Progress) for name in RUN_LOGGERS for h in logging.getLogger(name).handlers)
        progress_probe()
    assert stream.getvalue() == ""


# --------------------------------------------------------------------------- demo --athletes


def test_demo_with_athletes_says_where_to_look_and_the_command_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false"
    }
    home = tmp_path / "demo"
    done = strava_elt("demo", "--athletes", "2", "--activities", "60", "--home", str(home), "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)  # the story went to stderr
    assert "Demo succeeded." in done.stderr
    prefect_home = home / "prefect"
    assert report["prefect_home"] == str(prefect_home) and (prefect_home / "prefect.db").is_file()
    assert report["blocks"]["application"] == "strava-demo-app" and len(report["blocks"]["athletes"]) == 2
    assert report["index_page"].startswith("file://") and (home / "lake" / "index.html").is_file()
    for shown in (f"Prefect home: {prefect_home}", f"Index page: {report['index_page']}", report["look_inside"]):
        assert shown in done.stderr
    assert report["look_inside"].startswith(f"PREFECT_HOME={prefect_home} strava-elt athletes --application")
    looked = subprocess.run(
        ["bash", "-c", report["look_inside"] + " --json"],
        capture_output=True, text=True, timeout=300, env=env | {"PATH": f"{ENTRY_POINT.parent}:{env['PATH']}"},
    )  # fmt: skip
    assert looked.returncode == 0, looked.stderr
    rows = json.loads(looked.stdout)
    assert sorted(row["block"] for row in rows) == sorted(report["blocks"]["athletes"])
    assert all(row["status"] == "active" and row["watermark"] for row in rows), rows
    assert re.match(r"^\d{4}-\d\d-\d\dT", rows[0]["watermark"])
