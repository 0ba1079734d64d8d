"""The round from the command line: run it in this process, and show its per-athlete table."""

from __future__ import annotations

from typing import Any

__all__ = ["format_round", "print_round", "run_round"]


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
