"""``strava-elt run --all`` and ``strava-elt demo --athletes N``: the round from the command line.

Prefect is imported inside the functions, after flows/cli.py has set the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEMO_APPLICATION = "strava-demo-app"


def setup_application_blocks(
    application_block: str, client_id: str, client_secret: str, base_url: str, refresh_tokens: dict[int, str]
) -> list[str]:
    """Save a StravaApplication block and one athlete block per ``{athlete id: refresh token}``.

    Returns:
        The athlete blocks' names, ``<application block>-athlete-<athlete id>``.

    """
    from pydantic import SecretStr

    from blocks.loading import load_block
    from blocks.strava import StravaApplication, StravaCredentials

    StravaApplication(client_id=client_id, client_secret=SecretStr(client_secret), base_url=base_url).save(
        application_block, overwrite=True
    )
    # The loaded block carries its document id: athletes reference it, never copy its secret.
    application = load_block(StravaApplication, application_block)
    names = []
    for athlete_id, token in refresh_tokens.items():
        name = application.athlete_block_name(athlete_id)
        StravaCredentials(application=application, refresh_token=SecretStr(token), athlete_id=athlete_id).save(
            name, overwrite=True
        )
        names.append(name)
    return names


def setup_emulator_application(emu: Any, application_block: str) -> list[str]:
    """The application and athlete blocks of a running emulator (every athlete's current token)."""
    tokens = {a: emu.for_athlete(a).current_refresh_token for a in emu.athlete_ids}
    return setup_application_blocks(application_block, str(emu.client_id), emu.client_secret, emu.base_url, tokens)


def run_round(**parameters: Any) -> dict[str, Any]:
    """Run the round in this process; return its result (also when athletes failed)."""
    from flows.round import strava_round

    state = strava_round(**parameters, return_state=True)
    result: dict[str, Any] = state.result(raise_on_failure=False)  # type: ignore[assignment]
    if not isinstance(result, dict):  # the round itself failed before it had athletes to show
        raise RuntimeError(f"the round failed: {state.message}")
    result["state"] = f"{state.name}: {state.message}"
    return result


def format_round(result: dict[str, Any]) -> list[str]:
    """The round's per-athlete table as lines of text."""
    header = ("athlete", "outcome", "requests", "rows", "inserted", "updated", "watermark")
    rows = [[str(a.get(k) if a.get(k) is not None else "-") for k in header] for a in result["athletes"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"{a['athlete']}: {a['detail']}" for a in result["athletes"] if a.get("detail")]
    return lines


def print_round(title: str, result: dict[str, Any]) -> None:
    """Print a round's state and table."""
    print(f"\n== {title}: {result.get('state', '')}")
    for line in format_round(result):
        print("   " + line)


def demo_rounds(home: Path, athletes: int, activities: int, blocks: Sequence[str]) -> int:
    """Two rounds over ``athletes`` emulated athletes of one application, with changes in between."""
    from emulator import StravaEmulator
    from flows.cli import setup_local_blocks

    _, lake_block, warehouse_block = blocks
    with StravaEmulator(activities=activities, athletes=athletes) as emu:
        print(f"Strava API emulator on {emu.base_url}: {athletes} athletes of one application")
        setup_local_blocks(home, names=blocks)
        names = setup_emulator_application(emu, DEMO_APPLICATION)
        print(f"Application block {DEMO_APPLICATION!r}, athlete blocks: {', '.join(names)}")
        params = {"application_block": DEMO_APPLICATION, "lake_block": lake_block, "warehouse_block": warehouse_block}
        first = run_round(**params)
        print_round("Round 1: every athlete's first load", first)
        for athlete_id in emu.athlete_ids[1:]:
            emu.for_athlete(athlete_id).add_activities(2)
        print(f"\nIn the emulator: 2 new activities for {athletes - 1} of the athletes")
        second = run_round(**params)
        print_round("Round 2: incremental", second)
    ok = all(a["outcome"] == "complete" for r in (first, second) for a in r["athletes"])
    ok = ok and sum(a.get("inserted") or 0 for a in second["athletes"]) == 2 * (athletes - 1)
    print("\nDemo " + ("succeeded." if ok else "finished, but the numbers are not what was expected."))
    return 0 if ok else 1
