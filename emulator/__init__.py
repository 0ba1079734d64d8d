"""A Strava API v3 emulator over real HTTP, for the demo and the tests."""

from emulator.athlete import NASTY_NAMES
from emulator.server import StravaEmulator

__all__ = ["NASTY_NAMES", "StravaEmulator"]
