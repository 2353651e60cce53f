"""Data contracts shared by every simulator backend and every consumer.

Units are SI (m, s, rad, m/s). The map frame is right-handed: x east, y north, yaw counter-clockwise
from +x. Every array crossing this boundary is batched over worlds with a leading ``B`` (``B`` may
be 1). ``world_model/`` and ``planning/`` may import this module and nothing else from ``sim_bridge``
(plus the sensor enums re-exported here).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim_bridge.sensors.frame import ActorArrays
from sim_bridge.sensors.layout import (
    EGO_DIM,
    NUM_ROUTE_TARGETS,
    OBJECT_DIM,
    ROUTE_TARGET_SPACING,
    STOP_DISTANCE_CAP,
    BevChannel,
    EgoFeature,
    ObjectFeature,
    RouteCommand,
)

__all__ = [
    "EGO_DIM",
    "NUM_ROUTE_TARGETS",
    "OBJECT_DIM",
    "ROUTE_TARGET_SPACING",
    "STOP_DISTANCE_CAP",
    "Action",
    "ActorKind",
    "ActorSpec",
    "Behaviour",
    "BehaviourKind",
    "BevChannel",
    "EgoFeature",
    "EgoVehicle",
    "LightState",
    "MapRef",
    "NonFiniteActionError",
    "ObjectFeature",
    "Observation",
    "Pose",
    "RouteCommand",
    "SignalTiming",
    "Simulator",
    "SimulatorUnavailable",
    "StepEvents",
    "WorldSpec",
    "as_action_array",
]


class ActorKind(enum.IntEnum):
    """What an actor is; also the kind reported for a collision."""

    VEHICLE = 0
    PEDESTRIAN = 1
    STATIC = 2


class LightState(enum.IntEnum):
    """Traffic-light state of a stop line."""

    GREEN = 0
    YELLOW = 1
    RED = 2


class NonFiniteActionError(ValueError):
    """An action holding NaN or inf reached a simulator: it is refused, never stepped."""


class SimulatorUnavailable(RuntimeError):
    """The simulator server did not answer (absent, timed out, lost mid-episode) or is of another
    version. The episode it interrupted was not driven to its end: record it crashed, never score
    it; a runner may reconnect and run it again (the backend cleans up its actors on reconnect)."""


# ----------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """One decision for one world: normalised ``accel`` and ``steer`` in ``[-1, 1]``.

    ``accel`` > 0 is throttle, < 0 brake; ``steer`` > 0 turns left (counter-clockwise). Backends own
    the mapping to physical commands.
    """

    accel: float
    steer: float

    def as_array(self) -> np.ndarray:
        """``float32 [2]``."""
        return np.array([self.accel, self.steer], dtype=np.float32)


def as_action_array(action: Action | Sequence[Action] | np.ndarray, num_worlds: int) -> np.ndarray:
    """Normalise actions to ``float64 [B, 2]`` clipped to ``[-1, 1]``.

    Raises :class:`NonFiniteActionError` naming the worlds if any value is NaN or inf, and
    ``ValueError`` on a shape that does not match ``num_worlds``.
    """
    if isinstance(action, Action):
        arr = action.as_array()[None, :]
    elif isinstance(action, np.ndarray):
        arr = action
    else:
        arr = np.stack([a.as_array() if isinstance(a, Action) else np.asarray(a) for a in action])
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape != (num_worlds, 2):
        raise ValueError(f"actions must have shape [B={num_worlds}, 2] (accel, steer); got {arr.shape}")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite).tolist()
        raise NonFiniteActionError(
            f"non-finite action (NaN/inf) for world(s) {bad}: {arr[bad].tolist()}; "
            "the simulator refuses it rather than stepping with it"
        )
    return np.clip(arr, -1.0, 1.0)


@dataclass(frozen=True)
class EgoVehicle:
    """The ego's geometry and actuator limits, as a backend maps :class:`Action` onto them."""

    length: float = 4.6
    """[m]"""
    width: float = 1.9
    """[m]"""
    wheelbase: float = 2.8
    """[m]"""
    max_steer: float = 0.6
    """Front-wheel angle at ``steer`` = ±1 [rad]."""
    max_accel: float = 3.0
    """Acceleration at ``accel`` = 1 [m/s²]."""
    max_brake: float = 8.0
    """Deceleration at ``accel`` = -1 [m/s²]."""


# ------------------------------------------------------------------------------------ world specs


@dataclass(frozen=True)
class Pose:
    """A planar pose in the map frame: ``x, y`` [m], ``yaw`` [rad]."""

    x: float
    y: float
    yaw: float = 0.0


@dataclass(frozen=True)
class MapRef:
    """Which map a world runs on: a procedural town (``town`` + ``seed``) or an OpenDRIVE file."""

    town: str = "grid"
    """Procedural generator name (see ``sim_bridge.maps.towns.TOWNS``); ignored when ``xodr`` is set."""
    seed: int = 0
    """Seed of the procedural generator (same seed, same map)."""
    xodr: str | None = None
    """Path to an ``.xodr`` file; takes precedence over ``town``."""

    def key(self) -> str:
        """A short stable name, used for caching and logs."""
        return f"xodr:{self.xodr}" if self.xodr else f"{self.town}:{self.seed}"


class BehaviourKind(enum.IntEnum):
    """Scripted behaviours of scenario actors. Triggered ones start when their trigger fires."""

    CRUISE = 0
    """Vehicles: follow lanes with IDM. Pedestrians: walk along the sidewalk. Statics: stand."""
    STOPPED = 1
    """Stand still until triggered, then cruise."""
    BRAKE = 2
    """Vehicles: cruise, then brake at ``decel`` to a stop when triggered."""
    CUT_IN = 3
    """Vehicles: cruise, then change lane towards ``lane_change`` (+1 left, -1 right) when triggered."""
    CROSS = 4
    """Pedestrians: stand, then walk along their yaw at ``speed`` when triggered."""
    OPEN_DOOR = 5
    """Statics (parked cars): widen by ``door_width`` on the ``lane_change`` side when triggered."""


@dataclass(frozen=True)
class Behaviour:
    """A scenario actor's scripted behaviour and its trigger (whichever fires first)."""

    kind: BehaviourKind = BehaviourKind.CRUISE
    trigger_distance: float = 0.0
    """Fires when the ego is closer than this [m] (centre to centre); 0 disables."""
    trigger_time: float = math.inf
    """Fires at this simulated time [s]; inf disables."""
    decel: float = 6.0
    """Braking deceleration for BRAKE [m/s²]."""
    lane_change: int = 1
    """Side for CUT_IN / OPEN_DOOR: +1 left, -1 right (in the actor's own frame)."""
    lane_change_time: float = 2.0
    """Duration of the CUT_IN lane change [s]."""
    door_width: float = 1.0
    """How far an opened door sticks out [m]."""
    ignore_signals: bool = False
    """Vehicles: drive through red lights and stop signs (e.g. the red-light runner)."""
    ignore_actors: bool = False
    """Vehicles: do not brake for other actors, the ego included."""
    lateral_offset: float = 0.0
    """Vehicles: drive this far left of their lane centre [m] (e.g. an invading turn)."""


@dataclass(frozen=True)
class ActorSpec:
    """A scenario actor placed explicitly (background traffic is spawned from densities instead)."""

    kind: ActorKind
    pose: Pose
    speed: float = 0.0
    """Initial speed [m/s]."""
    target_speed: float | None = None
    """Cruise speed [m/s]; ``None`` uses the lane's speed limit (vehicles) or 1.4 m/s (pedestrians)."""
    length: float | None = None
    """Box length [m]; ``None`` takes the kind's default."""
    width: float | None = None
    """Box width [m]; ``None`` takes the kind's default."""
    route: tuple[tuple[float, float], ...] = ()
    """Vehicles: waypoints to route through (map frame, m); empty = random turns at junctions."""
    behaviour: Behaviour = field(default_factory=Behaviour)


@dataclass(frozen=True)
class SignalTiming:
    """Traffic-light cycle of every signalised junction: phases in turn, each green then yellow."""

    green: float = 10.0
    """Green time per phase [s]."""
    yellow: float = 3.0
    """Yellow time per phase [s]."""
    all_red: float = 1.0
    """All-red clearance between phases [s]."""
    random_offset: bool = True
    """Start each junction's cycle at a seeded random point (otherwise all start at phase 0)."""


@dataclass(frozen=True)
class WorldSpec:
    """What a simulator needs to set up one world. ``scenarios.ScenarioSpec`` wraps one of these.

    All worlds of one batched simulator share a map; their specs may differ otherwise.
    """

    map: MapRef = field(default_factory=MapRef)
    ego: Pose | None = None
    """Ego start; ``None`` picks a seeded random spawn point on a driving lane."""
    ego_speed: float = 0.0
    """Ego initial speed [m/s]."""
    route: tuple[tuple[float, float], ...] = ()
    """Waypoints the ego must pass, the last one being the destination (map frame, m). Empty: a
    seeded random route of ``route_length`` from the start."""
    route_length: float = 300.0
    """Length of the random route when ``route`` is empty [m]."""
    actors: tuple[ActorSpec, ...] = ()
    vehicles: int = 20
    """Background vehicles kept alive around the ego."""
    pedestrians: int = 10
    """Background pedestrians kept alive around the ego (on sidewalks where the map has them)."""
    traffic_radius: float = 120.0
    """Background actors live within this distance of the ego [m]; farther ones respawn."""
    signals: SignalTiming = field(default_factory=SignalTiming)
    signal_states: tuple[tuple[int, LightState], ...] = ()
    """Traffic lights frozen in a state for the whole episode: ``(signal index, state)``."""

    def replace(self, **changes: object) -> WorldSpec:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class Observation:
    """What every backend observes, batched over ``B`` worlds.

    - ``bev``: ``uint8 [B, C, H, W]`` ego-centred bird's-eye view, ego facing up (channels:
      :class:`BevChannel`, 0 or 255).
    - ``ego``: ``float32 [B, E]`` ego state (:class:`EgoFeature` names each column).
    - ``objects``: ``float32 [B, N, F]`` nearby actors in the ego frame, nearest first
      (:class:`ObjectFeature` names each column); ``objects_mask``: ``bool [B, N]``.
    - ``object_ids``: ``int32 [B, N]`` simulator actor ids of those rows (-1 where masked).
    - ``pose``: ``float64 [B, 3]`` the ego's ground-truth ``x, y`` [m], ``yaw`` [rad] in the map frame.
      *Privileged*: for the expert, logging and replays; a learned agent must not read it.
    """

    bev: np.ndarray
    ego: np.ndarray
    objects: np.ndarray
    objects_mask: np.ndarray
    object_ids: np.ndarray
    pose: np.ndarray

    @property
    def num_worlds(self) -> int:
        return int(self.ego.shape[0])

    def world(self, b: int) -> Observation:
        """World ``b`` alone, keeping a leading batch dimension of 1."""
        s = slice(b, b + 1)
        return Observation(
            self.bev[s], self.ego[s], self.objects[s], self.objects_mask[s], self.object_ids[s], self.pose[s]
        )


@dataclass(frozen=True)
class StepEvents:
    """What happened in each world during one decision step (all arrays ``[B]``).

    Flags are OR-ed over the physics sub-steps; collision fields report the first actor hit.
    """

    sim_time: np.ndarray
    """Simulated time at the end of the step [s]."""
    collision: np.ndarray
    """``bool``: the ego's box overlapped another actor's."""
    collision_actor: np.ndarray
    """``int32``: id of the actor hit, -1 if none."""
    collision_kind: np.ndarray
    """``int8``: :class:`ActorKind` of the actor hit, -1 if none."""
    collision_other_speed: np.ndarray
    """Speed of the actor hit [m/s] (0 if none)."""
    collision_bearing: np.ndarray
    """Direction of the actor hit in the ego frame [rad]: 0 ahead, +pi/2 left (0 if none)."""
    off_road: np.ndarray
    """``bool``: part of the ego footprint left the drivable area."""
    lane_invasion: np.ndarray
    """``bool``: the ego footprint crossed a lane marking."""
    wrong_way: np.ndarray
    """``bool``: the ego drove against its lane's direction (> 90 deg off)."""
    on_route_lanes: np.ndarray
    """``bool``: the ego's centre is on a lane of its route."""
    red_light: np.ndarray
    """``int32``: signal index of a red light the ego crossed the stop line of, -1 if none."""
    stop_sign: np.ndarray
    """``int32``: signal index of a stop sign passed without stopping, -1 if none."""
    route_progress: np.ndarray
    """Distance along the route reached so far [m] (monotonic)."""
    route_length: np.ndarray
    """Total route length [m]."""
    route_deviation: np.ndarray
    """Distance from the ego to the route polyline [m]."""
    distance_driven: np.ndarray
    """Distance the ego drove during this step [m]."""
    ego_x: np.ndarray
    ego_y: np.ndarray
    ego_yaw: np.ndarray
    ego_speed: np.ndarray
    """Ego state at the end of the step (map frame; m, rad, m/s)."""
    ego_accel: np.ndarray
    """Ego longitudinal acceleration [m/s²]."""
    speed_limit: np.ndarray
    """Speed limit of the ego's lane [m/s]."""
    traffic_speed: np.ndarray
    """Mean speed of background vehicles within 50 m of the ego [m/s]; NaN when there are none."""

    def world(self, b: int) -> WorldEvents:
        """World ``b``'s events as Python scalars (what criteria read)."""
        return WorldEvents(**{f.name: getattr(self, f.name)[b].item() for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class WorldEvents:
    """One world's :class:`StepEvents` of one step, as Python scalars (same names, same units)."""

    sim_time: float
    collision: bool
    collision_actor: int
    collision_kind: int
    collision_other_speed: float
    collision_bearing: float
    off_road: bool
    lane_invasion: bool
    wrong_way: bool
    on_route_lanes: bool
    red_light: int
    stop_sign: int
    route_progress: float
    route_length: float
    route_deviation: float
    distance_driven: float
    ego_x: float
    ego_y: float
    ego_yaw: float
    ego_speed: float
    ego_accel: float
    speed_limit: float
    traffic_speed: float

    def as_dict(self) -> dict[str, float | int | bool]:
        """A plain dict (for records and logs)."""
        return dataclasses.asdict(self)


# -------------------------------------------------------------------------------------- simulator


class Simulator(abc.ABC):
    """A batch of ``num_worlds`` driving worlds on one map, stepped together.

    ``reset(spec, seed)`` then ``step(actions)`` until done; same spec, seed and actions give
    identical results. The public methods check inputs and delegate to the ``_reset`` / ``_step``
    hooks that backends implement.
    """

    #: decision period [s] (one ``step``)
    dt: float
    num_worlds: int
    #: the ego's geometry and limits
    ego_vehicle: EgoVehicle

    @property
    @abc.abstractmethod
    def road_map(self):  # -> sim_bridge.maps.RoadMap (kept untyped to avoid an import cycle)
        """The map every world runs on (``None`` before the first reset)."""

    def reset(
        self,
        spec: WorldSpec | Sequence[WorldSpec],
        seed: int | Sequence[int],
        worlds: Sequence[int] | None = None,
    ) -> Observation:
        """(Re)start worlds and return the observation of every world.

        ``spec`` and ``seed`` are one for all or one per reset world; ``worlds`` picks which worlds
        restart (default all); the others keep running untouched.
        """
        idx = list(range(self.num_worlds)) if worlds is None else [int(w) for w in worlds]
        for w in idx:
            if not 0 <= w < self.num_worlds:
                raise ValueError(f"world index {w} out of range [0, {self.num_worlds})")
        specs = [spec] * len(idx) if isinstance(spec, WorldSpec) else list(spec)
        seeds = (
            [int(seed) + i for i in range(len(idx))]
            if isinstance(seed, int | np.integer)
            else [int(s) for s in seed]
        )
        if len(specs) != len(idx) or len(seeds) != len(idx):
            raise ValueError(f"got {len(specs)} specs and {len(seeds)} seeds for {len(idx)} worlds")
        maps = {s.map.key() for s in specs}
        if len(maps) > 1:
            raise ValueError(f"all worlds of one simulator share a map; got {sorted(maps)}")
        return self._reset(specs, seeds, idx)

    def step(self, actions: Action | Sequence[Action] | np.ndarray) -> tuple[Observation, StepEvents]:
        """Advance every world by ``dt`` with ``actions`` (``[B, 2]``); refuses NaN/inf."""
        return self._step(as_action_array(actions, self.num_worlds))

    @abc.abstractmethod
    def route(self, b: int):  # -> sim_bridge.maps.Route
        """World ``b``'s ego route as planned at its reset (privileged: expert, criteria, replays)."""

    @abc.abstractmethod
    def actor_arrays(self) -> ActorArrays:
        """A copy of every actor box now, ``[B, N]`` (slot 0 the ego) — what the sensors saw."""

    @abc.abstractmethod
    def light_states(self) -> np.ndarray:
        """``int8 [B, K]`` :class:`LightState` of every stop line of the map now (a copy)."""

    def close(self) -> None:
        """Release resources (servers, sockets). Idempotent."""

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def _reset(self, specs: list[WorldSpec], seeds: list[int], worlds: list[int]) -> Observation: ...

    @abc.abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[Observation, StepEvents]: ...
