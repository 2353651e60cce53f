"""The type and allowed range of every scenario family's parameters.

:func:`scenarios.families.base.make_scenario` checks a family's parameters against this table
before it loads a map or builds anything, so a suite with ``lead_gap: fast`` or ``lead_gap: -500``
is refused naming the parameter and its range (the suite adds the file and the entry) instead of
failing deep in the family's code or "crashing" an episode. The ranges are those each family is
meant for: wide enough for every grid, the exam and sensible variations, narrow enough that the
family can still place its actors. A new family adds its parameters here (``tests/test_families.py``
fails for a parameter without an entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` float (an int is accepted), int or str; numbers in ``[lo, hi]``
    ``unit``; strings one of ``choices``."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """``a number in [5, 150] m``, ``an integer in [0, 50]``, ``one of left, right``."""
        if self.kind is str:
            return "one of " + ", ".join(self.choices)
        what = "an integer" if self.kind is int else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} in [{_num(self.lo)}, {_num(self.hi)}]{unit}"

    def accepts(self, value: Any) -> bool:
        if self.kind is str:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


def _num(x: float | None) -> str:
    if x is None:
        return "…"
    return str(int(x)) if float(x).is_integer() else str(x)


def _f(lo: float, hi: float, unit: str = "") -> Param:
    return Param(float, lo, hi, unit)


def _i(lo: int, hi: int) -> Param:
    return Param(int, lo, hi)


def _s(*choices: str) -> Param:
    return Param(str, choices=choices)


# shared by many families
EGO_SPEED = _f(1.0, 40.0, "m/s")
VEHICLES = _i(0, 100)
PEDESTRIANS = _i(0, 100)
DISTANCE = _f(10.0, 150.0, "m")
TRAFFIC = _i(0, 10)
TRAFFIC_SPEED = _f(1.0, 30.0, "m/s")
DELAY = _f(-5.0, 5.0, "s")
TRIGGER = _f(5.0, 80.0, "m")
WALK_SPEED = _f(0.3, 4.0, "m/s")
LANES_EACH_WAY = _i(1, 2)

_CUT_IN = {
    "speed": EGO_SPEED, "cutter_speed": _f(1.0, 40.0, "m/s"), "ttc": _f(0.5, 10.0, "s"),
    "lane_change_time": _f(0.5, 10.0, "s"), "side": _s("any", "left", "right"),
    "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
}  # fmt: skip

#: family → parameter → what it allows
PARAMS: dict[str, dict[str, Param]] = {
    "cut_in_urban": _CUT_IN,
    "cut_in_highway": _CUT_IN,
    "lead_vehicle_brake": {
        "lead_gap": _f(5.0, 150.0, "m"), "speed": EGO_SPEED, "decel": _f(0.5, 10.0, "m/s²"),
        "brake_after": _f(0.0, 30.0, "s"), "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "signalised_left_turn": {
        "distance": DISTANCE, "speed": EGO_SPEED, "oncoming": _i(0, 10), "oncoming_speed": TRAFFIC_SPEED,
        "headway": _f(1.0, 10.0, "s"), "delay": DELAY, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "red_light_wait": {
        "distance": DISTANCE, "speed": EGO_SPEED, "wait": _f(0.0, 60.0, "s"), "cross_traffic": TRAFFIC,
        "cross_speed": TRAFFIC_SPEED, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "stop_sign_priority": {
        "turn": _s("any", "left", "right", "straight"), "side": _s("both", "left", "right"),
        "distance": DISTANCE, "speed": EGO_SPEED, "traffic": TRAFFIC, "traffic_speed": TRAFFIC_SPEED,
        "delay": DELAY, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "red_light_runner": {
        "side": _s("left", "right"), "distance": DISTANCE, "speed": EGO_SPEED,
        "runner_speed": _f(1.0, 30.0, "m/s"), "delay": DELAY, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "merge_slow_traffic": {
        "distance": DISTANCE, "speed": EGO_SPEED, "count": _i(1, 20), "traffic_speed": TRAFFIC_SPEED,
        "spacing": _f(8.0, 100.0, "m"), "phase": _f(0.0, 1.0), "vehicles": VEHICLES,
    },
    "parked_obstacle": {
        "lanes": LANES_EACH_WAY, "obstacle": _s("parked", "accident"), "distance": DISTANCE,
        "speed": EGO_SPEED, "traffic": TRAFFIC, "traffic_speed": TRAFFIC_SPEED, "vehicles": VEHICLES,
        "pedestrians": PEDESTRIANS,
    },
    "vehicle_opens_door": {
        "distance": DISTANCE, "door_width": _f(0.3, 2.0, "m"), "trigger": TRIGGER, "speed": EGO_SPEED,
        "traffic": TRAFFIC, "traffic_speed": TRAFFIC_SPEED, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "invading_turn": {
        "lanes": LANES_EACH_WAY, "overlap": _f(0.0, 1.5, "m"), "meet": _f(10.0, 100.0, "m"),
        "speed": EGO_SPEED, "oncoming_speed": TRAFFIC_SPEED, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "pedestrian_crossing": {
        "lanes": LANES_EACH_WAY, "side": _s("right", "left"), "distance": DISTANCE, "trigger": TRIGGER,
        "walk_speed": WALK_SPEED, "speed": EGO_SPEED, "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "occluded_pedestrian": {
        "distance": DISTANCE, "trigger": TRIGGER, "walk_speed": WALK_SPEED, "speed": EGO_SPEED,
        "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
    },
    "urban_route": {
        "length": _f(100.0, 3000.0, "m"), "turns": _i(0, 10), "vehicles": VEHICLES, "pedestrians": PEDESTRIANS,
        "traffic_radius": _f(20.0, 500.0, "m"),
    },
}  # fmt: skip


def problems(family: str, params: dict[str, Any]) -> list[str]:
    """One line per parameter of ``family`` whose value is not allowed (a family without an
    entry in :data:`PARAMS` is not checked)."""
    table = PARAMS.get(family, {})
    return [
        f"{key}={value!r} is not allowed: {key} must be {table[key].allowed()}"
        for key, value in params.items()
        if key in table and not table[key].accepts(value)
    ]
