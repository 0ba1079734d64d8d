"""Prefect flows of strava-elt: the main flow, its subflows, the kudos model and the CLI."""

from __future__ import annotations

import os

FLOW_TIMEOUT_ENV = "STRAVA_ELT_FLOW_TIMEOUT_SECONDS"


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
