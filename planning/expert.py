"""The privileged expert: a PDM-Closed-style planner reading ground truth.

Each decision, for every world: take the route ahead as a path in the ego frame; make proposals
(the path shifted laterally by each of ``offsets`` — 0, ±0.5 and ±1 m, PDM-Closed style — × IDM
target speeds at ``speed_fractions`` of the limit); forward-simulate each with the kinematic bicycle
(pure pursuit on its path — in a sharp bend curvature feed-forward with lateral and heading feedback
instead —, IDM behind the leader on its path and before a mandatory stop line)
against constant-velocity forecasts of every object; score them (multipliers: no collision, stays on
the drivable area with all four corners; weighted: progress, time to collision, comfort; costs for
leaving the lane centre, for driving against a lane's direction and for leaving the route's lanes)
and apply the first control of the best. In a sharp bend only the lane centre is proposed (an offset
there sweeps a corner off the road) unless that collides.

Every proposal starts where the ego is (the offset blends from the ego's own lateral position), so
the ego can be mid-manoeuvre. Proposals one lane width to either side are added only when the way
ahead is *blocked*: a static obstacle, or a vehicle that has stood still for ``blocked_time`` and is
neither queueing behind another nor waiting at a junction — a breakdown, a parked car, an accident —
and while the ego is still beside its lane after such a pass.

It reads the map, the route, the objects and the stop lines of the observation (``Observation.pose``,
the object ids and the route are privileged) — the reference driver and the source of demonstrations
for imitation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import cKDTree

from planning.base import Agent
from sim_bridge.api import EgoFeature, ObjectFeature, Observation
from sim_bridge.geometry import box_gap, boxes_overlap

_SPEED, _LIMIT = int(EgoFeature.SPEED), int(EgoFeature.SPEED_LIMIT)
_STOP_D, _STOP_RED, _STOP_SIGN = (
    int(EgoFeature.STOP_DISTANCE),
    int(EgoFeature.STOP_IS_RED),
    int(EgoFeature.STOP_IS_SIGN),
)
_PREV_STEER = int(EgoFeature.PREV_STEER)
_OX, _OY, _OC, _OS, _OVX, _OVY, _OL, _OW = (
    int(ObjectFeature.X), int(ObjectFeature.Y), int(ObjectFeature.COS_YAW), int(ObjectFeature.SIN_YAW),
    int(ObjectFeature.VX), int(ObjectFeature.VY), int(ObjectFeature.LENGTH), int(ObjectFeature.WIDTH),
)  # fmt: skip
_O_STATIC, _O_VEHICLE = int(ObjectFeature.IS_STATIC), int(ObjectFeature.IS_VEHICLE)
#: time constant with which a vehicle's forecast heading returns to its lane's [s]
LANE_RELAX = 0.3
#: a vehicle this far off its lane's centre [m] and heading farther away is changing lanes
LANE_CHANGE_OFFSET = 0.15
#: ... and is predicted to go on drifting for this long [s]
LANE_CHANGE_HOLD = 1.0
#: below this speed an object counts as standing still [m/s]
_STILL = 0.3
#: extra standstill gap behind a static obstacle (parked car, accident, cone) [m]: room to steer
#: round it from a stop, even when it stands askew
STATIC_ROOM = 3.0
#: cell of the expert's lane raster [m], and how far from a lane centre its cells still name one [m]
LANE_CELL = 0.25
LANE_REACH = 4.0
#: path tracking of the proposals in a sharp bend (elsewhere: pure pursuit): curvature feed-forward this
#: far ahead (beyond one step) [s], and lateral / heading feedback at the ego's centre, critically damped
#: over max(TRACK_MIN_LOOK [m], TRACK_LOOK_TIME [s] × speed)
TRACK_PREVIEW = 0.15
TRACK_MIN_LOOK = 3.0
TRACK_LOOK_TIME = 0.6


@dataclass
class ExpertConfig:
    """Settings of :class:`Expert` (PDM-Closed defaults where it has them)."""

    horizon: float = 4.0
    """Simulated horizon of each proposal [s]."""
    step: float = 0.1
    """Simulation step of the proposals [s]."""
    offsets: tuple[float, ...] = (0.0, 1.0, -1.0)
    """Lateral offsets of the path [m] (+ left)."""
    lane_room: tuple[float, ...] = (0.5, 0.75, 1.0)
    """Also offsets of these shares of the room the lane leaves beside the ego, either side."""
    lane_offsets: bool = True
    """Also propose ± one lane width when the lane ahead is blocked (see module doc)."""
    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    """IDM target speeds as fractions of the speed limit."""
    idm_accel: float = 1.5
    """[m/s²]"""
    idm_decel: float = 3.0
    """Comfortable deceleration [m/s²]."""
    headway: float = 1.5
    """[s]"""
    min_gap: float = 3.0
    """Standstill gap to a moving leader [m]."""
    stopped_gap: float = 6.0
    """Standstill gap to a leader that stands still [m]: room to steer round it if it stays."""
    narrow_lane: float = 3.25
    """In lanes narrower than this [m] (our towns' are 3.25-3.5 m wide) ``stopped_gap`` grows by
    ``narrow_gap`` metres per metre narrower: the ego must swing farther out into the next lane."""
    narrow_gap: float = 6.0
    """[m/m] (Measured: behind a lead braking hard in the 3 m lanes of esmini's highway example
    the ego stopped 3.4 m short of it at ``stopped_gap`` 6 m, too close to steer round it; at
    7 m or more it passes.)"""
    stop_margin: float = 1.0
    """Stop with the front bumper this far before a stop line [m] (the Leaderboard wants < 4 m)."""
    max_lateral_accel: float = 2.0
    """Curve speed limit [m/s²]."""
    offset_cost: float = 0.06
    """Score lost per metre of lateral offset."""
    wrong_way_cost: float = 0.2
    """Score lost for a proposal that drives against its lane's direction all the time."""
    off_route_cost: float = 0.1
    """Score lost for a proposal that stays on lanes outside the route all the time."""
    displaced: float = 0.25
    """While the ego is this share of a lane width or more beside its route (passing, evading),
    proposals one lane width to either side stay available."""
    blocked_time: float = 3.0
    """A vehicle standing still this long ahead of us (not queueing, not at a junction) blocks the
    lane, and passing it in a neighbour lane is considered [s]."""
    bend_curvature: float = 0.05
    """Where the route ahead bends sharper than this [1/m], only the lane centre is proposed (the
    offsets too when it collides, or when the lane ahead is blocked)."""
    bend_ahead: float = 8.0
    """… within max(bend_ahead [m], bend_time [s] × speed) ahead."""
    bend_time: float = 2.0
    """[s]"""
    path_length: float = 70.0
    """Route ahead turned into the path [m]."""
    corridor_margin: float = 0.5
    """Lateral margin of the leader search [m]."""
    steer_rate: float = 1.5
    """How fast the front wheels turn [rad/s] (the embedded simulator's ``VehicleLimits.max_steer_rate``;
    ``EgoVehicle`` does not carry it)."""
    lon_margin: float = 0.5
    """Clearance kept ahead of and behind the ego's box in the collision check [m]."""
    lat_margin: float = 0.2
    """Clearance kept beside the ego's box in the collision check [m]."""
    clear_lon: float = 1.0
    """Comfortable clearance ahead of and behind the ego's box [m]: less within 3 s loses the TTC
    part of the score."""
    clear_lat: float = 0.7
    """Comfortable clearance beside the ego's box [m] (as ``clear_lon``)."""
    min_ramp: float = 6.0
    """Shortest distance over which a path offset is ramped in [m]."""
    ramp_accel: float = 3.0
    """… else over the distance that keeps the lateral acceleration of the ramp below this [m/s²]."""
    sharp_ramp_accel: float = 6.0
    """The same for the sharp variants of the neighbour-lane proposals (an obstacle that appears
    close, e.g. a door opening) [m/s²]."""
    sharp_cost: float = 0.03
    """Score lost by a sharp variant (a comfortable ramp that works is preferred)."""
    clearance_gain: float = 0.15
    """Score gained per metre of the least clearance to any object along a proposal (up to 1 m)."""
    keep_bonus: float = 0.015
    """Score added to proposals with the offset chosen at the previous decision (no dithering)."""
    evade_time: float = 2.0
    """When every proposal collides, the latest collision this far ahead or more is steered clear of
    at comfortable braking; a nearer one brakes at full force [s]."""
    creep_speed: float = 4.0
    """Below this speed the ego may pass an object that stands still closer than the comfortable
    clearances without losing the TTC part of the score (edging round a parked car) [m/s]."""


class Expert(Agent):
    """PDM-Closed-style privileged planner (see module doc). Needs ``AgentInfo.road_map``,
    ``AgentInfo.routes`` and the privileged ``Observation.pose``."""

    name = "expert"

    def __init__(self, config: ExpertConfig | None = None) -> None:
        self.config = config or ExpertConfig()
        self._index = np.zeros(0, dtype=np.int64)
        self._stopped = np.zeros(0, dtype=bool)
        self._stop_seen = np.zeros(0)
        self._offset = np.zeros(0)
        self._still: list[dict[int, float]] = []
        self._route_mask: list[np.ndarray] = []
        self._bend = False
        self._stopped_gap = self.config.stopped_gap

    def _reset(self, worlds: list[int]) -> None:
        info = self.info
        if info.road_map is None or len(info.routes) != info.num_worlds:
            raise ValueError("the expert is privileged: AgentInfo needs road_map and one route per world")
        if len(self._index) != info.num_worlds:
            self._index = np.zeros(info.num_worlds, dtype=np.int64)
            self._stopped = np.zeros(info.num_worlds, dtype=bool)
            self._stop_seen = np.full(info.num_worlds, np.inf)
            self._offset = np.zeros(info.num_worlds)
            self._still = [{} for _ in range(info.num_worlds)]
            self._route_mask = [np.zeros(0, bool) for _ in range(info.num_worlds)]
        for b in worlds:
            self._index[b] = 0
            self._stopped[b] = False
            self._stop_seen[b] = np.inf
            self._offset[b] = 0.0
            self._still[b] = {}
            mask = np.zeros(info.road_map.num_lanes, dtype=bool)
            mask[np.asarray(info.routes[b].lanes, dtype=np.int64)] = True
            self._route_mask[b] = mask
        e = info.ego
        self._limits = np.array([e.length, e.width, e.wheelbase, e.max_steer, e.max_accel, e.max_brake])
        self._lanes = _LaneLookup.of(info.road_map)

    # ------------------------------------------------------------------ per step

    def _act(self, obs: Observation) -> np.ndarray:
        out = np.zeros((obs.num_worlds, 2), dtype=np.float32)
        for b in range(
            obs.num_worlds
        ):  # worlds have different routes; the proposals of one world are batched
            out[b] = self._plan(b, obs)
        return out

    def _path(self, b: int, pose: np.ndarray) -> tuple[np.ndarray, float]:
        """Route ahead in the ego frame ``[P, 2]`` (1 m apart) and the lane width there [m]."""
        route = self.info.routes[b]
        pts = route.points
        lo = self._index[b]
        hi = min(len(pts), lo + 80)
        d = np.hypot(pts[lo:hi, 0] - pose[0], pts[lo:hi, 1] - pose[1])
        i = lo + int(np.argmin(d)) if hi > lo else len(pts) - 1
        self._index[b] = i
        s0 = route.s[i]
        sq = s0 + np.arange(0.0, self.config.path_length, 1.0)
        sq = sq[sq <= route.s[-1]]
        if len(sq) < 2:
            sq = np.array([route.s[-1] - 1.0, route.s[-1]])
        px = np.interp(sq, route.s, pts[:, 0])
        py = np.interp(sq, route.s, pts[:, 1])
        c, s = math.cos(pose[2]), math.sin(pose[2])
        dx, dy = px - pose[0], py - pose[1]
        path = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)
        lane = int(route.point_lane[i])
        rm = self.info.road_map
        width = float(rm.widths[rm.lane_start[lane]]) if lane >= 0 else 3.5
        return path, width

    def _stop_point(self, b: int, ego: np.ndarray) -> float:
        """Where to halt along the path for a red light or a stop sign [m from the ego centre, as an
        obstacle ``min_gap`` beyond the target], ``inf`` if nowhere."""
        cfg = self.config
        speed = float(ego[_SPEED])
        dist = float(ego[_STOP_D])
        half = 0.5 * self.info.ego.length
        if dist > self._stop_seen[b] + 5.0:  # the next stop line is a new one: its stop is still due
            self._stopped[b] = False
        self._stop_seen[b] = dist
        # (IDM halts ``min_gap`` short of an obstacle: put the virtual one that far past the target)
        halt = dist + cfg.min_gap - cfg.stop_margin
        stop = math.inf
        if ego[_STOP_RED] > 0.5:
            gap = dist - half - cfg.stop_margin
            if gap > speed * speed / (2.0 * 6.0) - 1.0:  # yellow/red we can still stop for
                stop = halt
        if ego[_STOP_SIGN] > 0.5:
            if speed < 0.1 and dist - half < 4.0:
                self._stopped[b] = True
            if not self._stopped[b] and dist - half < 30.0:
                stop = halt
        elif dist >= 49.0:
            self._stopped[b] = False
        return stop

    def _objects(self, b: int, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Objects as ``[N, (x, y, yaw, vx, vy, length, width, lane yaw, lane offset, lane width)]`` in
        the ego frame (for a vehicle: the heading of the lane it keeps to, its offset left of that
        lane's centre [m] and the lane's width [m]; NaN if none), whether each is static, and how
        long each has stood still [s] (tracked by id)."""
        mask = obs.objects_mask[b]
        o = obs.objects[b][mask]
        objs = np.zeros((len(o), 10))
        objs[:, 0], objs[:, 1] = o[:, _OX], o[:, _OY]
        objs[:, 2] = np.arctan2(o[:, _OS], o[:, _OC])
        objs[:, 3], objs[:, 4] = o[:, _OVX], o[:, _OVY]
        objs[:, 5], objs[:, 6] = o[:, _OL], o[:, _OW]
        objs[:, 7:] = np.nan
        vehicles = o[:, _O_VEHICLE] > 0.5
        if vehicles.any():  # the lane each vehicle keeps to, in the ego frame
            pose = obs.pose[b]
            c, s = math.cos(pose[2]), math.sin(pose[2])
            v = objs[vehicles]
            xy = np.stack([pose[0] + c * v[:, 0] - s * v[:, 1], pose[1] + s * v[:, 0] + c * v[:, 1]], axis=1)
            heading, lateral, width = self._lanes.lane_near(xy, v[:, 2] + pose[2])
            objs[vehicles, 7] = heading - pose[2]
            objs[vehicles, 8] = lateral
            objs[vehicles, 9] = width
        ids = obs.object_ids[b][mask]
        still = np.hypot(objs[:, 3], objs[:, 4]) < _STILL
        before = self._still[b]
        now = {int(i): before.get(int(i), 0.0) + self.info.dt for i, s in zip(ids, still, strict=True) if s}
        self._still[b] = now
        since = np.array([now.get(int(i), 0.0) for i in ids])
        return objs, o[:, _O_STATIC] > 0.5, since

    def _blocked(self, path: np.ndarray, objs: np.ndarray, static: np.ndarray, since: np.ndarray,
                 pose: np.ndarray, ego: np.ndarray) -> bool:  # fmt: skip
        """Is the lane ahead blocked by something that will not move (see module doc)?"""
        if len(objs) == 0 or (ego[_STOP_RED] > 0.5 and ego[_STOP_D] < 49.0):
            return False
        cfg = self.config
        d = np.hypot(objs[:, None, 0] - path[None, :40, 0], objs[:, None, 1] - path[None, :40, 1])
        k = d.argmin(axis=1)
        near = d[np.arange(len(objs)), k] < 0.5 * (self.info.ego.width + objs[:, 6]) + cfg.corridor_margin
        ahead = near & (k > 0) & (objs[:, 0] > 0.0)
        if not ahead.any():
            return False
        j = int(np.flatnonzero(ahead)[np.argmin(k[ahead])])
        if static[j]:
            return True
        if since[j] < cfg.blocked_time:
            return False
        # a vehicle queueing behind another, or waiting at or in a junction, will move on
        c, s = math.cos(objs[j, 2]), math.sin(objs[j, 2])
        rel = objs[:, :2] - objs[j, :2]
        lon, lat = rel @ np.array([c, s]), rel @ np.array([-s, c])
        if ((lon > 0.5) & (lon < 12.0) & (np.abs(lat) < 2.0) & (since > 0.0)).any():
            return False
        cp, sp = math.cos(pose[2]), math.sin(pose[2])
        xy = np.array(
            [pose[0] + cp * objs[j, 0] - sp * objs[j, 1], pose[1] + sp * objs[j, 0] + cp * objs[j, 1]]
        )
        return not self._lanes.near_junction(xy, 20.0)

    def _plan(self, b: int, obs: Observation) -> np.ndarray:
        cfg = self.config
        ego = obs.ego[b]
        pose = obs.pose[b]
        path, width = self._path(b, pose)
        objs, static, since = self._objects(b, obs)
        room = max(0.5 * (width - self.info.ego.width) - 0.1, 0.0)  # (0.1 m: the raster's edge)
        offsets = [*cfg.offsets, *(f * room * side for f in cfg.lane_room for side in (1.0, -1.0))]
        lanes_too = cfg.lane_offsets and (
            abs(_lateral_offset(path)) > cfg.displaced * width
            or self._blocked(path, objs, static, since, pose, ego)
        )
        # in a sharp bend the ego keeps to the lane centre (an offset there sweeps a corner off the
        # road), unless that collides
        ahead = max(cfg.bend_ahead, cfg.bend_time * float(ego[_SPEED]))
        bend = not lanes_too and _max_curvature(path, ahead) > cfg.bend_curvature
        self._bend = bend
        stop = self._stop_point(b, ego)
        # (the neighbour lanes: ramped in comfortably, and sharply for an obstacle that appears close)
        lanes = [width, -width, width, -width]
        sharp = [False] * len(offsets) + [False, False, True, True]
        first = [0.0] if bend else offsets + (lanes if lanes_too else [])
        self._stopped_gap = cfg.stopped_gap + cfg.narrow_gap * max(0.0, cfg.narrow_lane - width)
        plan = self._propose(b, path, first, sharp[: len(first)], objs, stop, ego, pose)
        if plan.multiplier.max() <= 0.0 and bend:
            plan = self._propose(b, path, offsets, sharp, objs, stop, ego, pose)
        if plan.multiplier.max() <= 0.0 and cfg.lane_offsets and not lanes_too:
            # nothing in the lane avoids a collision: evasive proposals into the neighbour lanes too
            plan = self._propose(b, path, [*offsets, *lanes], sharp, objs, stop, ego, pose)
        if plan.multiplier.max() <= 0.0:
            # every proposal collides: follow the one that stays on the road and collides latest,
            # braking at least comfortably while the collision is still ``evade_time`` away (room
            # to steer clear as the forecast firms up), at full force once it is closer
            hit = np.where(np.isinf(plan.first_hit), 1e9, plan.first_hit)
            best = int(np.argmax(hit + 1e10 * plan.on_road - 1e-3 * plan.final_speed))
            steer_cmd = plan.cmd[best, 1]
            if hit[best] > cfg.evade_time:
                accel_cmd = min(plan.cmd[best, 0], -cfg.idm_decel)
            else:
                accel_cmd = -self.info.ego.max_brake
        else:
            best = int(np.argmax(plan.score))
            accel_cmd, steer_cmd = plan.cmd[best]
        self._offset[b] = plan.offset[best]
        self.debug = (best, len(plan.score), int((plan.multiplier > 0).sum()), bool(lanes_too))
        e = self.info.ego
        a = accel_cmd / e.max_accel if accel_cmd >= 0 else accel_cmd / e.max_brake
        return np.array(
            [np.clip(a, -1.0, 1.0), np.clip(steer_cmd / e.max_steer, -1.0, 1.0)], dtype=np.float32
        )

    def _propose(
        self, b: int, path: np.ndarray, offsets: list[float], sharp: list[bool], objs: np.ndarray, stop: float,
        ego: np.ndarray, pose: np.ndarray,
    ) -> _Proposals:  # fmt: skip
        """Simulate and score every (offset, target speed) proposal; ``sharp [O]`` (may be longer):
        which offsets ramp in at ``sharp_ramp_accel`` rather than ``ramp_accel``."""
        cfg = self.config
        offsets_arr = np.asarray(offsets, dtype=np.float64)
        sharp_arr = np.asarray(sharp[: len(offsets)], dtype=bool)
        ramps = np.where(sharp_arr, cfg.sharp_ramp_accel, cfg.ramp_accel)
        limit = max(float(ego[_LIMIT]), 3.0)
        targets = np.asarray(cfg.speed_fractions, dtype=np.float64) * limit
        C = len(offsets_arr) * len(targets)
        # only objects that can come near the ego within the horizon matter
        v_obj = np.hypot(objs[:, 3], objs[:, 4])
        reach = (
            (float(ego[_SPEED]) + 3.0 + v_obj) * cfg.horizon + 0.5 * (self.info.ego.length + objs[:, 5]) + 5.0
        )
        objs = np.ascontiguousarray(objs[np.hypot(objs[:, 0], objs[:, 1]) < reach])
        T = round(cfg.horizon / cfg.step)
        traj = np.zeros((C, T + 1, 4))
        cmd = np.zeros((C, 2))
        first_hit = np.full(C, np.inf)
        first_near = np.full(C, np.inf)
        min_margin = np.full(C, np.inf)
        progress = np.zeros(C)
        _simulate(
            path, offsets_arr, ramps, targets, stop, objs, float(ego[_SPEED]),
            float(ego[_PREV_STEER]) * self.info.ego.max_steer, self._limits,
            np.array([cfg.idm_accel, cfg.idm_decel, cfg.headway, cfg.min_gap, cfg.max_lateral_accel,
                      cfg.corridor_margin, self._stopped_gap, cfg.lon_margin, cfg.lat_margin, cfg.min_ramp,
                      cfg.ramp_accel, cfg.clear_lon, cfg.clear_lat, cfg.steer_rate, cfg.creep_speed]),
            T, cfg.step, traj, cmd, first_hit, first_near, min_margin, progress, self._bend,
        )  # fmt: skip
        # multipliers (no collision, drivable), weighted progress / TTC / comfort, lane costs
        samples = self._map_poses(traj[:, :: max(1, T // 20)], pose)
        on_road, wrong_way, off_route = self._lanes.judge(samples, self._route_mask[b], self.info.ego)
        progress_norm = progress / max(progress.max(), 1e-3)
        ttc_ok = (first_near > 3.0).astype(np.float64)  # no near miss within 3 s (nuPlan's TTC horizon)
        accel = np.diff(traj[:, :, 3], axis=1) / cfg.step
        comfort = (np.abs(accel).max(axis=1) < 4.0).astype(np.float64)
        multiplier = np.where(np.isinf(first_hit) | (first_hit > cfg.horizon), 1.0, 0.0) * on_road
        score = multiplier * (5.0 * progress_norm + 5.0 * ttc_ok + 2.0 * comfort) / 12.0
        score -= cfg.offset_cost * np.repeat(np.abs(offsets_arr), len(targets))
        score -= cfg.wrong_way_cost * wrong_way + cfg.off_route_cost * off_route
        score += cfg.clearance_gain * np.clip(min_margin, 0.0, 1.0)  # room to spare, up to a metre
        score += cfg.keep_bonus * np.repeat(np.abs(offsets_arr - self._offset[b]) < 0.05, len(targets))
        score -= cfg.sharp_cost * np.repeat(sharp_arr, len(targets))
        return _Proposals(
            score, multiplier, cmd, first_hit, traj[:, -1, 3], on_road, np.repeat(offsets_arr, len(targets))
        )

    # ------------------------------------------------------------------ scoring helpers

    @staticmethod
    def _map_poses(poses: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Ego-frame poses ``[C, K, (x, y, yaw, …)]`` → map-frame ``[C, K, 3]`` (``pose``: the ego's
        map ``x, y, yaw``)."""
        c, s = math.cos(pose[2]), math.sin(pose[2])
        out = np.empty((*poses.shape[:2], 3))
        out[..., 0] = pose[0] + c * poses[..., 0] - s * poses[..., 1]
        out[..., 1] = pose[1] + s * poses[..., 0] + c * poses[..., 1]
        out[..., 2] = pose[2] + poses[..., 2]
        return out


@dataclass(frozen=True)
class _Proposals:
    """Scored proposals ``[C]``: score, multiplier (0 = collides or leaves the road), first control
    ``cmd [C, (accel [m/s²], steer [rad])]``, time of the first collision [s], final speed [m/s],
    whether it stays on the road."""

    score: np.ndarray
    multiplier: np.ndarray
    cmd: np.ndarray
    first_hit: np.ndarray
    final_speed: np.ndarray
    on_road: np.ndarray
    offset: np.ndarray
    """Lateral offset of each proposal's path [m]."""


def _max_curvature(path: np.ndarray, ahead: float) -> float:
    """Largest curvature magnitude of the path ``[P, 2]`` (1 m apart) within ``ahead`` [m] of its start
    [1/m]."""
    n = min(len(path), int(ahead) + 2)
    if n < 3:
        return 0.0
    d = np.diff(path[:n], axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    dh = (np.diff(h) + math.pi) % (2.0 * math.pi) - math.pi
    ds = np.maximum(np.hypot(d[1:, 0], d[1:, 1]), 1e-3)
    return float(np.abs(dh / ds).max())


def _lateral_offset(path: np.ndarray) -> float:
    """The ego's (the origin's) signed distance left of the path's first segment [m]."""
    hx, hy = path[1] - path[0]
    return float((-hx * path[0, 1] + hy * path[0, 0]) / (math.hypot(hx, hy) + 1e-9))


class _LaneLookup:
    """Nearest centreline sample of the driving lanes, built once per map: a KD-tree, and a raster
    of ``LANE_CELL`` cells holding each cell centre's nearest sample (-1 farther than ``LANE_REACH``)
    for the per-proposal lane-compliance and drivable-area checks (:func:`_judge_poses`)."""

    def __init__(self, road_map) -> None:
        lanes = road_map.driving_lanes
        idx = np.flatnonzero(np.isin(road_map.point_lane, lanes))
        self.points = road_map.points[idx]
        self.tree = cKDTree(self.points)
        self.lane = road_map.point_lane[idx]
        self.heading = road_map.headings[idx]
        self.width = road_map.widths[idx]
        self.junction = road_map.lane_junction[self.lane] >= 0
        self.to_end = road_map.lane_length[self.lane] - road_map.s[idx]
        # junctions where traffic waits: a junction lane crossing or merging into others, a lane
        # entering one at a stop line or into such lanes (a highway's split has none: a car
        # standing before it has broken down, it is not waiting)
        crossed = np.array([bool(c) for c in road_map.conflicts]) & (road_map.lane_junction >= 0)
        stops = set(road_map.stop_lane.tolist())
        into = np.array([bool(succ) and all(road_map.lane_junction[k] >= 0 for k in succ)
                         and (i in stops or any(crossed[k] for k in succ))
                         for i, succ in enumerate(road_map.lane_successors)])  # fmt: skip
        self.waits_in = crossed[self.lane]
        self.into_junction = into[self.lane]
        # the raster of nearest samples (cell centres at x0 + (i + 0.5) * LANE_CELL)
        xmin, ymin, xmax, ymax = road_map.bounds
        self.x0, self.y0 = math.floor(xmin) - 1.0, math.floor(ymin) - 1.0
        w = math.ceil((xmax + 1.0 - self.x0) / LANE_CELL)
        h = math.ceil((ymax + 1.0 - self.y0) / LANE_CELL)
        gx = self.x0 + (np.arange(w) + 0.5) * LANE_CELL
        gy = self.y0 + (np.arange(h) + 0.5) * LANE_CELL
        cells = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        _, k = self.tree.query(cells, distance_upper_bound=LANE_REACH)
        self.cell = np.where(k < len(idx), k, -1).astype(np.int32).reshape(h, w)
        from sim_bridge.maps.lookup import drivable_raster

        r = drivable_raster(road_map)
        self.drive_bits = r["bits"]
        self.drive_grid = np.array(
            [r["x0"], r["y0"], r["res"], r["shape"][0], r["shape"][1]], dtype=np.float64
        )
        self.lane_grid = np.array([self.x0, self.y0, LANE_CELL, h, w], dtype=np.float64)

    @classmethod
    def of(cls, road_map) -> _LaneLookup:
        cached = road_map.cache.get("expert_lane_lookup")
        if cached is None:
            cached = road_map.cache["expert_lane_lookup"] = cls(road_map)
        return cached

    def judge(
        self, poses: np.ndarray, route_mask: np.ndarray, ego
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For map-frame ``poses [C, K, 3]`` (the first: the ego now): whether each proposal keeps the
        ego's box on the drivable area (after the first pose; when the ego is off it now, on the last
        half), and the shares of the poses after the first that drive against the lane under them and
        that lie on a lane outside the route (``route_mask [L]``): ``[C]`` each (junctions count as
        neither)."""
        c = poses.shape[0]
        on_road, wrong, off = np.zeros(c, dtype=bool), np.zeros(c), np.zeros(c)
        _judge_poses(
            np.ascontiguousarray(poses), 0.5 * ego.length, 0.5 * ego.width, self.drive_bits, self.drive_grid,
            self.cell, self.lane_grid, self.lane, self.heading, self.junction, route_mask, on_road, wrong, off,
        )  # fmt: skip
        return on_road, wrong, off

    def lane_near(self, xy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each point ``xy [N, 2]`` with heading ``yaw [N]``: the heading [rad] of the lane
        (outside junctions) under it that agrees best with ``yaw``, the point's offset left of that
        lane's centre [m] and the lane's width [m]; NaN (all three) in junctions, off lanes or when
        no lane is within 45 deg."""
        dist, k = self.tree.query(xy, k=6, distance_upper_bound=3.0)
        ok = np.isfinite(dist)
        k = np.where(ok, k, 0)
        err = np.abs((yaw[:, None] - self.heading[k] + math.pi) % (2.0 * math.pi) - math.pi)
        err = np.where(ok & ~self.junction[k], err, np.inf)
        best = err.argmin(axis=1)
        rows = np.arange(len(xy))
        kb = k[rows, best]
        found = err[rows, best] < 0.25 * math.pi
        h = self.heading[kb]
        d = xy - self.points[kb]
        lateral = -np.sin(h) * d[:, 0] + np.cos(h) * d[:, 1]
        nan = np.full(len(xy), np.nan)
        return np.where(found, h, nan), np.where(found, lateral, nan), np.where(found, self.width[kb], nan)

    def near_junction(self, xy: np.ndarray, distance: float) -> bool:
        """Does the point lie in a junction where traffic waits (crossing or merging lanes), or
        within ``distance`` [m] of the end of a lane that enters one or has a stop line?"""
        _, k = self.tree.query(xy)
        return bool(self.waits_in[k] or (self.into_junction[k] and self.to_end[k] < distance))


# ============================================================================ kernel


@numba.njit(cache=True)
def _raster_cell(grid, x: float, y: float) -> tuple[int, int]:
    """Row and column of ``(x, y)`` in a raster ``grid = (x0, y0, res, rows, cols)``; (-1, -1) outside."""
    fx = (x - grid[0]) / grid[2]
    fy = (y - grid[1]) / grid[2]
    if not (0.0 <= fx < grid[4] and 0.0 <= fy < grid[3]):
        return -1, -1
    return int(fy), int(fx)


@numba.njit(cache=True)
def _judge_poses(
    poses, half_l, half_w, bits, drive_grid, cell, lane_grid, lane, heading, junction, route_mask,
    on_road, wrong, off,
) -> None:  # fmt: skip
    """See :meth:`_LaneLookup.judge` (fills ``on_road, wrong, off [C]``)."""
    c_n, k_n = poses.shape[0], poses.shape[1]
    first_ok = True
    for ci in range(c_n):
        ok_all = True
        ok_late = True
        n_wrong = 0
        n_off = 0
        for k in range(k_n):
            x, y, yaw = poses[ci, k, 0], poses[ci, k, 1], poses[ci, k, 2]
            c, s = math.cos(yaw), math.sin(yaw)
            inside = True
            for sl, sw in ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)):
                px = x + c * sl * half_l - s * sw * half_w
                py = y + s * sl * half_l + c * sw * half_w
                row, col = _raster_cell(drive_grid, px, py)
                if row < 0 or (bits[row, col >> 3] >> (7 - (col & 7))) & 1 == 0:
                    inside = False
                    break
            if k == 0:
                if ci == 0:
                    first_ok = inside
                continue
            if not inside:
                ok_all = False
                if k >= k_n // 2:
                    ok_late = False
            row, col = _raster_cell(lane_grid, x, y)
            if row < 0:
                continue
            j = cell[row, col]
            if j < 0 or junction[j]:
                continue
            err = abs((yaw - heading[j] + math.pi) % (2.0 * math.pi) - math.pi)
            if err > 0.5 * math.pi:
                n_wrong += 1
            if not route_mask[lane[j]]:
                n_off += 1
        on_road[ci] = ok_all if first_ok else ok_late
        wrong[ci] = n_wrong / max(k_n - 1, 1)
        off[ci] = n_off / max(k_n - 1, 1)


@numba.njit(cache=True)
def _offset_point(path, k: int, offset: float, ramp: float, start: float) -> tuple[float, float]:
    """Point ``k`` of the path shifted to the left by ``start`` at its beginning, blending to
    ``offset`` over ``ramp`` metres [m]."""
    n = path.shape[0]
    a = path[max(k - 1, 0)]
    b = path[min(k + 1, n - 1)]
    hx, hy = b[0] - a[0], b[1] - a[1]
    norm = math.sqrt(hx * hx + hy * hy) + 1e-9
    u = min(max(k / max(ramp, 1.0), 0.0), 1.0)
    d = start + (offset - start) * u * u * (3.0 - 2.0 * u)
    return path[k, 0] - hy / norm * d, path[k, 1] + hx / norm * d


@numba.njit(cache=True)
def _forecast(objs, T: int, dt: float):
    """Poses ``[N, T+1, (x, y, yaw)]`` of the objects every ``dt`` [s]. A vehicle keeping to a lane
    (finite lane yaw, column 7) drives along the lane's heading: a small heading error turns back to
    it within about ``LANE_RELAX`` seconds, but one that takes it away from the lane's centre while
    it is already ``LANE_CHANGE_OFFSET`` or more off it and goes the ego's way (a lane change, a
    cut-in) is kept for ``LANE_CHANGE_HOLD`` seconds or until the vehicle's centre reaches the
    lane's edge (width: column 9), whichever comes first. Anything else keeps its velocity."""
    n = objs.shape[0]
    out = np.empty((n, T + 1, 3))
    decay = math.exp(-dt / LANE_RELAX)
    for j in range(n):
        x, y, yaw = objs[j, 0], objs[j, 1], objs[j, 2]
        vx, vy = objs[j, 3], objs[j, 4]
        lane_yaw = objs[j, 7]
        speed = math.sqrt(vx * vx + vy * vy)
        follow = not math.isnan(lane_yaw) and speed > 0.5 and math.cos(math.atan2(vy, vx) - yaw) > 0.0
        err = (yaw - lane_yaw + math.pi) % (2.0 * math.pi) - math.pi if follow else 0.0
        lat = objs[j, 8] if follow else 0.0
        width = objs[j, 9] if follow else 0.0
        # (only vehicles going the ego's way: an oncoming car drifting towards the centre line is
        # left to the lane relaxation, or the ego would flee a drift that stops at the line)
        changing = (
            follow
            and math.cos(lane_yaw) > 0.0
            and abs(lat) >= LANE_CHANGE_OFFSET
            and lat * math.sin(err) > 0.0
        )
        out[j, 0, 0], out[j, 0, 1], out[j, 0, 2] = x, y, yaw
        for t in range(T):
            if follow:
                if changing and abs(lat) < 0.5 * width and t * dt < LANE_CHANGE_HOLD:
                    err_new = err
                else:
                    err_new = err * decay
                h = lane_yaw + 0.5 * (err + err_new)
                x += speed * math.cos(h) * dt
                y += speed * math.sin(h) * dt
                lat += speed * math.sin(0.5 * (err + err_new)) * dt
                err = err_new
                yaw = lane_yaw + err
            else:
                x += vx * dt
                y += vy * dt
            out[j, t + 1, 0], out[j, t + 1, 1], out[j, t + 1, 2] = x, y, yaw
    return out


@numba.njit(cache=True)
def _simulate(
    path,
    offsets,
    ramps,
    targets,
    stop,
    objs,
    v0,
    steer0,
    lim,
    idm,
    T,
    dt,
    traj,
    cmd,
    first_hit,
    first_near,
    min_margin,
    progress,
    feed_forward,
):
    """Forward-simulate every (offset, target speed) proposal: ``traj [C, T+1, (x, y, yaw, v)]`` in the
    ego frame, first controls ``cmd [C, (accel, steer)]``, time of the first collision with a
    forecast object (inf if none) and of the first near miss (the ego's box grown by the comfortable
    clearances), the least gap between the ego's box and an object's [m], distance travelled [m]."""
    length, width = lim[0], lim[1]
    b_comf, a_lat, margin, min_ramp = idm[1], idm[4], idm[5], idm[9]
    n_path = path.shape[0]
    n_obj = objs.shape[0]
    fc = _forecast(objs, T, dt)
    touching = np.zeros(n_obj, dtype=np.bool_)
    follower = np.zeros(n_obj, dtype=np.bool_)
    for j in range(n_obj):
        touching[j] = boxes_overlap(
            0.0, 0.0, 0.0, length, width, objs[j, 0], objs[j, 1], objs[j, 2], objs[j, 5], objs[j, 6]
        )
        follower[j] = objs[j, 0] < -0.5 * length and abs(objs[j, 1]) < 0.5 * (width + objs[j, 6])
    # centre distance beyond which an object neither touches the grown boxes nor counts for the margin
    grown = 0.5 * math.hypot(length + 2.0 * max(idm[7], idm[11]), width + 2.0 * max(idm[8], idm[12]))
    reach = np.empty(n_obj)
    for j in range(n_obj):
        reach[j] = max(0.5 * (length + objs[j, 5]) + 3.0, grown + 0.5 * math.hypot(objs[j, 5], objs[j, 6]))
    # the ego's lateral offset from the path (+ left): every proposal starts where the ego is
    h0x, h0y = path[1, 0] - path[0, 0], path[1, 1] - path[0, 1]
    h0n = math.sqrt(h0x * h0x + h0y * h0y) + 1e-9
    lat0 = (-h0x * path[0, 1] + h0y * path[0, 0]) / h0n
    nt = targets.shape[0]
    px = np.empty(n_path)
    py = np.empty(n_path)
    hd = np.empty(n_path)
    kap = np.empty(n_path)
    for oi in range(offsets.shape[0]):
        # per offset: the shifted path, its heading and curvature, the curve speed cap and the leader
        off = offsets[oi]
        ramp = max(min_ramp, v0 * math.sqrt(6.0 * abs(off - lat0) / ramps[oi]))
        for k in range(n_path):
            px[k], py[k] = _offset_point(path, k, off, ramp, lat0)
        for k in range(n_path):
            ka, kb = max(k - 1, 0), min(k + 1, n_path - 1)
            hd[k] = math.atan2(py[kb] - py[ka], px[kb] - px[ka])
        kap[0] = 0.0
        kap[n_path - 1] = 0.0
        for k in range(1, n_path - 1):
            h1 = math.atan2(py[k] - py[k - 1], px[k] - px[k - 1])
            h2 = math.atan2(py[k + 1] - py[k], px[k + 1] - px[k])
            dh = (h2 - h1 + math.pi) % (2.0 * math.pi) - math.pi
            ds = 0.5 * (
                math.hypot(px[k + 1] - px[k], py[k + 1] - py[k])
                + math.hypot(px[k] - px[k - 1], py[k] - py[k - 1])
            )
            kap[k] = dh / max(ds, 1e-3)
        # curvature speed cap along the path
        v_curve = np.inf
        for k in range(1, min(n_path - 1, 40)):
            ak = abs(kap[k])
            if ak > 1e-3:
                vc = math.sqrt(a_lat / ak)
                v_curve = min(v_curve, math.sqrt(vc * vc + 2.0 * b_comf * max(k - 2.0, 0.0)))
        # leader: objects whose t=0 position lies within the corridor of this path
        lead_s = np.inf
        lead_v = 0.0
        for j in range(n_obj):
            if objs[j, 0] <= 0.0:
                continue
            best_d = 1e9
            best_k = -1
            for k in range(n_path):
                d = (objs[j, 0] - px[k]) ** 2 + (objs[j, 1] - py[k]) ** 2
                if d < best_d:
                    best_d = d
                    best_k = k
            half_w = 0.5 * width + 0.5 * objs[j, 6] + margin
            if best_k > 0 and math.sqrt(best_d) < half_w:
                hx = px[min(best_k + 1, n_path - 1)] - px[best_k - 1]
                hy = py[min(best_k + 1, n_path - 1)] - py[best_k - 1]
                hn = math.sqrt(hx * hx + hy * hy) + 1e-9
                v_along = (objs[j, 3] * hx + objs[j, 4] * hy) / hn
                s_j = float(best_k) - 0.5 * length - 0.5 * objs[j, 5]
                # standing and lane-less (a static obstacle or a pedestrian): stop with room to steer out
                if math.isnan(objs[j, 7]) and v_along < 0.5:
                    s_j -= STATIC_ROOM
                if s_j < lead_s:
                    lead_s = s_j
                    lead_v = max(v_along, 0.0)
        for ti in range(nt):
            ci = oi * nt + ti
            v_cap = min(targets[ti], v_curve)
            if ti > 0 and v_cap == min(targets[ti - 1], v_curve):  # the same proposal as the last
                traj[ci] = traj[ci - 1]
                cmd[ci] = cmd[ci - 1]
                first_hit[ci], first_near[ci] = first_hit[ci - 1], first_near[ci - 1]
                min_margin[ci], progress[ci] = min_margin[ci - 1], progress[ci - 1]
                continue
            _track(
                ci, px, py, hd, kap, v_cap, lead_s, lead_v, stop, objs, fc, touching, follower, reach,
                v0, steer0, lim, idm, T, dt, traj, cmd, first_hit, first_near, min_margin, progress, feed_forward,
            )  # fmt: skip


@numba.njit(cache=True)
def _track(
    ci, px, py, hd, kap, v_cap, lead_s, lead_v, stop, objs, fc, touching, follower, reach, v0, steer0, lim, idm,
    T, dt, traj, cmd, first_hit, first_near, min_margin, progress, feed_forward,
) -> None:  # fmt: skip
    """Simulate proposal ``ci`` (see :func:`_simulate`): IDM towards ``v_cap`` [m/s] behind the leader
    (``lead_s`` [m] ahead along the path, ``lead_v`` [m/s]) and before ``stop``, steering onto the
    path ``px, py [P]`` (headings ``hd``, curvatures ``kap [P]``): with curvature feed-forward and
    lateral / heading feedback at the ego's centre if ``feed_forward`` (sharp bends), else by pure
    pursuit from the rear axle."""
    length, width, wheelbase, max_steer, max_accel, max_brake = lim[0], lim[1], lim[2], lim[3], lim[4], lim[5]
    a_max, b_comf, headway, s0 = idm[0], idm[1], idm[2], idm[3]
    s0_stopped, lon_margin, lat_margin = idm[6], idm[7], idm[8]
    near_lon, near_lat, steer_rate, creep = idm[11], idm[12], idm[13], idm[14]
    n_path = px.shape[0]
    n_obj = objs.shape[0]
    # simulate
    x, y, yaw, v, steer = 0.0, 0.0, 0.0, v0, steer0
    s_travel = 0.0
    k_near = 0
    traj[ci, 0, 0], traj[ci, 0, 1], traj[ci, 0, 2], traj[ci, 0, 3] = x, y, yaw, v
    for t in range(T):
        time = t * dt
        # IDM towards v_cap behind the leader and before the stop point
        free = 1.0 - (v / max(v_cap, 0.1)) ** 4 if v_cap > 0.05 else -1.0
        acc = max(a_max * free, -b_comf)  # slowing to a lower target speed is comfortable
        dyn = v / (2.0 * math.sqrt(a_max * b_comf))
        gap = lead_s + lead_v * time - s_travel
        if gap < 1e8:
            s_min = s0_stopped if lead_v < 0.5 else s0
            s_star = s_min + max(0.0, v * headway + (v - lead_v) * dyn)
            acc = min(acc, a_max * (free - (s_star / max(gap, 0.1)) ** 2))
        stop_gap = stop - 0.5 * length - s_travel
        if stop_gap < 1e8:
            s_star = s0 + max(0.0, v * headway + v * dyn)
            acc = min(acc, a_max * (free - (s_star / max(stop_gap, 0.1)) ** 2))
        acc = min(max(acc, -max_brake), max_accel)
        # path tracking at the centre: the nearest path point, the error to it, the curvature ahead
        while (
            k_near + 1 < n_path
            and (px[k_near + 1] - x) ** 2 + (py[k_near + 1] - y) ** 2
            <= (px[k_near] - x) ** 2 + (py[k_near] - y) ** 2
        ):
            k_near += 1
        ka = min(k_near, n_path - 2)
        if (
            k_near > 0
            and (px[k_near + 1 if k_near + 1 < n_path else k_near] - x) ** 2
            + (py[k_near + 1 if k_near + 1 < n_path else k_near] - y) ** 2
            > (px[k_near - 1] - x) ** 2 + (py[k_near - 1] - y) ** 2
        ):
            ka = k_near - 1
        sx, sy = px[ka + 1] - px[ka], py[ka + 1] - py[ka]
        sn = math.sqrt(sx * sx + sy * sy) + 1e-9
        tx, ty = sx / sn, sy / sn
        rx, ry = x - px[ka], y - py[ka]
        f = min(max((rx * tx + ry * ty) / sn, 0.0), 1.0)
        e_lat = -rx * ty + ry * tx
        dhk = (hd[ka + 1] - hd[ka] + math.pi) % (2.0 * math.pi) - math.pi
        h_ref = hd[ka] + f * dhk
        fp = ka + f + v * (dt + TRACK_PREVIEW)
        kp = min(int(fp), n_path - 2)
        fr = min(fp - kp, 1.0)
        k_ff = kap[kp] + fr * (kap[kp + 1] - kap[kp])
        beta = math.atan(0.5 * math.tan(steer))
        e_h = (yaw + beta - h_ref + math.pi) % (2.0 * math.pi) - math.pi
        ld = max(TRACK_MIN_LOOK, TRACK_LOOK_TIME * v)
        k_cmd = k_ff - e_lat / (ld * ld) - 2.0 * math.sin(e_h) / ld
        sb = min(max(0.5 * wheelbase * k_cmd, -0.95), 0.95)
        steer_cmd = math.atan(2.0 * math.tan(math.asin(sb)))
        if not feed_forward:  # pure pursuit from the rear axle
            look = max(4.0, 0.8 * v)
            kt = min(k_near + int(look) + 1, n_path - 1)
            rx = x - 0.5 * wheelbase * math.cos(yaw)
            ry = y - 0.5 * wheelbase * math.sin(yaw)
            alpha = math.atan2(py[kt] - ry, px[kt] - rx) - yaw
            ld = max(math.hypot(px[kt] - rx, py[kt] - ry), 1.0)
            steer_cmd = math.atan2(2.0 * wheelbase * math.sin(alpha), ld)
        steer_cmd = min(max(steer_cmd, -max_steer), max_steer)
        if t == 0:
            cmd[ci, 0] = acc
            cmd[ci, 1] = steer_cmd
        steer = min(max(steer_cmd, steer - steer_rate * dt), steer + steer_rate * dt)
        v_new = max(v + acc * dt, 0.0)
        arc = 0.5 * (v + v_new) * dt
        beta = math.atan(0.5 * math.tan(steer))
        yaw_new = yaw + arc * math.cos(beta) * math.tan(steer) / wheelbase
        x += arc * math.cos(yaw + beta + 0.5 * (yaw_new - yaw))
        y += arc * math.sin(yaw + beta + 0.5 * (yaw_new - yaw))
        yaw = yaw_new
        v = v_new
        s_travel += arc
        traj[ci, t + 1, 0], traj[ci, t + 1, 1], traj[ci, t + 1, 2], traj[ci, t + 1, 3] = x, y, yaw, v
        # collisions with the forecasts (a follower behind us in line is not ours to avoid, nor
        # an object already touching us: only new collisions count)
        tt = time + dt
        for j in range(n_obj):
            ox, oy, oyaw = fc[j, t + 1, 0], fc[j, t + 1, 1], fc[j, t + 1, 2]
            dist = math.hypot(ox - x, oy - y)
            if dist > reach[j] or touching[j] or (follower[j] and v <= math.hypot(objs[j, 3], objs[j, 4])):
                continue
            if dist < 0.5 * (length + objs[j, 5]) + 3.0:
                clearance = box_gap(x, y, yaw, length, width, ox, oy, oyaw, objs[j, 5], objs[j, 6])[0]
                if clearance < min_margin[ci]:
                    min_margin[ci] = clearance
            standing = objs[j, 3] * objs[j, 3] + objs[j, 4] * objs[j, 4] < _STILL * _STILL
            if (
                first_near[ci] == np.inf
                and not (standing and v < creep)
                and boxes_overlap(
                    x,
                    y,
                    yaw,
                    length + 2.0 * near_lon,
                    width + 2.0 * near_lat,
                    ox,
                    oy,
                    oyaw,
                    objs[j, 5],
                    objs[j, 6],
                )
            ):
                if v > 0.05 or t == 0:
                    first_near[ci] = tt
            if first_hit[ci] == np.inf and boxes_overlap(
                x,
                y,
                yaw,
                length + 2.0 * lon_margin,
                width + 2.0 * lat_margin,
                ox,
                oy,
                oyaw,
                objs[j, 5],
                objs[j, 6],
            ):
                if v > 0.05 or t == 0:
                    first_hit[ci] = tt
    progress[ci] = s_travel
