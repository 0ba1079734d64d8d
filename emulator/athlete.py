"""A synthetic Strava athlete: realistic SummaryActivity dicts, deterministic from a seed.

About seven activities a week on a weekly pattern (easy runs, a workout, commutes, a long
ride on Saturday, a long run on Sunday, strength and yoga), with seasons (indoor rides in
winter, open-water swims in summer), holiday gaps and trips abroad. Kudos depend on distance,
workout type, weekday, photos, visibility and the athlete's growing following, with noise.
Names include :data:`NASTY_NAMES`, the strings that break naive loaders.
"""

from __future__ import annotations

import calendar
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from emulator.track import grid_route

__all__ = [
    "NASTY_NAMES",
    "AthleteGenerator",
    "decode_polyline",
    "encode_polyline",
]

_LONG_NAME = (
    "Ultra training block week 12 of 16: back-to-back long runs on tired legs, "
    "fuelling practice every 30 minutes, new shoes for the first time, headwind on the way "
    "out and tailwind on the way home, coffee stop at the lighthouse, saw a seal, "
    "knees fine, legs done, happy"
)
_LONG_NAME = (_LONG_NAME + " " + "." * 255)[:255]

NASTY_NAMES: tuple[str, ...] = (
    "Tempo | 5x1k | hills",
    "Long run\nwith the club",
    "Recovery jog\r\nlegs heavy",
    'The "easy" run that was not',
    "Tom's parkrun",
    "C:\\Users\\runner\\intervals\\",
    "Swim\t400m\tdrills",
    "🏃‍♀️ Morning Run 🇬🇧 👍🏽",
    "Ride, then coffee, then nap",
    "",
    _LONG_NAME,
    "朝ラン 日本語 皇居",
    "Πρωινό τρέξιμο Ελληνικά",
    "'); DROP TABLE strava_activity_data; --",
)
"""Activity names that break naive loaders (CSV, COPY, f-string SQL, fixed-width columns)."""

_ID_BASE = 9_000_000_000
_EPOCH_2009 = 1_230_768_000
_MAX_YEARS = 15
_DAY = 86_400


# --- places and time zones ------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    city: str
    state: str
    country: str
    lat: float
    lng: float
    elevation: float
    tz_name: str
    std_offset: int
    eu_dst: bool

    @cached_property
    def tz_label(self) -> str:
        sign = "+" if self.std_offset >= 0 else "-"
        hours, rest = divmod(abs(self.std_offset), 3600)
        return f"(GMT{sign}{hours:02d}:{rest // 60:02d}) {self.tz_name}"

    def offset(self, utc_epoch: int) -> int:
        """UTC offset in seconds at ``utc_epoch`` (EU summer time where it applies)."""
        if not self.eu_dst:
            return self.std_offset
        start, end = _eu_dst(time.gmtime(utc_epoch).tm_year)
        return self.std_offset + (3600 if start <= utc_epoch < end else 0)


@lru_cache(maxsize=256)
def _eu_dst(year: int) -> tuple[int, int]:
    """EU summer time: last Sunday of March to last Sunday of October, 01:00 UTC."""

    def last_sunday(month: int) -> int:
        last = calendar.monthrange(year, month)[1]
        day = last - (calendar.weekday(year, month, last) + 1) % 7
        return calendar.timegm((year, month, day, 1, 0, 0))

    return last_sunday(3), last_sunday(10)


_LONDON = "Europe/London"
_HOMES = (
    _Place("London", "England", "United Kingdom", 51.5074, -0.1278, 20, _LONDON, 0, True),
    _Place("Bristol", "England", "United Kingdom", 51.4545, -2.5879, 40, _LONDON, 0, True),
    _Place("Manchester", "England", "United Kingdom", 53.4808, -2.2426, 50, _LONDON, 0, True),
    _Place("Edinburgh", "Scotland", "United Kingdom", 55.9533, -3.1883, 60, _LONDON, 0, True),
)
_TRIPS = (
    _Place("Paris", "Île-de-France", "France", 48.8566, 2.3522, 40, "Europe/Paris", 3600, True),
    _Place(
        "Chamonix-Mont-Blanc",
        "Auvergne-Rhône-Alpes",
        "France",
        45.9237,
        6.8694,
        1035,
        "Europe/Paris",
        3600,
        True,
    ),
    _Place("Athens", "Attica", "Greece", 37.9838, 23.7275, 100, "Europe/Athens", 7200, True),
    _Place("Tokyo", "Tokyo", "Japan", 35.6762, 139.6503, 30, "Asia/Tokyo", 32400, False),
)


# --- kinds of activity ----------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    sport_type: str
    type: str
    label: str  # for the default name, "Morning <label>"
    size: tuple[float, float]  # km, or minutes when speed is (0, 0)
    speed: tuple[float, float]  # m/s
    climb: tuple[float, float]  # metres per km
    workout_type: int | None
    gps: bool
    trainer: bool = False
    gear: str | None = None  # "shoe" or "bike"
    heart: float = 140.0
    kudos: float = 5.0
    commute: bool = False


_KINDS: dict[str, _Kind] = {
    "easy_run": _Kind("Run", "Run", "Run", (5, 12), (2.85, 3.4), (3, 12), 0, True, gear="shoe", heart=141, kudos=5.0),
    "workout_run": _Kind("Run", "Run", "Run", (8, 14), (3.3, 3.85), (2, 8), 3, True, gear="shoe", heart=156, kudos=6.0),
    "long_run": _Kind("Run", "Run", "Run", (16, 30), (3.0, 3.3), (4, 12), 2, True, gear="shoe", heart=146, kudos=8.0),
    "race_run": _Kind("Run", "Run", "Run", (5, 5), (3.6, 4.3), (1, 6), 1, True, gear="shoe", heart=169, kudos=8.0),
    "trail_run": _Kind(
        "TrailRun", "Run", "Trail Run", (8, 24), (2.3, 2.9), (25, 60), 0, True, gear="shoe", heart=150, kudos=8.0
    ),
    "treadmill_run": _Kind(
        "Run", "Run", "Run", (5, 10), (2.9, 3.4), (0, 0), 0, False, trainer=True, gear="shoe", heart=143, kudos=2.5
    ),
    "ride": _Kind("Ride", "Ride", "Ride", (30, 70), (7.0, 8.6), (6, 15), 10, True, gear="bike", heart=134, kudos=6.0),
    "long_ride": _Kind(
        "Ride", "Ride", "Ride", (70, 140), (7.2, 8.4), (8, 16), 10, True, gear="bike", heart=136, kudos=9.0
    ),
    "gravel_ride": _Kind(
        "GravelRide", "Ride", "Gravel Ride", (35, 90), (5.8, 7.2), (8, 18), 10, True, gear="bike", heart=138, kudos=7.0
    ),
    "commute": _Kind(
        "Ride", "Ride", "Ride", (6, 11), (5.5, 6.8), (3, 8), 10, True, gear="bike", heart=122, kudos=1.2, commute=True
    ),
    "virtual_ride": _Kind(
        "VirtualRide",
        "VirtualRide",
        "Ride",
        (20, 50),
        (8.5, 10.5),
        (5, 15),
        10,
        False,
        trainer=True,
        gear="bike",
        heart=146,
        kudos=3.0,
    ),
    "trainer_ride": _Kind(
        "Ride", "Ride", "Ride", (20, 40), (8.0, 9.5), (0, 0), 12, False, trainer=True, gear="bike", heart=148, kudos=2.0
    ),
    "pool_swim": _Kind("Swim", "Swim", "Swim", (1.5, 3.5), (0.75, 0.95), (0, 0), None, False, heart=131, kudos=4.0),
    "open_water_swim": _Kind("Swim", "Swim", "Swim", (1.0, 3.0), (0.7, 0.9), (0, 0), None, True, heart=133, kudos=7.0),
    "walk": _Kind("Walk", "Walk", "Walk", (2, 7), (1.25, 1.6), (3, 12), None, True, heart=101, kudos=2.0),
    "hike": _Kind("Hike", "Hike", "Hike", (8, 20), (0.9, 1.3), (40, 90), None, True, heart=121, kudos=8.0),
    "strength": _Kind(
        "WeightTraining",
        "WeightTraining",
        "Weight Training",
        (30, 60),
        (0, 0),
        (0, 0),
        None,
        False,
        heart=112,
        kudos=1.5,
    ),
    "yoga": _Kind("Yoga", "Yoga", "Yoga", (30, 75), (0, 0), (0, 0), None, False, heart=88, kudos=1.0),
}

# Weekly pattern, Monday first: (probability, kind, earliest local hour, latest local hour).
_WEEK: tuple[tuple[tuple[float, str, float, float], ...], ...] = (
    ((0.70, "easy_run", 6.0, 7.5), (0.30, "yoga", 19.0, 20.5)),
    ((0.80, "workout_run", 18.0, 19.5), (0.35, "commute", 7.4, 8.2)),
    ((0.55, "midweek_ride", 18.0, 19.5), (0.45, "strength", 12.2, 13.0)),
    ((0.75, "easy_run", 6.0, 7.5), (0.35, "commute", 7.4, 8.2)),
    ((0.50, "swim", 6.5, 7.5),),
    ((0.65, "long_ride", 7.5, 9.0), (0.15, "race_run", 9.0, 9.0), (0.20, "easy_run", 8.0, 9.5)),
    ((0.80, "long_run", 8.0, 9.5), (0.45, "walk", 14.0, 16.5), (0.10, "hike", 10.0, 11.0)),
)
_TRIP_DAY: tuple[tuple[float, str, float, float], ...] = (
    (0.60, "easy_run", 7.0, 8.5),
    (0.45, "walk", 10.0, 17.0),
    (0.25, "hike", 9.0, 10.0),
)
_KUDOS_BY_WORKOUT = {1: 2.0, 2: 1.3, 3: 1.15, 11: 1.8, 12: 1.1}
_KUDOS_BY_VISIBILITY = {"everyone": 1.0, "followers_only": 0.7, "only_me": 0.0}
_PER_DAY = 1.05  # expected activities a day, holidays included

_SHOES = (
    "Nike Pegasus 40",
    "Saucony Endorphin Speed 3",
    "Hoka Clifton 9",
    "ASICS Novablast 4",
    "Brooks Ghost 15",
    "New Balance 1080v13",
    "Hoka Speedgoat 5",
    "Adidas Adizero SL",
)
_BIKES = (
    "Canyon Ultimate CF SL",
    "Specialized Tarmac SL7",
    "Trek Domane AL 2",
    "Cannondale Topstone",
    "Giant TCR Advanced",
    "Ribble Endurance SL",
)
_FIRST = {
    "F": ("Alice", "Priya", "Sofia", "Hannah", "Chloe", "Aoife", "Maya", "Eleni"),
    "M": ("Tom", "James", "Arjun", "Oliver", "Kenji", "Dimitris", "Liam", "Samuel"),
}
_LAST = ("Walker", "Okafor", "Patel", "Nakamura", "Papadopoulos", "Murphy", "Evans", "Novak", "Fraser", "Lindqvist")
_ZWIFT = ("Watopia", "London", "Richmond", "Yorkshire", "Innsbruck", "Makuri Islands")
_ZWIFT_ROUTES = (
    "Tempus Fugit",
    "Volcano Flat",
    "Greater London Flat",
    "Keith Hill After Party",
    "Road to Sky",
    "Hilly Route",
    "Big Loop",
    "Neokyo All-Nighter",
)
_CUSTOM: dict[str, tuple[str, ...]] = {
    "easy_run": ("Easy miles", "Shakeout", "Run commute", "Recovery run", "Dog run 🐕"),
    "workout_run": ("6x800m @ 5k pace", "Tempo 3x2mi", "Hill repeats", "Track: 12x400m", "Threshold 4x8min", "Fartlek"),
    "long_run": ("Sunday long run", "LSR with the club", "Long run, negative split", "Marathon block long run"),
    "trail_run": ("Trail loop", "Muddy trails", "Ridge run"),
    "ride": ("Chaingang", "Hilly loop", "Evening spin"),
    "long_ride": ("Café ride ☕", "Club run", "Sportive recce", "Century attempt"),
    "gravel_ride": ("Gravel grind", "Bridleway bash"),
    "commute": ("Commute", "Commute home", "Ride to work"),
    "trainer_ride": ("Sweet spot 3x15", "FTP test", "Turbo session"),
    "pool_swim": ("Masters swim", "Lunch swim", "Drills and kick"),
    "open_water_swim": ("Open water swim", "Lake swim 🏊", "Sea swim"),
    "walk": ("Walk with the dog 🐕", "Family walk", "Lunchtime stroll"),
    "hike": ("Summit day ⛰️", "Hike with friends", "Ridge walk"),
    "strength": ("Gym: legs", "Core and mobility", "Strength circuit"),
    "yoga": ("Yoga flow", "Stretch and roll", "Yin yoga"),
}


# --- polylines ------------------------------------------------------------------------


def encode_polyline(points: list[tuple[float, float]]) -> str:
    """Encode (lat, lng) pairs with Google's polyline algorithm (precision 5)."""
    out: list[str] = []
    prev_lat = prev_lng = 0
    for lat, lng in points:
        ilat, ilng = round(lat * 1e5), round(lng * 1e5)
        for delta in (ilat - prev_lat, ilng - prev_lng):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        prev_lat, prev_lng = ilat, ilng
    return "".join(out)


def decode_polyline(encoded: str) -> list[tuple[float, float]]:
    """Decode a Google polyline (precision 5) into (lat, lng) pairs."""
    points: list[tuple[float, float]] = []
    index = lat = lng = 0
    coords = [0, 0]
    while index < len(encoded):
        for i in range(2):
            shift = result = 0
            while True:
                byte = ord(encoded[index]) - 63
                index += 1
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            coords[i] = ~(result >> 1) if result & 1 else result >> 1
        lat += coords[0]
        lng += coords[1]
        points.append((lat / 1e5, lng / 1e5))
    return points


@lru_cache(maxsize=8192)
def _route(
    seed: int, place: _Place, family: str, metres: int, variant: int
) -> tuple[str, tuple[float, float], tuple[float, float]]:
    """One of the athlete's usual loops of ``metres`` near ``place``: polyline, start, end.

    Athletes repeat their routes, and caching them keeps generation fast. A route depends
    only on its arguments (its own seeded RNG), never on the order of generation.
    """
    rng = random.Random(f"strava-emulator:route:{seed}:{place.city}:{family}:{metres}:{variant}")
    lat = place.lat + rng.uniform(-0.01, 0.01)
    lng = place.lng + rng.uniform(-0.015, 0.015)
    points = grid_route(rng, lat, lng, float(metres))
    return (
        encode_polyline(points),
        (round(points[0][0], 6), round(points[0][1], 6)),
        (round(points[-1][0], 6), round(points[-1][1], 6)),
    )


# --- the generator --------------------------------------------------------------------


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _rint(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in [low, high]; cheaper than ``randint`` for bulk generation."""
    return low + int(rng.random() * (high - low + 1))


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return int(moment.timestamp())


@dataclass
class _Gear:
    id: str
    name: str
    kind: str  # "shoe" or "bike"


class AthleteGenerator:
    """Deterministic source of one athlete's profile and activities, given a seed."""

    def __init__(self, seed: int, athlete_id: int | None = None) -> None:
        rng = random.Random(f"strava-emulator:athlete:{seed}")
        self.seed = seed
        drawn_id = rng.randint(10_000_000, 150_000_000)
        self.athlete_id = drawn_id if athlete_id is None else int(athlete_id)
        self.home = rng.choice(_HOMES)
        self.sex = rng.choice(("F", "M"))
        self.firstname = rng.choice(_FIRST[self.sex])
        self.lastname = rng.choice(_LAST)
        self.username = f"{self.firstname}{self.lastname}{rng.randint(1, 99)}".lower()
        self.fitness = rng.uniform(0.93, 1.07)
        self.popularity = rng.uniform(0.6, 1.3)
        self.ftp = rng.randint(215, 295)
        self.weight = round(rng.uniform(55, 82), 1)
        self.shoes = [_Gear(f"g{rng.randint(10**7, 10**8 - 1)}", name, "shoe") for name in rng.sample(_SHOES, 3)]
        self.bikes = [_Gear(f"b{rng.randint(10**7, 10**8 - 1)}", name, "bike") for name in rng.sample(_BIKES, 2)]
        self._added = 0

    # --- public -------------------------------------------------------------------

    def history(self, count: int, end: datetime) -> list[dict[str, Any]]:
        """Return ``count`` activities, newest first; the newest starts exactly at ``end``."""
        if count <= 0:
            return []
        rng = random.Random(f"strava-emulator:history:{self.seed}")
        end_epoch = _epoch(end)
        density = max(1.0, count / (_PER_DAY * 365.25 * _MAX_YEARS))
        used: set[int] = set()
        first_kind = _WEEK[self._local_day(end_epoch, self.home).weekday()][0][1]
        out = [
            self._activity(rng, self._resolve(rng, first_kind, end_epoch), end_epoch, self.home, end_epoch, group=False)
        ]
        used.add(end_epoch)
        day = self._local_day(end_epoch, self.home).toordinal() - 1
        trip: _Place | None = None
        gap = False
        while len(out) < count:
            weekday = (day - 1) % 7
            if weekday == 6:  # a new week, walking backwards: normal, holiday gap or trip
                roll = rng.random()
                gap = roll < 0.035
                trip = rng.choice(_TRIPS) if 0.035 <= roll < 0.065 else None
            place = trip or self.home
            slots = self._day_slots(rng, weekday, trip is not None, gap, density)
            midnight = (day - date(1970, 1, 1).toordinal()) * _DAY
            for hour, kind_name, group in sorted(slots, reverse=True):
                local = midnight + int(hour * 3600) + _rint(rng, 0, 59)
                epoch = local - place.offset(local - place.std_offset)
                while epoch in used or epoch >= end_epoch:
                    epoch -= 1
                used.add(epoch)
                kind = self._resolve(rng, kind_name, epoch)
                out.append(self._activity(rng, kind, epoch, place, end_epoch, group=group))
                if len(out) == count:
                    break
            day -= 1
        self._sprinkle_names(out, random.Random(f"strava-emulator:names:{self.seed}:{count}"))
        return out

    def more(
        self,
        count: int,
        after: datetime,
        next_id: int,
        start_date: datetime | None = None,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Return ``count`` new activities, oldest first, with ids from ``next_id`` upwards.

        The first starts at ``start_date`` if given, else a few hours to two days after
        ``after``; each next one a few hours to two days after the one before. Gaps shrink
        so that the activities still start before ``now`` when there is room.
        """
        rng = random.Random(f"strava-emulator:more:{self.seed}:{self._added}")
        self._added += count
        first = _epoch(start_date) if start_date is not None else _epoch(after)
        steps = count if start_date is None else count - 1
        room = (_epoch(now) - first) // (steps + 1) if now is not None else 2 * _DAY
        longest = max(60, min(2 * _DAY, room))
        shortest = min(3 * 3600, longest // 2)
        epoch = first if start_date is not None else first + _rint(rng, shortest, longest)
        out: list[dict[str, Any]] = []
        for _ in range(count):
            weekday = self._local_day(epoch, self.home).weekday()
            kind_name = rng.choice([slot[1] for slot in _WEEK[weekday]])
            kind = self._resolve(rng, kind_name, epoch)
            activity = self._activity(rng, kind, epoch, self.home, epoch, group=False)
            next_id = max(next_id, activity["id"]) + _rint(rng, 1_000, 900_000)
            set_activity_id(activity, next_id)
            out.append(activity)
            epoch += _rint(rng, shortest, longest)
        return out

    @property
    def max_heartrate(self) -> int:
        """The athlete's maximum heart rate, for the heart-rate zones (its own draw: no other value moves)."""
        return random.Random(f"strava-emulator:max-heartrate:{self.seed}").randint(178, 198)

    def gear(self) -> list[_Gear]:
        """The athlete's shoes and bikes."""
        return [*self.shoes, *self.bikes]

    def profile(self, created_at: int, updated_at: int) -> dict[str, Any]:
        """The SummaryAthlete fields (resource_state 2)."""
        return {
            "id": self.athlete_id,
            "username": self.username,
            "resource_state": 2,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "bio": "Running, riding, eating cake.",
            "city": self.home.city,
            "state": self.home.state,
            "country": self.home.country,
            "sex": self.sex,
            "premium": True,
            "summit": True,
            "created_at": _iso(created_at),
            "updated_at": _iso(updated_at),
            "badge_type_id": 1,
            "weight": self.weight,
            "profile_medium": "https://dgalywyr863hv.cloudfront.net/pictures/athletes/medium.jpg",
            "profile": "https://dgalywyr863hv.cloudfront.net/pictures/athletes/large.jpg",
            "friend": None,
            "follower": None,
        }

    # --- schedule -----------------------------------------------------------------

    @staticmethod
    def _local_day(epoch: int, place: _Place) -> date:
        return datetime.fromtimestamp(epoch + place.offset(epoch), UTC).date()

    @staticmethod
    def _day_slots(
        rng: random.Random, weekday: int, trip: bool, gap: bool, density: float
    ) -> list[tuple[float, str, bool]]:
        if gap:
            return []
        template = _TRIP_DAY if trip else _WEEK[weekday]
        repeats = int(density) + (rng.random() < density - int(density))
        slots: list[tuple[float, str, bool]] = []
        for _ in range(repeats):
            for probability, kind, earliest, latest in template:
                if rng.random() >= probability:
                    continue
                hour = rng.uniform(earliest, latest)
                if repeats > 1:
                    hour = min(22.5, max(5.0, hour + rng.uniform(-4, 4)))
                if kind == "commute":
                    slots.append((hour, "commute", False))
                    slots.append((hour + 9.5 + rng.uniform(-0.3, 0.6), "commute", False))
                else:
                    slots.append((hour, kind, kind == "long_ride" and rng.random() < 0.4))
        return slots

    @staticmethod
    def _resolve(rng: random.Random, name: str, epoch: int) -> str:
        """Turn a template slot into a concrete kind, by season and chance."""
        month = time.gmtime(epoch).tm_mon
        winter = month in (11, 12, 1, 2)
        summer = month in (6, 7, 8, 9)
        roll = rng.random()
        if name == "midweek_ride":
            if winter:
                return "virtual_ride" if roll < 0.75 else "trainer_ride"
            return "ride" if roll < 0.55 else ("virtual_ride" if roll < 0.9 else "trainer_ride")
        if name == "long_ride":
            if winter and roll < 0.45:
                return "virtual_ride"
            return "gravel_ride" if roll > 0.85 else "long_ride"
        if name == "long_run":
            return "trail_run" if roll < 0.12 else ("race_run" if roll < 0.16 else "long_run")
        if name == "easy_run":
            return "treadmill_run" if roll < (0.12 if winter else 0.03) else "easy_run"
        if name == "swim":
            return "open_water_swim" if summer and roll < 0.4 else "pool_swim"
        return name

    # --- one activity -------------------------------------------------------------

    def _activity(
        self,
        rng: random.Random,
        kind_name: str,
        epoch: int,
        place: _Place,
        end_epoch: int,
        *,
        group: bool,
    ) -> dict[str, Any]:
        kind = _KINDS[kind_name]
        offset = place.offset(epoch)
        local = epoch + offset
        local_t = time.gmtime(local)
        weekday, month = local_t.tm_wday, local_t.tm_mon
        # device and manual entry
        if kind.gps or kind.sport_type == "Swim":
            device = "garmin" if rng.random() < 0.78 else "phone"
        elif kind.sport_type == "VirtualRide":
            device = "zwift"
        elif kind.trainer:
            device = "garmin"
        else:
            device = rng.choice(("garmin", "garmin", "manual", "phone"))
        manual = device == "manual"
        # size and speed
        workout_type = kind.workout_type
        seasonal = 1 + 0.025 * math.sin(2 * math.pi * (month - 4) / 12)
        if kind.speed == (0, 0):
            metres = 0.0
            moving = int(rng.uniform(*kind.size) * 60)
            speed = 0.0
        else:
            if kind_name == "race_run":
                metres = rng.choices((5000, 10000, 21097.5, 42195), (45, 30, 20, 5))[0]
                metres *= 1 + rng.uniform(0.002, 0.02)
            else:
                metres = rng.uniform(*kind.size) * 1000
            speed = rng.uniform(*kind.speed) * self.fitness * seasonal * rng.gauss(1, 0.02)
            if kind_name == "race_run":
                speed *= 1.0 - 0.035 * math.log(metres / 5000)
            elif kind.sport_type == "VirtualRide" and rng.random() < 0.35:
                workout_type = 12
            elif kind_name == "long_ride" and rng.random() < 0.04:
                workout_type = 11  # a sportive or a road race
                speed *= 1.06
            moving = max(60, int(metres / speed))
        stops = 0.25 if kind_name in ("long_ride", "hike", "walk", "gravel_ride") else 0.07
        elapsed = moving if kind_name == "race_run" else moving + int(moving * rng.uniform(0, stops))
        if manual:
            elapsed = moving
        climb = round(metres / 1000 * rng.uniform(*kind.climb), 1)
        average_speed = round(metres / moving, 3) if metres else 0.0
        if kind.sport_type in ("Ride", "GravelRide", "VirtualRide"):
            max_speed = round(average_speed * rng.uniform(1.6, 2.3), 3)
        else:
            max_speed = round(average_speed * rng.uniform(1.2, 1.8), 3)
        # social
        visibility_roll = rng.random()
        visibility = "everyone" if visibility_roll < 0.9 else "followers_only" if visibility_roll < 0.97 else "only_me"
        outdoor_photos = kind.gps and (
            kind_name in ("hike", "race_run", "long_ride", "trail_run") or place is not self.home
        )
        photos = _rint(rng, 1, 6) if rng.random() < (0.55 if outdoor_photos else 0.08) else 0
        custom = rng.random() < (0.8 if kind_name in ("race_run", "trainer_ride") else 0.22)
        athlete_count = (
            _rint(rng, 2, 12)
            if group
            else (
                _rint(rng, 1, 25)
                if kind_name == "race_run"
                else (2 if kind_name in ("walk", "hike") and rng.random() < 0.3 else 1)
            )
        )
        years_ago = max(0.0, (end_epoch - epoch) / (365.25 * _DAY))
        lam = kind.kudos * self.popularity / (1 + 0.18 * years_ago)
        km = metres / 1000
        if kind.gear == "shoe":
            lam *= min(2.2, 0.55 + km / 11)
        elif kind.gear == "bike":
            lam *= min(2.2, 0.55 + km / 70)
        lam *= _KUDOS_BY_WORKOUT.get(workout_type or 0, 1.0)
        lam *= 1.3 if weekday >= 5 else 1.0
        lam *= 1 + 0.12 * min(photos, 4)
        lam *= 1.1 if custom else 1.0
        lam *= 1 + 0.03 * min(athlete_count - 1, 10)
        lam *= _KUDOS_BY_VISIBILITY[visibility]
        kudos = _poisson(rng, lam * math.exp(rng.gauss(0, 0.3)))
        comments = _poisson(rng, kudos * 0.07 + (1.5 if workout_type == 1 else 0))
        achievements = 0
        if kind.gps and not manual and kind.sport_type in ("Run", "TrailRun", "Ride", "GravelRide"):
            achievements = _poisson(rng, 0.5 + (3.0 if workout_type == 1 else 0) + km / 40)
        prs = sum(rng.random() < 0.3 for _ in range(achievements))
        # identity
        activity_id = _ID_BASE + (epoch - _EPOCH_2009) * 8 + _rint(rng, 0, 7)
        hour = local_t.tm_hour
        part = (
            "Night"
            if hour < 4 or hour >= 21
            else "Morning"
            if hour < 11
            else "Lunch"
            if hour < 13
            else "Afternoon"
            if hour < 17
            else "Evening"
        )
        if kind.sport_type == "VirtualRide":
            name = f"Zwift - {rng.choice(_ZWIFT_ROUTES)} in {rng.choice(_ZWIFT)}"
        elif kind_name == "race_run":
            name = {
                5000: f"{place.city} parkrun",
                10000: f"{place.city} 10K",
                21097.5: f"{place.city} Half Marathon 🏅",
                42195: f"{place.city} Marathon!!",
            }[min((5000, 10000, 21097.5, 42195), key=lambda d: abs(d - metres))]
        elif custom and kind_name in _CUSTOM:
            name = rng.choice(_CUSTOM[kind_name])
        else:
            name = f"{part} {kind.label}"
        gps = kind.gps and not manual
        activity: dict[str, Any] = {
            "resource_state": 2,
            "athlete": {"id": self.athlete_id, "resource_state": 1},
            "name": name,
            "distance": round(metres, 1),
            "moving_time": moving,
            "elapsed_time": elapsed,
            "total_elevation_gain": climb if (gps or kind.sport_type == "VirtualRide") else 0,
            "type": kind.type,
            "sport_type": kind.sport_type,
            "workout_type": workout_type,
            "id": activity_id,
            "start_date": _iso(epoch),
            "start_date_local": _iso(local),
            "timezone": place.tz_label,
            "utc_offset": float(offset),
            "location_city": None,
            "location_state": None,
            "location_country": None,
            "achievement_count": achievements,
            "kudos_count": kudos,
            "comment_count": comments,
            "athlete_count": athlete_count,
            "photo_count": 0,
            "map": {"id": f"a{activity_id}", "summary_polyline": "", "resource_state": 2},
            "trainer": kind.trainer,
            "commute": kind.commute,
            "manual": manual,
            "private": visibility == "only_me",
            "visibility": visibility,
            "flagged": rng.random() < 0.002,
            "gear_id": None,
            "start_latlng": [],
            "end_latlng": [],
            "average_speed": average_speed,
            "max_speed": max_speed,
        }
        location_roll = rng.random()
        if location_roll < 0.55:
            activity["location_country"] = place.country
        if location_roll < 0.15:
            activity["location_city"] = place.city
            activity["location_state"] = place.state
        if gps:
            step = 1000 if metres < 30_000 else 5000
            polyline, start, finish = _route(
                self.seed, place, kind.gear or kind.sport_type, max(1, round(metres / step)) * step, _rint(rng, 0, 3)
            )
            activity["map"]["summary_polyline"] = polyline
            activity["start_latlng"] = list(start)
            activity["end_latlng"] = list(finish)
        if kind.gear == "shoe":
            activity["gear_id"] = self.shoes[(epoch // (180 * _DAY) + (kind_name == "race_run")) % len(self.shoes)].id
        elif kind.gear == "bike":
            indoor_bike = kind.trainer or kind_name == "commute"
            activity["gear_id"] = self.bikes[1 if indoor_bike else 0].id
        # sensors
        if device == "garmin" and gps and rng.random() < 0.5:
            activity["average_temp"] = round(11 - 7 * math.cos(2 * math.pi * (month - 1) / 12) + rng.gauss(0, 3))
        if not manual and kind.sport_type in ("Run", "TrailRun"):
            activity["average_cadence"] = round(rng.uniform(80, 90) + (speed - 3) * 3, 1)
        if kind.gear == "bike":
            powered = kind.trainer or rng.random() < 0.7
            if powered or rng.random() < 0.5:
                activity["average_cadence"] = round(rng.uniform(78, 94), 1)
            intensity = rng.uniform(0.55, 0.7) if kind.commute else rng.uniform(0.62, 0.86)
            watts = round(self.ftp * intensity, 1)
            activity["average_watts"] = watts
            if powered:
                activity["max_watts"] = int(watts * rng.uniform(2.4, 4.2))
                activity["weighted_average_watts"] = int(watts * rng.uniform(1.03, 1.12))
            activity["kilojoules"] = round(watts * moving / 1000, 1)
            activity["device_watts"] = powered
        has_heartrate = not manual and (rng.random() < (0.95 if device in ("garmin", "zwift") else 0.2))
        activity["has_heartrate"] = has_heartrate
        if has_heartrate:
            bump = {1: 8, 3: 5}.get(workout_type or 0, 0)
            average_hr = kind.heart + bump + rng.gauss(0, 4)
            activity["average_heartrate"] = round(average_hr, 1)
            activity["max_heartrate"] = float(round(average_hr + rng.uniform(12, 35)))
        activity["heartrate_opt_out"] = False
        activity["display_hide_heartrate_option"] = has_heartrate
        if gps or kind.sport_type == "VirtualRide":
            low = (place.elevation if gps else 2.0) + rng.uniform(-8, 8)
            activity["elev_high"] = round(low + climb * rng.uniform(0.25, 0.6) + 3, 1)
            activity["elev_low"] = round(low, 1)
        if manual:
            activity["upload_id"] = None
            activity["external_id"] = None
        else:
            upload_id = activity_id + 700_000_000 + _rint(rng, 0, 99_999)
            activity["upload_id"] = upload_id
            activity["upload_id_str"] = str(upload_id)
            if device == "garmin":
                external = f"garmin_ping_{_rint(rng, 10**11, 10**12 - 1)}"
            elif device == "zwift":
                external = f"zwift-activity-{_rint(rng, 10**18, 10**19 - 1)}.fit"
            else:
                external = f"{rng.getrandbits(128):032X}-{local}.fit"
            activity["external_id"] = external
        activity["from_accepted_tag"] = False
        activity["pr_count"] = prs
        activity["total_photo_count"] = photos
        activity["has_kudoed"] = False
        activity["hide_from_home"] = kind.commute and rng.random() < 0.7
        suffer = None
        if has_heartrate:
            suffer = float(round(moving / 60 * (activity["average_heartrate"] - 80) / 55))
        activity["suffer_score"] = suffer
        return activity

    @staticmethod
    def _sprinkle_names(activities: list[dict[str, Any]], rng: random.Random) -> None:
        """Give one activity in each stretch of the history one of :data:`NASTY_NAMES`."""
        count = len(activities)
        if count < len(NASTY_NAMES):
            return
        stretch = count / len(NASTY_NAMES)
        for i, name in enumerate(NASTY_NAMES):
            activities[min(count - 1, int((i + rng.random()) * stretch))]["name"] = name


def set_activity_id(activity: dict[str, Any], activity_id: int) -> None:
    """Give an activity a new id (and the map and upload ids that derive from it)."""
    activity["id"] = activity_id
    activity["map"]["id"] = f"a{activity_id}"
    if activity.get("upload_id") is not None:
        activity["upload_id"] = activity_id + 700_000_000 + activity["upload_id"] % 100_000
        activity["upload_id_str"] = str(activity["upload_id"])


def created_at_for(oldest_epoch: int) -> int:
    """When the athlete joined: a few weeks before their oldest activity."""
    return oldest_epoch - 23 * _DAY - 4_321


def start_epoch(activity: dict[str, Any]) -> int:
    """An activity's ``start_date`` as epoch seconds."""
    value = str(activity["start_date"]).replace("Z", "+00:00")
    return int(datetime.fromisoformat(value).timestamp())


def default_end(now: datetime) -> datetime:
    """The default newest start: one day before ``now``, to the whole second."""
    return (now - timedelta(days=1)).replace(microsecond=0)
