"""``EmbeddedSimulator``: the default backend, batched over worlds, deterministic, CPU only.

One decision step (``dt`` = ``decision_dt``): NPC drivers decide (compiled kernel), then
``substeps`` physics steps move every vehicle (kinematic bicycle) and pedestrian, resolve contacts
(bodies are separated and exchange momentum: ``contact``) and record the ego's collisions and
signal violations; then triggers fire, lights change, background traffic is
respawned, the ego's lane and route progress are measured and the sensors observe.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    EgoVehicle,
    Observation,
    Pose,
    Simulator,
    StepEvents,
    WorldSpec,
)
from sim_bridge.embedded import fields as f
from sim_bridge.embedded.behaviours import update_triggers
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.contact import ContactParams
from sim_bridge.embedded.ego_track import (
    E_COLLISION,
    E_HIT_BEARING,
    E_HIT_ID,
    E_HIT_KIND,
    E_HIT_SPEED,
    E_IN_JUNCTION,
    E_OFF_ROAD,
    E_ON_ROUTE,
    E_SPEED_LIMIT,
    E_TRAFFIC_SPEED,
    E_WRONG_WAY,
    NUM_SITUATION,
    ego_situation,
    track_ego,
)  # fmt: skip
from sim_bridge.embedded.kinematics import Limits, action_to_commands
from sim_bridge.embedded.lanes import extend_plan, plans_from_routes
from sim_bridge.embedded.map_arrays import MapArrays, build_map_arrays
from sim_bridge.embedded.rng import world_seed
from sim_bridge.embedded.snapshot import (
    SimSnapshot,
    put_actors,
    put_projection,
    take_actors,
    take_projection,
)
from sim_bridge.embedded.state import PLAN_LEN, STAND, WALK_FREE, WALK_SIDEWALK, WorldState
from sim_bridge.embedded.step import spawn_all, step_worlds
from sim_bridge.embedded.traffic import DriverParams
from sim_bridge.frames import wrap_angle
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import LaneType, MapError, Projection, RoadMap, Route
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.ego import ego_lane
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.observe import Observer
from sim_bridge.signals import SignalPlan, build_signal_plan, signal_offsets, signal_states, signal_timing

#: the ego's box and wheelbase [m]
EGO_LENGTH, EGO_WIDTH, EGO_WHEELBASE = 4.6, 1.9, 2.8
#: defaults of scenario actors by kind: (length, width) [m]
DEFAULT_SIZE = {ActorKind.VEHICLE: (4.6, 1.9), ActorKind.PEDESTRIAN: (0.6, 0.6), ActorKind.STATIC: (4.4, 1.8)}
#: background actors appear at least this far from the ego after reset [m]
RESPAWN_DISTANCE = 40.0
#: seconds between BEV history frames
HISTORY_PERIOD = 0.5
#: background vehicles within this radius count for ``traffic_speed`` [m]
TRAFFIC_SPEED_RADIUS = 50.0


class EmbeddedSimulator(Simulator):
    """The embedded backend (see module doc). All worlds share one map, loaded on first reset."""

    def __init__(self, config: EmbeddedConfig | None = None) -> None:
        self.config = config or EmbeddedConfig()
        self.num_worlds = int(self.config.num_worlds)
        if self.num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {self.num_worlds}")
        self.dt = float(self.config.decision_dt)
        self._substeps = self.config.substeps
        lim = self.config.vehicle
        self.ego_vehicle = EgoVehicle(
            EGO_LENGTH, EGO_WIDTH, EGO_WHEELBASE, lim.max_steer, lim.max_accel, lim.max_brake
        )
        self._params = DriverParams.make(self.config.driver, self.config.vehicle, self.dt)
        self._map: RoadMap | None = None
        self._map_key: str | None = None
        self._arrays: MapArrays | None = None
        self._signals: SignalPlan | None = None
        self._state: WorldState | None = None
        self._routes = RouteBatch(self.num_worlds)
        self._route_objects: list[Route | None] = [None] * self.num_worlds
        self._observer: Observer | None = None
        self._history: list[ActorArrays] = []
        self._targets = np.zeros((self.num_worlds, 2), np.int64)  # background vehicles, pedestrians
        self._radius = np.zeros(self.num_worlds)  # [m]
        self._limits = Limits.of(self.config.vehicle)
        self._contact = ContactParams.of(self.config.collision)
        threads = self.config.threads or os.cpu_count() or 1
        threads = min(threads, self.num_worlds)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="embedded") if threads > 1 else None
        B = self.num_worlds
        self._prev_action = np.zeros((B, 2))
        self._yaw_rate = np.zeros(B)
        self._accel_lon = np.zeros(B)
        self._progress = np.zeros(B)
        self._projection: Projection | None = None
        self._scripted = False  # any scenario actor with a triggered behaviour
        cfg = self.config
        # what a snapshot's state arrays assume (a fork between simulators needs the same)
        self._layout = (
            cfg.max_vehicles, cfg.max_pedestrians, cfg.max_statics, cfg.physics_dt, cfg.decision_dt,
            repr(cfg.vehicle), repr(cfg.driver),
        )  # fmt: skip

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------ properties

    @property
    def road_map(self) -> RoadMap | None:
        return self._map

    @property
    def state(self) -> WorldState:
        """The live state (read it, do not write it); raises before the first reset."""
        if self._state is None:
            raise RuntimeError("call reset() before reading the simulator state")
        return self._state

    def route(self, b: int) -> Route:
        """World ``b``'s ego route (as planned at reset)."""
        route = self._route_objects[b]
        if route is None:
            raise RuntimeError(f"world {b} has not been reset")
        return route

    @property
    def routes(self) -> RouteBatch:
        """The ego routes of every world and their progress."""
        return self._routes

    # ------------------------------------------------------------------ reset

    def _load(self, spec: WorldSpec, full: bool) -> None:
        key = spec.map.key()
        if key == self._map_key:
            return
        if not full and self._map_key is not None:
            raise ValueError(
                f"a partial reset cannot change the map ({self._map_key} → {key}); reset all worlds at once"
            )
        rm = load_map(spec.map)
        cfg = self.config
        self._map, self._map_key = rm, key
        self._arrays = build_map_arrays(rm)
        self._signals = build_signal_plan(rm)
        self._state = WorldState.allocate(
            self.num_worlds, cfg.max_vehicles, cfg.max_pedestrians, cfg.max_statics,
            len(rm.signal_kind), len(rm.stop_lane),
        )  # fmt: skip
        self._observer = Observer(
            rm, cfg.bev, max_objects=cfg.max_objects, render_bev=cfg.render_bev, pool=self._pool
        )
        self._history = []

    def _reset(self, specs: list[WorldSpec], seeds: list[int], worlds: list[int]) -> Observation:
        self._load(specs[0], full=len(worlds) == self.num_worlds)
        st, m = self.state, self._arrays
        assert m is not None
        w = np.asarray(worlds, dtype=np.int64)
        st.clear_worlds(w)
        for b, spec, seed in zip(worlds, specs, seeds, strict=True):
            self._reset_world(b, spec, seed)
        self._scripted = bool(
            ((st.beh_kind != BehaviourKind.CRUISE) & (st.active != 0) & (st.triggered == 0)).any()
        )
        mask = np.zeros(self.num_worlds, dtype=bool)
        mask[w] = True
        cfg = self.config
        NV, NP = cfg.max_vehicles, cfg.max_pedestrians
        targets = np.where(mask[:, None], self._targets, -1)
        spawn_all(
            m, st.F, st.I, st.plan, st.seed, st.W, NV, NP, targets, self._radius, cfg.driver.speed_spread
        )
        self._prev_action[w] = 0.0
        self._yaw_rate[w] = 0.0
        self._accel_lon[w] = 0.0
        self._update_lights()
        self._measure_ego()
        self._reset_history(w)
        return self._observe()

    def _reset_world(self, b: int, spec: WorldSpec, seed: int) -> None:
        st, rm, m = self.state, self._map, self._arrays
        assert rm is not None and m is not None and self._signals is not None
        cfg = self.config
        rng = np.random.default_rng(seed)
        st.seed[b] = world_seed(seed)
        st.W[f.NEXT_ID, b] = 1000
        st.sig_timing[b] = signal_timing(spec.signals)
        st.signal_offset[b] = signal_offsets(self._signals, spec.signals, rng)  # rng's first draws
        for sig, light in spec.signal_states:
            if not 0 <= sig < st.frozen_light.shape[1]:
                raise ValueError(
                    f"signal_states names signal {sig}, but the map has {st.frozen_light.shape[1]} signals"
                )
            st.frozen_light[b, sig] = int(light)

        # --- ego
        if spec.ego is not None:
            ex, ey, eyaw = spec.ego.x, spec.ego.y, spec.ego.yaw
            proj = rm.project(np.array([[ex, ey]]), np.array([eyaw]), max_distance=5.0)
            if proj.lane[0] < 0:
                raise MapError(
                    f"ego start ({ex:.1f}, {ey:.1f}) is not on a driving lane of map {rm.name!r} "
                    f"(nearest driving lane is more than 5 m away; map bounds {tuple(round(v) for v in rm.bounds)})"
                )
            lane0, s0 = int(proj.lane[0]), float(proj.s[0])
        else:
            if len(m.spawn_lane) == 0:
                raise MapError(f"map {rm.name!r} has no spawn points on driving lanes")
            k = int(rng.integers(len(m.spawn_lane)))
            lane0, s0 = int(m.spawn_lane[k]), float(m.spawn[k, 2])
            xy, yaw = rm.pose_at(np.array([lane0]), np.array([s0]))
            ex, ey, eyaw = float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])
        self._set_box(b, 0, ex, ey, eyaw, EGO_LENGTH, EGO_WIDTH, actor_id=0)
        st.speed[b, 0] = spec.ego_speed
        st.wheelbase[b, 0] = EGO_WHEELBASE
        st.lane[b, 0], st.s[b, 0] = lane0, s0
        if spec.route:
            route = rm.route(np.array([[ex, ey], *spec.route], dtype=np.float64), start_yaw=eyaw)
        else:
            route = rm.random_route(lane0, s0, spec.route_length, rng)
        self._routes.set(b, route, rm)
        self._route_objects[b] = route

        # --- scenario actors
        by_kind: dict[ActorKind, list[ActorSpec]] = {k: [] for k in ActorKind}
        for actor in spec.actors:
            by_kind[ActorKind(actor.kind)].append(actor)
        caps = {
            ActorKind.VEHICLE: cfg.max_vehicles - 1,
            ActorKind.PEDESTRIAN: cfg.max_pedestrians,
            ActorKind.STATIC: cfg.max_statics,
        }
        for kind, actors in by_kind.items():
            if len(actors) > caps[kind]:
                raise ValueError(
                    f"spec has {len(actors)} {kind.name.lower()} actors; the simulator has {caps[kind]} slots "
                    f"(raise sim.max_{kind.name.lower()}s)"
                )
        NV, NP = cfg.max_vehicles, cfg.max_pedestrians
        next_id = 1
        for i, actor in enumerate(by_kind[ActorKind.VEHICLE]):
            self._place_vehicle(b, 1 + i, actor, next_id)
            next_id += 1
        for q, actor in enumerate(by_kind[ActorKind.PEDESTRIAN]):
            self._place_pedestrian(b, NV + q, actor, next_id)
            next_id += 1
        for o, actor in enumerate(by_kind[ActorKind.STATIC]):
            self._place_static(b, NV + NP + o, actor, next_id)
            next_id += 1
        st.W[f.FIRST_BG_VEHICLE, b] = 1 + len(by_kind[ActorKind.VEHICLE])
        st.W[f.FIRST_BG_PEDESTRIAN, b] = NV + len(by_kind[ActorKind.PEDESTRIAN])
        self._targets[b] = (
            min(spec.vehicles, NV - 1 - len(by_kind[ActorKind.VEHICLE])),
            min(spec.pedestrians, NP - len(by_kind[ActorKind.PEDESTRIAN])),
        )
        self._radius[b] = spec.traffic_radius

    def _set_box(
        self, b: int, i: int, x: float, y: float, yaw: float, length: float, width: float, actor_id: int
    ) -> None:
        st = self.state
        st.active[b, i] = 1
        st.ids[b, i] = actor_id
        st.x[b, i], st.y[b, i], st.yaw[b, i] = x, y, yaw
        st.length[b, i], st.width[b, i] = length, width

    def _trigger(self, b: int, i: int, actor: ActorSpec) -> None:
        st, beh = self.state, actor.behaviour
        st.beh_kind[b, i] = int(beh.kind)
        st.trig_dist[b, i], st.trig_time[b, i] = beh.trigger_distance, beh.trigger_time
        st.beh_decel[b, i], st.beh_dir[b, i], st.beh_time[b, i] = (
            beh.decel,
            beh.lane_change,
            beh.lane_change_time,
        )

    def _place_vehicle(self, b: int, i: int, actor: ActorSpec, actor_id: int) -> None:
        st, rm, m = self.state, self._map, self._arrays
        assert rm is not None and m is not None
        length = actor.length or DEFAULT_SIZE[ActorKind.VEHICLE][0]
        width = actor.width or DEFAULT_SIZE[ActorKind.VEHICLE][1]
        p, beh = actor.pose, actor.behaviour
        self._set_box(b, i, p.x, p.y, p.yaw, length, width, actor_id)
        st.speed[b, i] = 0.0 if beh.kind == BehaviourKind.STOPPED else actor.speed
        st.wheelbase[b, i] = 0.6 * length
        st.speed_factor[b, i] = 1.0
        proj = rm.project(np.array([[p.x, p.y]]), np.array([p.yaw]), max_distance=6.0)
        if proj.lane[0] < 0:
            raise MapError(
                f"scenario vehicle {actor_id} at ({p.x:.1f}, {p.y:.1f}) is not within 6 m of a driving lane"
            )
        lane = int(proj.lane[0])
        st.lane[b, i], st.s[b, i] = lane, float(proj.s[0])
        st.lat_bias[b, i] = beh.lateral_offset
        st.lat0[b, i] = float(proj.lateral[0]) - beh.lateral_offset
        st.lc_duration[b, i] = 2.0
        st.plan[b, i, :] = -1
        if actor.route:
            route = rm.route(np.array([[p.x, p.y], *actor.route], dtype=np.float64), start_yaw=p.yaw)
            lanes = [int(v) for v in route.lanes[:PLAN_LEN]]
            st.plan[b, i, : len(lanes)] = lanes
            st.plan_len[b, i] = len(lanes)
            st.route_plan[b, i] = 1
        else:
            st.plan[b, i, 0] = lane
            st.plan_len[b, i] = extend_plan(m, st.plan[b, i], 1, st.seed[b], -1, 9000 + i, length)
        st.cruise[b, i] = actor.target_speed if actor.target_speed is not None else -1.0
        st.ignore_signals[b, i] = int(beh.ignore_signals)
        st.ignore_actors[b, i] = int(beh.ignore_actors)
        self._trigger(b, i, actor)

    def _place_pedestrian(self, b: int, a: int, actor: ActorSpec, actor_id: int) -> None:
        st, rm = self.state, self._map
        assert rm is not None
        p, beh = actor.pose, actor.behaviour
        length = actor.length or DEFAULT_SIZE[ActorKind.PEDESTRIAN][0]
        width = actor.width or DEFAULT_SIZE[ActorKind.PEDESTRIAN][1]
        self._set_box(b, a, p.x, p.y, p.yaw, length, width, actor_id)
        st.p_speed[b, a] = actor.target_speed if actor.target_speed is not None else (actor.speed or 1.4)
        st.p_max_walk[b, a] = 40.0
        self._trigger(b, a, actor)
        if beh.kind in (BehaviourKind.CROSS, BehaviourKind.STOPPED):
            st.mode[b, a] = STAND
            return
        if not self._onto_sidewalk(b, a, max_distance=1.0):
            st.mode[b, a] = WALK_FREE

    def _onto_sidewalk(self, b: int, a: int, max_distance: float) -> bool:
        """Have pedestrian ``a`` walk along the sidewalk lane within ``max_distance`` [m] of it (in
        the direction nearer its yaw); whether there was one."""
        st, rm = self.state, self._map
        assert rm is not None
        proj = rm.project(
            np.array([[st.x[b, a], st.y[b, a]]]),
            np.array([st.yaw[b, a]]),
            lane_types=(LaneType.SIDEWALK,),
            max_distance=max_distance,
        )
        if proj.lane[0] < 0:
            return False
        st.mode[b, a] = WALK_SIDEWALK
        st.lane[b, a], st.s[b, a], st.p_lat[b, a] = (
            int(proj.lane[0]),
            float(proj.s[0]),
            float(proj.lateral[0]),
        )
        st.p_dir[b, a] = 1.0 if abs(proj.heading_error[0]) < math.pi / 2 else -1.0
        return True

    def _place_static(self, b: int, a: int, actor: ActorSpec, actor_id: int) -> None:
        st = self.state
        p = actor.pose
        length = actor.length or DEFAULT_SIZE[ActorKind.STATIC][0]
        width = actor.width or DEFAULT_SIZE[ActorKind.STATIC][1]
        self._set_box(b, a, p.x, p.y, p.yaw, length, width, actor_id)
        st.base_x[b, a], st.base_y[b, a], st.base_width[b, a] = p.x, p.y, width
        st.door[b, a] = actor.behaviour.door_width
        self._trigger(b, a, actor)

    # ------------------------------------------------------------------ snapshots and forks

    def snapshot(self, worlds: Sequence[int] | None = None) -> SimSnapshot:
        """A copy of everything the future of ``worlds`` (default all) depends on (see
        :mod:`sim_bridge.embedded.snapshot`); :meth:`restore` or :meth:`fork` puts it back."""
        st, rm = self.state, self._map
        assert rm is not None and self._arrays is not None and self._signals is not None
        assert self._map_key is not None
        w = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=np.int64)
        return SimSnapshot(
            worlds=w.copy(),
            layout=self._layout,
            map_key=self._map_key,
            road_map=rm,
            map_arrays=self._arrays,
            signals=self._signals,
            state=st.take(w),
            routes=self._routes.take(w),
            route_objects=tuple(self._route_objects[int(b)] for b in w),
            history=tuple(take_actors(frame, w) for frame in self._history),
            projection=None if self._projection is None else take_projection(self._projection, w),
            targets=self._targets[w],
            radius=self._radius[w],
            prev_action=self._prev_action[w],
            yaw_rate=self._yaw_rate[w],
            accel_lon=self._accel_lon[w],
            progress=self._progress[w],
        )

    def restore(self, snapshot: SimSnapshot, worlds: Sequence[int] | None = None) -> None:
        """Put ``snapshot``'s worlds back, into ``worlds`` (default: the worlds it was taken from);
        stepping them with the same actions then replays bit for bit. Other worlds are untouched.
        Read the restored observation with :meth:`observe`."""
        dst = snapshot.worlds if worlds is None else np.asarray(worlds, dtype=np.int64)
        if len(dst) != snapshot.num_worlds:
            raise ValueError(
                f"the snapshot holds {snapshot.num_worlds} worlds; got {len(dst)} to restore into"
            )
        self._put(snapshot, np.arange(snapshot.num_worlds), dst)

    def fork(self, snapshot: SimSnapshot, world: int, worlds: Sequence[int] | None = None) -> None:
        """Copy world ``world`` of ``snapshot`` into ``worlds`` of this simulator (default all): each
        then evolves exactly as the original would under the actions it is given. The snapshot may
        come from another simulator on the same map with the same capacities and rates (e.g. a
        1-world episode forked into the ``N`` worlds of a planner's rollout simulator)."""
        dst = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=np.int64)
        self._put(snapshot, np.array([snapshot.row(world)]), dst)

    def forks(self, num_worlds: int, render_bev: bool = False, threads: int = 1) -> EmbeddedSimulator:
        """A new simulator of this one's layout with ``num_worlds`` worlds (BEV rendering and threads
        as given), to :meth:`fork` this one's snapshots into: a planner's rollout worlds."""
        return EmbeddedSimulator(
            dataclasses.replace(
                self.config, num_worlds=int(num_worlds), render_bev=render_bev, threads=threads
            )
        )

    def observe(self) -> Observation:
        """The observation of every world now (as the last ``reset``/``step`` returned it, or after
        a :meth:`restore`/:meth:`fork`)."""
        return self._observe()

    def _put(self, snap: SimSnapshot, rows: np.ndarray, worlds: np.ndarray) -> None:
        """Overwrite ``worlds`` with the snapshot's ``rows`` (one, or one per world)."""
        if np.any((worlds < 0) | (worlds >= self.num_worlds)):
            raise ValueError(f"world indices {worlds.tolist()} out of range [0, {self.num_worlds})")
        if snap.layout != self._layout:
            raise ValueError(
                f"the snapshot's simulator layout {snap.layout} differs from this one's {self._layout}; "
                "fork only between simulators with the same capacities, rates, vehicle and driver settings"
            )
        if snap.map_key != self._map_key:
            if self._map_key is not None and len(np.unique(worlds)) < self.num_worlds:
                raise ValueError(
                    f"this simulator runs map {self._map_key}, the snapshot {snap.map_key}; a fork or restore "
                    "that changes the map must fill every world"
                )
            self._adopt_map(snap)
        st = self.state
        st.put(snap.state, rows, worlds)
        self._routes.put(snap.routes, rows, worlds)
        for b, r in zip(worlds.tolist(), np.broadcast_to(rows, worlds.shape).tolist(), strict=True):
            self._route_objects[b] = snap.route_objects[r]
        self._targets[worlds] = snap.targets[rows]
        self._radius[worlds] = snap.radius[rows]
        self._prev_action[worlds] = snap.prev_action[rows]
        self._yaw_rate[worlds] = snap.yaw_rate[rows]
        self._accel_lon[worlds] = snap.accel_lon[rows]
        self._progress[worlds] = snap.progress[rows]
        if snap.projection is not None:
            if self._projection is None:
                B = self.num_worlds
                z = np.zeros(B)
                self._projection = Projection(
                    np.full(B, -1, np.int64), z, z.copy(), z.copy(), z.copy(), np.zeros(B, bool)
                )
            put_projection(self._projection, snap.projection, rows, worlds)
        n = self.config.bev.history
        if n:
            if not self._history:
                self._history = [self.actor_arrays() for _ in range(n)]
            current = take_actors(self._frame_actors(), worlds)  # fallback: a snapshot without history
            for h, frame in enumerate(self._history):
                if snap.history:
                    put_actors(frame, snap.history[min(h, len(snap.history) - 1)], rows, worlds)
                else:
                    put_actors(frame, current, np.arange(len(worlds)), worlds)
        pending = (snap.state.beh_kind[rows] != BehaviourKind.CRUISE) & (snap.state.active[rows] != 0)
        self._scripted = self._scripted or bool((pending & (snap.state.triggered[rows] == 0)).any())

    def _adopt_map(self, snap: SimSnapshot) -> None:
        """Take over the snapshot's map (shared, read-only) and allocate fresh state for it."""
        cfg, rm = self.config, snap.road_map
        self._map, self._map_key, self._arrays, self._signals = (
            rm,
            snap.map_key,
            snap.map_arrays,
            snap.signals,
        )
        self._state = WorldState.allocate(
            self.num_worlds, cfg.max_vehicles, cfg.max_pedestrians, cfg.max_statics,
            len(rm.signal_kind), len(rm.stop_lane),
        )  # fmt: skip
        self._observer = Observer(
            rm, cfg.bev, max_objects=cfg.max_objects, render_bev=cfg.render_bev, pool=self._pool
        )
        self._history = []
        self._routes = RouteBatch(self.num_worlds)
        self._route_objects = [None] * self.num_worlds
        self._projection = None

    # ------------------------------------------------------------------ step

    def _step(self, actions: np.ndarray) -> tuple[Observation, StepEvents]:
        st, m = self.state, self._arrays
        assert m is not None
        cfg = self.config
        NV, NP = cfg.max_vehicles, cfg.max_pedestrians
        B = self.num_worlds
        accel_cmd, steer_cmd = action_to_commands(actions, self._limits)
        st.accel_cmd[:, 0] = accel_cmd
        st.steer_cmd[:, 0] = steer_cmd
        yaw_before = st.yaw[:, 0].copy()
        speed_before = st.speed[:, 0].copy()

        # --- NPC decisions (10 Hz), physics (20 Hz), ego events, background density: one kernel
        hit = np.full(B, -1, np.int32)
        hit_facts = np.zeros((B, 2))
        red = np.full(B, -1, np.int32)
        stop_run = np.full(B, -1, np.int32)
        driven = np.zeros(B)
        args = (
            m, st.F, st.I, st.plan, st.seed, st.W, st.light, st.stop_ok, st.time, NV, NP, self._params,
            self._limits, self._contact, self._substeps, cfg.physics_dt, self._targets, self._radius, RESPAWN_DISTANCE,
            cfg.driver.speed_spread, hit, hit_facts, red, stop_run, driven,
        )  # fmt: skip
        if self._pool is None:
            step_worlds(*args, 0, B)
        else:  # disjoint world ranges on threads (the kernel releases the GIL)
            bounds = np.linspace(0, B, self._pool._max_workers + 1).astype(int)
            jobs = [
                self._pool.submit(step_worlds, *args, lo, hi)
                for lo, hi in itertools.pairwise(bounds)
                if hi > lo
            ]
            for job in jobs:
                job.result()
        self._yaw_rate = wrap_angle(st.yaw[:, 0] - yaw_before) / self.dt
        self._accel_lon = (st.speed[:, 0] - speed_before) / self.dt
        self._prev_action = actions.copy()
        st.W[f.STEP_COUNT] += 1

        # --- scripted triggers and lights, for the next step
        if self._scripted:
            update_triggers(st)
        self._update_lights()

        events = self._measure_ego(hit, hit_facts, red, stop_run, driven)
        self._push_history()
        return self._observe(), events

    # ------------------------------------------------------------------ measurements

    def _update_lights(self) -> None:
        st, m = self.state, self._arrays
        assert m is not None and self._signals is not None
        if st.light.shape[1] == 0:
            return
        states = signal_states(self._signals, st.time, st.signal_offset, st.sig_timing, st.frozen_light)
        st.light[:] = states[:, m.stop_i[f.K_SIGNAL]]

    def _measure_ego(
        self,
        hit: np.ndarray | None = None,
        hit_facts: np.ndarray | None = None,
        red: np.ndarray | None = None,
        stop_run: np.ndarray | None = None,
        driven: np.ndarray | None = None,
    ) -> StepEvents:
        """Track the ego's lane, update its lane plan and route progress; the step's events."""
        st, rm, m = self.state, self._map, self._arrays
        assert rm is not None and m is not None
        B = self.num_worlds
        NV = self.config.max_vehicles
        xy = np.stack([st.F[f.X, :, 0], st.F[f.Y, :, 0]], axis=1)
        progress, deviation = self._routes.update(xy)
        self._progress = progress
        # the plan first (from the route), so the tracker can prefer the route's junction lanes
        plans_from_routes(self._routes.point_lane, self._routes.valid, self._routes.index, st.lane[:, 0],
                          st.plan[:, 0], st.plan_len[:, 0])  # fmt: skip
        lane = np.full(B, -1, np.int64)
        s, lat, he, width = np.zeros(B), np.zeros(B), np.zeros(B), np.zeros(B)
        invasion = np.zeros(B, dtype=bool)
        lost = track_ego(m, st.F, st.I, st.plan, lane, s, lat, he, width, invasion)
        if lost.any():
            self._project_globally(np.flatnonzero(lost), lane, s, lat, he, width)
        inside = np.abs(lat) <= 0.5 * width
        self._projection = Projection(
            lane=lane, s=s, lateral=lat, heading_error=he, distance=np.abs(lat), inside=inside
        )
        hit = np.full(B, -1, np.int32) if hit is None else hit
        hit_facts = np.zeros((B, 2)) if hit_facts is None else hit_facts
        sit = np.empty((B, NUM_SITUATION))
        ego_situation(
            m,
            st.F,
            st.I,
            lane,
            lat,
            width,
            he,
            hit,
            hit_facts,
            self._routes.lanes,
            NV,
            TRAFFIC_SPEED_RADIUS,
            sit,
        )
        st.stop_done[:, 0] = (st.stop_ok.any(axis=1) if st.stop_ok.shape[1] else False) & (
            sit[:, E_IN_JUNCTION] == 0
        )
        none = np.full(B, -1, np.int32)
        return StepEvents(
            sim_time=st.time.copy(),
            collision=sit[:, E_COLLISION] > 0,
            collision_actor=sit[:, E_HIT_ID].astype(np.int32),
            collision_kind=sit[:, E_HIT_KIND].astype(np.int8),
            collision_other_speed=sit[:, E_HIT_SPEED],
            collision_bearing=sit[:, E_HIT_BEARING],
            off_road=sit[:, E_OFF_ROAD] > 0,
            lane_invasion=invasion,
            wrong_way=sit[:, E_WRONG_WAY] > 0,
            on_route_lanes=sit[:, E_ON_ROUTE] > 0,
            red_light=none if red is None else red,
            stop_sign=none.copy() if stop_run is None else stop_run,
            route_progress=progress.copy(),
            route_length=self._routes.length.copy(),
            route_deviation=deviation,
            distance_driven=np.zeros(B) if driven is None else driven,
            ego_x=st.F[f.X, :, 0].copy(),
            ego_y=st.F[f.Y, :, 0].copy(),
            ego_yaw=st.F[f.YAW, :, 0].copy(),
            ego_speed=st.F[f.SPEED, :, 0].copy(),
            ego_accel=self._accel_lon.copy(),
            speed_limit=sit[:, E_SPEED_LIMIT],
            traffic_speed=sit[:, E_TRAFFIC_SPEED],
        )

    def _project_globally(self, worlds: np.ndarray, lane, s, lat, he, width) -> None:
        """Fallback for egos the tracker lost: nearest driving lane (within 10 m, else the nearest)."""
        st, rm, m = self.state, self._map, self._arrays
        assert rm is not None and m is not None
        xy = np.stack([st.x[worlds, 0], st.y[worlds, 0]], axis=1)
        yaw = st.yaw[worlds, 0]
        proj = ego_lane(rm, xy, yaw)
        found = proj.lane >= 0
        lane[worlds] = np.where(found, proj.lane, -1)
        s[worlds], lat[worlds], he[worlds] = proj.s, proj.lateral, proj.heading_error
        sample = (
            m.lane_start[np.maximum(proj.lane, 0)] + 0
        )  # width at the lane's first sample is close enough
        width[worlds] = np.where(found, m.widths[sample], 0.0)
        st.lane[worlds, 0] = lane[worlds]
        st.s[worlds, 0] = np.where(found, proj.s, 0.0)

    # ------------------------------------------------------------------ sensors

    def light_states(self) -> np.ndarray:
        """``int8 [B, K]`` state of every stop line now (a copy)."""
        return self.state.light.copy()

    def actor_arrays(self) -> ActorArrays:
        """A copy of every actor box ``[B, N]`` now (slot 0 the ego)."""
        return self._frame_actors().copy()

    def _frame_actors(self) -> ActorArrays:
        st = self.state
        return ActorArrays(st.x, st.y, st.yaw, st.speed, st.length, st.width, st.kind, st.active != 0, st.ids)

    def _reset_history(self, worlds: np.ndarray) -> None:
        n = self.config.bev.history
        if n == 0:
            return
        now = self.actor_arrays()
        if not self._history:
            self._history = [now.copy() for _ in range(n)]
            return
        for frame in self._history:
            for name in ActorArrays.__dataclass_fields__:
                getattr(frame, name)[worlds] = getattr(now, name)[worlds]

    def _push_history(self) -> None:
        """Every ``HISTORY_PERIOD`` of a world's own steps since its reset, shift its history frames
        by one and put the current boxes first (per world, so that a world's history does not
        depend on when other worlds were reset, nor on earlier episodes)."""
        n = self.config.bev.history
        if n == 0:
            return
        every = max(1, round(HISTORY_PERIOD / self.dt))
        due = np.flatnonzero(self.state.W[f.STEP_COUNT] % every == 0)
        if len(due) == 0:
            return
        if len(due) == self.num_worlds:
            self._history = [self.actor_arrays(), *self._history[:-1]]
            return
        for newer, older in zip(self._history[-2::-1], self._history[:0:-1], strict=True):
            put_actors(older, newer, due, due)
        put_actors(self._history[0], self._frame_actors(), due, due)

    def _observe(self) -> Observation:
        st = self.state
        assert self._observer is not None
        frame = SensorFrame(
            actors=self._frame_actors(),
            history=tuple(self._history),
            light_state=st.light,
            ego=EgoKinematics(
                accel_lon=self._accel_lon,
                accel_lat=st.speed[:, 0] * self._yaw_rate,
                yaw_rate=self._yaw_rate,
                prev_action=self._prev_action,
            ),
        )
        return self._observer.observe(frame, self._routes, self._progress, self._projection)

    # ------------------------------------------------------------------ actors added while running
    # (the CARLA-protocol server spawns, controls and destroys actors between steps)

    def set_step(self, dt: float) -> None:
        """Make one ``step`` advance ``dt`` [s] with one physics step of ``dt`` (NPCs decide every
        step). For a server whose clients choose the step (CARLA's ``fixed_delta_seconds``)."""
        if not dt > 0.0:
            raise ValueError(f"step must be positive, got {dt} s")
        self.config = dataclasses.replace(self.config, decision_dt=float(dt), physics_dt=float(dt))
        self.dt = float(dt)
        self._substeps = 1
        self._params = DriverParams.make(self.config.driver, self.config.vehicle, self.dt)

    def free_slot(self, b: int, kind: ActorKind) -> int | None:
        """The lowest inactive slot of ``kind`` in world ``b`` (vehicles from slot 1: slot 0 is the
        ego's), or ``None`` when all are taken."""
        st, cfg = self.state, self.config
        NV, NP = cfg.max_vehicles, cfg.max_pedestrians
        lo, hi = {
            ActorKind.VEHICLE: (1, NV),
            ActorKind.PEDESTRIAN: (NV, NV + NP),
            ActorKind.STATIC: (NV + NP, st.F.shape[2]),
        }[ActorKind(kind)]
        free = np.flatnonzero(st.active[b, lo:hi] == 0)
        return int(lo + free[0]) if len(free) else None

    def add_actor(self, b: int, actor: ActorSpec, autopilot: bool = False) -> int:
        """Place ``actor`` in a free slot of world ``b`` and return the slot.

        Vehicles with ``autopilot`` are driven by the NPC driver (lane following, IDM, signals;
        :class:`MapError` when farther than 6 m from a driving lane); other vehicles keep the
        commands of :meth:`set_vehicle_command` (initially coasting). Pedestrians stand until
        :meth:`set_walker_command`. Actors added here are never despawned by background traffic,
        which keeps to the slots above them. Raises ``ValueError`` when no slot of the kind is free.
        """
        st = self.state
        kind = ActorKind(actor.kind)
        slot = self.free_slot(b, kind)
        if slot is None:
            raise ValueError(
                f"no free {kind.name.lower()} slot in world {b} (raise sim.max_{kind.name.lower()}s)"
            )
        actor_id = int(st.W[f.NEXT_ID, b])
        st.W[f.NEXT_ID, b] += 1
        for table in (st.F, st.I):
            table[:, b, slot] = 0
        st.kind[b, slot] = int(kind)
        st.lane[b, slot] = st.lane_prev[b, slot] = st.p_target_lane[b, slot] = -1
        if kind == ActorKind.VEHICLE:
            st.plan[b, slot] = -1
            if autopilot:
                self._place_vehicle(b, slot, actor, actor_id)
            else:
                length = actor.length or DEFAULT_SIZE[kind][0]
                width = actor.width or DEFAULT_SIZE[kind][1]
                p = actor.pose
                self._set_box(b, slot, p.x, p.y, p.yaw, length, width, actor_id)
                st.speed[b, slot] = actor.speed
                st.wheelbase[b, slot] = 0.6 * length
                st.speed_factor[b, slot] = 1.0
            st.W[f.FIRST_BG_VEHICLE, b] = max(int(st.W[f.FIRST_BG_VEHICLE, b]), slot + 1)
        elif kind == ActorKind.PEDESTRIAN:
            stand = dataclasses.replace(actor, behaviour=Behaviour(kind=BehaviourKind.STOPPED))
            self._place_pedestrian(b, slot, stand, actor_id)
            st.W[f.FIRST_BG_PEDESTRIAN, b] = max(int(st.W[f.FIRST_BG_PEDESTRIAN, b]), slot + 1)
        else:
            self._place_static(b, slot, actor, actor_id)
        return slot

    def remove_actor(self, b: int, slot: int) -> None:
        """Deactivate the actor in ``slot`` of world ``b`` (the ego's slot 0 included)."""
        self.state.active[b, slot] = 0

    def set_autopilot(self, b: int, slot: int, enabled: bool) -> None:
        """Hand vehicle ``slot`` to the NPC driver (``enabled``) or back to its commands."""
        st = self.state
        if slot < 1 or slot >= self.config.max_vehicles or not st.active[b, slot]:
            raise ValueError(f"slot {slot} of world {b} is not an active non-ego vehicle")
        if not enabled:
            st.lane[b, slot] = -1
            st.plan[b, slot] = -1
            return
        actor = ActorSpec(
            kind=ActorKind.VEHICLE,
            pose=Pose(float(st.x[b, slot]), float(st.y[b, slot]), float(st.yaw[b, slot])),
            speed=float(st.speed[b, slot]),
            length=float(st.length[b, slot]),
            width=float(st.width[b, slot]),
        )
        self._place_vehicle(b, slot, actor, int(st.ids[b, slot]))

    def set_vehicle_command(self, b: int, slot: int, accel: float, steer: float) -> None:
        """Commands of a vehicle not on autopilot: acceleration [m/s²] (< 0 brakes) and front-wheel
        angle [rad] (> 0 left), held until changed. Clipped to the vehicle limits by the physics."""
        st = self.state
        st.accel_cmd[b, slot] = accel
        st.steer_cmd[b, slot] = steer

    def set_walker_autopilot(self, b: int, slot: int, speed: float, max_distance: float = 2.0) -> bool:
        """Hand pedestrian ``slot`` to the pedestrian model, as a background pedestrian: walk along
        the sidewalk within ``max_distance`` [m] at ``speed`` [m/s], turning back or crossing at its
        ends. Whether there was a sidewalk that near (if not, the pedestrian stands)."""
        st = self.state
        st.p_speed[b, slot] = speed
        st.p_target_lane[b, slot] = -1
        if self._onto_sidewalk(b, slot, max_distance):
            return True
        st.mode[b, slot] = STAND
        return False

    def set_walker_command(self, b: int, slot: int, yaw: float, speed: float) -> None:
        """Walk pedestrian ``slot`` along ``yaw`` [rad] at ``speed`` [m/s] until changed (0 stands)."""
        st = self.state
        if speed <= 0.0:
            st.mode[b, slot] = STAND
            return
        st.mode[b, slot] = WALK_FREE
        st.yaw[b, slot] = yaw
        st.p_speed[b, slot] = speed
        st.p_walked[b, slot] = 0.0
        st.p_max_walk[b, slot] = math.inf
        st.p_target_lane[b, slot] = -1
