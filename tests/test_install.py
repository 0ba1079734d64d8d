"""A plain install: the wheel holds every SQL file and asset, and runs from outside the checkout.

The module builds the wheel with this virtualenv's pip (``pip wheel --no-deps``: build
isolation fetches setuptools from the package index, as any ``pip install .`` does) and
installs it, non-editable, into a fresh virtualenv in a tmp folder. The fresh virtualenv sees
this one's site-packages through a ``.pth`` line, for the dependencies only: ``.pth`` files
inside a directory added that way are not processed, so the checkout's editable finder does
not leak in, and the test checks that ``tasks`` really comes from the fresh install. Then
``strava-elt demo`` runs from another folder against the emulator and this session's
Prefect server: every model is built and the dashboard is written.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.request import url2pathname

import duckdb
import pytest
import yaml
from install_support import commented_variant, fresh_venv

import flows
import tasks.warehouse as wh

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[1]
DATA_SUFFIXES = {".sql", ".toml"}
SOURCE_IGNORED = (".git", ".venv", "build", "dist", "*.egg-info", ".strava-elt", "__pycache__", "*_cache")


@dataclass
class Installed:
    """The wheel and the fresh virtualenv it is installed in."""

    wheel: Path
    venv: Path
    tmp: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("install")
    # Built from a copy: pip builds in the source tree, and a stale build/ there could leak into the wheel.
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SOURCE_IGNORED))
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("strava_elt-*.whl")
    venv = tmp / "venv"
    python = fresh_venv(venv)  # the dependencies (and pip) from this virtualenv, never its strava-elt
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--ignore-installed",
            str(wheel),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    yield Installed(wheel=wheel, venv=venv, tmp=tmp)


def test_the_wheel_holds_every_sql_file_manifest_and_asset(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    data = [p for p in (REPO / "sql").rglob("*") if p.suffix in DATA_SUFFIXES]
    assets = [p for p in (REPO / "tasks" / "insight" / "assets").iterdir() if p.is_file()]
    assert len(data) > 20 and "sql/validation/checks.toml" in names
    missing = [str(p.relative_to(REPO)) for p in data + assets if str(p.relative_to(REPO)) not in names]
    assert missing == []
    packages = {name.split("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert packages == set(flows.PACKAGES)


def test_the_installed_package_is_imported_from_the_fresh_virtualenv(installed: Installed) -> None:
    probe = installed.run(
        "python", "-c", "import sql, tasks, tasks.warehouse as wh; print(tasks.__file__); print(wh.SQL_DIR)",
        cwd=installed.tmp,
    )  # fmt: skip
    tasks_file, sql_dir = (Path(line) for line in probe.stdout.splitlines())
    assert tasks_file.is_relative_to(installed.venv), tasks_file
    assert sql_dir.is_relative_to(installed.venv) and (sql_dir / "validation" / "checks.toml").is_file()
    # The checkout's SQL (this session's import) comes from the checkout instead.
    assert wh.SQL_DIR == REPO / "sql"


def test_the_demo_runs_from_another_folder_and_builds_every_model(installed: Installed) -> None:
    from prefect.settings import PREFECT_API_URL

    elsewhere = installed.tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "STRAVA_ELT_"))}
    env |= {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # this session's test server
        "PREFECT_HOME": str(installed.tmp / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    home = installed.tmp / "demo"
    out = installed.run("strava-elt", "demo", "--activities", "250", "--home", str(home), cwd=elsewhere, env=env).stdout
    assert "Demo succeeded." in out, out
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        tables = {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        built = {wh.model_name(p) for p in wh.model_files()}
        assert built <= tables, built - tables
        months = conn.execute("SELECT count(*) FROM activity_summary_monthly").fetchone()
        assert months is not None and months[0] > 0
    # The printed way to look inside works with what is installed (no duckdb CLI needed).
    hint = re.search(r"^   look inside: (.+)$", out, re.MULTILINE)
    assert hint and hint.group(1).startswith(str(installed.python)), out
    shown = subprocess.run(["bash", "-c", hint.group(1)], capture_output=True, text=True, timeout=60, check=True)
    assert "5 rows" in shown.stdout and "athlete_id" in shown.stdout, shown.stdout
    match = re.search(r"^Dashboard: file://(\S+)$", out, re.MULTILINE)
    assert match, out
    dashboard = Path(url2pathname(match.group(1)))
    assert dashboard.is_relative_to(home) and "<canvas" in dashboard.read_text(encoding="utf-8")
    assert not (elsewhere / ".strava-elt").exists() and list(elsewhere.iterdir()) == []


def test_a_shadowing_tasks_package_in_the_working_directory_is_refused_by_name(installed: Installed) -> None:
    project = installed.tmp / "my-prefect-project"
    (project / "tasks").mkdir(parents=True)
    (project / "tasks" / "__init__.py").write_text('"""Somebody else\'s tasks."""\n')
    done = subprocess.run(
        [str(installed.python), "-c", "import flows.pipeline"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "ShadowedPackageError: strava-elt's package 'tasks' is imported from " in done.stderr, done.stderr
    assert str(project / "tasks" / "__init__.py") in done.stderr and "docs/deploy.md" in done.stderr


def test_without_the_kudos_extra_retrain_and_predict_name_it(installed: Installed, tmp_path: Path) -> None:
    # The fresh virtualenv without scikit-learn: a None in sys.modules makes its import fail
    # exactly as a missing package does (ModuleNotFoundError for 'sklearn').
    script = """
import sys
sys.modules["sklearn"] = None
from flows.cli import main
from flows.kudos import KudosExtraMissing, retrain_kudos_model
try:
    retrain_kudos_model.fn()
except KudosExtraMissing as exc:
    print("retrain:", exc)
sys.exit(main(["predict-kudos", "--distance", "10", "--sport-type", "Run"]))
"""
    done = subprocess.run(
        [str(installed.python), "-c", script], cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    extra = "pip install 'strava-elt[kudos]'"
    assert done.stdout.startswith("retrain: The kudos model needs scikit-learn") and extra in done.stdout, done.stdout
    assert "strava-elt predict-kudos: KudosExtraMissing:" in done.stderr and extra in done.stderr, done.stderr


def test_the_dockerfile_installs_the_project_as_the_docker_variant_expects(tmp_path: Path) -> None:
    """No Docker daemon here: the image's install commands run in a fresh virtualenv instead."""
    lines = [line.split(" ", 1) for line in (REPO / "Dockerfile").read_text().splitlines() if line[:1].isupper()]
    image, workdir = next(v for k, v in lines if k == "FROM"), next(v for k, v in lines if k == "WORKDIR")
    assert image == "prefecthq/prefect:3.9.1-python3.11"  # prefect.yaml's prefect-version, the pinned minor
    variant = yaml.safe_load(commented_variant((REPO / "prefect.yaml").read_text(), "docker"))
    [pull] = variant["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == workdir
    # The image is built from this Dockerfile beforehand (`docker build`) and named in the pool's job variables.
    assert variant["build"] is None and variant["push"] is None
    assert "docker build -t YOUR-REGISTRY/strava-elt:latest ." in (REPO / "prefect.yaml").read_text()

    ignored = [p.strip().removeprefix("**/") for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip()]
    context = tmp_path / workdir.strip("/")
    shutil.copytree(REPO, context, ignore=shutil.ignore_patterns(*ignored))  # COPY . .
    python = fresh_venv(tmp_path / "venv")
    for kind, command in lines:
        if kind == "RUN":
            argv = shlex.split(command)
            assert argv[0] == "python"
            subprocess.run([str(python), *argv[1:]], cwd=context, check=True, capture_output=True, timeout=300)
    probe = subprocess.run(
        [str(python), "-c", "import flows.pipeline, tasks.warehouse as wh; print(wh.SQL_DIR)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    sql_dir = Path(probe.stdout.strip())
    assert sql_dir.is_relative_to(tmp_path / "venv") and (sql_dir / "validation" / "checks.toml").is_file()
