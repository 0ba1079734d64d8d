"""React to Strava's webhook events for one athlete: load just what changed.

The deployment's trigger (prefect.yaml, ``# --- webhooks``) starts one run per burst of events
for an athlete; the run reads every event not handled yet from the athlete's mailbox (the
Prefect events the receiver emitted) or takes ``events`` as given. Events are hints, never
data: each activity named costs one ``GET /activities/{id}`` with the athlete's own token, and
only what Strava answers changes the warehouse.

- create/update of an activity inside the lookback: the incremental pipeline (``strava_elt``)
  as a subflow, which also moves the watermark and rebuilds the models; a created activity's
  detail and streams are loaded by that run too (2 requests each, within the allowance);
- update of an older activity: upserted through lake -> staging -> gate -> merge;
- delete: marked deleted once Strava answers 404 for it (an activity Strava still returns stays);
- deauthorize: the athlete is marked revoked once Strava rejects the athlete's token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run

from blocks.loading import load_block
from blocks.strava import StravaCredentials
from blocks.warehouse import Warehouse
from flows import flow_timeout
from flows.load import load_activities
from flows.models import build_models
from flows.pipeline import new_run_key, open_target, strava_elt
from tasks import strava as strava_tasks
from tasks import warehouse as wh
from tasks.lake import load_lake
from tasks.state import budget, slots
from tasks.state import watermark as wm
from tasks.strava.errors import AuthError
from tasks.webhooks import reactions

REACT_TIMEOUT_SECONDS = 3600
ENRICH_REQUESTS_PER_CREATE = 2
"""A created activity's detail and streams, read by the reaction's run (docs/enrichment.md)."""


def athlete_block_name(application: str, athlete_id: int) -> str:
    """The credentials block of an application's athlete (the roster's naming)."""
    return f"{application}-athlete-{int(athlete_id)}"


def _run_name() -> str:
    params = flow_run.parameters
    return f"react-athlete-{params.get('athlete_id')}-{params.get('warehouse_block', 'strava-warehouse')}"


@flow(name="strava-elt-react", flow_run_name=_run_name, timeout_seconds=flow_timeout(REACT_TIMEOUT_SECONDS))
def strava_elt_react(
    athlete_id: int,
    application: str | None = None,
    strava_block: str | None = None,
    lake_block: str = "strava-lake",
    warehouse_block: str = "strava-warehouse",
    lookback_days: int = 14,
    events: list[dict[str, Any]] | None = None,
    max_activity_requests: int = reactions.DEFAULT_MAX_ACTIVITY_REQUESTS,
    daily_requests: int = reactions.DEFAULT_DAILY_REQUESTS,
) -> dict[str, Any]:
    """Load what the athlete's webhook events name, checked against the API.

    Args:
        athlete_id: The Strava athlete the events are about (the events' owner).
        application: The StravaApplication block's name: the athlete's block is
            ``<application>-athlete-<athlete_id>``. Give this or ``strava_block``.
        strava_block: The athlete's StravaCredentials block (the single-athlete setup).
        lake_block: Name of the lake block.
        warehouse_block: Name of the Warehouse block.
        lookback_days: The incremental run's lookback: a changed activity that started after
            ``watermark - lookback`` is loaded by an incremental run, an older one alone.
        events: Strava events (their bodies, or the receiver's payloads) to react to; None
            (deployments): every event of the athlete's mailbox not handled yet.
        max_activity_requests: Single-activity reads (older updates, deletes) this reaction
            makes at most; what is over is deferred (``strava_react_deferred_<athlete_id>``).
        daily_requests: Requests the athlete's reactions make per UTC day at most (single
            reads and incremental runs, ``strava_react_spent_<athlete_id>``).

    """
    logger = get_run_logger()
    if strava_block is None:
        if application is None:
            raise ValueError("strava_elt_react needs application (with athlete_id) or strava_block")
        strava_block = athlete_block_name(application, athlete_id)
    mailbox = (
        reactions.Mailbox([reactions.Hint.of(e) for e in events], None)
        if events is not None
        else reactions.read_mailbox(athlete_id)
    )
    summary: dict[str, Any] = {"athlete_id": int(athlete_id), "events": len(mailbox.hints), "requests": 0}
    logger.info("Athlete %s: %s events to react to", athlete_id, len(mailbox.hints))
    credentials = load_block(StravaCredentials, strava_block)
    if getattr(credentials, "status", "active") == "revoked":
        logger.warning("Athlete %s is revoked (block %s): nothing read, nothing loaded", athlete_id, strava_block)
        summary["status"] = "revoked"
        reactions.save_cursor(athlete_id, mailbox.cursor)
        return summary
    # slot: one run per athlete, whichever way it starts (tasks/state/slots.py, docs/athletes.md).
    with slots.athlete_slot(credentials, strava_block, timeout_seconds=slots.wait_seconds(REACT_TIMEOUT_SECONDS / 2)):
        _react(
            summary,
            mailbox.hints,
            credentials,
            strava_block,
            lake_block,
            warehouse_block,
            lookback_days,
            max_activity_requests,
            daily_requests,
        )
    reactions.save_cursor(athlete_id, mailbox.cursor)
    logger.info("Reaction for athlete %s: %s", athlete_id, summary)
    return summary


def _react(
    summary: dict[str, Any],
    hints: list[reactions.Hint],
    credentials: StravaCredentials,
    strava_block: str,
    lake_block: str,
    warehouse_block: str,
    lookback_days: int,
    max_activity_requests: int,
    daily_requests: int,
) -> None:
    logger = get_run_logger()
    athlete_id = summary["athlete_id"]
    now = datetime.now(UTC)
    today = now.date().isoformat()
    spent_before = reactions.read_spent(athlete_id, today)
    deferred = reactions.read_deferred(athlete_id)
    latest = reactions.latest_per_activity(hints)
    spent = 0
    if any(h.deauthorize for h in hints):  # before anything else: a revoked token reads nothing
        with strava_tasks.open_client(credentials, logger) as client:
            try:
                if _revoked(client, strava_block, summary):
                    return
            finally:
                spent += client.requests
                summary["requests"] = client.requests
                budget.record_budget(_client_id(credentials), client.governor.current())
                reactions.save_spent(athlete_id, today, spent_before + spent)

    warehouse_id = open_target(warehouse_block)
    warehouse = load_block(Warehouse, warehouse_block)
    with warehouse.engine() as engine:
        starts = reactions.activity_starts(engine, athlete_id)
    watermark = wm.read_watermark(warehouse_id, athlete_id)
    reach = watermark - timedelta(days=lookback_days) if watermark is not None else None

    def inside(activity_id: int) -> bool:
        started = starts.get(activity_id)
        return reach is None or (started is not None and started > reach)

    # Creates, and updates of activities the incremental read reaches: one incremental run reads them all.
    wants_read = deferred.incremental_due or any(
        h.aspect_type == "create" or (h.aspect_type == "update" and inside(i)) for i, h in latest.items()
    )
    full_read = deferred.full_read_due

    def left() -> int:
        return daily_requests - spent_before - spent

    if full_read or wants_read:
        need = budget.requests_needed(len(starts)) if full_read else budget.INCREMENTAL_REQUESTS
        if left() >= need:
            # A created activity's detail and streams in the same run (2 requests each), within the allowance.
            created = sorted(i for i, h in latest.items() if h.aspect_type == "create")
            enrich_cap = min(ENRICH_REQUESTS_PER_CREATE * len(created), max(0, left() - need))
            enrich = bool(created) and enrich_cap > 0
            with tags(f"strava-athlete:{athlete_id}"):  # `strava-elt athletes` shows it as the athlete's last run
                # skip_deferred: this reaction pays (and saves) the record itself, within its allowance.
                run = strava_elt(
                    strava_block,
                    lake_block,
                    warehouse_block,
                    lookback_days,
                    full_refresh=full_read,
                    skip_deferred=True,
                    enrich=enrich,
                    enrich_max_requests=enrich_cap if enrich else None,
                    enrich_activity_ids=created if enrich else None,
                )
            enriched = run.get("enrichment") or {}
            spent += int(run.get("requests") or need) + int(enriched.get("requests") or 0)
            if enriched:
                summary["enriched"] = {k: enriched.get(k) for k in ("requests", "details", "streams", "enriched")}
            summary["incremental"] = {
                k: run.get(k) for k in ("requests", "inserted", "updated", "deleted", "watermark", "status")
            }
            summary["incremental"]["full_read"] = full_read
            deferred.incremental_due = False
            if full_read and run.get("status") == "complete":  # it read every activity: nothing is owed
                deferred = reactions.Deferred({})
            with warehouse.engine() as engine:
                starts = reactions.activity_starts(engine, athlete_id)
        else:
            deferred.incremental_due = True
            logger.warning(
                "Athlete %s: the reactions' daily allowance (%s requests) is spent: the read is deferred",
                athlete_id,
                daily_requests,
            )

    # What the incremental read cannot show: deletes, older updates, ids it did not bring. Deferred first.
    single: dict[int, str] = dict(deferred.ids)
    for activity_id, hint in sorted(latest.items()):
        if hint.aspect_type == "delete" or not (activity_id in starts and inside(activity_id)):
            single[activity_id] = hint.aspect_type
    deferred.ids = {}
    allowed = max(0, min(max_activity_requests, left()))
    ordered = sorted(single.items())
    to_read, owed = ordered[:allowed], ordered[allowed:]
    for activity_id, aspect in owed:
        deferred.add(activity_id, aspect)
    if owed:
        logger.warning(
            "Athlete %s: %s single-activity reads over the cap (%s per reaction, %s per day): deferred",
            athlete_id,
            len(owed),
            max_activity_requests,
            daily_requests,
        )

    changed: list[dict[str, Any]] = []
    gone: list[int] = []
    if "incremental" in summary:  # the run rotated the athlete's refresh token: read the block again
        credentials = load_block(StravaCredentials, strava_block)
    with strava_tasks.open_client(credentials, logger) as client:
        try:
            for activity_id, aspect in to_read:
                activity = reactions.fetch_activity(client, activity_id)
                if activity is None:
                    if aspect == "delete":
                        gone.append(activity_id)
                    else:
                        logger.warning("Activity %s (%s event) is not on Strava: ignored", activity_id, aspect)
                elif _owner(activity) != athlete_id:
                    logger.warning("Activity %s is not athlete %s's: ignored", activity_id, athlete_id)
                elif aspect == "delete":
                    logger.warning("Activity %s: a delete event, but Strava still returns it: unchanged", activity_id)
                else:
                    changed.append(activity)
        finally:
            summary["requests"] = summary.get("requests", 0) + client.requests
            spent += client.requests
            # The application's budget ledger, which the round reads before each athlete.
            budget.record_budget(_client_id(credentials), client.governor.current())
            reactions.save_spent(athlete_id, today, spent_before + spent)
            reactions.save_deferred(athlete_id, deferred)
            summary["spent_today"] = spent_before + spent
            summary["deferred"] = len(deferred.ids)
            summary["full_read_due"] = deferred.full_read_due
    observed_at = now.replace(microsecond=0)
    if gone:
        with warehouse.engine() as engine:
            summary["marked_deleted"] = sum(wh.mark_activity_deleted(engine, athlete_id, i, observed_at) for i in gone)
    if changed:
        run_key = new_run_key()
        path, rows = reactions.stage_activities(load_lake(lake_block), athlete_id, run_key, changed, observed_at)
        merged = load_activities(warehouse_block, lake_block, path, run_key, observed_at, None, rows, athlete_id)
        summary["upserted"] = {k: getattr(merged.merge, k) for k in ("inserted", "updated", "unchanged")}
    if (gone or changed) and "incremental" not in summary:
        summary["models"] = build_models(warehouse_block)


def _client_id(credentials: StravaCredentials) -> str:
    """The application's client id (names its budget Variable), as the extract reads it."""
    application = getattr(credentials, "application", None)
    return str(application.client_id if application is not None else credentials.client_id)


def _revoked(client: strava_tasks.StravaClient, strava_block: str, summary: dict[str, Any]) -> bool:
    """Confirm a deauthorize event: True (and the athlete marked revoked) when Strava rejects the token."""
    try:
        strava_tasks.fetch_athlete(client)
    except AuthError as exc:
        from tasks.strava.roster import mark_revoked

        mark_revoked(strava_block, f"deauthorized on Strava (webhook event; {type(exc).__name__})", datetime.now(UTC))
        get_run_logger().warning("Athlete %s deauthorized the application: marked revoked", summary["athlete_id"])
        summary["status"] = "revoked"
        return True
    get_run_logger().warning("A deauthorize event, but Strava still accepts the athlete's token: unchanged")
    return False


def _owner(activity: dict[str, Any]) -> int | None:
    athlete = activity.get("athlete")
    value = athlete.get("id") if isinstance(athlete, dict) else None
    return int(value) if isinstance(value, int) else None
