"""Mean-maximal curves and critical power on activities worked out by hand; read athlete-scoped."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from tasks.insight import curves
from tasks.insight.curves import ActivityStreams
from tests.test_insight_models import load
from tests.test_models import engine  # noqa: F401 - the engine fixture (DuckDB, PostgreSQL)

__all__ = ["engine"]

REFERENCE = date(2024, 6, 30)


def ride(activity_id: int, day: date, times: list[int], watts: list[float], sport: str = "Ride") -> ActivityStreams:
    return ActivityStreams(activity_id, day, sport, times, list(watts), [None] * len(times), [None] * len(times))


def known() -> list[ActivityStreams]:
    """1: 2024-06-01, 10 s at 300 W then 20 s at 100 W (1 Hz).
    2: 2024-01-10, 200 W sampled every 2 s for 30 samples: 29 x 2 + 1 = 59 s of 200 W (no minute).
    3: 2023-05-01, a run: 10 s at 4 m/s, a 91 s pause (no value, no window spans it), 10 s at 5 m/s.
    4: 2022-03-01, 180 s at 400 W then 540 s at 250 W: P3 400, P12 287.5 -> CP 250 W, W' 27 kJ.
    5: 2024-07-05, after the reference day: 10 s at 1000 W (all time only).
    """
    first = ride(1, date(2024, 6, 1), list(range(30)), [300] * 10 + [100] * 20)
    first.heartrate = [150.0] * 30
    run = ActivityStreams(3, date(2023, 5, 1), "Run", [*range(10), *range(100, 110)], [None] * 20, [None] * 20)
    run.speed = [4.0] * 10 + [5.0] * 10
    return [
        first,
        ride(2, date(2024, 1, 10), list(range(0, 60, 2)), [200] * 30),
        run,
        ride(4, date(2022, 3, 1), list(range(720)), [400] * 180 + [250] * 540),
        ride(5, date(2024, 7, 5), list(range(10)), [1000] * 10),
    ]


def column(result: dict, channel: str, scope: str) -> dict[int, float | None]:
    return dict(zip(result["durations"], result["channels"][channel][scope], strict=True))


def test_best_means_by_hand() -> None:
    assert curves.best_means(list(range(30)), [300] * 10 + [100] * 20, (5, 10, 30, 60)) == {
        5: 300.0,
        10: 300.0,
        30: pytest.approx(5000 / 30),
    }
    # every 2 s: each sample holds until the next; the last holds 1 s -> 59 s, no full minute
    assert curves.best_means(list(range(0, 60, 2)), [200] * 30, (30, 59, 60)) == {30: 200.0, 59: 200.0}
    # a pause over 30 s breaks the windows; a None value is no reading
    assert curves.best_means([*range(10), *range(100, 110)], [4.0] * 10 + [5.0] * 10, (10, 11, 30)) == {10: 5.0}
    assert curves.best_means([0, 1, 2, 3], [100, None, 100, 100], (2, 3)) == {2: 100.0}


def test_mean_maximal_curves_by_hand() -> None:
    result = curves.curves(known(), REFERENCE)
    watts_all = column(result, "watts", "all")
    assert watts_all[5] == 1000.0 and watts_all[10] == 1000.0  # activity 5 counts in all time
    assert (watts_all[30], watts_all[60]) == (400.0, 400.0)
    assert watts_all[300] == pytest.approx((180 * 400 + 120 * 250) / 300, abs=0.05)  # 340
    assert watts_all[600] == pytest.approx((180 * 400 + 420 * 250) / 600, abs=0.05)  # 295
    assert watts_all[1200] is None
    assert column(result, "watts", "year") == {5: 300.0, 10: 300.0, 30: 200.0} | {
        d: None for d in curves.DURATIONS if d > 30
    }
    recent = column(result, "watts", "recent")
    assert (recent[5], recent[10], recent[30], recent[60]) == (300.0, 300.0, 166.7, None)
    assert column(result, "heartrate", "recent")[30] == 150.0
    pace = column(result, "speed", "all")
    assert (pace[5], pace[10], pace[30]) == (5.0, 5.0, None)  # the pause breaks the windows
    assert column(result, "speed", "year")[5] is None  # the run was in 2023
    assert result["criticalPower"]["all"] == {"cp_w": 250.0, "w_prime_j": 27000, "p3_w": 400.0, "p12_w": 287.5}
    assert result["criticalPower"]["year"] is None and result["criticalPower"]["recent"] is None
    assert result["activities"] == 5


def test_critical_power_formula() -> None:
    """CP = (720 P12 - 180 P3) / 540, W' = (P3 - CP) * 180; no estimate when P12 >= P3 or one is missing."""
    assert curves.critical_power(360.0, 300.0) == {"cp_w": 280.0, "w_prime_j": 14400, "p3_w": 360.0, "p12_w": 300.0}
    assert curves.critical_power(300.0, 300.0) is None
    assert curves.critical_power(None, 250.0) is None


def test_streams_are_read_per_athlete(engine: sa.Engine) -> None:
    """Athletes 5 and 6 ride the same hour (200 W and 330 W): each one's curve holds only their own."""
    load(engine, 5)
    load(engine, 6)
    with engine.connect() as conn:
        five = list(curves.read_streams(conn, 5))
        six = curves.curves(curves.read_streams(conn, 6), date(2024, 3, 31))
    assert sorted(a.activity_id for a in five) == [500_001, 500_002]
    result = curves.curves(five, date(2024, 3, 31))
    assert column(result, "watts", "all")[3600] == 200.0
    assert column(result, "watts", "recent")[3600] == 200.0
    assert column(result, "heartrate", "all")[5] == 158.0  # B: 4 s at 150 + its last second at 190
    assert column(six, "watts", "all")[3600] == 330.0
    assert column(result, "speed", "all")[5] is None  # no velocity stream


def test_no_streams_table_no_curves(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert list(curves.read_streams(conn, 5)) == []
