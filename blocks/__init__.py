"""Prefect blocks of strava-elt: register them with `prefect block register -m blocks`."""

from blocks.strava import StravaApplication, StravaCredentials
from blocks.warehouse import Warehouse

__all__ = ["StravaApplication", "StravaCredentials", "Warehouse"]
