"""Strava API errors and the retry loop: they live in :mod:`blocks.strava_errors` (blocks build clients).

Re-exported here for callers that import them from ``tasks.errors``.
"""

from __future__ import annotations

from blocks.strava_errors import (
    AuthError,
    BadRequestError,
    DailyLimitReached,
    FatalError,
    ForbiddenError,
    NotFoundError,
    RateLimitExceeded,
    RefreshTokenRejected,
    RetriableError,
    RetryPolicy,
    StravaError,
    classify,
    classify_exception,
    redact,
    send_with_retries,
)

__all__ = [
    "AuthError",
    "BadRequestError",
    "DailyLimitReached",
    "FatalError",
    "ForbiddenError",
    "NotFoundError",
    "RateLimitExceeded",
    "RefreshTokenRejected",
    "RetriableError",
    "RetryPolicy",
    "StravaError",
    "classify",
    "classify_exception",
    "redact",
    "send_with_retries",
]
