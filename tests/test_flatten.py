"""Flattening gives exactly the rows the column rules say, for realistic and hostile activities alike.

``schema.flatten_activity`` chooses each column's rule once, for speed (bench/flatten.py). This
module holds it to a plain reference written here from the rules alone (where each column comes
from, what each kind of column accepts, the declared ranges), over a fixed-seed corpus: the
emulator's activities, through JSON as the client reads them, with hostile values put in
(numbers JSON holds and Python cannot, 2**70 ids, NaN, lone surrogates, NUL bytes, text past the
byte limit, wrong JSON types, missing fields, naive, aware, far and garbage dates, bools where
numbers go). Rows must be equal type for type: int is not float, an aware datetime is not a naive one.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from emulator import StravaEmulator
from tasks.warehouse import schema

SEED = 20261102
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CORPUS_SIZE = 2_000

_LIMIT = schema.TEXT_MAX_BYTES
_WIRE = [  # raw JSON texts, parsed as the client parses a page
    "1e999", "-1e999", "NaN", "Infinity", str(2**70), str(-(2**70)), str(2**63 - 1), str(2**63),
    str(2**31 - 1), str(2**31), str(-(2**31) - 1), "0", "-1", "1", "1.5", "5.0", "-0.0", "1e9",
    "1000000000.0000001", "90.000001", "-180.0", "51.512337", "1700000000", "true", "false", "null",
    '"7"', '""', '"\\ud800"', '"lone \\udfff low"', '"nul \\u0000 byte"', '"🏃‍♀️ Morning Run 🇬🇧"',
    "[1]", "[]", '{"a": 1}', '{"id": 5}',
    '"2025-01-01T00:00:00Z"', '"2025-06-01T07:30:00+02:00"', '"2025-06-01T07:30:00"', '"2025-01-01"',
    '"yesterday"', '"2025-13-01T00:00:00Z"', '"2300-01-01T00:00:00Z"', '"1969-12-31T23:59:59.999999Z"',
    '"1970-01-01T00:00:00Z"', '"2199-12-31T23:59:59.999999Z"', '"2200-01-01T00:00:00+01:00"',
    '"0001-01-01T00:00:00+01:00"', '"9999-12-31T23:59:59-01:00"', '"1970-01-01T00:30:00+01:00"',
]  # fmt: skip


class _Int(int):
    """An int subclass (no JSON parser makes one; other callers might)."""


class _Float(float):
    """A float subclass."""


class _Str(str):
    """A str subclass."""


HOSTILE: list[Any] = [
    *(json.loads(text) for text in _WIRE),
    "x" * _LIMIT,
    "x" * (_LIMIT + 1),
    "é" * (_LIMIT // 2) + "x",
    "é" * (_LIMIT // 2) + "xy",
    "nul \x00 byte",
    datetime(2025, 1, 1, 12, 0),
    datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime(1969, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
    (1.5, 2.5),
    (1.5, 2.5, 3.5),
    b"bytes",
    _Int(7),
    _Float(2.5),
    _Str("sub"),
    True,
    False,
]
"""Values sent in place of a field: each can go into any column or nested field."""

_NESTED = {"athlete": ("id",), "map": ("id", "summary_polyline"), "start_latlng": (), "end_latlng": ()}


def _hostile(rng: random.Random) -> Any:
    return rng.choice(HOSTILE)


def _spoil(activity: dict[str, Any], rng: random.Random) -> None:
    """Put hostile values into (or take fields out of) ``activity``, in place."""
    fields = sorted({*activity, *_NESTED})
    for name in rng.sample(fields, rng.randint(1, 15)):
        roll = rng.random()
        if roll < 0.15:
            activity.pop(name, None)
        elif name in ("athlete", "map") and roll < 0.6:
            inner = dict(activity.get(name) or {}) if isinstance(activity.get(name), dict) else {}
            inner[rng.choice(_NESTED[name])] = _hostile(rng)
            activity[name] = inner
        elif name.endswith("_latlng") and roll < 0.6:
            activity[name] = [_hostile(rng) for _ in range(rng.choice((1, 2, 2, 3)))]
        else:
            activity[name] = _hostile(rng)


def corpus() -> list[dict[str, Any]]:
    """The emulator's activities as the client reads them; most of them spoiled, a few left clean."""
    emu = StravaEmulator(activities=CORPUS_SIZE, seed=SEED, clock=lambda: NOW)
    activities: list[dict[str, Any]] = json.loads(json.dumps(emu.activities))
    rng = random.Random(SEED)
    for activity in activities:
        if rng.random() < 0.8:
            _spoil(activity, rng)
    activities.append({})  # every field missing
    return activities


# --------------------------------------------------------------------------- the reference


def _sent(activity: dict[str, Any], name: str) -> Any:
    """What Strava sent for column ``name``: where each column comes from."""
    if name == "athlete_id" or name.startswith("map_"):
        outer, inner = ("athlete", "id") if name == "athlete_id" else ("map", name.removeprefix("map_"))
        nested = activity.get(outer)
        return nested.get(inner) if isinstance(nested, dict) else None
    if name in ("start_lat", "start_lng", "end_lat", "end_lng"):
        pair = activity.get(name[:-4] + "_latlng")
        if isinstance(pair, list | tuple) and len(pair) == 2:
            return pair[0] if name.endswith("_lat") else pair[1]
        return None
    value = activity.get(name)
    if name == "upload_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _reference_value(column: schema.Column, value: Any) -> Any:
    """The column's rule, plainly: its kind's type, finite, within its declared range; None otherwise."""
    t, low, high = column.arrow_type, column.low, column.high
    if value is None:
        return None
    if pa.types.is_string(t):
        if not isinstance(value, str) or "\x00" in value:
            return None
        try:
            return value if len(value.encode("utf-8")) <= (high or _LIMIT) else None
        except UnicodeEncodeError:
            return None
    if pa.types.is_boolean(t):
        return value if isinstance(value, bool) else None
    if pa.types.is_timestamp(t):
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
        elif isinstance(value, datetime):
            moment = value
        else:
            return None
        try:
            if t.tz is None:
                moment = moment.replace(tzinfo=None)
            else:
                moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        except OverflowError:
            return None
        return moment if low is None or low <= moment <= high else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if pa.types.is_integer(t):
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None
        number: int | float = int(value)
    else:
        try:
            number = float(value)
        except OverflowError:
            return None
        if not math.isfinite(number):
            return None
    return number if low is None or low <= number <= high else None


def reference_row(activity: dict[str, Any], extracted_at: datetime) -> dict[str, Any]:
    row = {c.name: _reference_value(c, _sent(activity, c.name)) for c in schema.API_COLUMNS}
    payload = json.dumps(list(row.values()), default=str, ensure_ascii=False)
    row["row_hash"] = hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()
    row["extracted_at"] = extracted_at
    return row


def reference_unfit(activity: dict[str, Any], row: dict[str, Any]) -> list[str]:
    return [c.name for c in schema.API_COLUMNS if row[c.name] is None and _sent(activity, c.name) is not None]


def reference_rejection(activity: dict[str, Any], row: dict[str, Any]) -> tuple[str, str] | None:
    for name in ("id", "start_date"):
        if row[name] is None:
            sent = activity.get(name)
            shown = json.dumps(sent, default=repr)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return name, f"no {name}" if sent is None else f"{name} {shown} does not fit its column"
    return None


# --------------------------------------------------------------------------- equality, type for type


def _key(value: Any) -> tuple[Any, ...]:
    """``value`` with its exact type (and a datetime's offset), so 1 != 1.0 and aware != naive."""
    if isinstance(value, datetime):
        return (type(value), value.replace(tzinfo=None), value.tzinfo and value.utcoffset())
    if isinstance(value, float):
        return (float, value.hex())
    return (type(value), value)


def assert_same_row(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    assert list(got) == list(want), where  # the same columns, in the table's order
    for name, value in want.items():
        assert _key(got[name]) == _key(value), (where, name, got[name], value)


def test_the_equality_check_tells_types_and_time_zones_apart() -> None:
    naive = datetime(2025, 1, 1)
    assert _key(1) != _key(1.0) and _key(True) != _key(1) and _key(None) != _key(0)
    assert _key(naive) != _key(naive.replace(tzinfo=UTC)) and _key(0.0) != _key(-0.0)
    assert _key(_Str("a")) != _key("a")
    aware = datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert aware == naive.replace(tzinfo=UTC) and _key(aware) != _key(naive.replace(tzinfo=UTC))
    with pytest.raises(AssertionError):
        assert_same_row({"id": 1, "row_hash": "h"}, {"id": 1.0, "row_hash": "h"}, "int is not float")
    with pytest.raises(AssertionError):
        assert_same_row({"row_hash": "h", "id": 1}, {"id": 1, "row_hash": "h"}, "order counts")


@pytest.fixture(scope="module")
def activities() -> list[dict[str, Any]]:
    return corpus()


def _pairs(activities: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for index, activity in enumerate(activities):
        yield f"activity {index}", activity, schema.flatten_activity(activity, NOW)


def test_the_corpus_reaches_every_column_with_fitting_and_unfit_values(activities: list[dict[str, Any]]) -> None:
    """Without this the equality below could pass on a corpus that never tries a rule."""
    for column in schema.API_COLUMNS:
        sent = [_sent(a, column.name) for a in activities]
        kept = [_reference_value(column, v) for v in sent]
        assert sum(v is not None for v in kept) >= 50, column.name
        assert sum(s is not None and k is None for s, k in zip(sent, kept, strict=True)) >= 20, column.name
    rows = [reference_row(a, NOW) for a in activities]
    assert sum(reference_rejection(a, r) is None for a, r in zip(activities, rows, strict=True)) >= 100
    assert {type(v) for r in rows for v in r.values()} == {type(None), bool, int, float, str, _Str, datetime}


def test_flatten_gives_the_reference_rows(activities: list[dict[str, Any]]) -> None:
    for where, activity, row in _pairs(activities):
        assert_same_row(row, reference_row(activity, NOW), where)


def test_unfit_values_and_rejection_match_the_reference(activities: list[dict[str, Any]]) -> None:
    for where, activity, row in _pairs(activities):
        assert schema.unfit_values(activity, row) == reference_unfit(activity, row), where
        assert schema.rejection(activity, row) == reference_rejection(activity, row), where
        assert schema.row_hash(row) == row["row_hash"], where


@pytest.mark.parametrize("column", schema.ALL_COLUMNS, ids=lambda c: c.name)
def test_coerce_gives_the_reference_value_for_every_hostile_value(column: schema.Column) -> None:
    for value in [None, *HOSTILE]:
        assert _key(schema.coerce(column, value)) == _key(_reference_value(column, value)), (column.name, value)


@pytest.mark.parametrize(
    ("arrow_type", "low", "high"),
    [(pa.float64(), None, None), (pa.float64(), 0.0, math.inf), (pa.int32(), 0, None), (pa.bool_(), 0, 1)],
)
def test_a_column_declared_with_the_wrong_bounds_is_refused_naming_it(
    arrow_type: pa.DataType, low: Any, high: Any
) -> None:
    column = schema.Column("speed", None, arrow_type, lambda a: a.get("speed"), low, high)
    with pytest.raises(ValueError, match=r"Column 'speed' .* declares low=.*Fix its declaration"):
        schema.coerce(column, 1)
