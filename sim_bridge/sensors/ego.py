"""The ego vector (``Observation.ego``): motion, lane, route and next stop line of each ego.

Every column of :class:`~sim_bridge.sensors.layout.EgoFeature` is filled here, identically for every
backend, from the :class:`~sim_bridge.sensors.frame.SensorFrame`, the map and the
:class:`~sim_bridge.routes.RouteBatch`.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.api import LightState
from sim_bridge.maps.lookup import HEADING_WEIGHT, lane_candidates
from sim_bridge.maps.road_map import Projection, RoadMap, SignalKind
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.frame import SensorFrame
from sim_bridge.sensors.layout import (
    EGO_DIM,
    NUM_ROUTE_TARGETS,
    ROUTE_TARGET_SPACING,
    STOP_DISTANCE_CAP,
    EgoFeature,
    RouteCommand,
)

__all__ = ["COMMAND_LOOKAHEAD", "ego_lane", "ego_vector"]

#: how far ahead along the route the command looks [m]
COMMAND_LOOKAHEAD = 30.0
#: the fallback projection for an ego off every lane searches this far [m]
_FALLBACK_DISTANCE = 1e4
#: a lane of the route is preferred by this much [m] (the embedded lane tracker's plan bonus)
ROUTE_LANE_BONUS = 0.5

# one-hot column of each RouteCommand, indexed by the command's value
_COMMAND_COLUMN = np.zeros(len(RouteCommand), dtype=np.int64)
for _cmd, _col in (
    (RouteCommand.LANE_FOLLOW, EgoFeature.CMD_LANE_FOLLOW),
    (RouteCommand.LEFT, EgoFeature.CMD_LEFT),
    (RouteCommand.RIGHT, EgoFeature.CMD_RIGHT),
    (RouteCommand.STRAIGHT, EgoFeature.CMD_STRAIGHT),
    (RouteCommand.CHANGE_LANE_LEFT, EgoFeature.CMD_CHANGE_LEFT),
    (RouteCommand.CHANGE_LANE_RIGHT, EgoFeature.CMD_CHANGE_RIGHT),
):
    _COMMAND_COLUMN[_cmd] = _col
# plain ints (enum attribute look-ups cost a microsecond each)
_F = {f.name: int(f) for f in EgoFeature}
_ROUTE = slice(_F["ROUTE_X0"], _F["ROUTE_X0"] + 2 * NUM_ROUTE_TARGETS)


def ego_lane(
    road_map: RoadMap, xy: np.ndarray, yaw: np.ndarray, route_lanes: np.ndarray | None = None
) -> Projection:
    """The ego's driving lane: ``road_map.project(xy [B, 2], yaw [B])``; an ego farther than 10 m
    from every driving lane is projected onto the nearest one anyway (so it still gets a speed
    limit and an offset).

    With ``route_lanes [B, K]`` (-1 padded) a lane of the ego's route gets the embedded lane
    tracker's bonus (:data:`ROUTE_LANE_BONUS` off the cost ``|lateral| + HEADING_WEIGHT · (1 − cos
    heading error)``, lanes containing the point first): where junction lanes overlap, the route's
    lane wins over another one the ego's centre is on as well, as it does on the embedded backend
    (:mod:`sim_bridge.embedded.ego_track`)."""
    proj = road_map.project(xy, yaw)
    lost = proj.lane < 0
    if lost.any():
        far = road_map.project(xy[lost], yaw[lost], max_distance=_FALLBACK_DISTANCE)
        for name in ("lane", "s", "lateral", "heading_error", "distance", "inside"):
            getattr(proj, name)[lost] = getattr(far, name)
    if route_lanes is not None:
        for b in np.flatnonzero(~lost & ~(route_lanes == proj.lane[:, None]).any(axis=1)):
            _prefer_route_lane(road_map, proj, int(b), xy[b], float(yaw[b]), route_lanes[b])
    return proj


def _prefer_route_lane(
    road_map: RoadMap, proj: Projection, b: int, xy: np.ndarray, yaw: float, route: np.ndarray
) -> None:
    """Replace world ``b``'s projection by a lane of ``route`` it lies on when that one's cost,
    with :data:`ROUTE_LANE_BONUS`, is lower (see :func:`ego_lane`)."""
    cand = lane_candidates(road_map, xy)
    on_route = np.isin(cand.lane, route[route >= 0])
    if not on_route.any():
        return
    _, lane_yaw = road_map.pose_at(cand.lane, cand.s)
    he = np.remainder(yaw - lane_yaw + np.pi, 2.0 * np.pi) - np.pi
    cost = np.abs(cand.lateral) + HEADING_WEIGHT * (1.0 - np.cos(he)) - 1e6 * cand.inside
    now = abs(proj.lateral[b]) + HEADING_WEIGHT * (1.0 - np.cos(proj.heading_error[b])) - 1e6 * proj.inside[b]
    k = int(np.argmin(np.where(on_route, cost - ROUTE_LANE_BONUS, np.inf)))
    if cost[k] - ROUTE_LANE_BONUS < now:
        proj.lane[b], proj.s[b], proj.lateral[b] = cand.lane[k], cand.s[k], cand.lateral[k]
        proj.heading_error[b], proj.distance[b], proj.inside[b] = he[k], cand.distance[k], cand.inside[k]


def ego_vector(
    road_map: RoadMap,
    frame: SensorFrame,
    routes: RouteBatch,
    progress: np.ndarray,
    projection: Projection | None = None,
) -> np.ndarray:
    """``float32 [B, EGO_DIM]``, one row per world (columns: :class:`EgoFeature`).

    ``progress [B]`` [m] is each ego's progress along its route (``routes.update``);
    ``projection`` is the ego's lane (:func:`ego_lane`), computed here when not given. The speed
    limit is that lane's; route targets are ``NUM_ROUTE_TARGETS`` points every
    ``ROUTE_TARGET_SPACING`` m ahead of progress in the ego frame; the command is the first
    manoeuvre within ``COMMAND_LOOKAHEAD`` m; the stop columns describe the next stop line on the
    route (distance capped at ``STOP_DISTANCE_CAP``; ``STOP_IS_RED`` for a red or yellow light,
    ``STOP_IS_SIGN`` for a stop sign; both 0 and the cap when there is none). One compiled pass over
    the worlds fills every column.
    """
    a = frame.actors
    xy = np.stack([np.asarray(a.x[:, 0], np.float64), np.asarray(a.y[:, 0], np.float64)], -1)
    yaw = np.asarray(a.yaw[:, 0], dtype=np.float64)
    if projection is None:
        projection = ego_lane(road_map, xy, yaw)
    tables = road_map.cache.get("ego_vector_tables")
    if tables is None:
        kinds = np.asarray(road_map.signal_kind, dtype=np.int64)[
            np.asarray(road_map.stop_signal, dtype=np.int64)
        ]
        tables = (np.asarray(road_map.lane_speed_limit, dtype=np.float64), kinds)
        road_map.cache["ego_vector_tables"] = tables
    limits, stop_kind = tables
    k = frame.ego
    light = np.asarray(frame.light_state)
    if light.ndim != 2 or light.shape[1] == 0:
        light = np.zeros((len(yaw), 1), dtype=np.int8)
    ego = np.zeros((len(yaw), EGO_DIM), dtype=np.float32)
    _fill(
        ego, xy, yaw, np.asarray(a.speed[:, 0], np.float64), np.asarray(k.accel_lon, np.float64),
        np.asarray(k.accel_lat, np.float64), np.asarray(k.yaw_rate, np.float64),
        np.asarray(k.prev_action, np.float64), np.asarray(projection.lane, np.int64),
        np.asarray(projection.lateral, np.float64), np.asarray(projection.heading_error, np.float64),
        limits, np.asarray(progress, np.float64), routes.points, routes.s, routes.count, routes.index,
        routes.length, routes.commands, routes._next_command, routes.stop_s, routes.stop_index, stop_kind,
        light.astype(np.int8, copy=False), _COMMAND_COLUMN,
    )  # fmt: skip
    return ego


@numba.njit(cache=True)
def _fill(
    ego, xy, yaw, speed, accel_lon, accel_lat, yaw_rate, prev_action, lane, lateral, heading_error, limits,
    progress, points, s, count, index, length, commands, next_command, stop_s, stop_index, stop_kind,
    light, command_column,
):  # fmt: skip
    """Every column of the ego vector for every world (see :func:`ego_vector`)."""
    for b in range(ego.shape[0]):
        ego[b, _SPEED] = speed[b]
        ego[b, _ACCEL_LON] = accel_lon[b]
        ego[b, _ACCEL_LAT] = accel_lat[b]
        ego[b, _YAW_RATE] = yaw_rate[b]
        ego[b, _PREV_ACCEL] = prev_action[b, 0]
        ego[b, _PREV_STEER] = prev_action[b, 1]
        if lane[b] >= 0:
            ego[b, _SPEED_LIMIT] = limits[lane[b]]
            ego[b, _LANE_OFFSET] = lateral[b]
            ego[b, _LANE_HEADING] = heading_error[b]
        n = count[b]
        prog = progress[b]
        command = _LANE_FOLLOW
        if n >= 2:
            # route targets: points every ROUTE_TARGET_SPACING m ahead of progress, in the ego frame
            c = np.cos(yaw[b])
            sn = np.sin(yaw[b])
            j = min(index[b], n - 2)
            for q in range(NUM_ROUTE_TARGETS):
                sq = min(max(prog + ROUTE_TARGET_SPACING * (q + 1), s[b, 0]), s[b, n - 1])
                while j < n - 2 and s[b, j + 1] <= sq:
                    j += 1
                while j > 0 and s[b, j] > sq:
                    j -= 1
                span = s[b, j + 1] - s[b, j]
                t = (sq - s[b, j]) / span if span > 1e-9 else 0.0
                rx = points[b, j, 0] + t * (points[b, j + 1, 0] - points[b, j, 0]) - xy[b, 0]
                ry = points[b, j, 1] + t * (points[b, j + 1, 1] - points[b, j, 1]) - xy[b, 1]
                ego[b, _ROUTE_X0 + 2 * q] = c * rx + sn * ry
                ego[b, _ROUTE_X0 + 2 * q + 1] = -sn * rx + c * ry
            nxt = next_command[b, index[b]]
            if nxt >= 0 and s[b, nxt] <= prog + COMMAND_LOOKAHEAD:
                command = commands[b, nxt]
        ego[b, command_column[command]] = 1.0
        ego[b, _ROUTE_REMAINING] = max(length[b] - prog, 0.0)
        ego[b, _STOP_DISTANCE] = STOP_DISTANCE_CAP
        for r in range(stop_s.shape[1]):
            if stop_s[b, r] >= prog and stop_index[b, r] >= 0:
                kline = stop_index[b, r]
                ego[b, _STOP_DISTANCE] = min(stop_s[b, r] - prog, STOP_DISTANCE_CAP)
                if stop_kind[kline] == _TRAFFIC_LIGHT:
                    state = light[b, min(kline, light.shape[1] - 1)]
                    ego[b, _STOP_IS_RED] = 1.0 if state == _RED or state == _YELLOW else 0.0
                else:
                    ego[b, _STOP_IS_SIGN] = 1.0
                break


_SPEED, _ACCEL_LON, _ACCEL_LAT, _YAW_RATE = (_F[n] for n in ("SPEED", "ACCEL_LON", "ACCEL_LAT", "YAW_RATE"))
_PREV_ACCEL, _PREV_STEER, _SPEED_LIMIT = _F["PREV_ACCEL"], _F["PREV_STEER"], _F["SPEED_LIMIT"]
_LANE_OFFSET, _LANE_HEADING, _ROUTE_X0 = _F["LANE_OFFSET"], _F["LANE_HEADING"], _F["ROUTE_X0"]
_ROUTE_REMAINING, _STOP_DISTANCE = _F["ROUTE_REMAINING"], _F["STOP_DISTANCE"]
_STOP_IS_RED, _STOP_IS_SIGN = _F["STOP_IS_RED"], _F["STOP_IS_SIGN"]
_LANE_FOLLOW = int(RouteCommand.LANE_FOLLOW)
_TRAFFIC_LIGHT = int(SignalKind.TRAFFIC_LIGHT)
_RED, _YELLOW = int(LightState.RED), int(LightState.YELLOW)
