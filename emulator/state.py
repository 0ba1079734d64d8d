"""One athlete's state in the emulator: activities, deletions, tokens, raw-JSON knobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.athlete import AthleteGenerator, created_at_for, start_epoch

__all__ = ["AthleteState", "Subscription"]


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

    @property
    def athlete_id(self) -> int:
        return self.generator.athlete_id

    def sorted(self) -> list[tuple[int, int]]:
        if self.order is None:
            self.order = sorted((start, i) for i, start in self.starts.items() if i not in self.deleted)
        return self.order

    def summary(self) -> dict[str, Any]:
        """The SummaryAthlete Strava sends with an authorization-code grant."""
        newest = max(self.starts.values(), default=self.created_at)
        return self.generator.profile(self.created_at, newest)

    def detailed(self) -> dict[str, Any]:
        """The DetailedAthlete of ``GET /api/v3/athlete``."""
        newest = max(self.starts.values(), default=self.created_at)
        athlete = self.generator.profile(self.created_at, max(newest, self.created_at))
        distances: dict[str, float] = {}
        for i, activity in self.store.items():
            gear_id = activity.get("gear_id")
            if gear_id and i not in self.deleted:
                distances[gear_id] = distances.get(gear_id, 0.0) + float(activity["distance"])
        gear: dict[str, list[dict[str, Any]]] = {"shoe": [], "bike": []}
        for number, item in enumerate(self.generator.gear()):
            metres = round(distances.get(item.id, 0.0), 1)
            gear[item.kind].append(
                {
                    "id": item.id,
                    "primary": number in (0, len(self.generator.shoes)),
                    "name": item.name,
                    "nickname": None,
                    "resource_state": 2,
                    "retired": False,
                    "distance": metres,
                    "converted_distance": round(metres / 1000, 1),
                }
            )
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
