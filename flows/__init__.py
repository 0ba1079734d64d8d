"""The flows of strava-elt, and the check that its packages all come from one installation.

strava-elt installs the top-level packages ``flows``, ``tasks``, ``blocks``, ``sql`` and
``emulator``. Another project's package of the same name (a ``tasks/`` folder in the worker's
working directory, or another distribution in the same site-packages) would shadow ours and
fail later with a puzzling error; importing ``flows`` refuses that at once, naming the path.
This module imports nothing heavy: the CLI sets Prefect's environment after importing it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGES = ("flows", "tasks", "blocks", "sql", "emulator")
FLOW_TIMEOUT_ENV = "STRAVA_ELT_FLOW_TIMEOUT_SECONDS"
FLOW_RETRIES_ENV = "STRAVA_ELT_FLOW_RETRIES"


def flow_timeout(default: float) -> float:
    """A flow's ``timeout_seconds``: ``$STRAVA_ELT_FLOW_TIMEOUT_SECONDS`` when set, else ``default``.

    Prefect 3.9 reads a flow's timeout from the flow object, not from the deployment, so each
    deployment in prefect.yaml sets this variable in its job variables (``env``); the flow module
    reads it when the run's process imports it.
    """
    value = os.environ.get(FLOW_TIMEOUT_ENV, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{FLOW_TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{FLOW_TIMEOUT_ENV}={value!r} must be positive")
    return seconds


def flow_retries(default: int) -> int:
    """A flow's ``retries``: ``$STRAVA_ELT_FLOW_RETRIES`` when set, else ``default``.

    Read like :func:`flow_timeout`: Prefect 3.9's prefect.yaml has no retries field, so each
    deployment sets the variable in its job variables; a run in this process (``strava-elt
    run``, tests) keeps the default and fails at once instead of sleeping before a retry.
    """
    value = os.environ.get(FLOW_RETRIES_ENV, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(f"{FLOW_RETRIES_ENV}={value!r} must be a whole number of retries (0 or more)")
    return int(value)


class ShadowedPackageError(ImportError):
    """One of strava-elt's top-level packages is imported from somewhere else."""


def check_install() -> None:
    """Raise :class:`ShadowedPackageError` unless every package of strava-elt sits beside this one."""
    root = Path(__file__).resolve().parents[1]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if origin and Path(origin).resolve().parents[1] == root:
            continue
        where = origin or (list(spec.submodule_search_locations or []) if spec else None) or "nowhere"
        raise ShadowedPackageError(
            f"strava-elt's package {name!r} is imported from {where}, not from {root} where strava-elt "
            f"is installed: another {name!r} (a folder in the working directory or on PYTHONPATH, or "
            "another distribution in the same site-packages) shadows it. Install strava-elt in its own "
            "virtualenv (python -m venv, or pipx install) and start it and its Prefect workers from a "
            "folder without flows/, tasks/, blocks/ or sql/ packages; see docs/deploy.md."
        )


check_install()
