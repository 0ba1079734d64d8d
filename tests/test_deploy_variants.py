"""prefect.yaml's variants deployed to a real Prefect server, read back from its API.

Each variant is made from prefect.yaml exactly as its comments and docs/deploy.md say (the
commented sections uncommented, the pool renamed), deployed with ``prefect --no-prompt deploy
--all`` to the end-to-end modules' shared ``prefect server start``, emptied first
(tests/prefect_server_support.py), and every
deployment's job variables and schedules are read back the way a worker would get them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from install_support import commented_variant
from prefect_server_support import REPO, PrefectServer, fresh_server, run_command

pytestmark = pytest.mark.e2e

PREFECT_YAML = (REPO / "prefect.yaml").read_text()
NAMES = {d["name"] for d in yaml.safe_load(PREFECT_YAML)["deployments"]}
# What each deployment sets in its own env, on top of the pool section's.
OWN_ENV = {
    "weekly": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "14400", "STRAVA_ELT_FLOW_RETRIES": "1"},
    "backfill": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "14400", "STRAVA_ELT_FLOW_RETRIES": "1"},
    "athlete": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "14400", "STRAVA_ELT_FLOW_RETRIES": "1"},
    "weekly-all": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "86400"},
    "retrain-kudos-model": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "1800"},
    "react": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "3600"},
    "enrich": {"STRAVA_ELT_FLOW_TIMEOUT_SECONDS": "840"},
}
POOL_ENV = {"PYTHONUNBUFFERED": "1"}
IMAGE = "registry.example.test/strava-elt:1.2.3"
PACKAGE = "strava-elt[postgres,redshift,kudos] @ git+https://git.example.test/strava-elt.git@main"
# A prefect:managed pool's job variables (Prefect Cloud's own template cannot be made on a local
# server, whose CLI knows no such type): the ones the managed variant sets, typed as Cloud does.
MANAGED_TEMPLATE: dict[str, Any] = {
    "job_configuration": {"env": "{{ env }}", "image": "{{ image }}", "pip_packages": "{{ pip_packages }}"},
    "variables": {
        "type": "object",
        "properties": {
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "image": {"type": "string"},
            "pip_packages": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def with_pool_lines(prefect_yaml: str, variant: str) -> str:
    """prefect.yaml with the pool-section lines marked ``# <variant> variant`` uncommented."""
    marker = f"# {variant} variant"
    lines = []
    for line in prefect_yaml.splitlines(True):
        if line.rstrip().endswith(marker) and line.lstrip().startswith("# "):
            line = line.replace("# ", "", 1)
        lines.append(line)
    return "".join(lines)


def variant(name: str, pool: str) -> str:
    """prefect.yaml's ``name`` variant, as its comments say: sections replaced, pool lines uncommented, pool renamed."""
    steps = commented_variant(PREFECT_YAML, name)
    head = PREFECT_YAML[: PREFECT_YAML.index("build:")]
    rest = PREFECT_YAML[PREFECT_YAML.index("definitions:") :]
    text = head + steps + "\n" + with_pool_lines(rest, "docker" if name == "docker" else "managed")
    assert text.count("    name: strava-elt-pool\n") == 1
    return text.replace("    name: strava-elt-pool\n", f"    name: {pool}\n")


@dataclass
class Server:
    api: str
    env: dict[str, str]
    tmp: Path
    http: httpx.Client

    def deploy(self, prefect_yaml: str, file_name: str) -> str:
        """``prefect --no-prompt deploy --all`` of ``prefect_yaml``, from the repository root; its output."""
        path = self.tmp / file_name
        path.write_text(prefect_yaml)
        done = run_command(self.env, "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(path))
        return done.stdout + done.stderr

    def deployments(self, pool: str) -> dict[str, dict[str, Any]]:
        """The deployments of ``pool``, by deployment name, as the API returns them."""
        body = {"work_pools": {"name": {"any_": [pool]}}}
        response = self.http.post("/deployments/filter", json=body)
        response.raise_for_status()
        return {d["name"]: d for d in response.json()}


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """Override conftest's session-wide test harness: this module uses the shared server."""
    yield


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_prefect_server: PrefectServer) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("variants")
    running = fresh_server(shared_prefect_server, tmp / "prefect-home")
    env = running.env | {"PREFECT_CLI_WRAP_LINES": "false", "COLUMNS": "240"}
    with httpx.Client(base_url=running.api, timeout=30) as http:
        yield Server(api=running.api, env=env, tmp=tmp, http=http)


def _assert_job_variables(deployments: dict[str, dict[str, Any]], pool_part: dict[str, Any]) -> None:
    assert set(deployments) == NAMES
    for name, deployment in deployments.items():
        expected = pool_part | {"env": POOL_ENV | OWN_ENV[name]}
        assert deployment["job_variables"] == expected, name


def test_the_docker_variant_gives_every_deployment_the_image_and_both_envs(server: Server) -> None:
    """Docker: an image built and pushed beforehand, no build step, a docker-type pool."""
    run_command(server.env, "prefect", "work-pool", "create", "--type", "docker", "strava-elt-docker")
    text = variant("docker", "strava-elt-docker").replace("YOUR-REGISTRY/strava-elt:latest", IMAGE)
    assert f"image: {IMAGE}  # docker variant" in text
    out = server.deploy(text, "prefect-docker.yaml")
    assert "FutureWarning" not in out, out
    deployments = server.deployments("strava-elt-docker")
    _assert_job_variables(deployments, {"image": IMAGE})
    for name, deployment in deployments.items():
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/strava-elt"}}
        ], name
    # The worker's view: the pool's template filled with the deployment's variables.
    pool = server.http.get("/work_pools/strava-elt-docker").json()
    assert pool["type"] == "docker"
    assert "image" in pool["base_job_template"]["variables"]["properties"]


def test_the_managed_variant_gives_every_deployment_the_packages_and_both_envs(server: Server) -> None:
    """Managed: the git_clone pull steps and the pool section's pip_packages."""
    body = {"name": "strava-elt-managed", "type": "prefect:managed", "base_job_template": MANAGED_TEMPLATE}
    server.http.post("/work_pools/", json=body).raise_for_status()
    text = variant("git_clone", "strava-elt-managed").replace(
        "strava-elt[postgres,redshift,kudos] @ git+https://github.com/YOUR-ACCOUNT/strava-elt.git@main", PACKAGE
    )
    out = server.deploy(text, "prefect-managed.yaml")
    assert "FutureWarning" not in out, out
    deployments = server.deployments("strava-elt-managed")
    _assert_job_variables(deployments, {"pip_packages": [PACKAGE]})
    for name, deployment in deployments.items():
        assert next(iter(deployment["pull_steps"][0])) == "prefect.deployments.steps.git_clone", name


def _schedules(deployments: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, str, bool]]]:
    return {
        name: [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in d["schedules"]]
        for name, d in deployments.items()
    }


def test_deploy_all_schedules_only_weekly_and_the_switch_moves_sunday_to_the_round(server: Server) -> None:
    """A fresh single-athlete deploy: weekly and its enrichment; the documented switch moves Sunday to the round."""
    run_command(server.env, "prefect", "work-pool", "create", "--type", "process", "strava-elt-pool")
    out = server.deploy(PREFECT_YAML, "prefect.yaml")
    assert "FutureWarning" not in out, out
    deployments = server.deployments("strava-elt-pool")
    _assert_job_variables(deployments, {})
    sunday = ("0 0 * * 0", "UTC")
    assert _schedules(deployments) == {
        "weekly": [(*sunday, True)],
        "weekly-all": [(*sunday, False)],  # needs `strava-elt setup application`
        "backfill": [],
        "athlete": [],
        "retrain-kudos-model": [],
        "react": [],
        "enrich": [("5,20,35,50 * * * *", "UTC", True)],  # with weekly: the same athlete, its slot serialises them
    }

    # Several athletes: swap the two `active` values under definitions, deploy again.
    switched = re.sub(
        r"(weekly_schedule: &weekly_schedule\n    <<: \*sunday\n    active: )true", r"\1false", PREFECT_YAML
    )
    switched = re.sub(r"(round_schedule: &round_schedule\n    <<: \*sunday\n    active: )false", r"\1true", switched)
    switched = re.sub(r"(enrich_schedule: &enrich_schedule\n(?:    .*\n)*?    active: )true", r"\1false", switched)
    assert switched.count("active: true") == 1
    server.deploy(switched, "prefect-round.yaml")
    schedules = _schedules(server.deployments("strava-elt-pool"))
    assert schedules["weekly"] == [(*sunday, False)]
    assert schedules["weekly-all"] == [(*sunday, True)]
    actives = [name for name, rows in schedules.items() for row in rows if row[2]]
    assert actives == ["weekly-all"], "two scheduled writers on one warehouse"
