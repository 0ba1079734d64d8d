"""Prefect blocks of strava-elt: register them with `prefect block register -m blocks`."""

from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse

__all__ = ["StravaCredentials", "Warehouse"]
