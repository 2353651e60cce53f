"""Closed-loop criteria: judge one world's episode step by step, identically for every backend.

:class:`EpisodeJudge` reads the simulator's :class:`~sim_bridge.api.StepEvents` of one world (the
typed :class:`~sim_bridge.api.WorldEvents` of ``StepEvents.world(b)``) and its observation after
each step, records infractions as the CARLA Leaderboard 2.0 criteria do, decides when the episode ends, and in :meth:`EpisodeJudge.finish`
fills an :class:`~scenarios.records.EpisodeResult`. ``scenarios.metrics`` turns that record into
scores.

Leaderboard semantics kept here (scenario_runner ``atomic_criteria.py``, leaderboard
``statistics_manager.py``):

- **Collisions** by the other actor's kind; the same actor again within ``collision_dedup_time`` [s]
  of its last *counted* collision, or while the ego is within ``collision_dedup_distance`` [m] of
  where that was, counts once (CollisionTest's ``MAX_ID_TIME`` / collision-area registry). A
  stationary ego pinned against one actor therefore counts once however long the contact lasts.
- **Red lights / stop signs**: one infraction per reported run; a run of the same signal as the
  previous run is ignored (RunningRedLightTest's ``_last_red_light_id``).
- **Outside route lanes** (OutsideRouteLanesTest): route progress made while ``on_route_lanes`` is
  False, as a percentage of the route progress made in total.
- **Minimum speed** (MinimumSpeedRouteTest): the route is cut into 4 equal checkpoints; a checkpoint
  closes when the progress since the previous one *exceeds* a quarter of the route, and the last one
  also at the end when more than 95 % of the route is done. Its value is
  ``round(100 · mean(ego speed) / mean(traffic speed), 2)`` over the steps where ``traffic_speed`` is
  finite; a checkpoint without traffic samples (or with all traffic stopped) is skipped (the
  Leaderboard scores it 100, which carries no penalty either).
- **Episode ends**: route completed (> 99 % and within ``completion_distance`` of the end, then route
  completion is 100), route deviation (> ``max_deviation``), agent blocked (slower than
  ``blocked_speed`` for more than ``blocked_time`` since it last moved), route time-out, scenario
  time-out (ego inside ``spec.trigger_area`` continuously for more than ``scenario_timeout``; an
  infraction), and the first counted collision when ``end_on_collision``.
- **Off-road / wrong-way**: one infraction per continuous stretch, ``value`` = its length [m]
  (informational for the Leaderboard; they feed nuPlan's drivable-area and direction compliance).

nuPlan figures (``nuplan-devkit`` metrics, closed-loop score) collected per step and written by
``finish`` into ``result.scores`` (all in [0, 1] unless a unit is given):

- ``nuplan_progress``: route progress / route length (the route stands in for the expert's progress).
- ``nuplan_making_progress``: 1 when ``nuplan_progress`` ≥ 0.2.
- ``nuplan_min_ttc`` [s]: least time-to-collision seen (constant-velocity projection of the ego along
  its heading and of every object ahead of the ego's centre, 0.1 s steps up to 3 s; objects already
  overlapping the ego are left to the collision metric; none while the ego is stopped). Capped at the
  3 s horizon: 3 means no projected collision. ``nuplan_ttc``: 1 when it is ≥ 0.95 s.
- ``nuplan_speed_limit``: ``max(0, 1 − ∫ overspeed dt / (2.23 m/s · duration))``.
- ``nuplan_comfort``: 1 when, over the whole episode, longitudinal acceleration stays in
  [−4.05, 2.40] m/s², |lateral acceleration| ≤ 4.89 m/s², |yaw rate| ≤ 0.95 rad/s, and the finite
  differences over ``dt`` give |yaw acceleration| ≤ 1.93 rad/s², |longitudinal jerk| ≤ 4.13 m/s³,
  |jerk vector| ≤ 8.37 m/s³. (nuPlan smooths with a Savitzky–Golay filter first; plain finite
  differences are stricter.) ``comfort_segments``: Bench2Drive's share of 2 s segments that stay
  within those bounds (absent when the episode is shorter than one segment).
- ``nuplan_drivable_area``: 0 once any part of the ego left the drivable area (``off_road``; nuPlan
  allows 0.3 m, the event has no tolerance), else 1.
- ``nuplan_driving_direction``: from the largest distance driven against the lane direction within
  any 1 s window (``nuplan_max_wrong_way_1s`` [m]): ≤ 2 m → 1, ≤ 6 m → 0.5, else 0.
- ``min_pedestrian_distance`` [m]: least distance from the ego's centre to an observed pedestrian's
  centre (what the planner's ``pedestrian_margin`` task keeps), capped at
  ``PEDESTRIAN_DISTANCE_CAP``: the cap means no pedestrian came closer.

Collisions carry nuPlan's at-fault classification in ``Infraction.at_fault``, its rules in its order
(``no_ego_at_fault_collisions``): never at fault while the ego stands (< 0.1 m/s; nuPlan's
``STOPPED_EGO_COLLISION``: a walker or car running into a standing ego); else at fault when the other
actor is within ±45° of straight ahead, or is stopped (< 0.1 m/s), or the hit is lateral (45°..135°
either side) while the ego straddles a lane marking, is off the road or drives the wrong way; not at
fault otherwise (e.g. rear-ended). The Leaderboard's penalties count every collision, at fault or not.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from scenarios.records import EpisodeResult, Infraction, InfractionKind, Status
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, WorldEvents
from sim_bridge.sensors.layout import EgoFeature, ObjectFeature

__all__ = [
    "COMFORT",
    "ComfortBounds",
    "EpisodeJudge",
    "Termination",
    "comfort_checks",
    "time_to_collision",
    "ttc_candidates",
    "ttc_of_rows",
]


class Termination(str, enum.Enum):
    """Why the judge ended an episode (``EpisodeResult.termination``)."""

    ROUTE_COMPLETED = "route_completed"
    ROUTE_TIMEOUT = "route_timeout"
    ROUTE_DEVIATION = "route_deviation"
    AGENT_BLOCKED = "agent_blocked"
    SCENARIO_TIMEOUT = "scenario_timeout"
    COLLISION = "collision"


# ---------------------------------------------------------------------------------- Leaderboard

#: number of minimum-speed checkpoints along the route
MIN_SPEED_CHECKPOINTS = 4
#: the last checkpoint is closed at the end when more than this share of the route is done
MIN_SPEED_CLOSE_FRACTION = 0.95
#: the route counts as completed beyond this share (and within ``completion_distance`` of the end)
COMPLETION_FRACTION = 0.99
#: added to ``route_time_per_m`` × route length for the default route time-out [s]
ROUTE_TIMEOUT_MARGIN = 5.0

_COLLISION_KINDS = {
    int(ActorKind.VEHICLE): InfractionKind.COLLISION_VEHICLE,
    int(ActorKind.PEDESTRIAN): InfractionKind.COLLISION_PEDESTRIAN,
    int(ActorKind.STATIC): InfractionKind.COLLISION_STATIC,
}

# ---------------------------------------------------------------------------------------- nuPlan

#: nuPlan TTC: projection horizon [s], step [s], least acceptable TTC [s]
TTC_HORIZON = 3.0
TTC_STEP = 0.1
TTC_THRESHOLD = 0.95
#: the judge evaluates TTC once this many candidate rows are buffered (spreads numpy's call overhead)
TTC_CHUNK = 512
#: below this speed the ego (TTC, at-fault rule) or the other actor (at-fault rule) counts as stopped
#: [m/s] (nuPlan: 0.05)
STOPPED_SPEED = 0.1
#: collisions within this angle of straight ahead are front collisions [rad]
FRONT_HALF_ANGLE = math.pi / 4
#: ... and beyond this one (either side) rear collisions [rad]
REAR_HALF_ANGLE = 3 * math.pi / 4
#: nuPlan speed-limit compliance: over-speed that scores 0 when held for the whole episode [m/s]
MAX_OVERSPEED = 2.23
#: nuPlan driving-direction compliance: window [s] and thresholds [m]
DIRECTION_WINDOW = 1.0
DIRECTION_OK = 2.0
DIRECTION_BAD = 6.0
#: nuPlan ego-is-making-progress threshold (share of the expert's progress)
MIN_PROGRESS_RATIO = 0.2
#: Bench2Drive comfort segment length [s] (20 frames at 10 Hz)
COMFORT_SEGMENT = 2.0


@dataclass(frozen=True)
class ComfortBounds:
    """nuPlan's comfort bounds (also Bench2Drive's)."""

    min_lon_accel: float = -4.05
    """[m/s²]"""
    max_lon_accel: float = 2.40
    """[m/s²]"""
    max_abs_lat_accel: float = 4.89
    """[m/s²]"""
    max_abs_yaw_rate: float = 0.95
    """[rad/s]"""
    max_abs_yaw_accel: float = 1.93
    """[rad/s²]"""
    max_abs_lon_jerk: float = 4.13
    """[m/s³]"""
    max_abs_jerk: float = 8.37
    """Magnitude of the planar jerk vector [m/s³]."""


COMFORT = ComfortBounds()


def comfort_checks(
    lon_accel: np.ndarray,
    lat_accel: np.ndarray,
    yaw_rate: np.ndarray,
    dt: float,
    bounds: ComfortBounds = COMFORT,
) -> np.ndarray:
    """Per sample: is the motion within ``bounds``? ``bool [T]``.

    ``lon_accel, lat_accel: [T] [m/s²]``, ``yaw_rate: [T] [rad/s]`` sampled every ``dt`` [s]. Jerks and
    yaw acceleration are backward finite differences; the first sample has none (only its direct
    values are checked).
    """
    lon = np.asarray(lon_accel, dtype=np.float64)
    lat = np.asarray(lat_accel, dtype=np.float64)
    yr = np.asarray(yaw_rate, dtype=np.float64)
    ok = (lon >= bounds.min_lon_accel) & (lon <= bounds.max_lon_accel)
    ok &= np.abs(lat) <= bounds.max_abs_lat_accel
    ok &= np.abs(yr) <= bounds.max_abs_yaw_rate
    if lon.size > 1:
        d_lon = np.diff(lon) / dt
        d_lat = np.diff(lat) / dt
        d_yr = np.diff(yr) / dt
        ok[1:] &= np.abs(d_lon) <= bounds.max_abs_lon_jerk
        ok[1:] &= np.hypot(d_lon, d_lat) <= bounds.max_abs_jerk
        ok[1:] &= np.abs(d_yr) <= bounds.max_abs_yaw_accel
    return ok


_O = ObjectFeature
#: ``min_pedestrian_distance`` at this value means no pedestrian came closer [m]
PEDESTRIAN_DISTANCE_CAP = 30.0
if tuple(range(8)) != (_O.X, _O.Y, _O.COS_YAW, _O.SIN_YAW, _O.VX, _O.VY, _O.LENGTH, _O.WIDTH):
    raise ImportError(
        "scenarios.criteria expects ObjectFeature X..WIDTH to be columns 0..7; update time_to_collision"
    )


def ttc_of_rows(ego_speed: np.ndarray, ego_length: float, ego_width: float, rows: np.ndarray) -> np.ndarray:
    """Time-to-collision [s] of each object row against its own step's ego; ``inf`` where none.

    ``ego_speed: [M] [m/s]``; ``rows: [M, ≥8]`` object rows (:class:`ObjectFeature` columns X..WIDTH,
    ego frame, absolute velocities), any number of steps stacked. The ego moves straight along its
    heading, the object at its velocity, both oriented boxes that do not turn, checked at 0.1 s
    steps up to 3 s: the separating-axis test gives the overlap interval in closed form (on each of
    the four axes the projected gap is linear in time) and the answer is its first checked step.
    Rows already overlapping at t = 0 give ``inf`` (the collision criterion has them).
    """
    x, y, c, s, vx, vy, length, width = np.asarray(rows[:, :8], dtype=np.float64).T
    rvx = vx - ego_speed  # relative velocity, ego frame (the ego keeps heading 0)
    ac, as_ = np.abs(c), np.abs(s)
    hl, hw = 0.5 * length, 0.5 * width
    hle, hwe = 0.5 * ego_length, 0.5 * ego_width
    # axes: ego x, ego y, object's heading, object's normal -> centre offset a + b·t vs half-extent sum r
    a = np.array([x, y, x * c + y * s, y * c - x * s])
    b = np.array([rvx, vy, rvx * c + vy * s, vy * c - rvx * s])
    r = np.array(
        [
            hle + hl * ac + hw * as_,
            hwe + hl * as_ + hw * ac,
            hl + hle * ac + hwe * as_,
            hw + hle * as_ + hwe * ac,
        ]
    )
    b[np.abs(b) < 1e-9] = 1e-9  # no relative motion on an axis: overlapping there at all times or never
    t1 = (-r - a) / b
    t2 = (r - a) / b
    t_in = np.minimum(t1, t2).max(axis=0)
    t_out = np.maximum(t1, t2).min(axis=0)
    first = np.round(np.ceil(t_in / TTC_STEP - 1e-9) * TTC_STEP, 9)  # first checked step in the overlap
    hit = (t_in > 0.0) & (first <= np.minimum(t_out, TTC_HORIZON) + 1e-9)
    return np.where(hit, first, np.inf)


def ttc_candidates(ego_speed: float, objects: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The object rows nuPlan's TTC considers: masked-in, centre ahead of the ego's centre; none while
    the ego is stopped. ``objects: [N, F]``, ``mask: bool [N]`` -> ``[M, F]``."""
    if ego_speed < STOPPED_SPEED:
        return objects[:0]
    return objects[mask & (objects[:, _O.X] > 0.0)]


def time_to_collision(
    ego_speed: float, ego_length: float, ego_width: float, objects: np.ndarray, mask: np.ndarray
) -> float:
    """nuPlan-style time-to-collision [s] of one step; ``inf`` when none within the 3 s horizon.

    ``objects: [N, F]`` (:class:`ObjectFeature` columns, ego frame, velocities absolute),
    ``mask: bool [N]``, ``ego_speed`` [m/s], ego box ``ego_length × ego_width`` [m]. Only objects whose
    centre is ahead of the ego's centre count (:func:`ttc_candidates`); see :func:`ttc_of_rows`.
    """
    rows = ttc_candidates(ego_speed, objects, mask)
    if rows.shape[0] == 0:
        return math.inf
    return float(ttc_of_rows(np.full(rows.shape[0], ego_speed), ego_length, ego_width, rows).min())


def _window_max(values: np.ndarray, n: int) -> float:
    """Largest sum of ``n`` consecutive ``values`` (of all of them when fewer)."""
    if values.size == 0:
        return 0.0
    if values.size <= n:
        return float(values.sum())
    c = np.concatenate([[0.0], np.cumsum(values)])
    return float((c[n:] - c[:-n]).max())


class EpisodeJudge:
    """Judges one world's episode. Create one per episode; call :meth:`update` after every step and
    :meth:`finish` once at the end.

    ``route_length`` [m] > 0 (as ``StepEvents.route_length`` reports it), ``dt`` the decision period
    [s]; ``ego_length, ego_width`` [m] the ego's box (``Simulator.ego_vehicle``) for the TTC.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        route_length: float,
        dt: float,
        ego_length: float = 4.6,
        ego_width: float = 1.9,
    ) -> None:
        if not (math.isfinite(route_length) and route_length > 0.0):
            raise ValueError(
                f"scenario {spec.name!r}: route_length must be a positive number of metres, got {route_length!r}; "
                "pass the length the simulator reports after reset (StepEvents.route_length)"
            )
        if not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"scenario {spec.name!r}: dt must be a positive period in seconds, got {dt!r}")
        self.spec = spec
        self.cfg = spec.criteria
        self.route_length = float(route_length)
        self.dt = float(dt)
        self.ego_length = float(ego_length)
        self.ego_width = float(ego_width)
        cfg = self.cfg
        self.route_timeout = (
            float(cfg.route_timeout)
            if cfg.route_timeout is not None
            else cfg.route_time_per_m * self.route_length + ROUTE_TIMEOUT_MARGIN
        )
        self._checkpoint_length = self.route_length / MIN_SPEED_CHECKPOINTS

        self.done = False
        self.termination: Termination | None = None
        self.infractions: list[Infraction] = []
        self._result_filled = False
        # time and distance
        self._t0: float | None = None
        self._time = 0.0
        self._elapsed = 0.0
        self._x = self._y = 0.0
        self._distance = 0.0
        self._progress = 0.0
        self._completed = False
        # collisions: actor id -> (time, x, y) of its last counted collision
        self._last_hit: dict[int, tuple[float, float, float]] = {}
        self._last_red = -1
        self._last_stop = -1
        # the ego's speed at the end of the previous step (unknown before the first) [m/s]
        self._speed_before: float | None = None
        # stretches
        self._off_road: Infraction | None = None
        self._wrong_way: Infraction | None = None
        # outside route lanes
        self._lanes_total = 0.0
        self._lanes_outside = 0.0
        self._lanes_first: tuple[float, float, float] | None = None
        # min speed
        self.min_speed_ratios: list[float] = []
        self._cp_start = 0.0
        self._cp_closed = 0
        self._cp_ego = 0.0
        self._cp_traffic = 0.0
        self._cp_samples = 0
        # blocked / scenario time-out
        self._last_moving = 0.0
        self._inside_since: float | None = None
        # nuPlan per step
        self._lon: list[float] = []
        self._lat: list[float] = []
        self._yaw_rate: list[float] = []
        self._wrong_dist: list[float] = []
        self._min_ttc = math.inf
        self._ttc_rows: list[np.ndarray] = []  # candidate object rows of recent steps, evaluated in chunks
        self._ttc_speeds: list[tuple[float, int]] = []  # (ego speed, number of rows) per buffered step
        self._ttc_buffered = 0
        self._overspeed = 0.0
        self._ever_off_road = False
        self._min_pedestrian = math.inf

    # ------------------------------------------------------------------------------------- step

    def update(
        self, events: WorldEvents, ego: np.ndarray, objects: np.ndarray, objects_mask: np.ndarray
    ) -> bool:
        """Judge one step; True when the episode must end now.

        ``events``: ``StepEvents.world(b)`` of the step just taken; ``ego: [E]``, ``objects: [N, F]``,
        ``objects_mask: bool [N]``: world ``b``'s observation after it. Once the episode has ended,
        further calls change nothing and return True (batched runners may keep stepping the world).
        """
        if self.done:
            return True
        cfg = self.cfg
        t = float(events.sim_time)
        if self._t0 is None:
            self._t0 = t - self.dt
            self._last_moving = self._t0
        self._time = t
        self._elapsed = elapsed = t - self._t0
        x = self._x = float(events.ego_x)
        y = self._y = float(events.ego_y)
        speed = float(events.ego_speed)
        driven = float(events.distance_driven)
        self._distance += driven

        # route progress, and how much of it was made outside the route's lanes
        progress = max(self._progress, float(events.route_progress))
        gained = progress - self._progress
        self._progress = progress
        self._lanes_total += gained
        inside = False
        if self.spec.trigger_area is not None:
            ax, ay, radius = self.spec.trigger_area
            inside = math.hypot(x - ax, y - ay) <= radius
        passing = cfg.pass_opposite_lane and inside and bool(events.wrong_way)
        if not events.on_route_lanes and not passing:
            self._lanes_outside += gained
            if self._lanes_first is None:
                self._lanes_first = (t, x, y)

        # collisions, signals, stretches
        off_road = bool(events.off_road)
        wrong_way = bool(events.wrong_way)
        new_collision = False
        if events.collision:
            # the collision response may have stopped the ego within the step: the impact speed is
            # the larger of the step's start and end speeds (a walker into a standing ego: both ~0)
            impact = speed if self._speed_before is None else max(self._speed_before, speed)
            new_collision = self._collision(events, t, x, y, impact, off_road, wrong_way)
        self._speed_before = speed
        red = int(events.red_light)
        if red >= 0 and red != self._last_red:
            self._last_red = red
            self.infractions.append(Infraction(InfractionKind.RED_LIGHT, t, x, y, actor=red))
        stop = int(events.stop_sign)
        if stop >= 0 and stop != self._last_stop:
            self._last_stop = stop
            self.infractions.append(Infraction(InfractionKind.STOP_SIGN, t, x, y, actor=stop))
        self._off_road = self._stretch(self._off_road, off_road, InfractionKind.OFF_ROAD, t, x, y, driven)
        self._wrong_way = self._stretch(self._wrong_way, wrong_way, InfractionKind.WRONG_WAY, t, x, y, driven)

        # minimum speed: close a checkpoint first, then this step's sample opens the next one
        if cfg.min_speed:
            if (
                progress - self._cp_start > self._checkpoint_length
                and self._cp_closed < MIN_SPEED_CHECKPOINTS
            ):
                self._close_checkpoint(t, x, y)
                self._cp_start = progress
            traffic = float(events.traffic_speed)
            if math.isfinite(traffic):
                self._cp_ego += speed
                self._cp_traffic += traffic
                self._cp_samples += 1

        # nuPlan per-step figures
        self._lon.append(float(events.ego_accel))
        self._lat.append(float(ego[EgoFeature.ACCEL_LAT]))
        self._yaw_rate.append(float(ego[EgoFeature.YAW_RATE]))
        self._wrong_dist.append(driven if wrong_way else 0.0)
        self._ever_off_road |= off_road
        limit = float(events.speed_limit)
        if math.isfinite(limit) and limit > 0.0 and speed > limit:
            self._overspeed += (speed - limit) * self.dt
        walkers = objects_mask & (objects[:, _O.IS_PEDESTRIAN] > 0.5)
        if walkers.any():
            near = float(np.hypot(objects[walkers, _O.X], objects[walkers, _O.Y]).min())
            self._min_pedestrian = min(self._min_pedestrian, near)
        rows = ttc_candidates(speed, objects, objects_mask)
        if rows.shape[0]:
            self._ttc_rows.append(rows)
            self._ttc_speeds.append((speed, rows.shape[0]))
            self._ttc_buffered += rows.shape[0]
            if self._ttc_buffered >= TTC_CHUNK:
                self._flush_ttc()

        # does the episode end?
        if speed >= cfg.blocked_speed:
            self._last_moving = t
        if not inside:
            self._inside_since = None
        elif self._inside_since is None:
            self._inside_since = t - self.dt
        remaining = self.route_length - progress
        if progress > COMPLETION_FRACTION * self.route_length and remaining <= cfg.completion_distance:
            self._completed = True
            self._end(Termination.ROUTE_COMPLETED)
        elif new_collision and cfg.end_on_collision:
            self._end(Termination.COLLISION)
        elif float(events.route_deviation) > cfg.max_deviation:
            detail = f"{float(events.route_deviation):.1f} m from the route (limit {cfg.max_deviation:g} m)"
            self._end(Termination.ROUTE_DEVIATION, InfractionKind.ROUTE_DEVIATION, t, x, y, detail)
        elif speed < cfg.blocked_speed and t - self._last_moving > cfg.blocked_time:
            detail = f"slower than {cfg.blocked_speed:g} m/s for more than {cfg.blocked_time:g} s"
            self._end(Termination.AGENT_BLOCKED, InfractionKind.AGENT_BLOCKED, t, x, y, detail)
        elif self._inside_since is not None and t - self._inside_since > cfg.scenario_timeout:
            detail = f"inside the scenario's trigger area for more than {cfg.scenario_timeout:g} s"
            self._end(Termination.SCENARIO_TIMEOUT, InfractionKind.SCENARIO_TIMEOUT, t, x, y, detail)
        elif elapsed > self.route_timeout:
            detail = f"route not completed within {self.route_timeout:.1f} s"
            self._end(Termination.ROUTE_TIMEOUT, InfractionKind.ROUTE_TIMEOUT, t, x, y, detail)
        return self.done

    def _end(
        self,
        why: Termination,
        kind: InfractionKind | None = None,
        t: float = 0.0,
        x: float = 0.0,
        y: float = 0.0,
        detail: str = "",
    ) -> None:
        self.done = True
        self.termination = why
        if kind is not None:
            self.infractions.append(Infraction(kind, t, x, y, detail=detail))

    def _collision(
        self, events: WorldEvents, t: float, x: float, y: float, speed: float, off_road: bool, wrong_way: bool
    ) -> bool:
        """Count a collision unless it repeats a recent one with the same actor; True if counted.
        ``speed``: the ego's impact speed [m/s] (the step's start or end, the larger)."""
        cfg = self.cfg
        actor = int(events.collision_actor)
        last = self._last_hit.get(actor)
        if last is not None and (
            t - last[0] <= cfg.collision_dedup_time
            or math.hypot(x - last[1], y - last[2]) <= cfg.collision_dedup_distance
        ):
            return False
        self._last_hit[actor] = (t, x, y)
        kind = _COLLISION_KINDS.get(int(events.collision_kind), InfractionKind.COLLISION_STATIC)
        bearing = abs(math.remainder(float(events.collision_bearing), math.tau))
        other_speed = float(events.collision_other_speed)
        if speed < STOPPED_SPEED:
            at_fault, why = False, "ego stopped"
        elif bearing <= FRONT_HALF_ANGLE:
            at_fault, why = True, "front"
        elif other_speed < STOPPED_SPEED:
            at_fault, why = True, "other stopped"
        elif bearing < REAR_HALF_ANGLE and (bool(events.lane_invasion) or off_road or wrong_way):
            at_fault, why = True, "lateral, ego off its lane"
        else:
            at_fault, why = False, "rear" if bearing >= REAR_HALF_ANGLE else "lateral, ego in its lane"
        self.infractions.append(
            Infraction(kind, t, x, y, actor=actor, value=speed, at_fault=at_fault, detail=why)
        )
        return True

    def _stretch(
        self,
        open_: Infraction | None,
        flag: bool,
        kind: InfractionKind,
        t: float,
        x: float,
        y: float,
        driven: float,
    ) -> Infraction | None:
        """Open, extend or close a continuous off-road / wrong-way stretch; the open one or None."""
        if not flag:
            return None
        if open_ is None:
            open_ = Infraction(kind, t, x, y, value=0.0)
            self.infractions.append(open_)
        open_.value += driven
        return open_

    def _close_checkpoint(self, t: float, x: float, y: float) -> None:
        self._cp_closed += 1
        if self._cp_samples > 0 and self._cp_traffic > 0.0:
            ratio = round(100.0 * self._cp_ego / self._cp_traffic, 2)
            self.min_speed_ratios.append(ratio)
            if ratio < 100.0:
                detail = f"mean speed {ratio:g} % of the surrounding traffic's (checkpoint {self._cp_closed})"
                self.infractions.append(
                    Infraction(InfractionKind.MIN_SPEED, t, x, y, value=ratio, detail=detail)
                )
        self._cp_ego = self._cp_traffic = 0.0
        self._cp_samples = 0

    def _flush_ttc(self) -> None:
        """Evaluate the buffered TTC rows (one vectorised pass over many steps) into the minimum."""
        if not self._ttc_rows:
            return
        speeds = np.repeat([v for v, _ in self._ttc_speeds], [n for _, n in self._ttc_speeds])
        ttc = ttc_of_rows(speeds, self.ego_length, self.ego_width, np.concatenate(self._ttc_rows))
        self._min_ttc = min(self._min_ttc, float(ttc.min()))
        self._ttc_rows.clear()
        self._ttc_speeds.clear()
        self._ttc_buffered = 0

    # ---------------------------------------------------------------------------------- finish

    @property
    def route_completion(self) -> float:
        """[%] 0..100 (100 once completed by the Leaderboard rule)."""
        if self._completed:
            return 100.0
        return min(100.0, 100.0 * self._progress / self.route_length)

    @property
    def outside_route_lanes(self) -> float:
        """[%] of the route progress made outside the route's lanes."""
        return 100.0 * self._lanes_outside / self._lanes_total if self._lanes_total > 0.0 else 0.0

    def finish(self, result: EpisodeResult) -> EpisodeResult:
        """Fill ``result`` (route figures, infractions, min-speed ratios, termination, ``nuplan_*``
        scores) and return it. Idempotent. A result still ``STARTED`` becomes ``DONE``; another status
        set by the runner (crashed, agent error) is kept, and so is its ``termination`` when the judge
        did not end the episode itself."""
        if not self._result_filled:
            self._result_filled = True
            if self.cfg.min_speed and self._progress > MIN_SPEED_CLOSE_FRACTION * self.route_length:
                if self._cp_closed < MIN_SPEED_CHECKPOINTS:
                    self._close_checkpoint(self._time, self._x, self._y)
            if self._lanes_outside > 0.0 and self._lanes_first is not None:
                t, x, y = self._lanes_first
                pct = self.outside_route_lanes
                detail = f"{self._lanes_outside:.1f} m of route progress outside the route's lanes"
                self.infractions.append(
                    Infraction(InfractionKind.OUTSIDE_ROUTE_LANES, t, x, y, value=pct, detail=detail)
                )
            self.infractions.sort(key=lambda i: i.time)
        result.route_length = self.route_length
        result.route_completion = self.route_completion
        result.distance_driven = self._distance
        result.sim_time = self._elapsed
        result.infractions = list(self.infractions)
        result.outside_route_lanes = self.outside_route_lanes
        result.min_speed_ratios = list(self.min_speed_ratios)
        if self.termination is not None:
            result.termination = self.termination.value
        if result.status == Status.STARTED:
            result.status = Status.DONE
        result.scores.update(self.nuplan_figures())
        return result

    def nuplan_figures(self) -> dict[str, float]:
        """The per-episode nuPlan figures (``nuplan_*``) and Bench2Drive's ``comfort_segments``."""
        self._flush_ttc()
        progress = min(1.0, self._progress / self.route_length)
        min_ttc = min(self._min_ttc, TTC_HORIZON)
        duration = self._elapsed
        speed_limit = max(0.0, 1.0 - self._overspeed / (MAX_OVERSPEED * duration)) if duration > 0.0 else 1.0
        ok = comfort_checks(np.array(self._lon), np.array(self._lat), np.array(self._yaw_rate), self.dt)
        wrong = _window_max(np.array(self._wrong_dist), max(1, round(DIRECTION_WINDOW / self.dt)))
        direction = 1.0 if wrong <= DIRECTION_OK else 0.5 if wrong <= DIRECTION_BAD else 0.0
        figures = {
            "nuplan_progress": progress,
            "nuplan_making_progress": float(progress >= MIN_PROGRESS_RATIO),
            "nuplan_min_ttc": min_ttc,
            "nuplan_ttc": float(self._min_ttc >= TTC_THRESHOLD),
            "nuplan_speed_limit": speed_limit,
            "nuplan_comfort": float(ok.all()),
            "nuplan_drivable_area": float(not self._ever_off_road),
            "nuplan_driving_direction": direction,
            "nuplan_max_wrong_way_1s": wrong,
            "min_pedestrian_distance": min(self._min_pedestrian, PEDESTRIAN_DISTANCE_CAP),
        }
        seg = max(1, round(COMFORT_SEGMENT / self.dt))
        n_seg = ok.size // seg
        if n_seg > 0:
            figures["comfort_segments"] = float(ok[: n_seg * seg].reshape(n_seg, seg).all(axis=1).mean())
        return figures
