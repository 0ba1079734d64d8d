"""One logger for code that runs both inside and outside Prefect runs."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

__all__ = ["run_logger"]


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task; the stdlib logger ``name`` (a module's ``__name__``) elsewhere."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
