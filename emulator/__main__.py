"""``python -m emulator [--port N] [--activities N] [--seed N] [--host H]``."""

from __future__ import annotations

import argparse

from emulator.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--activities", type=int, default=1500, help="size of the athlete")
    parser.add_argument("--seed", type=int, default=42, help="seed for the synthetic data")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    args = parser.parse_args(argv)
    serve_forever(port=args.port, activities=args.activities, seed=args.seed, host=args.host)


if __name__ == "__main__":
    main()
