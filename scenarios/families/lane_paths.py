"""Lane paths: where the families place the ego and the actors on any map.

A real OpenDRIVE map splits a stretch of road into many roads and lane sections (a 200 m straight
may be ten lanes of 20 m), so a family that needs "200 m of straight road with a lane to its left"
cannot look for one long lane. It looks for a :class:`LanePath` instead: a chain of driving lanes,
each a successor of the one before (across sections, roads and, where allowed, straight through
junctions), measured by one arc length from the first lane's start. Neighbour and opposite lanes
are found lane by lane along the chain.

:func:`lane_paths` lists every path of a map that holds a family's window (length, lane
conditions, curvature) plus a run-out, in a fixed order, so a seeded choice among them is
deterministic.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim_bridge.api import Pose
from sim_bridge.embedded.map_arrays import MIN_LANE_WIDTH, _lane_curvature
from sim_bridge.embedded.traffic import MERGE_HORIZON
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.sensors.layout import RouteCommand

#: lateral acceleration [m/s²] a path's curves may ask of a car at the family's speed
#: (``max_curvature = LATERAL_ACCEL / speed²``: 50 m radius at 10 m/s, 160 m at 18 m/s): the
#: expert's own limit, below the simulator drivers' 2.5, so a scripted actor keeps its speed
LATERAL_ACCEL = 2.0
#: a route ends at least this far before a dead end [m] (drivers stop short of one, and would
#: never reach a destination right at it)
DEAD_END_MARGIN = 25.0
#: paths listed from one start lane at most (forks outside junctions are rare; this bounds them)
MAX_PATHS_PER_START = 8
#: junction movements a path may take inside its window (no turns there)
THROUGH = (int(RouteCommand.STRAIGHT), int(RouteCommand.LANE_FOLLOW))
#: preference among the movements of the run-out (as :func:`scenarios.families.base.ahead`)
RUN_OUT_PREFER = (int(RouteCommand.STRAIGHT), int(RouteCommand.LANE_FOLLOW), int(RouteCommand.RIGHT),
                  int(RouteCommand.LEFT))  # fmt: skip


@dataclass(frozen=True)
class LanePath:
    """A chain of driving lanes (each a successor of the one before) with one arc length ``s`` [m]
    from the first lane's start to the last lane's end."""

    lanes: tuple[int, ...]
    starts: tuple[float, ...]
    """Path ``s`` [m] where each lane begins (``starts[0] == 0``)."""
    length: float
    """[m]"""
    clear: float
    """Path ``s`` [m] up to which its lanes were checked for a family's window (see
    :func:`lane_paths`); ``length`` for a path built with :meth:`of`."""

    @classmethod
    def of(
        cls, road_map: RoadMap, lanes: list[int] | tuple[int, ...], clear: float | None = None
    ) -> LanePath:
        lengths = [float(road_map.lane_length[k]) for k in lanes]
        starts = tuple(float(x) for x in np.concatenate([[0.0], np.cumsum(lengths)[:-1]]))
        total = float(sum(lengths))
        return cls(tuple(int(k) for k in lanes), starts, total, total if clear is None else float(clear))

    def locate(self, s: float) -> tuple[int, float]:
        """The lane under path ``s`` [m] (clipped to the path) and the arc length along it [m]."""
        s = min(max(float(s), 0.0), self.length)
        k = max(0, bisect.bisect_right(self.starts, s) - 1)
        return self.lanes[k], s - self.starts[k]

    def lanes_between(self, s0: float, s1: float) -> tuple[int, ...]:
        """The lanes of the path that overlap ``[s0, s1]`` [m], in driving order."""
        a = max(0, bisect.bisect_right(self.starts, s0) - 1)
        b = max(a, bisect.bisect_left(self.starts, s1) - 1)
        return self.lanes[a : b + 1]

    def pose(self, road_map: RoadMap, s: float, lateral: float = 0.0) -> Pose:
        """The pose at path ``s`` [m], ``lateral`` [m] left of the centreline."""
        lane, ls = self.locate(s)
        xy, yaw = road_map.pose_at(np.array([lane]), np.array([ls]), np.array([float(lateral)]))
        return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))

    def point(self, road_map: RoadMap, s: float, lateral: float = 0.0) -> tuple[float, float]:
        """``(x, y)`` [m] of :meth:`pose`."""
        pose = self.pose(road_map, s, lateral)
        return (pose.x, pose.y)

    def beside(self, road_map: RoadMap, s: float, side: int) -> tuple[int, float] | None:
        """The neighbour lane of the same direction on ``side`` (+1 left, -1 right) at path ``s``
        and the arc length along it there (at the same fraction of its length); ``None`` if none."""
        lane, ls = self.locate(s)
        other = int((road_map.lane_left if side > 0 else road_map.lane_right)[lane])
        if other < 0:
            return None
        return other, ls / float(road_map.lane_length[lane]) * float(road_map.lane_length[other])

    def opposite(self, road_map: RoadMap, s: float) -> tuple[int, float] | None:
        """The innermost lane of the other direction beside path ``s`` and the arc length along it
        there (its own driving direction); ``None`` if none."""
        lane, ls = self.locate(s)
        other = opposite_lane(road_map, lane)
        if other < 0:
            return None
        frac = 1.0 - ls / float(road_map.lane_length[lane])
        return other, frac * float(road_map.lane_length[other])

    def waypoints(self, road_map: RoadMap, s0: float, s1: float) -> tuple[tuple[float, float], ...]:
        """Route points that keep a route from path ``s0`` to ``s1`` [m] on the path: the middle of
        every lane outside junctions wholly between them, then the point at ``s1`` — at least
        ``DEAD_END_MARGIN`` before the path's end where the road ends there."""
        if not road_map.lane_successors[self.lanes[-1]]:
            s1 = max(s0 + 1.0, min(s1, self.length - DEAD_END_MARGIN))
        out = []
        for lane, start in zip(self.lanes, self.starts, strict=True):
            mid = start + 0.5 * float(road_map.lane_length[lane])
            if (
                s0 < start
                and start + float(road_map.lane_length[lane]) < s1
                and road_map.lane_junction[lane] < 0
            ):
                out.append(self.point(road_map, mid))
        out.append(self.point(road_map, s1))
        return tuple(out)


def opposite_lane(road_map: RoadMap, lane: int) -> int:
    """The innermost lane of the other direction on ``lane``'s road section (-1 if none)."""
    road, section, lane_id = road_map.lane_keys[lane]
    other = lane_index(road_map).get((road, section, 1 if lane_id < 0 else -1), -1)
    if other < 0 or road_map.lane_type[other] != road_map.lane_type[lane]:
        return -1
    return other


def lane_index(road_map: RoadMap) -> dict[tuple[int, int, int], int]:
    """``(road, section, lane_id)`` → lane index (cached on the map)."""
    cached = road_map.cache.get("families_lane_index")
    if cached is None:
        cached = {key: i for i, key in enumerate(road_map.lane_keys)}
        road_map.cache["families_lane_index"] = cached
    return cached


def lane_min_width(road_map: RoadMap) -> np.ndarray:
    """``float [L]``: the narrowest width of each lane [m] (cached on the map). Real maps open
    turn pockets from zero width: a car placed there stands on the lanes beside it."""
    cached = road_map.cache.get("families_lane_min_width")
    if cached is None:
        cached = np.array([
            float(road_map.widths[road_map.lane_start[k] : road_map.lane_start[k + 1]].min())
            if road_map.lane_start[k + 1] > road_map.lane_start[k] else 0.0
            for k in range(road_map.num_lanes)
        ])  # fmt: skip
        road_map.cache["families_lane_min_width"] = cached
    return cached


def lane_curvature(road_map: RoadMap) -> np.ndarray:
    """``float [L]``: the largest curvature of each lane [1/m], as the embedded simulator's drivers
    measure it when they slow for curves (cached on the map)."""
    cached = road_map.cache.get("families_lane_curvature")
    if cached is None:
        cached = road_map.cache["families_lane_curvature"] = _lane_curvature(road_map)
    return cached


def lane_drop(road_map: RoadMap, lane: int) -> bool:
    """Does ``lane`` end beside a neighbour that goes on (an acceleration lane, a lane count
    dropping)? A path along it would make its traffic merge, not run out."""
    if road_map.lane_successors[lane]:
        return False
    sides = (int(road_map.lane_left[lane]), int(road_map.lane_right[lane]))
    return any(k >= 0 and bool(road_map.lane_successors[k]) for k in sides)


def drops_within(road_map: RoadMap, lane: int, distance: float = MERGE_HORIZON) -> bool:
    """Does ``lane``, followed through single successors, drop (see :func:`lane_drop`) within
    ``distance`` [m] of its start? The simulator's drivers leave such a lane (waiting for a gap)
    from ``MERGE_HORIZON`` before its end, so a scripted car there would not keep its script."""
    seen, visited = 0.0, set()
    while seen < distance and lane not in visited:
        visited.add(lane)
        if lane_drop(road_map, lane):
            return True
        succ = road_map.lane_successors[lane]
        if len(succ) != 1:
            return False
        seen += float(road_map.lane_length[lane])
        lane = succ[0]
    return False


def max_curvature(speed: float) -> float:
    """The curvature [1/m] a path may have for a car at ``speed`` [m/s] (see ``LATERAL_ACCEL``)."""
    return LATERAL_ACCEL / max(float(speed), 1.0) ** 2


def lane_paths(
    road_map: RoadMap,
    window: float,
    run_out: float = 0.0,
    accept: Callable[[int], bool] | None = None,
    curvature: float | None = None,
    junctions: bool = False,
    min_run_out: float | None = None,
) -> list[LanePath]:
    """Every lane path that starts at the beginning of a driving lane outside junctions and holds
    ``window`` [m] then ``run_out`` [m] more (or, where the road ends first, at least
    ``min_run_out`` [m]; ``run_out`` when ``None``; never where the path's last lane drops beside
    one that goes on, see :func:`lane_drop`). The lanes overlapping the window are all at least
    ``MIN_LANE_WIDTH`` wide everywhere, satisfy ``accept``, bend no more than ``curvature`` [1/m] and lie outside junctions (with ``junctions``,
    straight through them is allowed too); the run-out follows the lane graph, straight where it
    can. Ordered by start lane, then by fork taken."""
    accept = accept or (lambda lane: True)
    bend = lane_curvature(road_map)
    narrowest = lane_min_width(road_map)

    def fits(lane: int) -> bool:
        if road_map.lane_junction[lane] >= 0 and (
            not junctions or int(road_map.lane_turn[lane]) not in THROUGH
        ):
            return False
        if narrowest[lane] < MIN_LANE_WIDTH:  # a turn pocket opening, a lane tapering away
            return False
        return (curvature is None or bend[lane] <= curvature) and accept(lane)

    least = run_out if min_run_out is None else min(min_run_out, run_out)
    rank = {cmd: i for i, cmd in enumerate(RUN_OUT_PREFER)}
    out: list[LanePath] = []
    starts = [k for k in road_map.driving_lanes.tolist() if road_map.lane_junction[k] < 0]
    for first in starts:
        if not fits(first):
            continue
        found = 0
        # (lanes, length travelled, length of the lanes checked against the window)
        first_length = float(road_map.lane_length[first])
        stack: list[tuple[list[int], float, float]] = [([first], first_length, first_length)]
        while stack and found < MAX_PATHS_PER_START:
            lanes, travelled, clear = stack.pop()
            if travelled >= window + run_out:
                out.append(LanePath.of(road_map, lanes, clear))
                found += 1
                continue
            succ = road_map.lane_successors[lanes[-1]]
            if travelled < window:  # still in the window: every fitting successor is a fork
                nxt = [k for k in succ if fits(k) and k not in lanes]
                for k in sorted(nxt, reverse=True):  # popped in ascending order
                    step = float(road_map.lane_length[k])
                    stack.append(([*lanes, k], travelled + step, clear + step))
                continue
            # the run-out: one way on, straight first
            k = min(succ, key=lambda j: (rank.get(int(road_map.lane_turn[j]), 99), j), default=-1)
            if k >= 0 and k not in lanes:
                stack.append(([*lanes, k], travelled + float(road_map.lane_length[k]), clear))
            elif travelled >= window + least and not lane_drop(road_map, lanes[-1]):
                out.append(LanePath.of(road_map, lanes, clear))  # the road ends after enough run-out
                found += 1
    return out
