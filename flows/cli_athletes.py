"""``strava-elt`` commands for one application with many athletes.

``setup application`` saves the StravaApplication block, ``auth --application A`` adds (or
re-authorises) an athlete as block ``A-athlete-<id>``, ``athletes --application A`` lists the
roster with each athlete's status, watermark and last run. :func:`register` hooks them into
the parser of :mod:`flows.cli`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from flows.cli import CliError, _env, _need, _print_created, ask_code, cmd_auth, cmd_dashboard


def setup_application_block(
    name: str, client_id: str, client_secret: str, *, base_url: str | None = None
) -> dict[str, str]:
    """Create (or update) the StravaApplication block ``name``; its athletes' blocks keep referencing it."""
    from pydantic import SecretStr

    from blocks import StravaApplication
    from blocks.loading import MissingBlockError, load_block

    try:
        application = load_block(StravaApplication, name)
    except MissingBlockError:
        application = StravaApplication(client_id=client_id, client_secret=SecretStr(client_secret))
    # Updating the loaded block keeps its document id: the athletes' references stay valid.
    application.client_id = client_id
    application.client_secret = SecretStr(client_secret)
    application.base_url = base_url or "https://www.strava.com"
    application.save(name, overwrite=True)
    return {name: f"StravaApplication {client_id} at {application.base_url} (secret kept in the block)"}


def cmd_setup_application(args: argparse.Namespace) -> int:
    """Create the StravaApplication block."""
    secret = args.client_secret or _env("STRAVA_CLIENT_SECRET")
    if not secret:
        import getpass

        secret = getpass.getpass("Client secret (input hidden): ")
    created = setup_application_block(
        args.name,
        _need(args.client_id or _env("STRAVA_CLIENT_ID"), "--client-id", "STRAVA_CLIENT_ID"),
        _need(secret, "--client-secret", "STRAVA_CLIENT_SECRET"),
        base_url=args.base_url or _env("STRAVA_BASE_URL"),
    )
    _print_created(created)
    print(f"Add athletes with `strava-elt auth --application {args.name}` (each athlete authorises once).")
    return 0


def authorize_athlete(
    application_block: str, *, code: str | None = None, redirect_uri: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Walk an athlete through Strava's OAuth for the application; save or re-activate its block.

    Returns:
        The athlete's block name and the athlete Strava sent with the tokens.

    """
    from blocks import StravaApplication, StravaCredentials
    from blocks.loading import MissingBlockError, load_block
    from blocks.strava import DEFAULT_REDIRECT_URI, authorize_url
    from tasks.strava.auth import authorize_athlete as exchange_code
    from tasks.strava.errors import StravaError

    application = load_block(StravaApplication, application_block)
    url = authorize_url(
        application.client_id, redirect_uri=redirect_uri or DEFAULT_REDIRECT_URI, base_url=application.base_url
    )
    print("The athlete to add opens the URL below, signed in to their own Strava account.")
    parsed_code = ask_code(url, code)
    try:
        credentials, athlete = exchange_code(application, parsed_code)
    except (ValueError, StravaError) as exc:
        raise CliError(str(exc)) from None
    if credentials.athlete_id is None:
        raise CliError("Strava answered without the athlete's id, so the athlete's block cannot be named; try again.")
    name = application.athlete_block_name(credentials.athlete_id)
    who = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip() or "(name not sent)"
    existing: StravaCredentials | None
    try:
        existing = load_block(StravaCredentials, name)
    except MissingBlockError:
        existing = None
    if existing is None:
        credentials.save(name)
        print(
            f"Added athlete {who} (id {credentials.athlete_id}) to application {application_block!r}: block {name!r}."
        )
    else:
        was = existing.status
        existing.application = application
        existing.athlete_name = credentials.athlete_name or existing.athlete_name
        existing.reactivate(credentials.refresh_token.get_secret_value())
        again = "re-activated" if was == "revoked" else "renewed"
        print(
            f"Athlete {who} (id {credentials.athlete_id}) {again} in application {application_block!r}: block {name!r}."
        )
    return name, athlete


def _auth(args: argparse.Namespace) -> int:
    """``auth``: the single-block exchange, or an athlete of ``--application``."""
    if not args.application:
        return cmd_auth(args)
    authorize_athlete(args.application, code=args.code, redirect_uri=args.redirect_uri)
    return 0


# --------------------------------------------------------------------------- athletes


def athlete_rows(application_block: str, warehouse_block: str | None) -> list[dict[str, Any]]:
    """One row per athlete of the application: id, block, status, watermark, last load and last run."""
    from tasks.insight.index import index_entries

    return [entry.as_row() for entry in index_entries(application_block, warehouse_block)]


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def format_athletes(rows: list[dict[str, Any]]) -> str:
    """The roster as an aligned text table, revocations spelled out below it."""
    columns = ["athlete_id", "block", "status", "watermark", "last_loaded", "last_run"]
    table = [columns] + [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    for row in rows:
        if row["status"] == "revoked":
            lines.append(
                f"athlete {row['athlete_id']} revoked at {_cell(row['revoked_at'])}: {_cell(row['revoked_reason'])}"
            )
    return "\n".join(lines)


def cmd_athletes(args: argparse.Namespace) -> int:
    """List the application's athletes with status, watermark and last run."""
    rows = athlete_rows(args.application, args.warehouse_block)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(
            f"Application {args.application!r} has no athletes yet: `strava-elt auth --application {args.application}`."
        )
        return 0
    print(format_athletes(rows))
    revoked = sum(1 for row in rows if row["status"] == "revoked")
    if revoked:
        print(f"{revoked} revoked: runs skip them until `strava-elt auth --application {args.application}`.")
    return 0


# --------------------------------------------------------------------------- index page


def publish_index_page(application_block: str, lake_block: str, warehouse_block: str | None) -> dict[str, str]:
    """Write the application's index page to the lake's root; return where."""
    from datetime import UTC, datetime

    from tasks.insight.index import index_entries, publish_index
    from tasks.lake import load_lake

    return publish_index(load_lake(lake_block), index_entries(application_block, warehouse_block), datetime.now(UTC))


def _dashboard(args: argparse.Namespace) -> int:
    """``dashboard``: one athlete's page into a file, or with ``--index`` the application's index page in the lake."""
    if not args.index:
        return cmd_dashboard(args)
    if not args.application:
        raise CliError("--index needs --application NAME (the Strava Application block whose athletes to list)")
    published = publish_index_page(args.application, args.lake_block, args.warehouse_block)
    print(f"index page written to {published['url']} ({int(published['bytes']):,} bytes)")
    return 0


# --------------------------------------------------------------------------- parser


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(sub: Any) -> None:
    """Add ``setup application``, ``auth --application``, ``athletes`` and ``dashboard --index`` to the parser."""
    application = _subparsers(sub.choices["setup"]).add_parser(
        "application", help="a Strava Application block shared by several athletes (client id and secret once)"
    )
    application.add_argument("--name", required=True, help="block name, e.g. strava-club")
    application.add_argument("--client-id", help="client id from strava.com/settings/api (env STRAVA_CLIENT_ID)")
    application.add_argument(
        "--client-secret", help="client secret (env STRAVA_CLIENT_SECRET; prompted, hidden, when missing)"
    )
    application.add_argument("--base-url", help="Strava base URL (default https://www.strava.com; env STRAVA_BASE_URL)")
    application.set_defaults(func=cmd_setup_application)

    auth = sub.choices["auth"]
    auth.add_argument(
        "--application",
        help="add the athlete to this Strava Application block, as block APPLICATION-athlete-ID "
        "(--client-id, --client-secret, --base-url and --block are then unused)",
    )
    auth.set_defaults(func=_auth)

    athletes = sub.add_parser("athletes", help="list an application's athletes: status, watermark, last run")
    athletes.add_argument("--application", required=True, help="the Strava Application block")
    athletes.add_argument(
        "--warehouse-block",
        default="strava-warehouse",
        help="Warehouse block whose watermarks to show (default strava-warehouse)",
    )
    athletes.add_argument("--json", action="store_true", help="print the rows as JSON")
    athletes.set_defaults(func=cmd_athletes)

    dashboard = sub.choices["dashboard"]
    dashboard.add_argument(
        "--index",
        action="store_true",
        help="instead: write the index page of --application's athletes (freshness, links) to the lake's root",
    )
    dashboard.add_argument("--application", help="with --index: the Strava Application block")
    dashboard.add_argument("--lake-block", default="strava-lake", help="with --index: lake block (default strava-lake)")
    dashboard.set_defaults(func=_dashboard)
