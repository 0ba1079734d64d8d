"""One athlete's state in the emulator: activities, deletions, tokens, raw-JSON knobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.athlete import AthleteGenerator, created_at_for, start_epoch

__all__ = ["DEFAULT_SCOPE", "READ", "READ_ALL", "AthleteState", "Subscription", "scopes_of"]

DEFAULT_SCOPE = "read,activity:read_all"
"""What an athlete grants unless a knob says otherwise (the pipeline asks for this)."""
READ = "activity:read"
READ_ALL = "activity:read_all"


def scopes_of(scope: str) -> set[str]:
    """The scopes in a comma- or space-separated list."""
    return {part for part in scope.replace(" ", ",").split(",") if part}


class AthleteState:
    """One athlete of the application: data, tokens and raw-JSON knobs (guarded by the emulator's lock)."""

    def __init__(
        self, index: int, generator: AthleteGenerator, history: list[dict[str, Any]], end: datetime, refresh_token: str
    ) -> None:
        self.index = index
        self.generator = generator
        self.seed = generator.seed
        self.store: dict[int, dict[str, Any]] = {a["id"]: a for a in history}
        self.starts: dict[int, int] = {a["id"]: start_epoch(a) for a in history}
        self.deleted: set[int] = set()
        self.order: list[tuple[int, int]] | None = None  # (start epoch, id), ascending
        oldest = min(self.starts.values(), default=int(end.timestamp()))
        self.created_at = created_at_for(oldest)
        self.refresh_token: str | None = refresh_token
        # raw JSON text sent in listings: fields per activity id, and extra items per page
        self.raw_fields: dict[int, dict[str, str]] = {}
        self.raw_items: list[tuple[int, int, str]] = []
        # the scope the athlete granted; detail-only fields and stream channels set by the knobs
        self.scope = DEFAULT_SCOPE
        self.detail_overrides: dict[int, dict[str, Any]] = {}
        self.stream_overrides: dict[int, dict[str, Any]] = {}

    @property
    def athlete_id(self) -> int:
        return self.generator.athlete_id

    def sorted(self) -> list[tuple[int, int]]:
        if self.order is None:
            self.order = sorted((start, i) for i, start in self.starts.items() if i not in self.deleted)
        return self.order

    def visible(self, activity_id: int, scope: str) -> bool:
        """Whether a token with ``scope`` sees the activity (private ones need ``activity:read_all``)."""
        if activity_id not in self.store or activity_id in self.deleted:
            return False
        return bool(not self.store[activity_id].get("private") or READ_ALL in scopes_of(scope))

    def gear_distance(self, gear_id: str) -> float:
        """Metres of the current activities that used ``gear_id``."""
        total = sum(
            float(a.get("distance") or 0)
            for i, a in self.store.items()
            if a.get("gear_id") == gear_id and i not in self.deleted
        )
        return round(total, 1)

    def gear_summary(self, gear_id: str) -> dict[str, Any] | None:
        """The SummaryGear (resource_state 2) of one of the athlete's shoes or bikes, or None."""
        items = self.generator.gear()
        for number, item in enumerate(items):
            if item.id == gear_id:
                metres = self.gear_distance(gear_id)
                return {
                    "id": item.id,
                    "primary": number in (0, len(self.generator.shoes)),
                    "name": item.name,
                    "nickname": None,
                    "resource_state": 2,
                    "retired": False,
                    "distance": metres,
                    "converted_distance": round(metres / 1000, 1),
                }
        return None

    def gear_detail(self, gear_id: str) -> dict[str, Any] | None:
        """The DetailedGear (resource_state 3) of ``GET /gear/{id}``, or None for gear not the athlete's."""
        summary = self.gear_summary(gear_id)
        if summary is None:
            return None
        brand, _, model = str(summary["name"]).partition(" ")
        detail = {**summary, "resource_state": 3, "brand_name": brand, "model_name": model, "description": None}
        if gear_id.startswith("b"):
            detail["frame_type"] = 3  # road
            detail["weight"] = 8.2
        return detail

    def summary(self) -> dict[str, Any]:
        """The SummaryAthlete Strava sends with an authorization-code grant."""
        newest = max(self.starts.values(), default=self.created_at)
        return self.generator.profile(self.created_at, newest)

    def detailed(self) -> dict[str, Any]:
        """The DetailedAthlete of ``GET /api/v3/athlete``."""
        newest = max(self.starts.values(), default=self.created_at)
        athlete = self.generator.profile(self.created_at, max(newest, self.created_at))
        gear: dict[str, list[dict[str, Any]]] = {"shoe": [], "bike": []}
        for item in self.generator.gear():
            summary = self.gear_summary(item.id)
            if summary is not None:
                gear[item.kind].append(summary)
        athlete.update(
            {
                "resource_state": 3,
                "blocked": False,
                "can_follow": True,
                "follower_count": 80 + self.seed % 200,
                "friend_count": 60 + self.seed % 150,
                "mutual_friend_count": 0,
                "athlete_type": 1,
                "date_preference": "%m/%d/%Y",
                "measurement_preference": "meters",
                "clubs": [],
                "postable_clubs_count": 0,
                "ftp": self.generator.ftp,
                "bikes": gear["bike"],
                "shoes": gear["shoe"],
                "is_winback_via_upload": False,
                "is_winback_via_view": False,
            }
        )
        return athlete


@dataclass
class Subscription:
    """The application's push subscription."""

    id: int
    callback_url: str
    created_at: int
