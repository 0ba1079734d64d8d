"""``python -m emulator ...``: the same as ``strava-elt emulator ...`` (one command, one set of defaults)."""

from __future__ import annotations

import sys

from flows.cli import main

if __name__ == "__main__":
    sys.exit(main(["emulator", *sys.argv[1:]]))
