"""``CarlaSimulator``: the :class:`~sim_bridge.api.Simulator` contract on a CARLA 0.9.16 server.

One server is one world (``num_worlds`` = 1). ``reset`` loads the spec's map on the server when it
differs (``generate_opendrive_world`` from our OpenDRIVE, so the server's roads are ours), puts
the server in synchronous mode with ``fixed_delta_seconds = physics_dt``, spawns the ego at the
route start with collision and lane-invasion sensors, the scenario actors, the background
traffic (Traffic Manager autopilot) and background pedestrians (AI walker controllers,
:mod:`sim_bridge.carla.walkers`), and ticks once. ``step`` applies the action as a
``VehicleControl`` and ticks ``decision_dt / physics_dt`` times. Actor states come back from the
world snapshot, converted to our frame here (:mod:`sim_bridge.frames`) and nowhere else, and go
through the shared sensors (:class:`~sim_bridge.sensors.observe.Observer`) into the same
:class:`~sim_bridge.api.Observation` as every backend.

Action → control: ``accel`` ≥ 0 is ``throttle = accel``, < 0 is ``brake = -accel``; ``steer``
(> 0 left) is ``steer = -steer`` (CARLA steers right for > 0).

Traffic lights: CARLA's ``traffic.traffic_light`` actors are matched to our signals by OpenDRIVE
id and run on our cycle: the bridge sets them to the states the embedded backend computes from
``spec.signals`` (timing, seeded phase offsets, groups) and ``spec.signal_states``, step by step
(:mod:`sim_bridge.carla.lights`); their states as CARLA reports them feed ``light_states``, the BEV
and the ``red_light`` event. Red-light and stop-sign runs come from the ego's pose after every
server tick, by the rule every backend shares (``sim_bridge.violations``).

Scenario actors and their triggered behaviours (parked cars opening their doors too):
:mod:`sim_bridge.carla.scenario_actors`; triggers are checked after every step, as on the embedded
backend, against the episode time (``physics_dt`` per tick of a step, from 0 at reset).

Faults: a server that does not answer within ``timeout`` (absent, hung, lost mid-episode) raises
:class:`~sim_bridge.carla.connection.CarlaConnectionError` (a ``SimulatorUnavailable``: the
episode is recorded crashed, never scored); the simulator drops its client, and the next ``reset``
reconnects and first destroys the vehicles, walkers, sensors and controllers it did not spawn
(left by the interrupted episode or by a client that died). A map load waits ``load_timeout``. Restarting a
lost server (``restart_command``) is the runner's (``drive eval``), before it runs the interrupted
episodes again. A tick stuck on the client's own Traffic Manager, which can miss a tick's signal
(carla#9172), is woken after ``tm_wake_after`` on any server (:mod:`sim_bridge.carla.tick_watch`).

Background pedestrians are kept around the ego as the embedded backend keeps them: every
``WALKER_REFRESH_PERIOD`` (1 s) of an episode, at the start of a step, the walkers farther than
``spec.traffic_radius`` from the ego are destroyed and new ones spawned, up to ``spec.pedestrians``,
between ``BACKGROUND_MIN_DISTANCE`` and the radius, drawn from the episode's seeded generator; they
are started after the step's first tick (:func:`~sim_bridge.carla.walkers.keep_walkers_near`).
Background vehicles likewise: placed and started moving by the embedded backend's rules
(:mod:`sim_bridge.carla.background`; at reset from ``BACKGROUND_MIN_DISTANCE``, later from the
embedded ``RESPAWN_DISTANCE``), destroyed beyond the radius or after standing still for the
driver's ``stuck_timeout`` (a gridlock dissolves), off the Traffic Manager first. A scenario's
parked car is a CARLA vehicle on its hand brake but a static obstacle in the observation and the
collision events, as on the embedded backend.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np

from sim_bridge.api import (
    ActorKind,
    EgoVehicle,
    Observation,
    Simulator,
    StepEvents,
    WorldSpec,
)
from sim_bridge.carla.background import place_background
from sim_bridge.carla.config import CarlaConfig
from sim_bridge.carla.connection import CarlaConnectionError, connect
from sim_bridge.carla.lights import TrafficLights
from sim_bridge.carla.scenario_actors import ScriptedActor, spawn_scenario_actor
from sim_bridge.carla.tick_watch import TickWatch
from sim_bridge.carla.walkers import (
    WALKER_REFRESH_PERIOD,
    Walkers,
    destroy_walkers,
    keep_walkers_near,
    start_walkers,
)
from sim_bridge.carla_server.tm_watch import wake_traffic_manager
from sim_bridge.carla_server.wire import CARLA_VERSION
from sim_bridge.embedded.config import DriverModel
from sim_bridge.embedded.simulator import RESPAWN_DISTANCE
from sim_bridge.frames import carla_to_map, map_to_carla, wrap_angle
from sim_bridge.geometry import open_door
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import MapError, Projection, RoadMap, Route
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.ego import ego_lane
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.observe import Observer
from sim_bridge.violations import signal_violations, stop_lines

log = logging.getLogger(__name__)

#: seconds between BEV history frames (as the embedded backend)
HISTORY_PERIOD = 0.5
#: background vehicles within this radius count for ``traffic_speed`` [m]
TRAFFIC_SPEED_RADIUS = 50.0
#: background vehicles spawn at least this far from the ego [m]
BACKGROUND_MIN_DISTANCE = 15.0
#: blueprint of background vehicles
VEHICLE_BLUEPRINT = "vehicle.audi.a2"


def _kind(type_id: str) -> ActorKind | None:
    if type_id.startswith("vehicle."):
        return ActorKind.VEHICLE
    if type_id.startswith("walker."):
        return ActorKind.PEDESTRIAN
    if type_id.startswith("static."):
        return ActorKind.STATIC
    return None


class CarlaSimulator(Simulator):
    """The CARLA backend (see module doc)."""

    def __init__(self, config: CarlaConfig | None = None) -> None:
        self.config = config or CarlaConfig()
        cfg = self.config
        if cfg.num_worlds != 1:
            raise ValueError(
                f"the CARLA backend drives one world per server; got num_worlds={cfg.num_worlds} "
                "(set it to 1, e.g. `drive collect ... worlds=1`, and run more servers for more worlds)"
            )
        self.num_worlds = 1
        self.dt = float(cfg.decision_dt)
        ticks = round(cfg.decision_dt / cfg.physics_dt)
        if ticks < 1 or abs(ticks * cfg.physics_dt - cfg.decision_dt) > 1e-9:
            raise ValueError(
                f"decision_dt={cfg.decision_dt} must be a positive multiple of physics_dt={cfg.physics_dt}"
            )
        self._ticks = ticks
        lim = cfg.vehicle
        self.ego_vehicle = EgoVehicle(
            max_steer=lim.max_steer, max_accel=lim.max_accel, max_brake=lim.max_brake
        )
        self._client: Any = None
        self._world: Any = None
        self._tm: Any = None
        self._tm_synchronous = False  # its first cycle in synchronous mode is behind it
        self._tm_waits = False  # it is in synchronous mode: a tick waits for its cycle
        self._tick_watch = TickWatch(cfg.tm_wake_after, self._wake_tm)
        self._map: RoadMap | None = None
        self._map_key: str | None = None
        self._observer: Observer | None = None
        self._routes = RouteBatch(1)
        self._route: Route | None = None
        self._spawned: list[Any] = []  # carla actors of this episode, sensors first
        self._walkers = Walkers()  # background pedestrians and their AI controllers (not in _spawned)
        self._background: list[Any] = []  # background vehicles (also in _spawned)
        self._spawn_points: list[Any] | None = None  # the server's, for the map loaded
        self._still: dict[int, float] = {}  # background vehicle id → time it has stood still [s]
        self._spec: WorldSpec | None = None  # this episode's
        self._rng = np.random.default_rng()  # this episode's, seeded at reset: where walkers spawn
        self._library: Any = None  # the server's blueprint library
        self._ego: Any = None
        self._info: dict[int, tuple[int, float, float, float, float]] = {}  # id → kind, l, w, bbox x, y
        self._lock = threading.Lock()
        self._scripted: list[ScriptedActor] = []
        self._lights = TrafficLights()  # CARLA's traffic lights on our signal cycle
        self._time = 0.0  # episode time: physics_dt per tick of a step, from 0 at reset [s]
        self._stop_ok = np.zeros(0, dtype=np.bool_)  # [K] the ego has stopped properly at each stop sign
        self._hits: list[tuple[int, str]] = []  # (other id, other type) since the last step
        self._invasions = 0
        self._arrays: ActorArrays | None = None
        self._history: list[ActorArrays] = []
        self._prev_action = np.zeros((1, 2))
        self._yaw_rate = np.zeros(1)
        self._accel_lon = np.zeros(1)
        self._progress = np.zeros(1)
        self._steps = 0

    # ------------------------------------------------------------------ contract

    @property
    def road_map(self) -> RoadMap | None:
        return self._map

    def route(self, b: int) -> Route:
        if b != 0 or self._route is None:
            raise RuntimeError(f"world {b} has not been reset (the CARLA backend has one world)")
        return self._route

    def actor_arrays(self) -> ActorArrays:
        if self._arrays is None:
            raise RuntimeError("call reset() before reading actors")
        return self._arrays.copy()

    def light_states(self) -> np.ndarray:
        """``int8 [1, K]`` state of every stop line, read from CARLA's traffic lights at the last
        reset or step (matched to our signals by OpenDRIVE id and run on our cycle:
        :mod:`sim_bridge.carla.lights`; stop signs and unmatched lines green)."""
        return self._lights.line_states(0 if self._map is None else len(self._map.stop_lane))

    def close(self) -> None:
        if self._world is None:
            return
        try:
            self._destroy_episode()
            self._world.reset_all_traffic_lights()  # CARLA's own cycle again, for whoever comes next
            settings = self._world.get_settings()
            settings.synchronous_mode = False
            settings.fixed_delta_seconds = None
            self._world.apply_settings(settings)
            if self._tm is not None:
                self._tm.set_synchronous_mode(False)
                self._tm_synchronous = self._tm_waits = False
        except RuntimeError:
            pass  # the server is gone: nothing left to release
        self._tick_watch.stop()
        self._world = None

    # ------------------------------------------------------------------ reset

    def _connect(self) -> None:
        """A client to the server; after a fault, the actors left by the interrupted episode are
        destroyed first. (Restarting a lost server is the runner's: :func:`ensure_server`.)"""
        if self._client is not None:
            return
        cfg = self.config
        self._client = connect(cfg.host, cfg.port, cfg.timeout)

    def _clear_leftovers(self, world: Any) -> None:
        """Destroy the vehicles, walkers, sensors and AI controllers in the world that this episode
        did not spawn:
        those of a client that died (its worker crashed, its server connection was lost) would
        otherwise stand on the road. The bridge owns the server's world (one world per server)."""
        import carla

        # the client lists the actors of the last world state the server streamed to it, and a
        # client that has just connected may have none yet (under load its first state arrives
        # after this call): it saw no actors, and a dead worker's ego and lead car stayed on the
        # road of the next episode. A tick (synchronous mode) or the next state first.
        cfg = self.config
        if world.get_settings().synchronous_mode:
            with self._tick_watch.ticking():
                world.tick(cfg.timeout)
        else:
            world.wait_for_tick(cfg.timeout)
        ours = {a.id for a in self._spawned}
        left = [a.id for a in world.get_actors()
                if a.type_id.split(".")[0] in ("vehicle", "walker", "sensor", "controller") and a.id not in ours]  # fmt: skip
        if left:
            self._client.apply_batch_sync([carla.command.DestroyActor(i) for i in left], False)

    def _fault(self, exc: BaseException, during: str) -> CarlaConnectionError:
        """A server fault during ``during``: drop the client and the episode (the next reset
        reconnects and destroys what is left of it, :meth:`_clear_leftovers`); the error naming it."""
        cfg = self.config
        if isinstance(exc, CarlaConnectionError):
            error = exc
        else:
            error = CarlaConnectionError(
                f"the CARLA server at {cfg.host}:{cfg.port} stopped answering ({during}: {exc}); "
                f"the episode is incomplete and not scored (CARLA {CARLA_VERSION} expected, "
                f"sim.timeout={cfg.timeout:g} s)"
            )
        self._spawned, self._ego, self._client, self._world, self._tm = [], None, None, None, None
        self._tm_synchronous = self._tm_waits = False
        self._walkers, self._library = Walkers(), None
        self._scripted = []
        self._lights = TrafficLights()
        self._map_key = None  # a restarted server may serve another map: check on reset
        return error

    def _server_answers(self) -> bool:
        try:
            self._client.get_server_version()
            return True
        except RuntimeError:
            return False

    def _reset(self, specs: list[WorldSpec], seeds: list[int], worlds: list[int]) -> Observation:
        self._connect()
        try:
            return self._reset_episode(specs[0], seeds[0])
        except RuntimeError as exc:
            if isinstance(exc, CarlaConnectionError) or not self._server_answers():
                raise self._fault(exc, "reset") from exc
            raise

    def _reset_episode(self, spec: WorldSpec, seed: int) -> Observation:
        import carla

        cfg = self.config
        rm = load_map(spec.map)
        if spec.map.key() != self._map_key:
            self._map, self._map_key = rm, spec.map.key()
            self._observer = Observer(rm, cfg.bev, max_objects=cfg.max_objects, render_bev=cfg.render_bev)
        client = self._client
        world = client.get_world()
        if self._world is not None:
            self._destroy_episode()
        self._clear_leftovers(world)
        if world.get_map().to_opendrive() != rm.xodr:
            client.set_timeout(cfg.load_timeout)
            world = client.generate_opendrive_world(
                rm.xodr, carla.OpendriveGenerationParameters(wall_height=0.0), reset_settings=False
            )
            client.set_timeout(cfg.timeout)
        self._world = world
        self._spawn_points = None  # read again for this episode's map
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = cfg.physics_dt
        world.apply_settings(settings)
        self._tm = client.get_trafficmanager(cfg.tm_port)
        self._tm.set_synchronous_mode(True)
        self._tm_waits = True
        self._tm.set_random_device_seed(int(seed))
        if not self._tm_synchronous:
            # The client's Traffic Manager, new or back from asynchronous mode, first runs one
            # cycle on the last frame it has; a vehicle handed to it during that cycle but absent
            # from that frame is taken for destroyed and never driven (seen on a loaded machine:
            # a scenario car standing still all episode). A tick waits for a synchronous cycle,
            # so that one is over before this episode's vehicles are registered.
            self._tick()
            self._tm_synchronous = True
        rng = np.random.default_rng(seed)
        library = world.get_blueprint_library()
        self._spec, self._rng, self._library = spec, rng, library

        # --- ego at the route start, with its sensors
        if spec.ego is not None:
            ex, ey, eyaw = spec.ego.x, spec.ego.y, spec.ego.yaw
            proj = rm.project(np.array([[ex, ey]]), np.array([eyaw]), max_distance=5.0)
            if proj.lane[0] < 0:
                raise MapError(f"ego start ({ex:.1f}, {ey:.1f}) is not on a driving lane of map {rm.name!r}")
            lane0, s0 = int(proj.lane[0]), float(proj.s[0])
        else:
            lanes, ss = rm.spawn_points()
            k = int(rng.integers(len(lanes)))
            lane0, s0 = int(lanes[k]), float(ss[k])
            xy, yaw = rm.pose_at(np.array([lane0]), np.array([s0]))
            ex, ey, eyaw = float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])
        if spec.route:
            route = rm.route(np.array([[ex, ey], *spec.route], dtype=np.float64), start_yaw=eyaw)
        else:
            route = rm.random_route(lane0, s0, spec.route_length, rng)
        self._routes.set(0, route, rm)
        self._route = route
        bp = library.find(cfg.ego_blueprint)
        bp.set_attribute("role_name", "hero")
        self._ego = world.spawn_actor(bp, self._transform(ex, ey, eyaw))
        ext = self._ego.bounding_box.extent
        lim = cfg.vehicle
        self.ego_vehicle = EgoVehicle(
            2.0 * ext.x, 2.0 * ext.y, 0.6 * 2.0 * ext.x, lim.max_steer, lim.max_accel, lim.max_brake
        )
        self._spawned.append(self._ego)
        with self._lock:
            self._hits, self._invasions = [], 0
        collision = world.spawn_actor(
            library.find("sensor.other.collision"), carla.Transform(), attach_to=self._ego
        )
        collision.listen(self._on_collision)
        invasion = world.spawn_actor(
            library.find("sensor.other.lane_invasion"), carla.Transform(), attach_to=self._ego
        )
        invasion.listen(self._on_invasion)
        self._spawned[:0] = [collision, invasion]
        if spec.ego_speed > 0.0:
            self._ego.set_target_velocity(self._velocity(eyaw, spec.ego_speed))

        # --- scenario actors, then background traffic on the server's spawn points
        self._scripted = []
        for actor in spec.actors:
            scripted = spawn_scenario_actor(
                world, library, self._tm, cfg.tm_port, actor, self._transform, rm, self.dt, cfg.vehicle
            )
            self._scripted.append(scripted)
            self._spawned.append(scripted.actor)
        self._background, self._still = [], {}
        bodies = [(ex, ey, eyaw, spec.ego_speed)] + [
            (a.pose.x, a.pose.y, a.pose.yaw, a.speed) for a in spec.actors
        ]
        self._spawn_background(np.array(bodies, dtype=np.float64), spec.vehicles, BACKGROUND_MIN_DISTANCE)
        new_walkers = self._keep_walkers_near(ex, ey)
        self._time = 0.0
        self._lights.start(world, rm, spec, seed)

        # --- first state
        self._stop_ok = np.zeros(len(rm.stop_lane), dtype=np.bool_)
        self._prev_action[:] = 0.0
        self._yaw_rate[:] = 0.0
        self._accel_lon[:] = 0.0
        self._steps = 0
        self._tick()
        start_walkers(new_walkers, self._transform)  # their walkers are in a frame now
        self._lights.hold(self._time, self._tick)
        self._arrays = self._read()
        self._history = [self._arrays.copy() for _ in range(cfg.bev.history)]
        with self._lock:
            self._hits, self._invasions = [], 0
        obs, _ = self._measure(driven=0.0, hits=[], invasions=0)
        return obs

    def _transform(self, x: float, y: float, yaw: float) -> Any:
        import carla

        cx, cy, cyaw = map_to_carla(x, y, yaw)
        return carla.Transform(
            carla.Location(float(cx), float(cy), self.config.spawn_height), carla.Rotation(yaw=float(cyaw))
        )

    @staticmethod
    def _velocity(yaw: float, speed: float) -> Any:
        import carla

        return carla.Vector3D(float(speed * math.cos(yaw)), float(-speed * math.sin(yaw)), 0.0)

    def _keep_walkers_near(self, ex: float, ey: float) -> Walkers:
        """Destroy the background walkers beyond ``spec.traffic_radius`` of the ego at ``ex, ey``
        (map frame) [m] and spawn new ones up to ``spec.pedestrians``
        (:func:`~sim_bridge.carla.walkers.keep_walkers_near`); the new ones, to start after a tick."""
        spec = self._spec
        assert spec is not None and self._map is not None
        kept, new = keep_walkers_near(
            self._client, self._world, self._library, self._map, self._walkers, spec.pedestrians,
            (ex, ey), (BACKGROUND_MIN_DISTANCE, spec.traffic_radius), self._rng, self._transform,
        )  # fmt: skip
        self._walkers = kept + new
        return new

    def _spawn_background(self, bodies: np.ndarray, count: int, min_distance: float) -> None:
        """Up to ``count`` background vehicles on the server's spawn points, placed and started
        moving by the embedded backend's rules (:mod:`sim_bridge.carla.background`) among the
        vehicles ``bodies [K, 4]`` (x, y [m], yaw [rad], speed [m/s]; the ego first), at least
        ``min_distance`` [m] from the ego; on the Traffic Manager."""
        import carla

        spec, world = self._spec, self._world
        if count <= 0 or spec is None:
            return
        if self._spawn_points is None:
            self._spawn_points = world.get_map().get_spawn_points()
        points = self._spawn_points
        pts = np.array(
            [carla_to_map(t.location.x, t.location.y, t.rotation.yaw) for t in points], dtype=np.float64
        ).reshape(-1, 3)
        assert self._map is not None
        chosen = place_background(self._map, pts, bodies, count, min_distance, spec.traffic_radius, self._rng)
        bp = self._library.find(VEHICLE_BLUEPRINT)
        bp.set_attribute("role_name", "autopilot")
        port = self.config.tm_port
        SpawnActor, SetAutopilot, FutureActor = (
            carla.command.SpawnActor,
            carla.command.SetAutopilot,
            carla.command.FutureActor,
        )
        batch = [SpawnActor(bp, points[p.point]).then(SetAutopilot(FutureActor, True, port)) for p in chosen]
        for placed, response in zip(chosen, self._client.apply_batch_sync(batch, False), strict=True):
            if not response.error:
                actor = world.get_actor(response.actor_id)
                self._spawned.append(actor)
                self._background.append(actor)
                # the Traffic Manager drives 30 % under the limit unless told: ours at the limit times
                # the driver's factor, as the embedded backend's background drivers
                self._tm.vehicle_percentage_speed_difference(actor, 100.0 * (1.0 - placed.factor))
                if placed.speed > 0.0:
                    actor.set_target_velocity(self._velocity(float(pts[placed.point, 2]), placed.speed))

    def _keep_vehicles_near(self) -> None:
        """As the embedded backend keeps its traffic: destroy the background vehicles farther than
        ``spec.traffic_radius`` from the ego or standing still longer than the driver's
        ``stuck_timeout`` (a gridlock dissolves, as SUMO's time-to-teleport), then spawn new ones up
        to ``spec.vehicles``, at least ``RESPAWN_DISTANCE`` from the ego (out of view)."""
        import carla

        spec, a = self._spec, self._arrays
        assert spec is not None and a is not None
        ex, ey = float(a.x[0, 0]), float(a.y[0, 0])
        snapshot = self._world.get_snapshot()
        gone = []
        for actor in self._background:
            state = snapshot.find(actor.id)
            if state is not None:
                where = state.get_transform().location
                x, y = carla_to_map(where.x, where.y)[:2]
            far = state is None or math.hypot(x - ex, y - ey) > spec.traffic_radius
            if far or self._still.get(actor.id, 0.0) > DriverModel().stuck_timeout:
                gone.append(actor)
        if gone:
            port = self.config.tm_port
            batch = [carla.command.SetAutopilot(v.id, False, port) for v in gone]
            self._client.apply_batch_sync(batch, False)  # off the Traffic Manager before they go
            self._client.apply_batch_sync([carla.command.DestroyActor(v.id) for v in gone], False)
            dead = {v.id for v in gone}
            self._background = [v for v in self._background if v.id not in dead]
            self._spawned = [v for v in self._spawned if v.id not in dead]
            for i in dead:
                self._still.pop(i, None)
        missing = spec.vehicles - len(self._background)
        if missing > 0:
            cars = np.flatnonzero(
                a.active[0] & np.isin(a.kind[0], (ActorKind.VEHICLE, ActorKind.STATIC))
            )  # ego first
            bodies = np.stack([a.x[0, cars], a.y[0, cars], a.yaw[0, cars], a.speed[0, cars]], axis=1)
            self._spawn_background(bodies, missing, RESPAWN_DISTANCE)

    def _count_still(self) -> None:
        """Add a step to the still-standing time of every background vehicle below 0.1 m/s."""
        a = self._arrays
        assert a is not None
        speeds = dict(zip(a.ids[0].tolist(), a.speed[0].tolist(), strict=True))
        for actor in self._background:
            v = speeds.get(actor.id)
            self._still[actor.id] = (
                self._still.get(actor.id, 0.0) + self.dt if v is not None and abs(v) < 0.1 else 0.0
            )

    def _destroy_episode(self) -> None:
        import carla

        destroy_walkers(self._client, self._walkers)
        self._walkers = Walkers()
        sensors = [a for a in self._spawned if a.type_id.startswith("sensor.")]
        for sensor in sensors:  # the lane-invasion sensor runs in this process: stop it here
            sensor.stop()
            sensor.destroy()
        self._spawned = [a for a in self._spawned if not a.type_id.startswith("sensor.")]
        # hand the vehicles back from the Traffic Manager first: it must not look up destroyed actors
        port = self.config.tm_port
        cars = [a.id for a in self._spawned if a.type_id.startswith("vehicle.")]
        if cars:
            self._client.apply_batch_sync([carla.command.SetAutopilot(i, False, port) for i in cars], False)
        ids = [a.id for a in self._spawned]
        if ids:
            self._client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
        self._spawned, self._ego, self._background = [], None, []

    def _on_collision(self, event: Any) -> None:
        other = event.other_actor
        with self._lock:
            self._hits.append((int(other.id), str(other.type_id)))

    def _on_invasion(self, event: Any) -> None:
        with self._lock:
            self._invasions += 1

    # ------------------------------------------------------------------ step

    def _step(self, actions: np.ndarray) -> tuple[Observation, StepEvents]:
        if self._ego is None or self._world is None:
            raise RuntimeError("call reset() before step()")
        try:
            return self._step_episode(actions)
        except RuntimeError as exc:
            if isinstance(exc, CarlaConnectionError) or not self._server_answers():
                raise self._fault(exc, "step") from exc
            raise

    def _step_episode(self, actions: np.ndarray) -> tuple[Observation, StepEvents]:
        import carla

        accel, steer = float(actions[0, 0]), float(actions[0, 1])
        self._ego.apply_control(
            carla.VehicleControl(throttle=max(accel, 0.0), brake=max(-accel, 0.0), steer=-steer)
        )
        assert self._arrays is not None
        x0, y0 = float(self._arrays.x[0, 0]), float(self._arrays.y[0, 0])
        light_before = self.light_states()[0]
        yaw0, v0 = float(self._arrays.yaw[0, 0]), float(self._arrays.speed[0, 0])
        driven = 0.0
        px, py = x0, y0
        red, stop_run = np.full(1, -1, np.int32), np.full(1, -1, np.int32)
        every = max(1, round(WALKER_REFRESH_PERIOD / self.dt))
        new_walkers = Walkers()
        if self._steps % every == every - 1:
            self._keep_vehicles_near()
            new_walkers = self._keep_walkers_near(x0, y0)
        for k in range(self._ticks):
            time = self._time + self.config.physics_dt
            if k == self._ticks - 1:
                self._lights.show(time)  # the step's end state, in the world state of its last tick
            self._tick()
            if k == 0:
                start_walkers(new_walkers, self._transform)  # their walkers are in a frame now
            self._time = time
            x, y = self._signal_events(light_before, px, py, red, stop_run)
            driven += math.hypot(x - px, y - py)
            px, py = x, y
        # triggers after the step, for the next one (as the embedded backend's): an opened door
        # is in this step's observation
        for scripted in self._scripted:
            scripted.update(px, py, self._time, self._arrays)
        with self._lock:
            hits, invasions = self._hits, self._invasions
            self._hits, self._invasions = [], 0
        self._arrays = self._read()
        self._count_still()
        a = self._arrays
        self._yaw_rate[0] = wrap_angle(float(a.yaw[0, 0]) - yaw0) / self.dt
        self._accel_lon[0] = (float(a.speed[0, 0]) - v0) / self.dt
        self._prev_action = actions.copy()
        self._steps += 1
        n, every = self.config.bev.history, max(1, round(HISTORY_PERIOD / self.dt))
        if n and self._steps % every == 0:
            self._history = [a.copy(), *self._history[:-1]]
        return self._measure(driven, hits, invasions, int(red[0]), int(stop_run[0]))

    def _signal_events(
        self, light: np.ndarray, px: float, py: float, red: np.ndarray, stop_run: np.ndarray
    ) -> tuple[float, float]:
        """After a tick: the ego's red-light and stop-sign runs by the rule every backend shares
        (:func:`sim_bridge.violations.signal_violations`), from the ego's pose now and its centre
        ``px, py`` before the tick. ``light [K]`` the states at the step's start; ``red``,
        ``stop_run`` ``[1]`` are set where still -1. Returns the ego's centre now [m]."""
        assert self._map is not None and self._arrays is not None
        tf, v = self._ego.get_transform(), self._ego.get_velocity()
        cyaw = math.radians(tf.rotation.yaw)
        _, _, _, bx, by = self._info[self._ego.id]  # the box centre, as the actor arrays hold it
        cx = tf.location.x + math.cos(cyaw) * bx - math.sin(cyaw) * by
        cy = tf.location.y + math.sin(cyaw) * bx + math.cos(cyaw) * by
        x, y, yaw = carla_to_map(cx, cy, tf.rotation.yaw)
        speed = v.x * math.cos(cyaw) + v.y * math.sin(cyaw)
        lines = stop_lines(self._map)
        r, run = signal_violations(
            lines.f, lines.i, np.asarray(light, dtype=np.int8), self._stop_ok, px, py, float(x), float(y),
            float(yaw), float(speed), float(self._arrays.length[0, 0]),
        )  # fmt: skip
        if r >= 0 and red[0] < 0:
            red[0] = r
        if run >= 0 and stop_run[0] < 0:
            stop_run[0] = run
        return float(x), float(y)

    def _tick(self) -> int:
        """One server tick; a server that stopped answering raises :class:`CarlaConnectionError`
        naming it (the episode must not be scored). A tick stuck on the client's own Traffic
        Manager is woken after ``tm_wake_after`` (:meth:`_wake_tm`)."""
        cfg = self.config
        try:
            with self._tick_watch.ticking():
                return int(self._world.tick(cfg.timeout))
        except RuntimeError as exc:
            raise CarlaConnectionError(
                f"the CARLA server at {cfg.host}:{cfg.port} stopped answering (tick: {exc}); "
                f"the episode is incomplete and not scored (CARLA {CARLA_VERSION} expected, "
                f"sim.timeout={cfg.timeout:g} s)"
            ) from exc

    def _wake_tm(self) -> None:
        """A tick has not returned after ``tm_wake_after``: if the client's Traffic Manager is in
        synchronous mode, it may have missed the tick's signal (carla#9172): make it run the
        cycle (on its own RPC server, this host's ``tm_port``: :mod:`sim_bridge.carla.tick_watch`)."""
        if not self._tm_waits:
            return
        cfg = self.config
        log.warning(
            "a tick of the CARLA server at %s:%d has not returned after %g s: waking the client's Traffic "
            "Manager (port %d), which may have missed its tick signal (carla-simulator/carla#9172)",
            cfg.host, cfg.port, cfg.tm_wake_after, cfg.tm_port,
        )  # fmt: skip
        wake_traffic_manager("127.0.0.1", cfg.tm_port)

    def _read(self) -> ActorArrays:
        """Every vehicle, walker and prop now, the ego in slot 0, the nearest first (map frame)."""
        snapshot = self._world.get_snapshot()
        states = [(s.id, s.get_transform(), s.get_velocity()) for s in snapshot]
        unknown = [i for i, _, _ in states if i not in self._info]
        if unknown:
            # a scenario's parked car is a CARLA vehicle standing on its hand brake, but a static
            # obstacle to every sensor, as on the embedded backend (agents pass it, never queue)
            static = {s.actor.id for s in self._scripted if s.spec.kind == ActorKind.STATIC}
            for actor in self._world.get_actors(unknown):
                k = ActorKind.STATIC if actor.id in static else _kind(actor.type_id)
                bb = actor.bounding_box
                self._info[actor.id] = (
                    -1 if k is None else int(k),
                    2.0 * bb.extent.x,
                    2.0 * bb.extent.y,
                    bb.location.x,
                    bb.location.y,
                )
        ego_id = self._ego.id
        rows = [(i, t, v) for i, t, v in states if self._info.get(i, (-1,))[0] >= 0]
        rows.sort(key=lambda r: r[0] != ego_id)
        N = self.config.max_actors
        out = {name: np.zeros((1, N)) for name in ("x", "y", "yaw", "speed", "length", "width")}
        kind = np.zeros((1, N), np.int8)
        active = np.zeros((1, N), bool)
        ids = np.full((1, N), -1, np.int32)
        if rows and rows[0][0] == ego_id:
            cyaw = np.radians([t.rotation.yaw for _, t, _ in rows])
            info = np.array([self._info[i] for i, _, _ in rows])
            cx = (
                np.array([t.location.x for _, t, _ in rows])
                + np.cos(cyaw) * info[:, 3]
                - np.sin(cyaw) * info[:, 4]
            )
            cy = (
                np.array([t.location.y for _, t, _ in rows])
                + np.sin(cyaw) * info[:, 3]
                + np.cos(cyaw) * info[:, 4]
            )
            vel = np.array([[v.x, v.y] for _, _, v in rows])
            speed = vel[:, 0] * np.cos(cyaw) + vel[:, 1] * np.sin(cyaw)
            x, y, yaw = carla_to_map(cx, cy, np.degrees(cyaw))
            width = info[:, 2].copy()
            doors = {s.actor.id: s.door for s in self._scripted if s.door is not None}
            if doors:  # parked cars with a door open: their box widened on that side
                row_ids = np.array([r[0] for r in rows])
                j = np.flatnonzero(np.isin(row_ids, list(doors)))
                door, side = np.array([doors[int(i)] for i in row_ids[j]]).T
                x[j], y[j], width[j] = open_door(x[j], y[j], yaw[j], width[j], door, side)
            order = np.concatenate([[0], 1 + np.argsort(np.hypot(x[1:] - x[0], y[1:] - y[0]))])[:N]
            n = len(order)
            for name, values in (
                ("x", x),
                ("y", y),
                ("yaw", yaw),
                ("speed", speed),
                ("length", info[:, 1]),
                ("width", width),
            ):
                out[name][0, :n] = np.asarray(values)[order]
            kind[0, :n] = info[order, 0]
            active[0, :n] = True
            ids[0, :n] = np.array([r[0] for r in rows])[order]
        return ActorArrays(
            out["x"], out["y"], out["yaw"], out["speed"], out["length"], out["width"], kind, active, ids
        )

    def _measure(
        self, driven: float, hits: list[tuple[int, str]], invasions: int, red: int = -1, stop: int = -1
    ) -> tuple[Observation, StepEvents]:
        """The observation and the step's events from the actor arrays just read."""
        rm, a = self._map, self._arrays
        assert rm is not None and a is not None and self._observer is not None
        ex, ey, eyaw, ev = float(a.x[0, 0]), float(a.y[0, 0]), float(a.yaw[0, 0]), float(a.speed[0, 0])
        xy = np.array([[ex, ey]])
        progress, deviation = self._routes.update(xy)
        self._progress = progress
        proj: Projection = ego_lane(rm, xy, np.array([eyaw]), self._routes.lanes)
        lane = int(proj.lane[0])
        # footprint corners on the drivable area
        c, s = math.cos(eyaw), math.sin(eyaw)
        hl, hw = 0.5 * float(a.length[0, 0]), 0.5 * float(a.width[0, 0])
        corners = np.array(
            [[ex + c * dl - s * dw, ey + s * dl + c * dw] for dl in (-hl, hl) for dw in (-hw, hw)]
        )
        off_road = not bool(rm.on_drivable(corners).all())
        junction = lane >= 0 and rm.lane_junction[lane] >= 0
        wrong_way = bool(
            lane >= 0 and proj.inside[0] and not junction and math.cos(proj.heading_error[0]) < 0.0
        )
        # collisions: the first actor hit during the step
        hit_id, hit_kind, hit_speed, hit_bearing = -1, -1, 0.0, 0.0
        if hits:
            other, type_id = hits[0]
            known = self._info.get(other, (-1,))[0]  # as the sensors see it (a parked car: static)
            kind = ActorKind(known) if known >= 0 else _kind(type_id)
            hit_id, hit_kind = other, int(kind if kind is not None else ActorKind.STATIC)
            row = np.flatnonzero(a.ids[0] == other)
            if len(row):
                j = int(row[0])
                hit_speed = float(a.speed[0, j])
                hit_bearing = float(wrap_angle(math.atan2(a.y[0, j] - ey, a.x[0, j] - ex) - eyaw))
        others = a.active[0] & (a.kind[0] == ActorKind.VEHICLE) & (np.arange(a.shape[1]) > 0)
        near = others & (np.hypot(a.x[0] - ex, a.y[0] - ey) <= TRAFFIC_SPEED_RADIUS)
        traffic = float(a.speed[0, near].mean()) if near.any() else math.nan
        frame = SensorFrame(
            actors=a,
            history=tuple(self._history),
            light_state=self.light_states(),
            ego=EgoKinematics(
                accel_lon=self._accel_lon.copy(),
                accel_lat=np.array([ev * self._yaw_rate[0]]),
                yaw_rate=self._yaw_rate.copy(),
                prev_action=self._prev_action.copy(),
            ),
        )
        obs = self._observer.observe(frame, self._routes, progress, proj)
        snapshot = self._world.get_snapshot()
        events = StepEvents(
            sim_time=np.array([snapshot.timestamp.elapsed_seconds]),
            collision=np.array([bool(hits)]),
            collision_actor=np.array([hit_id], np.int32),
            collision_kind=np.array([hit_kind], np.int8),
            collision_other_speed=np.array([hit_speed]),
            collision_bearing=np.array([hit_bearing]),
            off_road=np.array([off_road]),
            lane_invasion=np.array([invasions > 0]),
            wrong_way=np.array([wrong_way]),
            on_route_lanes=self._routes.on_route_lanes(proj.lane),
            red_light=np.array([red], np.int32),
            stop_sign=np.array([stop], np.int32),
            route_progress=progress.copy(),
            route_length=self._routes.length.copy(),
            route_deviation=deviation,
            distance_driven=np.array([driven]),
            ego_x=np.array([ex]),
            ego_y=np.array([ey]),
            ego_yaw=np.array([eyaw]),
            ego_speed=np.array([ev]),
            ego_accel=self._accel_lon.copy(),
            speed_limit=np.array([rm.lane_speed_limit[lane] if lane >= 0 else 0.0]),
            traffic_speed=np.array([traffic]),
        )
        return obs, events
