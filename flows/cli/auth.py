"""``strava-elt auth``: Strava's OAuth for one athlete (single block, or an athlete of an application)."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli.common import add_command, env, need, prompt_secret

__all__ = ["ask_code", "register"]


def ask_code(url: str, code: str | None) -> str:
    """Show the authorize URL; return ``code``, or what the athlete pastes (the code or the redirect URL)."""
    print("1. Open this URL in a browser signed in to Strava and click Authorize:")
    print(f"   {url}")
    print("2. The browser lands on a page that may not load; its address holds code=...")
    if code is None:
        code = input("3. Paste the code (or the whole address): ")
    return code


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise the application for an athlete and save its block."""
    if args.application:
        return _auth_application(args)
    from tasks.setup import athlete_label, authorization_url, save_credentials

    secret = prompt_secret(args.client_secret, "STRAVA_CLIENT_SECRET")
    client_id = need(args.client_id or env("STRAVA_CLIENT_ID"), "--client-id", "STRAVA_CLIENT_ID")
    secret = need(secret, "--client-secret", "STRAVA_CLIENT_SECRET")
    base_url = args.base_url or env("STRAVA_BASE_URL") or "https://www.strava.com"
    pasted = ask_code(authorization_url(client_id, base_url=base_url, redirect_uri=args.redirect_uri), args.code)
    athlete = save_credentials(client_id, secret, pasted, base_url=base_url, block=args.block)
    who = f"athlete {athlete_label(athlete)} (id {athlete.get('id', '?')})"
    print(f"Saved StravaCredentials block {args.block!r} for {who}; the refresh token rotates and is kept there.")
    return 0


def _auth_application(args: argparse.Namespace) -> int:
    """``auth --application A``: add (or re-authorise) an athlete of the application."""
    from blocks import StravaApplication
    from blocks.loading import load_block
    from tasks.setup import add_athlete, authorization_url

    application = load_block(StravaApplication, args.application)
    url = authorization_url(application.client_id, base_url=application.base_url, redirect_uri=args.redirect_uri)
    print("The athlete to add opens the URL below, signed in to their own Strava account.")
    done = add_athlete(args.application, ask_code(url, args.code))
    if done.outcome == "added":
        print(
            f"Added athlete {done.name} (id {done.athlete_id}) to application {args.application!r}: "
            f"block {done.block!r}."
        )
    else:
        print(
            f"Athlete {done.name} (id {done.athlete_id}) {done.outcome} in application {args.application!r}: "
            f"block {done.block!r}."
        )
    return 0


def register(sub: Any) -> None:
    """Add ``auth`` to the parser."""
    auth = add_command(
        sub,
        "auth",
        help="authorise your Strava API application for your athlete and save the Strava block",
        description="Walk an athlete through Strava's OAuth: open the printed URL, click Authorize, paste the "
        "code (or the whole address). Saves the StravaCredentials block (or, with --application, the athlete's "
        "block APPLICATION-athlete-ID). The secret and the tokens are never printed.",
        examples=[
            "strava-elt auth --client-id 12345",
            "strava-elt auth --application strava-club",
        ],
        func=cmd_auth,
    )
    auth.add_argument("--client-id", help="client id from strava.com/settings/api (env STRAVA_CLIENT_ID)")
    auth.add_argument(
        "--client-secret", help="client secret (env STRAVA_CLIENT_SECRET; prompted, hidden, when missing)"
    )
    auth.add_argument("--code", help="the code from the redirect (default: prompt for it)")
    auth.add_argument("--base-url", help="Strava base URL (default https://www.strava.com; env STRAVA_BASE_URL)")
    auth.add_argument(
        "--redirect-uri",
        help="redirect URI, whose host must be the app's Authorization Callback Domain "
        "(default http://localhost/exchange_token)",
    )
    auth.add_argument("--block", default="strava", help="StravaCredentials block name (default strava)")
    auth.add_argument(
        "--application",
        help="add the athlete to this Strava Application block, as block APPLICATION-athlete-ID "
        "(--client-id, --client-secret, --base-url and --block are then unused)",
    )
