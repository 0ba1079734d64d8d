"""``strava-elt webhook ...``: the push subscription and the receiver.

``subscribe``, ``list`` and ``delete`` manage the application's one push subscription;
``serve`` runs the receiver (its own front, tasks/webhooks/front.py) that turns Strava's events into Prefect events.
The verify token is a secret: the environment variable :data:`VERIFY_TOKEN_ENV`, or a
Prefect Secret block (``--verify-token-block``); never on the command line, never logged.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flows.cli.common import CliError, add_command, print_json

__all__ = ["DEFAULT_VERIFY_TOKEN_BLOCK", "VERIFY_TOKEN_ENV", "register"]

VERIFY_TOKEN_ENV = "STRAVA_ELT_WEBHOOK_VERIFY_TOKEN"
DEFAULT_VERIFY_TOKEN_BLOCK = "strava-webhook-verify-token"


def _application(name: str) -> Any:
    """The application's block: a ``StravaApplication``, or a single-athlete ``StravaCredentials``."""
    from blocks import strava
    from blocks.loading import MissingBlockError, load_block

    application = getattr(strava, "StravaApplication", None)
    if application is not None:
        try:
            return load_block(application, name)
        except MissingBlockError:
            pass
    return load_block(strava.StravaCredentials, name)


def _verify_token(block: str) -> Any:
    """The verify token as a SecretStr, from the environment or the Secret block."""
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from blocks.loading import MissingBlockError, load_block

    if os.environ.get(VERIFY_TOKEN_ENV):
        return SecretStr(os.environ[VERIFY_TOKEN_ENV])
    try:
        return SecretStr(str(load_block(Secret, block).get()))
    except MissingBlockError:
        raise CliError(
            f"no verify token: set {VERIFY_TOKEN_ENV}, or save a Secret block named {block!r} "
            "(Prefect UI > Blocks > Secret). Pick a long random string; Strava sends it back when it validates "
            "the callback."
        ) from None


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Create the push subscription (Strava validates the callback first)."""
    from tasks.strava.subscriptions import create_subscription

    subscription_id = create_subscription(
        _application(args.application), args.callback_url, _verify_token(args.verify_token_block)
    )
    print(f"Push subscription {subscription_id} created for {args.callback_url}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the application's push subscription."""
    from tasks.strava.subscriptions import list_subscriptions

    found = list_subscriptions(_application(args.application))
    if args.json:
        print_json([{"id": s.id, "callback_url": s.callback_url, "created_at": s.created_at} for s in found])
        return 0
    if not found:
        print("No push subscription for this application.")
    for s in found:
        print(f"{s.id}\t{s.callback_url}\tcreated {s.created_at or '?'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete the push subscription (the one listed, or --id)."""
    from tasks.strava.subscriptions import delete_subscription, list_subscriptions

    app = _application(args.application)
    ids = [args.id] if args.id is not None else [s.id for s in list_subscriptions(app)]
    if not ids:
        print("No push subscription for this application: nothing deleted.")
    for subscription_id in ids:
        delete_subscription(app, subscription_id)
        print(f"Push subscription {subscription_id} deleted")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the receiver (its own front, tasks/webhooks/front.py) until Ctrl-C or SIGTERM."""
    from tasks.webhooks.front import FrontLimits, run
    from tasks.webhooks.serve import receiver_app

    app = receiver_app(
        args.application,
        _verify_token(args.verify_token_block),
        subscription_id=args.subscription_id,
        application_block=_application(args.application),
    )
    # No access log: Strava's validation GET carries the verify token in its query string.
    limits = FrontLimits(request_deadline=args.request_deadline, max_connections=args.max_connections)
    run(app, args.host, args.port, limits)
    return 0


def register(subparsers: Any) -> None:
    """Add ``webhook subscribe|list|delete|serve`` to the ``strava-elt`` parser."""
    webhook = add_command(
        subparsers,
        "webhook",
        help="Strava push subscription and the webhook receiver",
        description="Manage the application's one push subscription (subscribe, list, delete) and run the "
        f"receiver (serve) that turns Strava's events into Prefect events. The verify token comes from "
        f"{VERIFY_TOKEN_ENV} or a Prefect Secret block, never from the command line.",
        examples=["strava-elt webhook list --application strava-club", "strava-elt webhook serve --help"],
    )
    sub = webhook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Any, example: str) -> argparse.ArgumentParser:
        parser = add_command(
            sub,
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            examples=[example],
            func=func,
        )
        parser.add_argument(
            "--application", default="strava", help="the application's block (StravaApplication) name (default strava)"
        )
        return parser

    def token_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--verify-token-block",
            default=DEFAULT_VERIFY_TOKEN_BLOCK,
            help=f"Secret block of the verify token (default {DEFAULT_VERIFY_TOKEN_BLOCK}); {VERIFY_TOKEN_ENV} wins",
        )

    subscribe = action(
        "subscribe",
        "create the application's push subscription (Strava validates the callback)",
        cmd_subscribe,
        "strava-elt webhook subscribe --application strava-club --callback-url https://hooks.example.org/strava",
    )
    subscribe.add_argument("--callback-url", required=True, help="the receiver's public https URL")
    token_option(subscribe)
    listing = action(
        "list",
        "show the application's push subscription (--json: a list of objects with id, callback_url, created_at)",
        cmd_list,
        "strava-elt webhook list --application strava-club --json",
    )
    listing.add_argument("--json", action="store_true", help="print the subscriptions as JSON")
    delete = action(
        "delete",
        "delete the push subscription (default: the one listed)",
        cmd_delete,
        "strava-elt webhook delete --application strava-club",
    )
    delete.add_argument("--id", type=int, default=None, help="the subscription id (default: the one listed)")
    serve = action(
        "serve",
        "run the webhook receiver (put it behind TLS at the callback URL)",
        cmd_serve,
        "STRAVA_ELT_WEBHOOK_VERIFY_TOKEN=... strava-elt webhook serve --application strava-club --port 8766",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8766, help="port (default 8766)")
    serve.add_argument(
        "--subscription-id",
        type=int,
        default=None,
        help="accept only this subscription's events (default: read it once from Strava)",
    )
    serve.add_argument(
        "--request-deadline", type=float, default=5.0, help="seconds a request may take to arrive whole (default 5)"
    )
    serve.add_argument(
        "--max-connections", type=int, default=None, help="open connections at most (default: the file limit - 200)"
    )
    token_option(serve)
