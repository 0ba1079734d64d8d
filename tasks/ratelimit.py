"""Strava rate limits: they live in :mod:`blocks.strava_ratelimit` (blocks build clients).

Re-exported here for callers that import them from ``tasks.ratelimit``.
"""

from __future__ import annotations

from blocks.strava_ratelimit import (
    SAFETY_MARGIN_SECONDS,
    Decision,
    Governor,
    LoggerLike,
    RateLimit,
    RateLimits,
    acquire_shared_slot,
    seconds_until_midnight,
    seconds_until_next_window,
    shared_limit_exists,
)

__all__ = [
    "SAFETY_MARGIN_SECONDS",
    "Decision",
    "Governor",
    "LoggerLike",
    "RateLimit",
    "RateLimits",
    "acquire_shared_slot",
    "seconds_until_midnight",
    "seconds_until_next_window",
    "shared_limit_exists",
]
