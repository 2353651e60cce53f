"""The privileged expert: a PDM-Closed-style planner reading ground truth.

Each decision, for every world: take the route ahead as a path in the ego frame; make proposals
(the path shifted laterally by each of ``offsets`` — 0 and ±1 m as PDM-Closed, and ± one lane width
to pass a blocked lane — × IDM target speeds at ``speed_fractions`` of the limit); forward-simulate
each with the kinematic bicycle (pure pursuit on its path, IDM behind the leader on its path and
before a mandatory stop line) against constant-velocity forecasts of every object; score them
(multipliers: no at-fault collision, stays on the drivable area; weighted: progress, time to
collision, comfort; a small cost for leaving the lane centre) and apply the first control of the
best. It reads the map, the route, the objects and the stop lines of the observation
(``Observation.pose`` and the route are privileged) — the reference driver and the source of
demonstrations for imitation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from planning.base import Agent
from sim_bridge.api import EgoFeature, ObjectFeature, Observation

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


@dataclass
class ExpertConfig:
    """Settings of :class:`Expert` (PDM-Closed defaults where it has them)."""

    horizon: float = 4.0
    """Simulated horizon of each proposal [s]."""
    step: float = 0.1
    """Simulation step of the proposals [s]."""
    offsets: tuple[float, ...] = (0.0, 1.0, -1.0)
    """Lateral offsets of the path [m] (+ left)."""
    lane_offsets: bool = True
    """Also propose ± one lane width (to pass a blocked lane)."""
    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    """IDM target speeds as fractions of the speed limit."""
    idm_accel: float = 1.5
    """[m/s²]"""
    idm_decel: float = 3.0
    """Comfortable deceleration [m/s²]."""
    headway: float = 1.5
    """[s]"""
    min_gap: float = 3.0
    """Standstill gap to a leader [m]."""
    stop_margin: float = 1.0
    """Stop with the front bumper this far before a stop line [m] (the Leaderboard wants < 4 m)."""
    max_lateral_accel: float = 2.0
    """Curve speed limit [m/s²]."""
    offset_cost: float = 0.08
    """Score lost per metre of lateral offset."""
    path_length: float = 70.0
    """Route ahead turned into the path [m]."""
    corridor_margin: float = 0.5
    """Lateral margin of the leader search and the collision check [m]."""


class Expert(Agent):
    """PDM-Closed-style privileged planner (see module doc). Needs ``AgentInfo.road_map``,
    ``AgentInfo.routes`` and the privileged ``Observation.pose``."""

    name = "expert"

    def __init__(self, config: ExpertConfig | None = None) -> None:
        self.config = config or ExpertConfig()
        self._index = np.zeros(0, dtype=np.int64)
        self._stopped = np.zeros(0, dtype=bool)

    def _reset(self, worlds: list[int]) -> None:
        info = self.info
        if info.road_map is None or len(info.routes) != info.num_worlds:
            raise ValueError("the expert is privileged: AgentInfo needs road_map and one route per world")
        if len(self._index) != info.num_worlds:
            self._index = np.zeros(info.num_worlds, dtype=np.int64)
            self._stopped = np.zeros(info.num_worlds, dtype=bool)
        self._index[worlds] = 0
        self._stopped[worlds] = False
        self._limits = np.array(
            [
                info.ego.length,
                info.ego.width,
                info.ego.wheelbase,
                info.ego.max_steer,
                info.ego.max_accel,
                info.ego.max_brake,
            ]
        )

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

    def _plan(self, b: int, obs: Observation) -> np.ndarray:
        cfg = self.config
        ego = obs.ego[b]
        pose = obs.pose[b]
        path, width = self._path(b, pose)
        offsets = list(cfg.offsets)
        if cfg.lane_offsets:
            offsets += [width, -width]
        offsets_arr = np.asarray(offsets, dtype=np.float64)
        speed = float(ego[_SPEED])
        limit = max(float(ego[_LIMIT]), 3.0)
        targets = np.asarray(cfg.speed_fractions, dtype=np.float64) * limit

        # mandatory stop point along the path (from the ego centre) [m]
        stop = math.inf
        dist = float(ego[_STOP_D])
        half = 0.5 * self.info.ego.length
        # (IDM halts ``min_gap`` short of an obstacle: put the virtual one that far past the target)
        halt = dist + cfg.min_gap - cfg.stop_margin
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

        mask = obs.objects_mask[b]
        o = obs.objects[b][mask]
        objs = np.zeros((len(o), 7))
        if len(o):
            objs[:, 0], objs[:, 1] = o[:, _OX], o[:, _OY]
            objs[:, 2] = np.arctan2(o[:, _OS], o[:, _OC])
            objs[:, 3], objs[:, 4] = o[:, _OVX], o[:, _OVY]
            objs[:, 5], objs[:, 6] = o[:, _OL], o[:, _OW]

        C = len(offsets_arr) * len(targets)
        T = round(cfg.horizon / cfg.step)
        traj = np.zeros((C, T + 1, 4))
        cmd = np.zeros((C, 2))
        first_hit = np.full(C, np.inf)
        min_margin = np.full(C, np.inf)
        progress = np.zeros(C)
        _simulate(
            path, offsets_arr, targets, stop, objs, speed, float(ego[_PREV_STEER]) * self.info.ego.max_steer,
            self._limits, np.array([cfg.idm_accel, cfg.idm_decel, cfg.headway, cfg.min_gap, cfg.max_lateral_accel,
                                    cfg.corridor_margin]),
            T, cfg.step, traj, cmd, first_hit, min_margin, progress,
        )  # fmt: skip

        # --- score: multipliers (no at-fault collision, drivable), weighted progress / TTC / comfort
        c, s = math.cos(pose[2]), math.sin(pose[2])
        sample = traj[:, :: max(1, T // 8), :2]  # a few poses per proposal, map frame, for the drivable check
        mx = pose[0] + c * sample[..., 0] - s * sample[..., 1]
        my = pose[1] + s * sample[..., 0] + c * sample[..., 1]
        on_road = self.info.road_map.on_drivable(np.stack([mx, my], -1)).all(axis=1)
        progress_norm = progress / max(progress.max(), 1e-3)
        ttc_ok = (first_hit > 3.0).astype(np.float64)
        accel = np.diff(traj[:, :, 3], axis=1) / cfg.step
        comfort = (np.abs(accel).max(axis=1) < 4.0).astype(np.float64)
        multiplier = np.where(np.isinf(first_hit) | (first_hit > cfg.horizon), 1.0, 0.0) * on_road
        score = multiplier * (5.0 * progress_norm + 5.0 * ttc_ok + 2.0 * comfort) / 12.0
        score -= cfg.offset_cost * np.repeat(np.abs(offsets_arr), len(targets))
        score += 1e-3 * np.minimum(min_margin, 5.0)  # prefer room to spare among equals
        if multiplier.max() <= 0.0:
            # every proposal collides: brake, on the path that collides latest
            best = int(np.argmax(np.where(np.isinf(first_hit), 1e9, first_hit) - 1e-3 * traj[:, -1, 3]))
            accel_cmd = -self.info.ego.max_brake
            steer_cmd = cmd[best, 1]
        else:
            best = int(np.argmax(score))
            accel_cmd, steer_cmd = cmd[best]
        e = self.info.ego
        a = accel_cmd / e.max_accel if accel_cmd >= 0 else accel_cmd / e.max_brake
        return np.array(
            [np.clip(a, -1.0, 1.0), np.clip(steer_cmd / e.max_steer, -1.0, 1.0)], dtype=np.float32
        )


# ============================================================================ kernel


@numba.njit(cache=True)
def _box_overlap(x1, y1, yaw1, l1, w1, x2, y2, yaw2, l2, w2) -> bool:
    dx, dy = x2 - x1, y2 - y1
    r1 = 0.5 * math.sqrt(l1 * l1 + w1 * w1)
    r2 = 0.5 * math.sqrt(l2 * l2 + w2 * w2)
    if dx * dx + dy * dy > (r1 + r2) ** 2:
        return False
    c1, s1, c2, s2 = math.cos(yaw1), math.sin(yaw1), math.cos(yaw2), math.sin(yaw2)
    for ax, ay in ((c1, s1), (-s1, c1), (c2, s2), (-s2, c2)):
        d = abs(dx * ax + dy * ay)
        ra = 0.5 * l1 * abs(c1 * ax + s1 * ay) + 0.5 * w1 * abs(-s1 * ax + c1 * ay)
        rb = 0.5 * l2 * abs(c2 * ax + s2 * ay) + 0.5 * w2 * abs(-s2 * ax + c2 * ay)
        if d > ra + rb:
            return False
    return True


@numba.njit(cache=True)
def _offset_point(path, k: int, offset: float, ramp: float) -> tuple[float, float]:
    """Point ``k`` of the path shifted ``offset`` to the left, ramped in over ``ramp`` metres."""
    n = path.shape[0]
    a = path[max(k - 1, 0)]
    b = path[min(k + 1, n - 1)]
    hx, hy = b[0] - a[0], b[1] - a[1]
    norm = math.sqrt(hx * hx + hy * hy) + 1e-9
    u = min(max(k / max(ramp, 1.0), 0.0), 1.0)
    d = offset * u * u * (3.0 - 2.0 * u)
    return path[k, 0] - hy / norm * d, path[k, 1] + hx / norm * d


@numba.njit(cache=True)
def _simulate(
    path,
    offsets,
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
    min_margin,
    progress,
):
    """Forward-simulate every (offset, target speed) proposal: ``traj [C, T+1, (x, y, yaw, v)]`` in the
    ego frame, first controls ``cmd [C, (accel, steer)]``, time of the first collision with a
    forecast object (inf if none), the smallest clearance [m] to one, distance travelled [m]."""
    length, width, wheelbase, max_steer, max_accel, max_brake = lim[0], lim[1], lim[2], lim[3], lim[4], lim[5]
    a_max, b_comf, headway, s0, a_lat, margin = idm[0], idm[1], idm[2], idm[3], idm[4], idm[5]
    n_path = path.shape[0]
    n_obj = objs.shape[0]
    nt = targets.shape[0]
    # leader on the (centre) path at t = 0: along-path distance and speed of the nearest object in the corridor
    for ci in range(offsets.shape[0] * nt):
        off = offsets[ci // nt]
        v_target = targets[ci % nt]
        ramp = max(10.0, 2.0 * v0)
        # the shifted path
        px = np.empty(n_path)
        py = np.empty(n_path)
        for k in range(n_path):
            px[k], py[k] = _offset_point(path, k, off, ramp)
        # curvature speed cap along the path (3-point heading change)
        v_cap = v_target
        for k in range(1, min(n_path - 1, 40)):
            h1 = math.atan2(py[k] - py[k - 1], px[k] - px[k - 1])
            h2 = math.atan2(py[k + 1] - py[k], px[k + 1] - px[k])
            dh = abs((h2 - h1 + math.pi) % (2.0 * math.pi) - math.pi)
            ds = math.hypot(px[k + 1] - px[k], py[k + 1] - py[k])
            if dh > 1e-3 and ds > 1e-3:
                vc = math.sqrt(a_lat * ds / dh)
                v_cap = min(v_cap, math.sqrt(vc * vc + 2.0 * b_comf * max(k - 2.0, 0.0)))
        # leader: objects whose t=0 position lies within the corridor of this path
        lead_s = np.inf
        lead_v = 0.0
        for j in range(n_obj):
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
                if s_j < lead_s and objs[j, 0] > 0.0:
                    lead_s = s_j
                    lead_v = max(v_along, 0.0)
        # simulate
        x, y, yaw, v, steer = 0.0, 0.0, 0.0, v0, steer0
        s_travel = 0.0
        k_near = 0
        traj[ci, 0, 0], traj[ci, 0, 1], traj[ci, 0, 2], traj[ci, 0, 3] = x, y, yaw, v
        for t in range(T):
            time = t * dt
            # IDM towards v_cap behind the leader and before the stop point
            gap = lead_s + lead_v * time - s_travel
            v_lead = lead_v
            stop_gap = stop - 0.5 * length - s_travel
            if stop_gap < gap:
                gap = stop_gap
                v_lead = 0.0
            free = 1.0 - (v / max(v_cap, 0.1)) ** 4 if v_cap > 0.05 else -1.0
            acc = a_max * free
            if gap < 1e8:
                s_star = s0 + max(0.0, v * headway + v * (v - v_lead) / (2.0 * math.sqrt(a_max * b_comf)))
                acc = a_max * (free - (s_star / max(gap, 0.1)) ** 2)
            acc = min(max(acc, -max_brake), max_accel)
            # pure pursuit on the shifted path
            while (
                k_near + 1 < n_path
                and (px[k_near + 1] - x) ** 2 + (py[k_near + 1] - y) ** 2
                <= (px[k_near] - x) ** 2 + (py[k_near] - y) ** 2
            ):
                k_near += 1
            look = max(4.0, 0.8 * v)
            kt = min(k_near + int(look) + 1, n_path - 1)
            rx = x - 0.5 * wheelbase * math.cos(yaw)
            ry = y - 0.5 * wheelbase * math.sin(yaw)
            alpha = math.atan2(py[kt] - ry, px[kt] - rx) - yaw
            ld = max(math.hypot(px[kt] - rx, py[kt] - ry), 1.0)
            steer_cmd = min(max(math.atan2(2.0 * wheelbase * math.sin(alpha), ld), -max_steer), max_steer)
            if t == 0:
                cmd[ci, 0] = acc
                cmd[ci, 1] = steer_cmd
            steer = steer_cmd
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
            # collisions with constant-velocity forecasts (objects behind us are not ours to avoid)
            tt = time + dt
            for j in range(n_obj):
                ox = objs[j, 0] + objs[j, 3] * tt
                oy = objs[j, 1] + objs[j, 4] * tt
                if objs[j, 0] < -0.5 * length and v <= math.hypot(objs[j, 3], objs[j, 4]):
                    continue
                clearance = math.hypot(ox - x, oy - y) - 0.5 * (length + objs[j, 5])
                if clearance < min_margin[ci]:
                    min_margin[ci] = clearance
                if first_hit[ci] == np.inf and _box_overlap(
                    x,
                    y,
                    yaw,
                    length + 2.0 * margin,
                    width + 2.0 * margin,
                    ox,
                    oy,
                    objs[j, 2],
                    objs[j, 5],
                    objs[j, 6],
                ):
                    if v > 0.05 or t == 0:
                        first_hit[ci] = tt
        progress[ci] = s_travel
