"""A Strava API v3 emulator over real HTTP, for the demo and the tests."""

from emulator.athlete import NASTY_NAMES
from emulator.push import PushAttempt, PushDelivery
from emulator.server import AthleteView, StravaEmulator

__all__ = ["NASTY_NAMES", "AthleteView", "PushAttempt", "PushDelivery", "StravaEmulator"]
