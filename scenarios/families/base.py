"""The family registry and the placement helpers every family uses.

A family builds a :class:`~scenarios.spec.ScenarioSpec` from parameters (merged over its
defaults), a seed and a town. Placement is lane-relative: pick a lane of the right kind, then put
the ego and the actors at arc lengths and lateral offsets along it, so a family works on any town
that has such a lane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios.families.lane_paths import DEAD_END_MARGIN, LanePath, lane_paths, max_curvature
from scenarios.families.lane_paths import lane_index as lane_index  # re-exported
from scenarios.families.lane_paths import opposite_lane as opposite_lane  # re-exported
from scenarios.families.params import problems
from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import MapRef, Pose
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import RoadMap

#: criteria of the short hazard scenarios: the Leaderboard's, without the minimum-speed penalty
#: (it compares the ego with background traffic, while here a scripted actor sets the pace)
HAZARD_CRITERIA = CriteriaConfig(min_speed=False)
#: … of the two-way pass scenarios: passing through the oncoming lane inside the trigger area is allowed
TWO_WAY_CRITERIA = CriteriaConfig(min_speed=False, pass_opposite_lane=True)
#: default length of scenario vehicles [m] (``ActorSpec.length=None``)
CAR_LENGTH = 4.6


class FamilyError(ValueError):
    """A family cannot be built as asked (unknown name or parameter, no suitable place on the map)."""


class MissingFeature(FamilyError):
    """The map lacks what a family needs (``feature``, e.g. "a signalised 4-way junction");
    :func:`make_scenario` names the family and the map in the message."""

    def __init__(self, feature: str, family: str = "", town: str = "") -> None:
        self.feature, self.family, self.town = feature, family, town
        if family:
            text = f"family {family!r} cannot be placed on map {town}: the map has no {feature}"
        else:
            text = f"the map has no {feature}"
        super().__init__(text)


Builder = Callable[[RoadMap, MapRef, dict[str, Any], np.random.Generator, int], ScenarioSpec]


@dataclass(frozen=True)
class Family:
    """A registered family: its builder, default parameters and town, and what it tests."""

    name: str
    build: Builder
    defaults: dict[str, Any]
    town: MapRef
    description: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Parameter grid of the ``nhtsa`` suite (values per parameter)."""


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    FAMILIES[family.name] = family
    return family


def make_scenario(
    name: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    town: MapRef | None = None,
    scenario: str | None = None,
) -> ScenarioSpec:
    """Build family ``name`` with ``params`` over its defaults, ``seed`` and ``town`` (default the
    family's). ``scenario`` names the result (default ``<family>_s<seed>``)."""
    family = FAMILIES.get(name)
    if family is None:
        raise FamilyError(f"unknown scenario family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    merged = dict(family.defaults)
    for key, value in (params or {}).items():
        if key not in family.defaults:
            raise FamilyError(
                f"family {name!r} has no parameter {key!r}; its parameters: {', '.join(sorted(family.defaults))}"
            )
        merged[key] = value
    bad = problems(name, merged)  # before any map is loaded or actor placed
    if bad:
        raise FamilyError(f"family {name!r}: {'; '.join(bad)}")
    ref = town or family.town
    road_map = load_map(ref)
    try:
        spec = family.build(road_map, ref, merged, np.random.default_rng(seed), seed)
    except MissingFeature as exc:
        raise MissingFeature(exc.feature, name, ref.key()) from None
    return spec.replace(
        name=scenario or f"{name}_s{seed}",
        family=name,
        params={k: _plain(v) for k, v in merged.items()},
        seed=seed,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------------------- placement


def pose_on(road_map: RoadMap, lane: int, s: float, lateral: float = 0.0) -> Pose:
    """The pose at arc length ``s`` [m] of ``lane``, ``lateral`` [m] to its left."""
    xy, yaw = road_map.pose_at(np.array([lane]), np.array([float(s)]), np.array([float(lateral)]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def straight_lanes(road_map: RoadMap, min_length: float, junction: bool = False) -> np.ndarray:
    """Driving lanes at least ``min_length`` [m] long, outside junctions, nearly straight."""
    out = []
    for lane in road_map.driving_lanes.tolist():
        if road_map.lane_length[lane] < min_length or (road_map.lane_junction[lane] >= 0) != junction:
            continue
        a, b = road_map.lane_start[lane], road_map.lane_start[lane + 1]
        h = np.unwrap(road_map.headings[a:b])
        if np.ptp(h) < 0.1:
            out.append(lane)
    return np.asarray(out, dtype=np.int64)


def pick(lanes: np.ndarray, rng: np.random.Generator, what: str, town: MapRef) -> int:
    """A random lane of ``lanes`` (seeded), or :class:`MissingFeature` naming what was looked for."""
    if len(lanes) == 0:
        raise MissingFeature(what)
    return int(lanes[rng.integers(len(lanes))])


def place(
    paths: list[LanePath], rng: np.random.Generator, what: str, window: float, run_out: float = 0.0
) -> tuple[LanePath, float]:
    """A seeded choice among ``paths`` (from :func:`lane_paths` with this ``window`` and
    ``run_out`` [m]) and a seeded shift [m] of the window along it, within the stretch whose lanes
    were checked and leaving the run-out on the path; :class:`MissingFeature` naming ``what`` where
    there is none. Add the shift to every path ``s`` the family places at."""
    if not paths:
        raise MissingFeature(what)
    path = paths[int(rng.integers(len(paths)))]
    slack = max(0.0, min(path.clear - window, path.length - window - run_out))
    return path, float(rng.uniform(0.0, slack)) if slack > 0.0 else 0.0


# ------------------------------------------------------------------------------ lane geometry


def lane_width(road_map: RoadMap, lane: int, s: float) -> float:
    """Width of ``lane`` at arc length ``s`` [m]."""
    a, b = road_map.lane_start[lane], road_map.lane_start[lane + 1]
    k = a + int(np.clip(np.searchsorted(road_map.s[a:b], s), 0, b - a - 1))
    return float(road_map.widths[k])


def lanes_each_way(road_map: RoadMap, lane: int) -> int:
    """Driving lanes of ``lane``'s direction on its road section (``lane`` included)."""
    n, left = 1, int(road_map.lane_left[lane])
    while left >= 0:
        n, left = n + 1, int(road_map.lane_left[left])
    right = int(road_map.lane_right[lane])
    while right >= 0:
        n, right = n + 1, int(road_map.lane_right[right])
    return n


def block_lanes(
    road_map: RoadMap, min_length: float, each_way: int | None = None, into_junction: bool = True
) -> np.ndarray:
    """Straight driving lanes outside junctions, at least ``min_length`` [m] long, with ``each_way``
    lanes in their direction (any when ``None``) and, with ``into_junction``, ending at a junction."""
    out = []
    for lane in straight_lanes(road_map, min_length).tolist():
        if each_way is not None and lanes_each_way(road_map, lane) != each_way:
            continue
        succ = road_map.lane_successors[lane]
        if into_junction and not (succ and all(road_map.lane_junction[k] >= 0 for k in succ)):
            continue
        out.append(lane)
    return np.asarray(out, dtype=np.int64)


def ahead(
    road_map: RoadMap, lane: int, s: float, distance: float, prefer: tuple[int, ...] = (3, 0, 2, 1)
) -> tuple[int, float, list[int]]:
    """Walk ``distance`` [m] along the lane graph from ``s`` on ``lane``, taking at each fork the
    first successor whose :class:`RouteCommand` comes first in ``prefer`` (straight, follow, right,
    left by default). Returns the lane and ``s`` reached and the lanes passed (``lane`` first);
    stops early at a dead end."""
    lanes = [lane]
    left = distance
    while True:
        rest = float(road_map.lane_length[lane]) - s
        if left <= rest:
            return lane, s + left, lanes
        succ = road_map.lane_successors[lane]
        if not succ:
            return lane, float(road_map.lane_length[lane]), lanes
        rank = {cmd: i for i, cmd in enumerate(prefer)}
        lane = min(succ, key=lambda k: (rank.get(int(road_map.lane_turn[k]), 99), k))
        lanes.append(lane)
        left -= rest
        s = 0.0


def route_end(road_map: RoadMap, lane: int, s: float, distance: float) -> tuple[float, float]:
    """The point [m] ``distance`` [m] on from ``s`` on ``lane`` along the lane graph (see
    :func:`ahead`) for a route to end at: where a dead end comes first, ``DEAD_END_MARGIN`` before it
    (drivers stop short of a dead end and would never reach a destination right at it)."""
    end_lane, end_s, _ = ahead(road_map, lane, s, distance)
    if not road_map.lane_successors[end_lane]:
        end_s = max(0.0, min(end_s, float(road_map.lane_length[end_lane]) - DEAD_END_MARGIN))
    return point_on(road_map, end_lane, end_s)


def point_on(road_map: RoadMap, lane: int, s: float, lateral: float = 0.0) -> tuple[float, float]:
    """``(x, y)`` [m] of :func:`pose_on`."""
    pose = pose_on(road_map, lane, s, lateral)
    return (pose.x, pose.y)


def behind(road_map: RoadMap, lane: int, s: float, distance: float) -> tuple[int, float] | None:
    """The lane and ``s`` ``distance`` [m] before ``s`` on ``lane``, going back through single
    predecessors (``None`` where the way back forks or ends)."""
    while s < distance:
        pred = road_map.lane_predecessors[lane]
        if len(pred) != 1:
            return None
        distance -= s
        lane = pred[0]
        s = float(road_map.lane_length[lane])
    return lane, s - distance


def street(
    road_map: RoadMap,
    rng: np.random.Generator,
    p: dict[str, Any],
    window: float,
    each_way: int,
    run_out: float,
    kerb: bool = False,
    centre: bool = False,
    two_way: bool = False,
    left: bool = False,
) -> tuple[LanePath, float]:
    """A seeded stretch of street for the block families: a lane path whose first ``window`` [m]
    lie outside junctions on lanes with ``each_way`` lanes in their direction, curving at most
    for ``p["speed"]``, each one the kerb lane (``kerb``: no driving lane to its right) or the lane
    next to the centre line (``centre``: none to its left), with a lane of the other direction
    beside it (``two_way``) or a neighbour to its left (``left``); then ``run_out`` [m] more
    (at least 20 m where the road ends first). Returns the path and the window's shift along it
    (see :func:`place`); :class:`MissingFeature` where the map has no such street."""

    def fits(lane: int) -> bool:
        return (
            lanes_each_way(road_map, lane) == each_way
            and not (kerb and road_map.lane_right[lane] >= 0)
            and not (centre and road_map.lane_left[lane] >= 0)
            and not (two_way and opposite_lane(road_map, lane) < 0)
            and not (left and road_map.lane_left[lane] < 0)
        )

    paths = lane_paths(road_map, window, run_out, fits, max_curvature(p["speed"]), min_run_out=20.0)
    ways = "two-way street" if two_way else "street"
    lane = "kerb lane" if kerb else "lane next to the centre line" if centre else "lane"
    what = (
        f"{ways} of {window:.0f} m outside junctions with {each_way} lane(s) each way, its {lane} curving "
        f"at most for {p['speed']:g} m/s"
    )
    return place(paths, rng, what, window, 20.0)
