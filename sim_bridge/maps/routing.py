"""Routes on a :class:`~sim_bridge.maps.road_map.RoadMap`: shortest drivable routes through waypoints
and seeded random routes.

A route is first a list of pieces, each a stretch along one lane or a lane change between two
neighbour lanes, then a dense polyline (:class:`~sim_bridge.maps.road_map.Route`). Legs between
consecutive waypoints are found with Dijkstra on the lane graph (``road_map.graph``) from where the
first point lies on its lane to where the second lies on one of the lanes under it.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim_bridge.maps.lookup import lane_candidates, pose_at, project
from sim_bridge.maps.road_map import LaneType, MapError, Route
from sim_bridge.sensors.layout import RouteCommand

if TYPE_CHECKING:
    from sim_bridge.maps.road_map import RoadMap

#: a waypoint farther than this from every driving lane is off the map [m]
MAX_WAYPOINT_DISTANCE = 5.0
#: a lane change is blended over this distance where there is room [m]
CHANGE_LENGTH = 20.0
#: shortest lane change a route may contain [m]
MIN_CHANGE_LENGTH = 5.0
#: routing penalty of a lane change [m] (as the graph's change edges)
CHANGE_PENALTY = 10.0
#: spacing of the points of a lane-change blend [m]
BLEND_SPACING = 0.5
#: lane changes a leg search may give up on before it reports no path
MAX_BANNED_CHANGES = 32


@dataclass(frozen=True)
class _Piece:
    """Along ``lane`` from ``s0`` to ``s1`` [m]; a lane change when ``to_lane >= 0`` (``s`` in
    ``lane``'s metres, the position on ``to_lane`` taken at the same fraction of its length)."""

    lane: int
    s0: float
    s1: float
    to_lane: int = -1
    command: RouteCommand = RouteCommand.LANE_FOLLOW


# ---------------------------------------------------------------------------------------- search


def _search(
    road_map: RoadMap,
    start: tuple[int, float],
    targets: dict[int, float],
    banned: set[tuple[int, int]],
) -> list[tuple[int, str]] | None:
    """Cheapest lane sequence from ``start = (lane, s)`` to any ``lane: s`` of ``targets``.

    Returns ``[(lane, kind of the edge into it), ...]`` (the first kind is ``"start"``), or ``None``.
    Costs are the graph's edge weights, except from the start (the rest of its lane) and into the
    target (its ``s``). The same lane behind the start is reached by going round a loop.
    """
    graph = road_map.graph
    length = road_map.lane_length
    la, sa = start
    tie = itertools.count()
    heap: list[tuple[float, int, object, object, str]] = []
    if la in targets and targets[la] >= sa - 1e-6:
        heapq.heappush(heap, (targets[la] - sa, next(tie), "T", ("S", la), "end"))
    for v, data in graph[la].items():
        if (la, v) in banned:
            continue
        if data["kind"] == "follow":
            cost = length[la] - sa
        else:
            room = length[la] - sa
            if room < MIN_CHANGE_LENGTH:
                continue
            cost = 0.5 * room + CHANGE_PENALTY
        heapq.heappush(heap, (float(cost), next(tie), v, ("S", la), data["kind"]))
    parent: dict[object, tuple[object, str]] = {}
    while heap:
        cost, _, node, prev, kind = heapq.heappop(heap)
        if node in parent:
            continue
        parent[node] = (prev, kind)
        if node == "T":
            break
        assert isinstance(node, int)
        if node in targets:
            heapq.heappush(heap, (cost + targets[node], next(tie), "T", node, "end"))
        for v, data in graph[node].items():
            if v not in parent and (node, v) not in banned:
                heapq.heappush(heap, (cost + data["weight"], next(tie), v, node, data["kind"]))
    if "T" not in parent:
        return None
    path: list[tuple[int, str]] = []
    node = parent["T"][0]
    while isinstance(node, int):
        prev, kind = parent[node]
        path.append((node, kind))
        node = prev
    path.append((la, "start"))
    return path[::-1]


def _pieces(
    road_map: RoadMap, path: list[tuple[int, str]], sa: float, sb: float
) -> tuple[list[_Piece], tuple[int, int] | None]:
    """Pieces along ``path`` from ``sa`` on its first lane to ``sb`` on its last.

    Consecutive lane changes share the room on their lanes; each is ``min(CHANGE_LENGTH, room / n)``
    long and starts as early as it can. Returns the pieces, or ``None`` and the first change edge
    of a run without room for ``MIN_CHANGE_LENGTH`` per change.
    """
    length = road_map.lane_length
    pieces: list[_Piece] = []
    entry = sa
    i = 0
    while i < len(path):
        lane = path[i][0]
        j = i  # path[i..j] is a run joined by lane changes
        while j + 1 < len(path) and path[j + 1][1].startswith("change"):
            j += 1
        last = path[j][0]
        f_in = entry / length[lane]
        f_out = (sb / length[last]) if j == len(path) - 1 else 1.0
        n = j - i
        if n:
            room = (f_out - f_in) * length[lane]
            change = min(CHANGE_LENGTH, room / n)
            if change < MIN_CHANGE_LENGTH:
                return [], (lane, path[i + 1][0])
            step = change / length[lane]
            for c in range(n):
                a, b = path[i + c][0], path[i + c + 1][0]
                f0 = f_in + c * step
                if c == 0 and f0 * length[a] > entry + 1e-9:
                    pieces.append(_Piece(a, entry, f0 * length[a]))
                cmd = (
                    RouteCommand.CHANGE_LANE_LEFT
                    if path[i + c + 1][1] == "change_left"
                    else RouteCommand.CHANGE_LANE_RIGHT
                )
                pieces.append(_Piece(a, f0 * length[a], (f0 + step) * length[a], b, cmd))
            entry = (f_in + n * step) * length[last]
        end = sb if j == len(path) - 1 else float(length[last])
        pieces.append(
            _Piece(last, entry, max(entry, end), command=RouteCommand(int(road_map.lane_turn[last])))
        )
        entry = 0.0
        i = j + 1
    return pieces, None


def _leg(
    road_map: RoadMap, start: tuple[int, float], targets: dict[int, float]
) -> tuple[list[_Piece], int, float]:
    """Pieces from ``start`` to the cheapest of ``targets``; also the target lane and ``s`` reached."""
    banned: set[tuple[int, int]] = set()
    for _ in range(MAX_BANNED_CHANGES):
        path = _search(road_map, start, targets, banned)
        if path is None:
            break
        end_lane = path[-1][0]
        pieces, bad = _pieces(road_map, path, start[1], targets[end_lane])
        if bad is None:
            return pieces, end_lane, targets[end_lane]
        banned.add(bad)
    raise _NoPath


class _NoPath(Exception):
    pass


# -------------------------------------------------------------------------------------- polyline


def _polyline(road_map: RoadMap, pieces: list[_Piece]) -> Route:
    xys, yaws, lanes_of, cmds = [], [], [], []
    for pc in pieces:
        if pc.to_lane < 0:
            lo, hi = road_map.lane_start[pc.lane], road_map.lane_start[pc.lane + 1]
            inner = road_map.s[lo:hi]
            ss = np.concatenate([[pc.s0], inner[(inner > pc.s0) & (inner < pc.s1)], [pc.s1]])
            xy, yaw = pose_at(road_map, np.full(ss.size, pc.lane), ss)
            lane_col = np.full(ss.size, pc.lane)
        else:
            ratio = road_map.lane_length[pc.to_lane] / road_map.lane_length[pc.lane]
            n = max(2, math.ceil((pc.s1 - pc.s0) / BLEND_SPACING) + 1)
            ss = np.linspace(pc.s0, pc.s1, n)
            xa, _ = pose_at(road_map, np.full(n, pc.lane), ss)
            xb, _ = pose_at(road_map, np.full(n, pc.to_lane), ss * ratio)
            w = np.linspace(0.0, 1.0, n)[:, None]
            xy = (1.0 - w) * xa + w * xb
            d = np.gradient(xy, axis=0)
            yaw = np.arctan2(d[:, 1], d[:, 0])
            lane_col = np.where(w[:, 0] < 0.5, pc.lane, pc.to_lane)
        xys.append(xy)
        yaws.append(yaw)
        lanes_of.append(lane_col)
        cmds.append(np.full(len(xy), int(pc.command)))
    xy = np.concatenate(xys)
    yaw = np.concatenate(yaws)
    lane_col = np.concatenate(lanes_of).astype(np.int64)
    cmd = np.concatenate(cmds).astype(np.int8)
    step = np.hypot(*np.diff(xy, axis=0).T)
    keep = np.concatenate([[True], step > 1e-3])
    if keep.sum() < 2 and len(xy) >= 2:
        keep[-1] = True
    xy, yaw, lane_col, cmd = xy[keep], yaw[keep], lane_col[keep], cmd[keep]
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    order: list[int] = []
    for pc in pieces:
        for lane in (pc.lane, pc.to_lane) if pc.to_lane >= 0 else (pc.lane,):
            if not order or order[-1] != lane:
                order.append(lane)
    return Route(
        lanes=np.array(order, dtype=np.int64),
        points=xy,
        headings=yaw,
        s=s,
        point_lane=lane_col,
        commands=cmd,
    )


# ------------------------------------------------------------------------------------------ public


def _fmt(p: np.ndarray) -> str:
    return f"({p[0]:.2f}, {p[1]:.2f})"


def plan_route(road_map: RoadMap, waypoints: np.ndarray, start_yaw: float | None = None) -> Route:
    """Shortest drivable route through ``waypoints [W ≥ 2, 2]`` [m] (see :meth:`RoadMap.route`).

    The first waypoint goes to its nearest driving lane (the one agreeing with ``start_yaw`` [rad]
    among overlapping lanes); each later one to whichever driving lane under it makes the whole
    route shortest (dynamic programming over the lanes under each waypoint). :class:`MapError` names the waypoint when it is more than ``MAX_WAYPOINT_DISTANCE``
    from every driving lane, and both ends of a leg that no drivable path joins.
    """
    wp = np.asarray(waypoints, dtype=np.float64)
    if wp.ndim != 2 or wp.shape[1] != 2 or wp.shape[0] < 2:
        raise MapError(f"a route needs waypoints of shape [W >= 2, 2] (x, y in metres); got shape {wp.shape}")
    if not np.isfinite(wp).all():
        raise MapError(f"route waypoints must be finite; got {wp.tolist()}")
    if start_yaw is not None and not math.isfinite(start_yaw):
        raise MapError(f"start_yaw must be a finite angle in radians or None; got {start_yaw}")
    first = project(
        road_map,
        wp[:1],
        None if start_yaw is None else np.array([start_yaw]),
        (LaneType.DRIVING,),
        MAX_WAYPOINT_DISTANCE,
    )
    if first.lane[0] < 0:
        raise MapError(
            f"waypoint 0 at {_fmt(wp[0])} is more than {MAX_WAYPOINT_DISTANCE:g} m from every driving lane; "
            "move it onto a road"
        )
    # dynamic programming over the candidate lanes of every waypoint (overlapping junction lanes):
    # the cheapest route through all waypoints, not the cheapest leg at each one
    states: dict[int, tuple[float, list[_Piece], float]] = {int(first.lane[0]): (0.0, [], float(first.s[0]))}
    for k in range(1, wp.shape[0]):
        cand = lane_candidates(road_map, wp[k], (LaneType.DRIVING,), MAX_WAYPOINT_DISTANCE)
        if cand.lane.size == 0:
            raise MapError(
                f"waypoint {k} at {_fmt(wp[k])} is more than {MAX_WAYPOINT_DISTANCE:g} m from every driving lane; "
                "move it onto a road"
            )
        # lanes whose surface holds the waypoint, else the nearest
        use = cand.inside if cand.inside.any() else np.arange(cand.lane.size) == 0
        targets = {int(lane): float(s) for lane, s in zip(cand.lane[use], cand.s[use])}
        nxt: dict[int, tuple[float, list[_Piece], float]] = {}
        for lane, (cost, pieces, s) in states.items():
            for target, target_s in targets.items():
                try:
                    leg, end_lane, end_s = _leg(road_map, (lane, s), {target: target_s})
                except _NoPath:
                    continue
                total = cost + _cost(leg)
                if end_lane not in nxt or total < nxt[end_lane][0]:
                    nxt[end_lane] = (total, pieces + leg, end_s)
        if not nxt:
            starts = sorted(road_map.lane_keys[i] for i in states)
            raise MapError(
                f"no drivable path from {_fmt(wp[k - 1])} to {_fmt(wp[k])}: no sequence of lanes, junctions "
                f"and allowed lane changes leads from lane(s) {starts} to "
                f"{sorted(road_map.lane_keys[i] for i in targets)} (road, section, lane); check the order of "
                "the waypoints and the direction of the roads"
            )
        states = nxt
    best = min(states.values(), key=lambda state: state[0])
    return _polyline(road_map, best[1])


def _cost(pieces: list[_Piece]) -> float:
    """Length of a leg [m] plus the penalty of its lane changes (as the search counts them)."""
    return sum((pc.s1 - pc.s0) + (CHANGE_PENALTY if pc.to_lane >= 0 else 0.0) for pc in pieces)


def random_route(
    road_map: RoadMap, start_lane: int, start_s: float, length: float, rng: np.random.Generator
) -> Route:
    """A route of about ``length`` [m] from ``start_s`` [m] on ``start_lane``, choosing among each
    lane's successors uniformly with ``rng``; shorter where it reaches a dead end.

    The same ``rng`` state gives the same route.
    """
    if not 0 <= start_lane < road_map.num_lanes:
        raise MapError(
            f"start lane {start_lane} is not a lane of map {road_map.name!r} (0..{road_map.num_lanes - 1})"
        )
    lane_length = road_map.lane_length
    s0 = float(np.clip(start_s, 0.0, lane_length[start_lane]))
    lanes = [int(start_lane)]
    travelled = lane_length[start_lane] - s0
    while travelled < length:
        succ = road_map.lane_successors[lanes[-1]]
        if not succ:
            break
        lanes.append(int(succ[int(rng.integers(len(succ)))]))
        travelled += lane_length[lanes[-1]]
    pieces = []
    for n, lane in enumerate(lanes):
        a = s0 if n == 0 else 0.0
        b = float(lane_length[lane])
        if n == len(lanes) - 1 and travelled > length:
            b = max(a, b - (travelled - length))
        pieces.append(_Piece(lane, a, b, command=RouteCommand(int(road_map.lane_turn[lane]))))
    return _polyline(road_map, pieces)
