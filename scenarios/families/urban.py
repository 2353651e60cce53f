"""The long urban route (CARLA Leaderboard routes): several hundred metres through a town with
junctions controlled by lights and stop signs, turns, dense background traffic and pedestrians,
judged by the full Leaderboard criteria (minimum speed included).

The route is a seeded walk on the lane graph: from a random point on a lane outside junctions,
through one junction movement after another (preferring streets not yet driven), until it is
``length`` metres long. Walks without enough turns or without a light and a stop sign (where the
town has both) are drawn again. The ego gets the route as one waypoint on each street it drives
along, so the shortest route through them is the walk itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.families.base import (
    Family,
    FamilyError,
    MissingFeature,
    lane_width,
    point_on,
    pose_on,
    register,
)
from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import MapRef, WorldSpec
from sim_bridge.embedded.map_arrays import MIN_LANE_WIDTH
from sim_bridge.maps.road_map import RoadMap, SignalKind
from sim_bridge.sensors.layout import RouteCommand

#: walks drawn before giving up on a route with the asked turns and controls
ATTEMPTS = 200
#: the route starts at least this far from either end of its first lane [m]
START_MARGIN = 5.0
#: the route ends at least this far into its last lane (and that lane is outside junctions) [m]
END_MARGIN = 10.0
#: shortest and longest route a family instance may ask for [m]
LENGTH_RANGE = (100.0, 3000.0)
TURNS = (int(RouteCommand.LEFT), int(RouteCommand.RIGHT))


@dataclass(frozen=True)
class Walk:
    """A route drawn on the lane graph: ``lanes`` in driving order from ``start_s`` [m] on the
    first to ``end_s`` [m] on the last (outside junctions); what it meets on the way."""

    lanes: tuple[int, ...]
    start_s: float
    end_s: float
    length: float
    """[m]"""
    turns: int
    """Junction movements that turn left or right."""
    junctions: int
    """Junction lanes driven through."""
    lights: int
    """Stop lines of traffic lights crossed."""
    stops: int
    """Stop lines of stop signs crossed."""

    def waypoints(self, road_map: RoadMap) -> tuple[tuple[float, float], ...]:
        """One point [m] midway along every lane outside junctions after the first, the last one
        at ``end_s`` (the destination)."""
        out = []
        last = len(self.lanes) - 1
        for k, lane in enumerate(self.lanes[1:], start=1):
            if k == last:
                out.append(point_on(road_map, lane, self.end_s))
            elif road_map.lane_junction[lane] < 0:
                out.append(point_on(road_map, lane, 0.5 * float(road_map.lane_length[lane])))
        return tuple(out)


def _stop_kinds(road_map: RoadMap) -> dict[int, int]:
    """Lane → :class:`SignalKind` of the stop line across it (cached on the map)."""
    cached = road_map.cache.get("families_stop_kinds")
    if cached is None:
        cached = {
            int(lane): int(road_map.signal_kind[sig])
            for lane, sig in zip(road_map.stop_lane.tolist(), road_map.stop_signal.tolist())
        }
        road_map.cache["families_stop_kinds"] = cached
    return cached


def _movements(road_map: RoadMap, lane: int) -> list[tuple[int, ...]]:
    """The ways on from the end of ``lane``: ``(junction lane, exit lane)`` through a junction, or
    ``(lane,)`` for a lane that continues it directly."""
    out: list[tuple[int, ...]] = []
    for nxt in road_map.lane_successors[lane]:
        if road_map.lane_junction[nxt] >= 0 and road_map.lane_junction[lane] < 0:
            out.extend((nxt, exit_) for exit_ in road_map.lane_successors[nxt])
        else:
            out.append((nxt,))
    return out


def draw_walk(road_map: RoadMap, length: float, rng: np.random.Generator) -> Walk | None:
    """A seeded walk of ``length`` [m] (see module doc) from a random lane outside junctions;
    ``None`` where it reaches a dead end first or starts where its lane is narrower than
    ``MIN_LANE_WIDTH`` (real maps open turn pockets from zero width). A walk that would end inside
    a junction, or less than ``END_MARGIN`` into the lane after it, ends ``END_MARGIN`` into that
    lane instead (longer by at most a junction lane and ``END_MARGIN``)."""
    starts = road_map.driving_lanes[
        (road_map.lane_junction[road_map.driving_lanes] < 0)
        & (road_map.lane_length[road_map.driving_lanes] > 2.0 * START_MARGIN + 1.0)
    ]
    if len(starts) == 0:
        return None
    lane = int(starts[rng.integers(len(starts))])
    start_s = float(rng.uniform(START_MARGIN, road_map.lane_length[lane] - START_MARGIN))
    if lane_width(road_map, lane, start_s) < MIN_LANE_WIDTH:
        return None  # a turn pocket still opening from zero width: the ego would stand on its neighbours
    lanes = [lane]
    travelled = float(road_map.lane_length[lane]) - start_s
    driven = {int(road_map.lane_road[lane])}
    while travelled < length or road_map.lane_junction[lanes[-1]] >= 0:
        options = _movements(road_map, lanes[-1])
        if not options:
            return None
        fresh = [m for m in options if int(road_map.lane_road[m[-1]]) not in driven]
        pool = fresh or options
        move = pool[int(rng.integers(len(pool)))]
        for nxt in move:
            lanes.append(int(nxt))
            travelled += float(road_map.lane_length[nxt])
        driven.add(int(road_map.lane_road[move[-1]]))
    last = lanes[-1]
    end_s = float(road_map.lane_length[last]) - (travelled - length)
    end_s = min(max(end_s, END_MARGIN), float(road_map.lane_length[last]))
    kinds = _stop_kinds(road_map)
    met = [kinds[k] for k in lanes[:-1] if k in kinds]
    in_junction = [k for k in lanes if road_map.lane_junction[k] >= 0]
    return Walk(
        lanes=tuple(lanes),
        start_s=start_s,
        end_s=end_s,
        length=travelled - (float(road_map.lane_length[last]) - end_s),
        turns=sum(int(road_map.lane_turn[k]) in TURNS for k in in_junction),
        junctions=len(in_junction),
        lights=met.count(int(SignalKind.TRAFFIC_LIGHT)),
        stops=met.count(int(SignalKind.STOP_SIGN)),
    )


def urban_route(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A route of ``length`` [m] (see :func:`draw_walk`) from a standstill with at least ``turns`` turns, through at least
    one light and one stop sign where the town has both, among ``vehicles`` background vehicles
    and ``pedestrians`` walkers kept alive within ``traffic_radius`` [m] of the ego."""
    length = float(p["length"])
    if not LENGTH_RANGE[0] <= length <= LENGTH_RANGE[1]:
        raise FamilyError(f"length must be within {LENGTH_RANGE} m; got {length}")
    if int(p["turns"]) < 0:
        raise FamilyError(f"turns must be >= 0; got {p['turns']}")
    kinds = set(road_map.signal_kind[road_map.stop_signal].tolist())
    walk = None
    for _ in range(ATTEMPTS):
        got = draw_walk(road_map, length, rng)
        if got is None or got.turns < int(p["turns"]):
            continue
        if (int(SignalKind.TRAFFIC_LIGHT) in kinds and got.lights == 0) or (
            int(SignalKind.STOP_SIGN) in kinds and got.stops == 0
        ):
            continue
        walk = got
        break
    if walk is None:
        raise MissingFeature(
            f"route of {length:.0f} m with {p['turns']} turn(s) and its kinds of junction control (none found "
            f"in {ATTEMPTS} draws; ask for fewer turns or a shorter route)"
        )
    world = WorldSpec(
        map=town,
        ego=pose_on(road_map, walk.lanes[0], walk.start_s),
        ego_speed=0.0,
        route=walk.waypoints(road_map),
        vehicles=int(p["vehicles"]),
        pedestrians=int(p["pedestrians"]),
        traffic_radius=float(p["traffic_radius"]),
    )
    return ScenarioSpec(name="", world=world, criteria=CriteriaConfig())


register(
    Family(
        name="urban_route",
        build=urban_route,
        defaults={
            "length": 800.0,
            "turns": 2,
            "vehicles": 30,
            "pedestrians": 30,
            "traffic_radius": 120.0,
        },
        town=MapRef("grid", 0),
        description="a long route through the town's lights, stop signs and turns in dense traffic (Leaderboard)",
        grid={"length": [600.0, 1000.0], "vehicles": [20, 40]},
    )
)
