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


def commented_variant(prefect_yaml: str, name: str) -> str:
    """The sections between ``# --- <name> variant: begin/end ---`` in prefect.yaml, uncommented."""
    begin, end = f"# --- {name} variant: begin ---\n", f"# --- {name} variant: end ---\n"
    block = prefect_yaml[prefect_yaml.index(begin) + len(begin) : prefect_yaml.index(end)]
    return "".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in block.splitlines(True))
