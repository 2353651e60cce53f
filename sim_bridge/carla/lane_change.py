"""A scripted lane change (a cut-in) on CARLA, steered by the bridge rather than the Traffic Manager.

The carla 0.9.16 client's Traffic Manager cannot force a lane change above about 11 m/s
(carla#5224): ``force_lane_change`` restarts the car's waypoint buffer at a point
``clamp(1.5 v, 3, 20)`` m ahead in the neighbour lane, and its next cycle clears every buffer whose
front lies more than ``MAX_START_DISTANCE`` (20 m) from the car and re-localises the car in its
own lane. A highway cut-in (18 m/s) therefore never happened on CARLA. So the bridge takes the
cutter off the autopilot for its lane change and drives it as the embedded backend's drivers
change lanes (``sim_bridge.embedded.traffic``): pure pursuit from the rear axle to a point
``max(min_lookahead, lookahead_time · v)`` ahead on the target lane's centreline, offset by the
lateral distance still to cover, which decays over ``lane_change_time`` with the same smoothstep;
the speed that of the embedded drivers' IDM at the car's cruise speed behind the nearest body
ahead in its corridor (its target lane, and the band it occupies on the way there). Once in its
new lane the car goes back to the Traffic Manager.

Everything here is in our map frame (x east, y north, yaw counter-clockwise [rad]); the caller
converts CARLA's poses and turns :meth:`LaneChangeDriver.command` into a ``VehicleControl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim_bridge.embedded.config import DriverModel, VehicleLimits
from sim_bridge.embedded.traffic import DriverParams, idm_accel
from sim_bridge.frames import wrap_angle
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.sensors.frame import ActorArrays

#: spacing of the target lane's centreline samples [m]
SAMPLE = 1.0
#: the path starts this far behind the point abreast of the car [m]
BEHIND = 10.0
#: path length beyond what the lane change covers at its speed [m]
EXTRA = 60.0
#: done when this close to the target lane's centre [m] …
DONE_LATERAL = 0.5
#: … and this well aligned with it [rad]
DONE_HEADING = 0.1
#: handed back whatever its state this long after the lane change should have ended [s]
GRACE = 3.0
#: how far ahead a body can be a lead [m]
LEAD_HORIZON = 80.0
#: margin added to half the widths when a body shares the car's band [m]
LEAD_MARGIN = 0.3
#: the embedded kernels' "no lead" gap
NO_LEAD = 1e9


def _smooth(u: float) -> float:
    """Smoothstep on ``[0, 1]`` (the embedded drivers' lane-change profile)."""
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def _target_path(road_map: RoadMap, lane: int, s: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Centreline of ``lane`` from arc length ``s`` [m] on, continued through the straightest
    successor at each lane end, ``length`` [m] long or to a dead end: ``xy [P, 2]``, ``yaw [P]``."""
    xy_parts: list[np.ndarray] = []
    yaw_parts: list[np.ndarray] = []
    left, here = length, max(s, 0.0)
    while left > 0.0:
        lane_len = float(road_map.lane_length[lane])
        take = min(lane_len - here, left)
        if take > 0.0:
            n = max(2, math.ceil(take / SAMPLE) + 1)
            ss = np.linspace(here, here + take, n)
            xy, yaw = road_map.pose_at(np.full(n, lane), ss)
            xy_parts.append(xy if not xy_parts else xy[1:])
            yaw_parts.append(yaw if not yaw_parts else yaw[1:])
            left -= take
        successors = list(road_map.lane_successors[lane])
        if left <= 0.0 or not successors:
            break
        end_yaw = float(road_map.pose_at(np.array([lane]), np.array([lane_len]))[1][0])
        starts = road_map.pose_at(np.array(successors), np.zeros(len(successors)))[1]
        lane = successors[int(np.argmin(np.abs(wrap_angle(starts - end_yaw))))]
        here = 0.0
    return np.concatenate(xy_parts), np.concatenate(yaw_parts)


@dataclass
class LaneChangeDriver:
    """Steers one car from its lane onto the centreline ``path_xy [P, 2]`` [m] (``path_yaw [P]``
    [rad]), which starts ``lat0`` [m] to the car's right (> 0: the car is left of it), over
    ``duration`` [s] at ``speed`` [m/s]."""

    path_xy: np.ndarray
    path_yaw: np.ndarray
    lat0: float
    duration: float
    speed: float
    wheelbase: float
    length: float = 4.5
    width: float = 1.8
    driver: DriverModel = field(default_factory=DriverModel)
    elapsed: float = 0.0
    done: bool = False
    _cum: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.path_xy, axis=0), axis=1))])

    @classmethod
    def plan(
        cls,
        road_map: RoadMap,
        x: float,
        y: float,
        yaw: float,
        side: int,
        duration: float,
        speed: float,
        wheelbase: float,
        length: float = 4.5,
        width: float = 1.8,
        driver: DriverModel | None = None,
    ) -> LaneChangeDriver | None:
        """A change from the lane under ``(x, y, yaw)`` to its neighbour on ``side`` (+1 left, -1
        right, in its driving direction); ``None`` where there is no lane under the car or no
        neighbour there."""
        proj = road_map.project(np.array([[x, y]]), np.array([yaw]))
        lane = int(proj.lane[0])
        if lane < 0:
            return None
        target = int(road_map.lane_left[lane] if side > 0 else road_map.lane_right[lane])
        if target < 0:
            return None
        # abreast on the target lane: the same fraction of its length (as the embedded drivers)
        s_t = (
            float(proj.s[0])
            * float(road_map.lane_length[target])
            / max(float(road_map.lane_length[lane]), 1e-6)
        )
        reach = BEHIND + max(speed, 2.0) * (duration + GRACE) + EXTRA
        path_xy, path_yaw = _target_path(road_map, target, s_t - BEHIND, reach)
        me = cls(
            path_xy,
            path_yaw,
            0.0,
            max(duration, 1e-3),
            speed,
            wheelbase,
            length,
            width,
            driver or DriverModel(),
        )
        _, me.lat0, _ = me._locate(x, y)
        return me

    def _locate(self, x: float, y: float) -> tuple[float, float, int]:
        """Arc length along the path of the point nearest ``(x, y)`` [m], the signed offset of
        ``(x, y)`` from it (+ left of the path) [m] and the index of its segment."""
        s, lateral, i = self._locate_all(np.array([[x, y]]))
        return float(s[0]), float(lateral[0]), int(i[0])

    def _locate_all(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_locate` for points ``p [K, 2]``: ``s [K]``, ``lateral [K]``, ``segment [K]``."""
        a, d = self.path_xy[:-1], np.diff(self.path_xy, axis=0)  # [P-1, 2]
        seg_len2 = np.maximum((d * d).sum(axis=1), 1e-12)
        rel = p[:, None, :] - a[None, :, :]  # [K, P-1, 2]
        t = np.clip((rel * d).sum(axis=2) / seg_len2, 0.0, 1.0)
        off = rel - t[..., None] * d
        i = np.argmin((off * off).sum(axis=2), axis=1)
        k = np.arange(len(p))
        seg = np.sqrt(seg_len2[i])
        lateral = (d[i, 0] * rel[k, i, 1] - d[i, 1] * rel[k, i, 0]) / np.maximum(seg, 1e-9)
        return self._cum[i] + t[k, i] * seg, lateral, i

    def _lead(
        self, s: float, lateral: float, seen: ActorArrays | None, me: int, age: float
    ) -> tuple[float, float]:
        """Bumper gap [m] and speed [m/s] of the nearest actor of ``seen`` (world 0; not the one
        with id ``me``) ahead whose box reaches into the target lane or into the band the car
        occupies (``lateral`` [m] off the path), moved on by ``age`` [s] at their speeds; ``(inf,
        0)`` when none within :data:`LEAD_HORIZON`."""
        if seen is None:
            return math.inf, 0.0
        keep = seen.active[0] & (seen.ids[0] != me)
        if not keep.any():
            return math.inf, 0.0
        x, y, yaw, speed = (getattr(seen, f)[0, keep] for f in ("x", "y", "yaw", "speed"))
        length, width = seen.length[0, keep], seen.width[0, keep]
        bx = x + speed * np.cos(yaw) * age
        by = y + speed * np.sin(yaw) * age
        near = np.hypot(bx - self.path_xy[0, 0], by - self.path_xy[0, 1]) < self._cum[-1] + LEAD_HORIZON
        if not near.any():
            return math.inf, 0.0
        bs, blat, _ = self._locate_all(np.stack([bx[near], by[near]], axis=1))
        half = 0.5 * width[near]
        in_lane = np.abs(blat) < 0.5 * self.width + half
        in_band = np.abs(blat - lateral) < 0.5 * self.width + half + LEAD_MARGIN
        gap = bs - s - 0.5 * (self.length + length[near])
        ahead = (bs > s) & (gap < LEAD_HORIZON) & (in_lane | in_band)
        if not ahead.any():
            return math.inf, 0.0
        j = int(np.argmin(np.where(ahead, gap, np.inf)))
        return float(max(gap[j], 0.0)), float(speed[near][j])

    def _point(self, s: float, lateral: float) -> tuple[float, float]:
        """The point ``lateral`` [m] left of the path at arc length ``s`` [m]."""
        cum = self._cum
        s = min(max(s, 0.0), float(cum[-1]))
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(cum) - 2)
        u = (s - cum[i]) / max(cum[i + 1] - cum[i], 1e-9)
        px, py = self.path_xy[i] + u * (self.path_xy[i + 1] - self.path_xy[i])
        yaw = float(self.path_yaw[i])
        return float(px - math.sin(yaw) * lateral), float(py + math.cos(yaw) * lateral)

    def command(
        self,
        x: float,
        y: float,
        yaw: float,
        v: float,
        dt: float,
        seen: ActorArrays | None = None,
        me: int = -1,
        age: float = 0.0,
    ) -> tuple[float, float]:
        """The command for the next ``dt`` [s] from the car's centre ``(x, y)`` [m], ``yaw`` [rad]
        and speed ``v`` [m/s], among the actors ``seen`` ``age`` [s] ago (the car's own id ``me``):
        ``(acceleration [m/s²], front-wheel angle [rad], + left)``. Sets :attr:`done` once the car
        runs along its new lane (or :data:`GRACE` after ``duration``)."""
        s, lateral, i = self._locate(x, y)
        heading = float(wrap_angle(yaw - self.path_yaw[i]))
        if self.elapsed >= self.duration and abs(lateral) < DONE_LATERAL and abs(heading) < DONE_HEADING:
            self.done = True
        if self.elapsed >= self.duration + GRACE:
            self.done = True
        look = max(self.driver.min_lookahead, self.driver.lookahead_time * v)
        offset = self.lat0 * (1.0 - _smooth((self.elapsed + look / max(v, 2.0)) / self.duration))
        tx, ty = self._point(s + look, offset)
        rx, ry = x - 0.5 * self.wheelbase * math.cos(yaw), y - 0.5 * self.wheelbase * math.sin(yaw)
        aim = math.atan2(ty - ry, tx - rx)
        wheel = math.atan2(2.0 * self.wheelbase * math.sin(aim - yaw), max(math.hypot(tx - rx, ty - ry), 1.0))
        gap, v_lead = self._lead(s, lateral, seen, me, age)
        params = DriverParams.make(self.driver, VehicleLimits(), dt)
        accel = max(
            idm_accel(v, self.speed, gap if math.isfinite(gap) else NO_LEAD, v_lead, params),
            -params.max_brake,
        )
        self.elapsed += dt
        return accel, wheel
