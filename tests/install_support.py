"""A fresh virtualenv that sees this one's dependencies but not its (editable) strava-elt."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def fresh_venv(venv: Path) -> Path:
    """Create ``venv`` without pip; this virtualenv's site-packages joins it through a ``.pth`` line.

    ``.pth`` files inside a directory added that way are not processed, so the checkout's
    editable finder does not leak in: ``import tasks`` fails until strava-elt is installed there.
    Returns the new virtualenv's python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "zz-dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"
