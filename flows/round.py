"""The round: every active athlete of one Strava application, stalest first, under one budget.

Each athlete's pipeline (``flows/pipeline.py:strava_elt``) runs as a child run of the round,
tagged ``strava-athlete:<id>`` and holding the athlete's slot ``strava-athlete-<id>``:
``mode="inline"`` runs them one after another as subflows in this process (``strava-elt run
--all``); ``mode="deployment"`` starts runs of the ``strava-elt/athlete`` deployment, up to
``parallel`` at once, which the work pool's workers share out. Each child commits alone: one
athlete's revoked token, halted validation or failure never stops or rolls back another.
Before each athlete the round checks the application's budget (tasks/state/budget.py); when
it is spent, the athletes not yet done end "partial: resumes next run" and the next round
starts with them. docs/athletes.md explains the round, the budget and scaling out.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event
from prefect.states import Completed, Failed, State
from pydantic import Field

from blocks.loading import load_block
from blocks.strava import StravaApplication
from blocks.warehouse import Warehouse
from flows import flow_timeout, run_names
from flows.pipeline import MAX_LOOKBACK_DAYS, open_target, strava_elt
from tasks.insight import index, notify
from tasks.lake import load_lake
from tasks.state import budget, deferred, rounds
from tasks.state import watermark as wm
from tasks.strava.roster import RosterEntry, list_roster

ATHLETE_DEPLOYMENT = "strava-elt/athlete"
ROUND_EVENT = "strava.round.completed"
ARTIFACT_KEY = "strava-round"
CHILD_TIMEOUT_SECONDS = 4 * 3600
"""How long the round waits for one child run of the deployment (the pipeline's own timeout)."""
ROUND_TIMEOUT_SECONDS = 24 * 3600
NOT_STARTED = f"{rounds.PARTIAL}: resumes next run (not started: the application's daily budget is spent)"
NOT_AFFORDED = (
    f"{rounds.PARTIAL}: resumes next run (not started: its deferred full read needs {{need}} requests, "
    "{left} left today)"
)


@dataclass(frozen=True)
class AthleteResult:
    """One line of the round's table."""

    athlete: str
    block: str
    outcome: str
    requests: int | None = None
    rows: int | None = None
    inserted: int | None = None
    updated: int | None = None
    watermark: str | None = None
    detail: str = ""
    flow_run_id: str | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class RoundResult:
    """The round's result: one line per athlete of the roster, in the order they were taken."""

    application: str
    client_id: str
    mode: str
    athletes: list[AthleteResult]

    def count(self, outcome: str) -> int:
        """How many athletes ended with ``outcome``."""
        return sum(1 for a in self.athletes if a.outcome == outcome)

    def headline(self) -> str:
        """``5 athletes: 3 complete, 1 partial, 1 failed, 0 revoked``."""
        counts = ", ".join(
            f"{self.count(o)} {o}" for o in (rounds.COMPLETE, rounds.PARTIAL, rounds.FAILED, rounds.REVOKED)
        )
        return f"{len(self.athletes)} athletes: {counts}"


def _key(entry: RosterEntry) -> str:
    return str(entry.athlete_id) if entry.athlete_id is not None else entry.block_name


def _result(entry: RosterEntry, state: State[Any] | None, flow_run_id: str | None, detail: str = "") -> AthleteResult:
    """The table line of a child run that ended in ``state`` (None: it did not finish in time)."""
    if state is None or not state.is_final():
        outcome = rounds.ChildOutcome(rounds.FAILED)
        detail = detail or "did not finish in time"
    else:
        outcome = rounds.parse_outcome(state.message, completed=state.is_completed())
        if outcome.status != rounds.COMPLETE:
            detail = (state.message or state.name or "")[:300]
    return AthleteResult(
        athlete=_key(entry),
        block=entry.block_name,
        outcome=outcome.status,
        requests=outcome.requests,
        rows=outcome.rows,
        inserted=outcome.inserted,
        updated=outcome.updated,
        watermark=outcome.watermark,
        detail=detail,
        flow_run_id=flow_run_id,
    )


def _inline_child(entry: RosterEntry, params: dict[str, Any]) -> AthleteResult:
    """Run the athlete's pipeline as a subflow of the round, in this process."""
    # The child holds the athlete's slot itself (tasks/state/slots.py), as every run of the athlete does.
    with tags(f"strava-athlete:{_key(entry)}"):
        state = strava_elt(strava_block=entry.block_name, **params, return_state=True)
    return _result(entry, state, str(state.state_details.flow_run_id or ""))


def _deployment_child(entry: RosterEntry, params: dict[str, Any], timeout: float) -> AthleteResult:
    """Run the athlete's pipeline through the ``athlete`` deployment; wait for it to end."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    # The child run holds the athlete's slot itself (tasks/state/slots.py): held here, it would wait on us.
    run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here
        ATHLETE_DEPLOYMENT,
        parameters={"strava_block": entry.block_name, **params},
        tags=[f"strava-athlete:{_key(entry)}"],
        timeout=timeout,
        poll_interval=1,
        as_subflow=True,
    )
    return _result(entry, run.state, str(run.id))


@flow(name="strava-elt-round", flow_run_name=run_names.round_, timeout_seconds=flow_timeout(ROUND_TIMEOUT_SECONDS))
def strava_round(
    application_block: str = "strava-application",
    lake_block: str = "strava-lake",
    warehouse_block: str = "strava-warehouse",
    lookback_days: Annotated[int, Field(ge=0, le=MAX_LOOKBACK_DAYS)] = 14,
    slack_block: str | None = None,
    mode: Literal["inline", "deployment"] = "inline",
    parallel: Annotated[int, Field(ge=1, le=64)] = 1,
    child_timeout_seconds: float = CHILD_TIMEOUT_SECONDS,
    enrich: bool = False,
) -> dict[str, Any]:
    """Load every active athlete of the application once, stalest first, under its one budget.

    Args:
        application_block: Name of the StravaApplication block; its athletes' blocks form the roster.
        lake_block: Name of the lake block (LocalFileSystem or S3Bucket).
        warehouse_block: Name of the Warehouse block.
        lookback_days: Passed to each athlete's pipeline.
        slack_block: Notification block for the round's one message (the children send none).
        mode: ``inline``: subflows one after another in this process; ``deployment``: runs of
            the ``strava-elt/athlete`` deployment, which a work pool's workers share out.
        parallel: Deployment mode: child runs in flight at once (inline runs one at a time); keep 1
            with a DuckDB warehouse, which takes one writer at a time.
        child_timeout_seconds: Deployment mode: how long to wait for one child run.
        enrich: Each athlete's run also enriches (docs/enrichment.md), with a fair share of
            what the day has left: the leftover less the summary's reserve, divided by the
            athletes still to go that still need enrichment (the others counted at their need,
            read from the warehouse as the round starts; asked again before each athlete, so
            what one does not spend passes on).

    """
    logger = get_run_logger()
    slack = notify.load_slack(slack_block)
    application = load_block(StravaApplication, application_block)
    client_id = str(application.client_id)
    warehouse_id = open_target(warehouse_block)
    roster = list_roster(application_block)
    memory = rounds.read_round_state(warehouse_id, application_block)
    active = {_key(e): e for e in roster if e.status == "active"}
    results: dict[str, AthleteResult] = {}
    for entry in roster:
        if entry.status != "active":
            logger.warning(
                "Athlete %s (block %s) is revoked since %s (%s): skipped until `strava-elt auth` re-authorises it",
                _key(entry), entry.block_name, entry.revoked_at, entry.revoked_reason,
            )  # fmt: skip
            results[_key(entry)] = AthleteResult(
                _key(entry), entry.block_name, rounds.REVOKED, detail=f"revoked {entry.revoked_at or ''}".strip()
            )
    order = rounds.order_athletes(active, memory)
    logger.info("Round over %s active athletes of %s, stalest first: %s", len(order), application_block, order)
    params = {
        "lake_block": lake_block,
        "warehouse_block": warehouse_block,
        "lookback_days": lookback_days,
        "full_refresh": False,
        "slack_block": None,
    }
    if mode == "inline":
        run: Callable[[RosterEntry, dict[str, Any]], AthleteResult] = lambda e, extra: _inline_child(  # noqa: E731
            e, params | extra
        )
        width = 1
    else:
        run = lambda e, extra: _deployment_child(e, params | extra, child_timeout_seconds)  # noqa: E731
        width = parallel
    ledger = budget.Ledger(client_id, budget.read_budget(client_id))
    need = lambda e: athlete_need(e, warehouse_block, warehouse_id, lookback_days)  # noqa: E731
    enrich_needs = enrichment_needs([active[k] for k in order], warehouse_block) if enrich else None
    if enrich_needs is not None:
        logger.info("Enrichment needs as the round starts, in requests (None: not known yet): %s", enrich_needs)
    results |= _fan_out([active[k] for k in order], run, width, ledger, need, enrich_needs=enrich_needs)
    result = _finish(application_block, client_id, mode, results, memory, warehouse_id, order)
    _report(result, slack, lake_block, warehouse_block, application_block)
    failed = result.count(rounds.FAILED)
    data = asdict(result)
    if failed:
        return Failed(message=f"{failed} of {len(order)} athletes failed; {result.headline()}", data=data)  # type: ignore[return-value]
    return Completed(message=result.headline(), data=data)  # type: ignore[return-value]


def athlete_need(entry: RosterEntry, warehouse_block: str, warehouse_id: str, lookback_days: int) -> int:
    """Requests the athlete's run will need: an incremental run's, or a full read's when one is owed.

    The athlete's deferred webhook reads (tasks/state/deferred.py) decide, as they decide in the
    run itself: a run that will read the whole history needs ``/athlete`` plus a page per 200
    activities the warehouse holds. Nothing owed: one Variable read, no warehouse query.
    """
    incremental = budget.requests_needed(None)
    if entry.athlete_id is None:
        return incremental
    owed = deferred.read_deferred(entry.athlete_id)
    if owed.empty:
        return incremental
    from tasks.webhooks.reactions import activity_starts

    watermark = wm.read_watermark(warehouse_id, entry.athlete_id)
    after = None if watermark is None else watermark - timedelta(days=lookback_days)
    with load_block(Warehouse, warehouse_block).engine() as engine:
        starts = activity_starts(engine, entry.athlete_id)
    need = deferred.run_need(owed, after, starts)
    if need > incremental:
        get_run_logger().info(
            "Athlete %s owes a deferred full read (%s activities held): %s requests needed",
            entry.athlete_id, len(starts), need,
        )  # fmt: skip
    return need


def enrichment_needs(entries: list[RosterEntry], warehouse_block: str) -> dict[str, int | None]:
    """Each athlete's enrichment need in requests, as the round starts (None: not known yet).

    Read from the warehouse, each athlete in its own statements (:func:`tasks.enrich.needed_requests`:
    its queue, its gear due, its stats and zones if not read today). Unknown: an athlete whose
    history is not loaded yet, or any athlete of a warehouse without the enrichment's state
    table; an unknown need counts as needing a whole part. The activities an athlete's own
    summary load adds in this round are not foreseen (an incremental week's few): what it gets
    is at least the part counted for it, and what is left when its turn comes.
    """
    import sqlalchemy as sa

    from tasks import enrich as enrich_tasks
    from tasks.entities.catalog import ENRICHMENT_TABLE

    needs: dict[str, int | None] = {_key(e): None for e in entries}
    known = [e for e in entries if e.athlete_id is not None]
    if not known:
        return needs
    now = datetime.now(UTC)
    with load_block(Warehouse, warehouse_block).engine() as engine, engine.connect() as conn:
        if not sa.inspect(conn).has_table(ENRICHMENT_TABLE):
            return needs
        for entry in known:
            needs[_key(entry)] = enrich_tasks.needed_requests(conn, int(entry.athlete_id or 0), now)
    return needs


def _fan_out(
    entries: list[RosterEntry],
    run: Callable[[RosterEntry, dict[str, Any]], AthleteResult],
    width: int,
    ledger: budget.Ledger,
    need_of: Callable[[RosterEntry], int] | None = None,
    *,
    enrich_needs: dict[str, int | None] | None = None,
) -> dict[str, AthleteResult]:
    """Start the athletes in order, ``width`` at a time, while the budget allows; the rest end partial.

    Each athlete's need (``need_of``, default an incremental run's) is checked and held: an athlete
    whose owed full read does not fit what is left is not started (it goes first next round),
    while the others still run as long as an incremental run fits. With ``enrich_needs`` (each
    athlete's enrichment need, :func:`enrichment_needs`), each child spends its share of the
    day's leftover on enrichment (:func:`tasks.enrich.round_share` over the needs of the athletes
    after it, computed by the child).
    """
    logger = get_run_logger()
    incremental = budget.requests_needed(None)
    results: dict[str, AthleteResult] = {}
    running: dict[Future[AthleteResult], RosterEntry] = {}
    spent = False

    def settle(done: set[Future[AthleteResult]]) -> None:
        nonlocal spent
        for future in done:
            entry = running.pop(future)
            line = replace(future.result(), ended_at=datetime.now(UTC))
            results[_key(entry)] = line
            ledger.settle(_key(entry), line.requests)
            if line.outcome == rounds.PARTIAL:
                spent = True  # the child met the daily limit: nothing is left for the others

    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="strava-round") as pool:
        for entry in entries:
            while len(running) >= width:
                settle(wait(running, return_when=FIRST_COMPLETED).done)
            if not spent and not ledger.allows(incremental):
                spent = True
                logger.warning(
                    "The application's daily budget is spent (%s requests left, %s needed per athlete): "
                    "the athletes not yet done resume first in the next round",
                    ledger.remaining(), incremental,
                )  # fmt: skip
            if spent:
                results[_key(entry)] = AthleteResult(_key(entry), entry.block_name, rounds.PARTIAL, detail=NOT_STARTED)
                continue
            need = need_of(entry) if need_of is not None else incremental
            if need > incremental and not ledger.allows(need):
                left = ledger.remaining()
                logger.warning(
                    "Athlete %s is not started: its deferred full read needs %s requests, %s left today; "
                    "it goes first in the next round",
                    _key(entry), need, left,
                )  # fmt: skip
                detail = NOT_AFFORDED.format(need=need, left=left)
                results[_key(entry)] = AthleteResult(_key(entry), entry.block_name, rounds.PARTIAL, detail=detail)
                continue
            ledger.hold(_key(entry), need)
            extra = {}
            if enrich_needs is not None:
                after = entries[entries.index(entry) + 1 :]
                extra = _enrichment([enrich_needs.get(_key(e)) for e in after])
            if width == 1:  # inline: the subflow runs here, in the round's own thread
                future: Future[AthleteResult] = Future()
                future.set_result(run(entry, extra))
            else:  # each thread carries the round's run context, so children are its subflows
                future = pool.submit(contextvars.copy_context().run, run, entry, extra)
            running[future] = entry
            if width == 1:
                settle({future})
        while running:
            settle(wait(running, return_when=FIRST_COMPLETED).done)
    return results


def _enrichment(after: list[int | None]) -> dict[str, Any]:
    """A child's enrichment parameters: its fair share of what the day has left, as the child sees it.

    The child shares the day's leftover (less the summary's reserve), read after its own
    summary, with the athletes after it (``after``: their needs; None unknown): those that need
    less than an equal part are counted at their need, the others divide the rest. What one
    athlete does not spend stays in the budget for the next, who divides again.
    """
    return {"enrich": True, "enrich_share_with": after, "enrich_wait_windows": True}


def _finish(
    application_block: str,
    client_id: str,
    mode: str,
    results: dict[str, AthleteResult],
    memory: dict[str, rounds.AthleteMemory],
    warehouse_id: str,
    taken: list[str],
) -> RoundResult:
    """Mark athletes the round found revoked, remember every outcome, and build the result."""
    revoked_now = {_key(e) for e in list_roster(application_block) if e.status != "active"}
    lines: list[AthleteResult] = []
    remembered: dict[str, rounds.AthleteMemory] = {}
    for key, line in results.items():
        if key in revoked_now and line.outcome == rounds.FAILED:
            line = replace(line, outcome=rounds.REVOKED)
        lines.append(line)
        before = memory.get(key, rounds.AthleteMemory())
        success = line.ended_at if line.outcome == rounds.COMPLETE else before.last_success
        remembered[key] = rounds.AthleteMemory(line.outcome, success)
    rounds.write_round_state(warehouse_id, application_block, remembered)
    # In the order the round took them; the athletes it skipped as revoked last.
    position = {key: i for i, key in enumerate(taken)}
    lines.sort(key=lambda line: position.get(line.athlete, len(position)))
    logger = get_run_logger()
    for line in lines:  # after the revoked ones are known: the log says what the table says
        logger.info("Athlete %s: %s", line.athlete, outcome_text(line))
    return RoundResult(application_block, client_id, mode, lines)


def outcome_text(line: AthleteResult) -> str:
    """``complete, 12 requests, 340 rows, watermark ...`` (``-`` for what is unknown), then the detail."""
    text = (
        f"{line.outcome}, {line.requests if line.requests is not None else '-'} requests, "
        f"{line.rows if line.rows is not None else '-'} rows, watermark {line.watermark or '-'}"
    )
    return text + (f" ({line.detail})" if line.detail and line.outcome != rounds.COMPLETE else "")


def _report(result: RoundResult, slack: Any, lake_block: str, warehouse_block: str, application_block: str) -> None:
    """The round's table artifact, its one Slack message, its event and the index page."""
    logger = get_run_logger()
    table = [
        {
            "athlete": a.athlete,
            "outcome": a.outcome,
            "requests": a.requests,
            "rows": a.rows,
            "watermark": a.watermark,
            "detail": a.detail,
        }
        for a in result.athletes
    ]
    create_table_artifact(table=table, key=ARTIFACT_KEY, description=f"Round {application_block}: {result.headline()}")
    if slack is not None:
        lines = [f"strava-elt round {application_block}: {result.headline()}"]
        lines += [f"{a.athlete}: {outcome_text(a)}" for a in result.athletes]
        notify.send_slack(slack, "\n".join(lines))
    emit_event(
        event=ROUND_EVENT,
        resource={
            "prefect.resource.id": f"strava.application.{result.client_id}",
            "prefect.resource.name": f"Strava application {application_block}",
        },
        payload={
            "application_block": application_block,
            "mode": result.mode,
            **{o: result.count(o) for o in (rounds.COMPLETE, rounds.PARTIAL, rounds.FAILED, rounds.REVOKED)},
            "requests": sum(a.requests or 0 for a in result.athletes),
        },
    )
    try:
        page = index.publish_index(
            load_lake(lake_block), index.index_entries(application_block, warehouse_block), datetime.now(UTC)
        )
        logger.info("Index page of the athletes: %s", page["link"] or page["url"])
    except Exception as exc:  # noqa: BLE001 - the index is a view; the loads stand without it
        logger.warning("Index page not published: %s", notify.short_error(exc))
