"""The flows of strava-elt, and the check that its packages all come from one installation.

strava-elt installs the top-level packages ``flows``, ``tasks``, ``blocks``, ``sql`` and
``emulator``. Another project's package of the same name (a ``tasks/`` folder in the worker's
working directory, or another distribution in the same site-packages) would shadow ours and
fail later with a puzzling error; importing ``flows`` refuses that at once, naming the path.
This module imports nothing heavy: the CLI sets Prefect's environment after importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGES = ("flows", "tasks", "blocks", "sql", "emulator")


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
