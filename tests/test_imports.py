"""A run imports only what it needs: no S3 stack for a local lake, no model training, no web server.

Importing the run's modules happens in every run's process (a worker's flow run, the CLI) before
any work; each module below costs a few hundred milliseconds and is imported where it is used:
prefect-aws/boto3 by ``blocks.loading`` for an S3 lake only, scikit-learn by the kudos model's
training, uvicorn by nothing of ours (the webhook bench only), pandas nowhere on the run's path. Prefect itself
imports Starlette (its server's app) and, while a flow runs, FastAPI's encoders: those are not ours
to forbid.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("prefect_aws", "boto3", "botocore", "s3transfer", "sklearn", "scipy", "uvicorn", "pandas", "slack_sdk")
"""Top-level packages none of the run's modules may import when they are imported."""


def imported_after(module: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["flows.pipeline", "flows.round"])
def test_the_run_imports_nothing_heavy_it_does_not_need(module: str) -> None:
    imported = imported_after(module)
    assert "prefect" in imported and "flows" in imported  # the probe sees the imports
    assert sorted(imported & set(HEAVY)) == [], f"{module} imports {sorted(imported & set(HEAVY))}"


def test_the_probe_sees_a_heavy_import() -> None:
    assert "botocore" in imported_after("prefect_aws")


def test_staging_rows_become_arrow_without_importing_pandas() -> None:
    """pyarrow's first conversion imports pandas (0.2 s, 40 MB) to check the rows' types; the load path's does not."""
    pytest.importorskip("pandas")  # installed with the kudos and notebook extras: what the guard is for
    code = (
        "import sys, json; from tasks.warehouse import schema\n"
        "table = schema.to_arrow([{'id': 1, 'athlete_id': 2}, {'id': 3, 'athlete_id': 2}])\n"
        "again = schema.to_arrow([{'id': 4, 'athlete_id': 2}])\n"
        "before = 'pandas' in sys.modules\n"
        "frame = table.to_pandas()\n"  # pyarrow's own pandas call still imports pandas when used
        "print(json.dumps([before, type(frame).__name__, len(frame), table.num_rows, again.num_rows]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, "DataFrame", 2, 2, 1]


OURS = ("blocks", "tasks", "flows", "emulator")


def test_every_module_of_ours_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported first (ours purged from ``sys.modules`` before each): no order-dependent cycle.

    tests/test_layers.py finds cycles between modules; this one also meets those that run through a
    package's ``__init__`` (``import tasks.entities`` once failed: catalog -> spec -> the
    ``tasks.warehouse`` package -> merge -> catalog, partially initialised).
    """
    code = (
        "import importlib, json, pkgutil, sys, traceback, warnings\n"
        "warnings.simplefilter('ignore')\n"  # Prefect warns that each block class registers again
        f"ours = {OURS!r}\n"
        "names = []\n"
        "for top in ours:\n"
        "    package = importlib.import_module(top)\n"
        "    names.append(top)\n"
        "    names += [m.name for m in pkgutil.walk_packages(package.__path__, top + '.')]\n"
        "failed = {}\n"
        "for name in sorted(set(names)):\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ours]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed[name] = traceback.format_exc().strip().splitlines()[-1]\n"
        "print(json.dumps([len(set(names)), failed]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    count, failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert count > 50  # the walk saw the house
    assert failed == {}, failed
