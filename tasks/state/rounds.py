"""The round's memory and its children's outcomes.

One Prefect Variable per (warehouse, application), ``strava_round_<warehouse id>_<application
block>``, remembers each athlete's last outcome and last success, compactly
(``{"<athlete>": "<epoch of last success, base 36><c|p|f|r>"}``, ~23 characters an athlete,
so about 200 athletes fit Prefect's 5,000-character limit; beyond, the state is not saved and
a warning says so). The round orders
athletes by it: never loaded or partial last time first, then the oldest last success.

A child run's outcome travels in its final state's message (:func:`outcome_message`), which
the round reads back (:func:`parse_outcome`) whether the child ran in this process or on a
worker: ``complete: requests=3 rows=312 inserted=2 updated=1 deleted=0 watermark=2026-...Z``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.logs import run_logger
from tasks.state.variables import read_variable, write_variable

__all__ = [
    "COMPLETE",
    "FAILED",
    "PARTIAL",
    "REVOKED",
    "AthleteMemory",
    "ChildOutcome",
    "order_athletes",
    "outcome_message",
    "parse_outcome",
    "read_round_state",
    "variable_name",
    "write_round_state",
]

PREFIX = "strava_round_"
MAX_CHARS = 5000
COMPLETE, PARTIAL, FAILED, REVOKED = "complete", "partial", "failed", "revoked"
_CODES = {COMPLETE: "c", PARTIAL: "p", FAILED: "f", REVOKED: "r"}
_NAMES = {code: name for name, code in _CODES.items()}
_NUMBERS = ("requests", "rows", "inserted", "updated", "deleted")


def variable_name(warehouse_id: str, application_block: str) -> str:
    """``strava_round_<first 12 of the warehouse id>_<application block, as a slug>``."""
    slug = re.sub(r"[^a-z0-9_]", "_", application_block.lower())[:60]
    return f"{PREFIX}{warehouse_id[:12].lower()}_{slug}"


@dataclass(frozen=True)
class AthleteMemory:
    """What the round remembers of one athlete: last outcome and when it last succeeded."""

    outcome: str | None = None
    last_success: datetime | None = None


def read_round_state(warehouse_id: str, application_block: str) -> dict[str, AthleteMemory]:
    """The round's memory, keyed by athlete id (or block name before the id is known)."""
    value = read_variable(variable_name(warehouse_id, application_block))
    memory: dict[str, AthleteMemory] = {}
    if not isinstance(value, dict):
        return memory
    for key, item in value.items():
        text = str(item)
        try:
            epoch = int(text[:-1], 36)
        except ValueError:
            continue
        when = datetime.fromtimestamp(epoch, UTC) if epoch else None
        memory[str(key)] = AthleteMemory(_NAMES.get(text[-1:]), when)
    return memory


def write_round_state(warehouse_id: str, application_block: str, memory: Mapping[str, AthleteMemory]) -> None:
    """Save the round's memory (only the athletes given: those who left the roster drop out)."""
    value = {
        key: _base36(int(m.last_success.timestamp()) if m.last_success else 0) + _CODES.get(m.outcome or "", "f")
        for key, m in memory.items()
    }
    if len(json.dumps(value, separators=(",", ":"))) > MAX_CHARS:  # as Prefect counts (compact JSON)
        # Too many athletes for one Variable: the round still ran; the next one orders by id only.
        run_logger(__name__).warning(
            "Round state of %s athletes does not fit one Prefect Variable (%s characters): not saved",
            len(value), MAX_CHARS,
        )  # fmt: skip
        return
    write_variable(variable_name(warehouse_id, application_block), value)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def order_athletes(keys: Iterable[str], memory: Mapping[str, AthleteMemory]) -> list[str]:
    """Stalest first: never loaded or partial last time, then the oldest last success; ties by athlete id."""

    def staleness(key: str) -> tuple[int, float, int, str]:
        known = memory.get(key, AthleteMemory())
        first = known.last_success is None or known.outcome == PARTIAL
        since = known.last_success.timestamp() if known.last_success else 0.0
        return (0 if first else 1, since, int(key) if key.isdigit() else -1, key)

    return sorted(keys, key=staleness)


@dataclass(frozen=True)
class ChildOutcome:
    """What one athlete's child run did, as the round's table shows it."""

    status: str
    requests: int | None = None
    rows: int | None = None
    inserted: int | None = None
    updated: int | None = None
    deleted: int | None = None
    watermark: str | None = None


def outcome_message(summary: Mapping[str, Any]) -> str:
    """A finished run's state message: its status, then ``key=value`` numbers the round reads."""
    requests = summary.get("requests")
    enrichment = summary.get("enrichment")
    if isinstance(requests, int) and isinstance(enrichment, Mapping) and isinstance(enrichment.get("requests"), int):
        requests += enrichment["requests"]  # the round's ledger counts every request the child sent
    numbers = {"requests": requests, "rows": summary.get("athlete_rows")}
    numbers |= {key: summary.get(key) for key in ("inserted", "updated", "deleted")}
    parts = [f"{key}={int(value)}" for key, value in numbers.items() if isinstance(value, int)]
    if summary.get("watermark"):
        parts.append(f"watermark={summary['watermark']}")
    return f"{summary.get('status', COMPLETE)}: " + " ".join(parts)


_PAIR = re.compile(r"\b(requests|rows|inserted|updated|deleted|watermark)=(\S+)")


def parse_outcome(message: str | None, *, completed: bool) -> ChildOutcome:
    """Read a child's final state message back; ``completed`` is whether the state is Completed."""
    text = message or ""
    if not completed:
        return ChildOutcome(FAILED)
    status = PARTIAL if text.startswith(PARTIAL) else COMPLETE
    found = dict(_PAIR.findall(text))
    numbers = {key: int(found[key]) for key in _NUMBERS if key in found and found[key].isdigit()}
    return ChildOutcome(status, watermark=found.get("watermark"), **numbers)
