"""Strava's OAuth for one athlete: the URL to open, the code pasted back, the block saved.

A caller shows :func:`authorization_url` to the athlete, reads back what the browser's
address bar shows after "Authorize" (the code, or the whole redirect URL), and hands it to
:func:`save_credentials` (a single-athlete ``StravaCredentials`` block) or :func:`add_athlete`
(an athlete of a ``StravaApplication`` block). Secrets and tokens are never returned or shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tasks.setup.blocks import STRAVA_URL, SetupError


def authorization_url(client_id: str, *, base_url: str = STRAVA_URL, redirect_uri: str | None = None) -> str:
    """The page where the athlete authorises the application (scope ``read,activity:read_all``)."""
    from blocks.strava import DEFAULT_REDIRECT_URI, authorize_url

    return authorize_url(client_id, redirect_uri=redirect_uri or DEFAULT_REDIRECT_URI, base_url=base_url)


def parse_code(pasted: str) -> str:
    """The one-time code from what the athlete pasted (the code or the redirect URL), its scope checked.

    Raises:
        SetupError: No code in it, Strava reported an error, or the scope lacks activity:read_all.

    """
    from blocks.strava import parse_authorization_response
    from tasks.strava.auth import check_scope
    from tasks.strava.errors import StravaError

    try:
        code, scope = parse_authorization_response(pasted)
        check_scope(scope)
    except (ValueError, StravaError) as exc:
        raise SetupError(str(exc)) from None
    return code


def athlete_label(athlete: dict[str, Any]) -> str:
    """The athlete's first and last name as Strava sent them, or "(name not sent)"."""
    return " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip() or "(name not sent)"


def save_credentials(
    client_id: str, client_secret: str, pasted: str, *, base_url: str = STRAVA_URL, block: str = "strava"
) -> dict[str, Any]:
    """Exchange the athlete's code for a refresh token and save the ``StravaCredentials`` block ``block``.

    Returns:
        The athlete Strava sent with the tokens (may be empty).

    Raises:
        SetupError: The code, the client id or the secret was rejected (the message says what to do).

    """
    from tasks.strava.auth import from_authorization_code
    from tasks.strava.errors import StravaError

    code = parse_code(pasted)
    try:
        credentials, athlete = from_authorization_code(client_id, client_secret, code, base_url=base_url)
    except (ValueError, StravaError) as exc:
        raise SetupError(str(exc)) from None
    credentials.save(block, overwrite=True)
    return athlete


@dataclass(frozen=True)
class AthleteAuthorized:
    """What :func:`add_athlete` did: the athlete's block, who it is, and whether it is new."""

    block: str
    athlete_id: int
    name: str
    outcome: str  # "added", "renewed" or "re-activated"


def retry_hint(application_block: str) -> str:
    """What to do after a failed ``auth --application``: a fresh code through the same command."""
    return (
        f"Run `strava-elt auth --application {application_block}` again and paste the new code "
        "(a code works once and expires within minutes); if it fails again, check the application's "
        f"client id and secret with `strava-elt setup application --name {application_block}`."
    )


_SINGLE_BLOCK_FIX = re.compile(r"(?:run|Run) `strava-elt auth[^`]*`[^.]*\.?")


def _rehinted(exc: Exception, application_block: str) -> str:
    """The error's text with the single-block fix (``auth --client-id``) replaced by the one that fits."""
    text, found = _SINGLE_BLOCK_FIX.subn(retry_hint(application_block), str(exc))
    return text if found else f"{text.rstrip()} {retry_hint(application_block)}"


def add_athlete(application_block: str, pasted: str) -> AthleteAuthorized:
    """Exchange an athlete's code for the application's block ``application_block``; save or re-activate its block.

    The athlete's block is ``<application block>-athlete-<athlete id>``: a new athlete gets one,
    a known one gets the new refresh token (and is re-activated when it was revoked).

    Raises:
        SetupError: The code or the application was rejected (the message says what to do).
        blocks.loading.MissingBlockError: No StravaApplication block of that name.

    """
    from blocks import StravaApplication, StravaCredentials
    from blocks.loading import MissingBlockError, load_block
    from tasks.strava.auth import authorize_athlete
    from tasks.strava.errors import StravaError

    application = load_block(StravaApplication, application_block)
    code = parse_code(pasted)
    try:
        credentials, athlete = authorize_athlete(application, code)
    except (ValueError, StravaError) as exc:
        raise SetupError(_rehinted(exc, application_block)) from None
    if credentials.athlete_id is None:
        raise SetupError("Strava answered without the athlete's id, so the athlete's block cannot be named; try again.")
    name = application.athlete_block_name(credentials.athlete_id)
    existing: StravaCredentials | None
    try:
        existing = load_block(StravaCredentials, name)
    except MissingBlockError:
        existing = None
    if existing is None:
        credentials.save(name)
        outcome = "added"
    else:
        was = existing.status
        existing.application = application
        existing.athlete_name = credentials.athlete_name or existing.athlete_name
        existing.reactivate(credentials.refresh_token.get_secret_value())
        outcome = "re-activated" if was == "revoked" else "renewed"
    return AthleteAuthorized(
        block=name, athlete_id=credentials.athlete_id, name=athlete_label(athlete), outcome=outcome
    )
