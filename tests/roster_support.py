"""One Strava application with several athletes, as blocks on the test server, behind the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from blocks import StravaApplication, StravaCredentials
from emulator import StravaEmulator
from tasks.strava.auth import authorize_athlete
from tests.conftest import EMULATOR_END, EMULATOR_SEED


@dataclass
class Roster:
    """The emulator, the application block, one athlete block per athlete, a lake and a warehouse."""

    emu: StravaEmulator
    home: Path
    application_block: str
    lake_block: str
    warehouse_block: str
    athlete_blocks: dict[int, str] = field(default_factory=dict)

    @property
    def athlete_ids(self) -> list[int]:
        return list(self.emu.athlete_ids)

    def run(self, athlete_id: int, **overrides: Any) -> dict[str, Any]:
        """One pipeline run for ``athlete_id`` in this process, tagged as the round tags its child runs."""
        from prefect import tags

        from flows.pipeline import strava_elt

        parameters = {
            "strava_block": self.athlete_blocks[athlete_id],
            "lake_block": self.lake_block,
            "warehouse_block": self.warehouse_block,
            **overrides,
        }
        with tags(f"strava-athlete:{athlete_id}"):
            return strava_elt(**parameters)


def save_application(emu: StravaEmulator, name: str) -> StravaApplication:
    """Save an application block for the emulator's application under ``name``."""
    application = StravaApplication(
        client_id=emu.client_id, client_secret=SecretStr(emu.client_secret), base_url=emu.base_url
    )
    application.save(name, overwrite=True)
    return application


def make_roster(tmp_path: Path, athletes: int = 3, activities: int = 60, **emulator_kwargs: Any) -> Iterator[Roster]:
    """An application of ``athletes`` athletes, each authorised through its authorization code."""
    from tasks.setup import setup_local_blocks

    suffix = uuid.uuid4().hex[:10]
    emulator_kwargs.setdefault("seed", EMULATOR_SEED)
    emulator_kwargs.setdefault("end", EMULATOR_END)
    # Its own application: the budget Variable is per client id, and tests share a Prefect server.
    emulator_kwargs.setdefault("client_id", str(int(uuid.uuid4().int % 10**8) + 2 * 10**8))
    emu = StravaEmulator(activities=activities, athletes=athletes, **emulator_kwargs)
    emu.start()
    try:
        lake, warehouse = f"lake-{suffix}", f"warehouse-{suffix}"
        setup_local_blocks(tmp_path, names=("unused", lake, warehouse))
        application = save_application(emu, f"app-{suffix}")
        roster = Roster(emu, tmp_path, f"app-{suffix}", lake, warehouse)
        for athlete_id in emu.athlete_ids:
            credentials, _ = authorize_athlete(application, emu.for_athlete(athlete_id).authorization_code())
            name = application.athlete_block_name(athlete_id)
            credentials.save(name, overwrite=True)
            roster.athlete_blocks[athlete_id] = name
        yield roster
    finally:
        emu.stop()


def athlete_credentials(roster: Roster, athlete_id: int) -> StravaCredentials:
    """The athlete's block as saved now."""
    from blocks.loading import load_block

    return load_block(StravaCredentials, roster.athlete_blocks[athlete_id])
