"""One CARLA world backed by one embedded world: client actors ↔ simulator slots, ticks, events.

Every actor a client spawns gets a CARLA id; vehicles, walkers and props take a slot of the
embedded simulator's world 0 (whose own ego, slot 0, is parked: every actor here is a client's).
Sensors and the spectator have no body. Frames: CARLA's left-handed frame is converted to ours at
this boundary only, with :mod:`sim_bridge.frames`.

Vehicle control → our actuator commands (the physics clips them to ``sim.vehicle`` limits):

- acceleration [m/s²] = ``throttle · max_accel − brake · max_brake``; ``hand_brake`` brakes fully;
  ``reverse`` is not modelled (the kinematic model has no reverse gear): throttle then brakes.
- front-wheel angle [rad] = ``−steer · max_steer`` (CARLA steers right for ``steer`` > 0, our
  angles are counter-clockwise).

Controls hold until replaced, as CARLA's do. Walker control: ``direction`` (CARLA frame) and
``speed`` [m/s]; speed 0 stands. Autopilot: the embedded NPC driver (lane following, IDM, lights,
right of way) drives vehicles handed to it by the legacy ``set_actor_autopilot`` RPC or the
``SetAutopilot`` batch command; the client's own Traffic Manager drives through ``apply_batch``
like any client.

Vehicle doors (``open_door``): an open side door widens the car's body on its side, as the embedded
OPEN_DOOR behaviour does (:meth:`ServerWorld.set_door`).

Collision sensors report, every tick, each actor their parent's box is in contact with (the
simulator's collision response leaves crashed bodies touching; CARLA also reports a persisting
contact every frame), with an impulse of 1500 kg × the relative velocity.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
import numpy as np

from sim_bridge.api import ActorKind, ActorSpec, MapRef, Pose, WorldSpec
from sim_bridge.carla_server import wire
from sim_bridge.carla_server.blueprints import BY_ID, SPECTATOR, TRAFFIC_LIGHT, WALKER_AI, Blueprint
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.frames import carla_to_map, map_to_carla
from sim_bridge.geometry import box_gap, open_door
from sim_bridge.maps.road_map import RoadMap, SignalKind

#: bodies closer than this are in contact (a collision sensor fires) [m]
CONTACT_OFFSET = 0.02
#: mass used for collision impulses [kg]
IMPULSE_MASS = 1500.0
#: the world-state stream's id (``get_sensor_token(1)``)
WORLD_STREAM = 1
#: spawn points are this far apart along each lane [m]
SPAWN_SPACING = 15.0
#: height of spawn points above the road [m] (CARLA's are raised likewise)
SPAWN_Z = 0.3
#: ``TrafficLightData`` as a structured dtype (see ``wire.TRAFFIC_LIGHT_DATA``)
LIGHT_UNION = np.dtype(
    [("sign_id", "S32"), ("green", "<f4"), ("yellow", "<f4"), ("red", "<f4"), ("elapsed", "<f4"),
     ("pole", "<u4"), ("frozen", "u1"), ("state", "u1")]
)  # fmt: skip
assert LIGHT_UNION.itemsize == wire.TRAFFIC_LIGHT_DATA.size
#: a traffic light's times, the columns of ``ServerWorld._light_timing`` (as ``sig_timing``'s) [s]
LIGHT_TIMES = ("green", "yellow", "red")
#: a vehicle within this distance before a light's stop line is "at" that light, as in CARLA's trigger
#: boxes (the Traffic Manager brakes hard once there) [m]
LIGHT_RANGE = 6.0


class SpawnError(RuntimeError):
    """A spawn the world refuses (unknown blueprint, no free slot, off the map)."""


@dataclass
class Actor:
    """A client-visible actor."""

    id: int
    blueprint: Blueprint
    attributes: list  # [[id, type, value]] as the client described it
    parent: int = 0
    slot: int = -1  # simulator slot, -1 none
    relative: wire.Transform = field(default_factory=wire.Transform)  # to the parent (sensors)
    transform: wire.Transform = field(default_factory=wire.Transform)  # bodiless actors
    owner: int = 0  # connection that spawned it
    listening: bool = False
    doors: frozenset[int] = frozenset()  # sides of its open doors (+1 left, -1 right)

    @property
    def is_sensor(self) -> bool:
        return self.blueprint.id.startswith("sensor.")

    def attribute(self, name: str) -> str | None:
        return next((str(a[2]) for a in self.attributes if a[0] == name), None)


class ServerWorld:
    """The simulation behind the server; every public method is thread-safe (one lock)."""

    def __init__(
        self,
        map_ref: MapRef,
        seed: int,
        sim_config: EmbeddedConfig,
        publish: Callable[[int, bytes], None],
        stream_host: str,
        stream_port: int,
    ) -> None:
        self.lock = threading.RLock()
        self._sim_config = sim_config
        self._seed = seed
        self.default_dt = float(sim_config.physics_dt)
        self.settings = wire.EpisodeSettings()
        self.episode_id = 0
        self.frame = 0
        self.elapsed = 0.0
        self.weather = list(wire.CLEAR_NOON)
        self._ids = itertools.count(100)
        self._publish = publish
        self._stream_host, self._stream_port = stream_host, stream_port
        self._limits = sim_config.vehicle
        self._last_state = b""
        _warm_up(map_ref, seed, sim_config)
        self.load(map_ref)

    def load(self, map_ref: MapRef, reset_settings: bool = False) -> None:
        """(Re)start the world on ``map_ref``: a new episode, every actor but the spectator gone."""
        with self.lock:
            sim = EmbeddedSimulator(self._sim_config)
            sim.reset(WorldSpec(map=map_ref, vehicles=0, pedestrians=0, route_length=50.0), self._seed)
            sim.remove_actor(0, 0)  # the embedded ego is parked: every actor here is a client's
            if reset_settings:
                self.settings = wire.EpisodeSettings()
            sim.set_step(self.settings.fixed_delta_seconds or self.default_dt)
            old: EmbeddedSimulator | None = self.__dict__.get("sim")
            if old is not None:
                old.close()
            self.sim = sim
            rm = sim.road_map
            assert rm is not None
            self.road_map: RoadMap = rm
            self.map_name = f"Carla/Maps/{rm.name}"
            self.episode_id += 1
            self.actors: dict[int, Actor] = {}
            spectator = Actor(id=next(self._ids), blueprint=SPECTATOR, attributes=[])
            self.actors[spectator.id] = spectator
            self.spectator = spectator
            n = sim.state.F.shape[2]
            self._prev_velocity = np.zeros((n, 2))  # [slot, (vx, vy)] at the last tick, CARLA frame [m/s]
            self._control = np.zeros((n, 3))  # [slot, (throttle, steer, brake)] as the client sent it
            self._control_flags = np.zeros((n, 3), np.uint8)  # [slot, (hand_brake, reverse, manual)]
            self._gear = np.zeros(n, np.int32)
            #: [slot] how far the body's centre lies left of the actor's origin (an open door's) [m]
            self._door_shift = np.zeros(n)
            #: blueprints of destroyed actors: a client's Traffic Manager may still ask their boxes
            self.destroyed: dict[int, Blueprint] = {}
            self._add_traffic_lights()
            self.spawn_points = self._spawn_points()

    # ------------------------------------------------------------------ map and traffic lights

    def _add_traffic_lights(self) -> None:
        """One ``traffic.traffic_light`` actor per signalised OpenDRIVE signal, at its pole."""
        rm = self.road_map
        self.light_signal: dict[int, int] = {}  # actor id → signal index
        self._signal_light = np.full(len(rm.signal_kind), 0, np.int64)  # signal → actor id (0 none)
        self._signal_stop = np.full(len(rm.signal_kind), -1, np.int64)  # signal → a stop line
        self._lane_stop = np.full(rm.num_lanes + 1, -1, np.int64)  # lane → its light's stop line
        is_light = rm.signal_kind == SignalKind.TRAFFIC_LIGHT
        self._sign_ids = np.array([i.encode()[:31] for i in rm.signal_xodr_id], dtype="S32")
        #: [signal, LIGHT_TIMES] each light's times [s], as the client set them
        self._light_timing = np.tile(self.sim.state.sig_timing[0], (len(rm.signal_kind), 1))
        for k in range(len(rm.stop_lane)):
            sig = int(rm.stop_signal[k])
            if is_light[sig]:
                self._lane_stop[rm.stop_lane[k]] = k
                if self._signal_stop[sig] < 0:
                    self._signal_stop[sig] = k
        for light_sig in np.flatnonzero(is_light):
            sig = int(light_sig)
            px, py = rm.signal_position[sig]
            cx, cy, _ = map_to_carla(float(px), float(py))
            light = Actor(
                id=next(self._ids),
                blueprint=TRAFFIC_LIGHT,
                attributes=[],
                transform=wire.Transform(cx, cy, 0.0),
            )
            self.actors[light.id] = light
            self.light_signal[light.id] = sig
            self._signal_light[sig] = light.id

    def _signal_states(self) -> np.ndarray:
        """``int [S]`` CARLA ``TrafficLightState`` of every signal now (Unknown without a stop line)."""
        k = self._signal_stop
        ours = self.sim.state.light[0, np.maximum(k, 0)].astype(np.int64) if len(k) else np.zeros(0, np.int64)
        # a light set since the last tick shows its new state at once (set_state, then freeze)
        frozen = self.sim.state.frozen_light[0, : len(k)].astype(np.int64)
        ours = np.where(frozen >= 0, frozen, ours)
        return np.where(k >= 0, 2 - ours, int(wire.TrafficLightState.UNKNOWN))  # ours: GREEN 0 … RED 2

    def set_light(self, actor_id: int, state: int | None) -> None:
        """Hold traffic light ``actor_id`` in CARLA ``state`` (``None``: back to its cycle)."""
        with self.lock:
            sig = self.light_signal.get(int(actor_id))
            if sig is None:
                raise KeyError(f"traffic light {actor_id} does not exist")
            frozen = self.sim.state.frozen_light
            if state is None:
                frozen[0, sig] = -1
            elif 0 <= state <= 2:
                frozen[0, sig] = 2 - state
            else:
                raise ValueError(f"traffic-light state {state} is not Red (0), Yellow (1) or Green (2)")

    def freeze_light(self, actor_id: int, frozen: bool) -> None:
        """Hold traffic light ``actor_id`` in the state it shows (a state set before stays), or
        let it follow its cycle again."""
        with self.lock:
            sig = self.light_signal.get(int(actor_id))
            if sig is None:
                raise KeyError(f"traffic light {actor_id} does not exist")
            state = int(self._signal_states()[sig])
            if not frozen:
                self.set_light(actor_id, None)
            elif self.sim.state.frozen_light[0, sig] < 0 and state <= 2:
                self.set_light(actor_id, state)

    def set_light_time(self, actor_id: int, phase: str, seconds: float) -> None:
        """Traffic light ``actor_id``'s ``phase`` time (one of :data:`LIGHT_TIMES`) [s]: what the
        world state reports for it; the world's cycle (one timing for every light) follows once
        every light has the same times, as a client that times all lights alike sets them."""
        with self.lock:
            sig = self.light_signal.get(int(actor_id))
            if sig is None:
                raise KeyError(f"traffic light {actor_id} does not exist")
            if not seconds >= 0.0:
                raise ValueError(f"a traffic light's time must be >= 0 s; got {seconds}")
            self._light_timing[sig, LIGHT_TIMES.index(phase)] = float(seconds)
            rows = self._light_timing[list(self.light_signal.values())]
            if (rows == rows[0]).all() and rows[0].sum() > 0.0:
                self.sim.state.sig_timing[0] = rows[0]

    def freeze_all_lights(self, frozen: bool) -> None:
        with self.lock:
            states = self._signal_states()
            for actor_id, sig in self.light_signal.items():
                self.set_light(actor_id, int(states[sig]) if frozen and states[sig] <= 2 else None)

    def group_of(self, actor_id: int) -> list[int]:
        """The traffic lights of the same junction as ``actor_id``."""
        with self.lock:
            sig = self.light_signal.get(int(actor_id))
            if sig is None:
                raise KeyError(f"traffic light {actor_id} does not exist")
            junction = self.road_map.signal_junction
            return [
                a for a, g in self.light_signal.items() if junction[g] == junction[sig] and junction[sig] >= 0
            ] or [int(actor_id)]

    def _spawn_points(self) -> list[wire.Transform]:
        rm = self.road_map
        lane, s = rm.spawn_points(spacing=SPAWN_SPACING)
        xy, yaw = rm.pose_at(lane, s)
        cx, cy, cyaw = map_to_carla(xy[:, 0], xy[:, 1], yaw)
        return [
            wire.Transform(float(x), float(y), SPAWN_Z, 0.0, float(a), 0.0)
            for x, y, a in zip(cx, cy, cyaw, strict=True)
        ]

    # ------------------------------------------------------------------ actors

    def pack_actor(self, actor: Actor) -> list:
        """``rpc::Actor`` of ``actor``."""
        bp = actor.blueprint
        token = (
            wire.stream_token(actor.id, self._stream_host, self._stream_port)
            if bp.id == "sensor.other.collision"
            else b""
        )
        return [
            actor.id,
            actor.parent,
            [bp.uid, bp.id, actor.attributes],
            wire.bounding_box(bp.extent),
            bp.semantic_tags,
            token,
        ]

    def spawn(self, description: list, transform: list, parent: int = 0, owner: int = 0) -> Actor:
        """Spawn from an ``ActorDescription`` at a ``Transform`` (relative to ``parent`` if any)."""
        _uid, bp_id, attrs = description
        bp = BY_ID.get(bp_id)
        if bp is None:
            raise SpawnError(f"unknown blueprint {bp_id!r}; this server offers {sorted(BY_ID)}")
        tf = wire.Transform.unpack(transform)
        with self.lock:
            if parent and parent not in self.actors:
                raise SpawnError(f"parent actor {parent} does not exist")
            actor = Actor(id=next(self._ids), blueprint=bp, attributes=[list(a) for a in attrs], owner=owner)
            if parent:
                actor.parent, actor.relative = parent, tf
            if bp.kind is not None:
                world_tf = self.transform_of(self.actors[parent]).compose(tf) if parent else tf
                x, y, yaw = carla_to_map(world_tf.x, world_tf.y, world_tf.yaw)
                spec = ActorSpec(
                    kind=bp.kind, pose=Pose(float(x), float(y), float(yaw)),
                    length=2.0 * bp.extent[0], width=2.0 * bp.extent[1],
                )  # fmt: skip
                if bp.kind != ActorKind.STATIC:
                    self._check_spawn_clear(bp_id, spec)
                try:
                    actor.slot = self.sim.add_actor(0, spec)
                except ValueError as exc:
                    raise SpawnError(f"cannot spawn {bp_id}: {exc}") from exc
                if bp.kind == ActorKind.PEDESTRIAN:
                    self.sim.state.p_speed[0, actor.slot] = 1.4
                self._prev_velocity[actor.slot] = 0.0
                self._control[actor.slot], self._control_flags[actor.slot], self._gear[actor.slot] = 0.0, 0, 0
                self._door_shift[actor.slot] = 0.0
            else:
                actor.transform = tf
            self.actors[actor.id] = actor
            return actor

    def _check_spawn_clear(self, bp_id: str, spec: ActorSpec) -> None:
        """CARLA refuses to spawn a body into another (``spawn_actor`` raises, ``try_spawn_actor``
        returns ``None``, a batch ``SpawnActor`` reports the error): the same message here when
        the new box overlaps a vehicle or walker already in the world."""
        st = self.sim.state
        slots = [a.slot for a in self.actors.values() if a.slot >= 0 and a.blueprint.kind != ActorKind.STATIC]
        p = spec.pose
        for k in slots:
            gap = box_gap(
                p.x, p.y, p.yaw, float(spec.length or 0.0), float(spec.width or 0.0),
                float(st.x[0, k]), float(st.y[0, k]), float(st.yaw[0, k]), float(st.length[0, k]), float(st.width[0, k]),
            )[0]  # fmt: skip
            if gap < 0.0:
                raise SpawnError(f"Spawn failed because of collision at spawn position ({bp_id})")

    def destroy(self, actor_id: int) -> bool:
        """Destroy an actor and what is attached to it; ``False`` if it does not exist."""
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor is self.spectator or actor_id in self.light_signal:
                return False
            for child in [a.id for a in self.actors.values() if a.parent == actor_id]:
                self.destroy(child)
            if actor.slot >= 0:
                self.sim.remove_actor(0, actor.slot)
            parent = self.actors.get(actor.parent)
            if actor.blueprint.id == WALKER_AI and parent is not None and parent.slot >= 0:
                self.sim.set_walker_command(0, parent.slot, 0.0, 0.0)  # its walker stands again
            del self.actors[actor_id]
            self.destroyed[actor_id] = actor.blueprint
            return True

    def destroy_owned_by(self, owner: int) -> int:
        with self.lock:
            ids = [a.id for a in self.actors.values() if a.owner == owner and owner]
            return sum(self.destroy(i) for i in ids)

    def body(self, actor_id: int, kind: ActorKind | None = None) -> Actor:
        actor = self.actors.get(actor_id)
        if actor is None or actor.slot < 0 or (kind is not None and actor.blueprint.kind != kind):
            what = "actor" if kind is None else kind.name.lower()
            raise KeyError(f"{what} {actor_id} does not exist")
        return actor

    def apply_vehicle_control(self, actor_id: int, control: wire.VehicleControl) -> None:
        with self.lock:
            actor = self.body(actor_id, ActorKind.VEHICLE)
            self._control[actor.slot] = (control.throttle, control.steer, control.brake)
            self._control_flags[actor.slot] = (control.hand_brake, control.reverse, control.manual_gear_shift)
            self._gear[actor.slot] = control.gear
            lim = self._limits
            if control.hand_brake:
                accel = -lim.max_brake
            elif control.reverse:
                accel = -max(control.throttle, control.brake) * lim.max_brake
            else:
                accel = control.throttle * lim.max_accel - control.brake * lim.max_brake
            self.sim.set_vehicle_command(0, actor.slot, accel, -control.steer * lim.max_steer)

    def apply_walker_control(self, actor_id: int, control: list) -> None:
        (dx, dy, _), speed = control[0], float(control[1])
        with self.lock:
            actor = self.body(actor_id, ActorKind.PEDESTRIAN)
            _, _, yaw = carla_to_map(0.0, 0.0, math.degrees(math.atan2(dy, dx)))
            self.sim.set_walker_command(0, actor.slot, float(yaw), speed if math.hypot(dx, dy) > 0 else 0.0)

    def start_walker_ai(self, walker_id: int) -> bool:
        """Walker ``walker_id``'s ``controller.ai.walker`` started: the walker walks along the nearest
        sidewalk (within 2 m) at its ``speed`` attribute [m/s] (default 1.4), as our background
        pedestrians do; whether it does (``False``: it has no AI controller, or no sidewalk is near).
        """
        with self.lock:
            walker = self.body(walker_id, ActorKind.PEDESTRIAN)
            if not any(a.parent == walker_id and a.blueprint.id == WALKER_AI for a in self.actors.values()):
                return False
            try:
                speed = float(walker.attribute("speed") or 1.4)
            except ValueError:
                speed = 1.4
            return self.sim.set_walker_autopilot(0, walker.slot, speed if speed > 0.0 else 1.4)

    def set_autopilot(self, actor_id: int, enabled: bool) -> None:
        with self.lock:
            actor = self.body(actor_id, ActorKind.VEHICLE)
            self.sim.set_autopilot(0, actor.slot, enabled)

    def set_transform(self, actor_id: int, transform: wire.Transform) -> None:
        with self.lock:
            actor = self.actors[actor_id]
            if actor.slot < 0:
                if actor.parent:
                    actor.relative = transform
                else:
                    actor.transform = transform
                return
            st = self.sim.state
            x, y, yaw = carla_to_map(transform.x, transform.y, transform.yaw)
            shift = self._door_shift[actor.slot]
            st.x[0, actor.slot], st.y[0, actor.slot] = x - math.sin(yaw) * shift, y + math.cos(yaw) * shift
            st.yaw[0, actor.slot] = yaw
            if st.lane[0, actor.slot] >= 0:  # on autopilot: find its lane again
                self.sim.set_autopilot(0, actor.slot, True)

    def set_velocity(self, actor_id: int, velocity: list) -> None:
        with self.lock:
            actor = self.body(actor_id)
            self.sim.state.speed[0, actor.slot] = math.hypot(float(velocity[0]), float(velocity[1]))

    def transform_of(self, actor: Actor) -> wire.Transform:
        """Where ``actor`` is now (CARLA frame)."""
        if actor.slot >= 0:
            ox, oy = self._origins(np.array([actor.slot]))
            x, y, yaw = map_to_carla(ox[0], oy[0], self.sim.state.yaw[0, actor.slot])
            return wire.Transform(float(x), float(y), 0.0, 0.0, float(yaw), 0.0)
        if actor.parent and actor.parent in self.actors:
            return self.transform_of(self.actors[actor.parent]).compose(actor.relative)
        return actor.transform

    def _origins(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[N]`` x, y of the actors' origins (map frame) [m]: their bodies' centres, but for cars
        with a door open, whose body is widened on that side (:meth:`set_door`)."""
        st = self.sim.state
        x, y, yaw, shift = st.x[0, slots], st.y[0, slots], st.yaw[0, slots], self._door_shift[slots]
        return x + np.sin(yaw) * shift, y - np.cos(yaw) * shift

    def set_door(self, actor_id: int, door: int, opened: bool) -> None:
        """Open or close vehicle ``actor_id``'s door ``door`` (``carla.VehicleDoor``: FL 0, FR 1,
        RL 2, RR 3, Hood 4, Trunk 5, All 6). An open side door widens the car's body on its side
        by the ``door_width`` attribute, as the embedded OPEN_DOOR behaviour
        (:func:`sim_bridge.geometry.open_door`): it collides and shows there; the actor's transform
        stays the car's. Vehicles without ``has_dynamic_doors``, the hood and the trunk: nothing
        changes (CARLA opens what the model has)."""
        sides = {0: (1,), 1: (-1,), 2: (1,), 3: (-1,), 4: (), 5: (), 6: (1, -1)}.get(int(door))
        if sides is None:
            raise ValueError(f"vehicle door {door} is none of FL 0, FR 1, RL 2, RR 3, Hood 4, Trunk 5, All 6")
        with self.lock:
            actor = self.body(actor_id, ActorKind.VEHICLE)
            defaults = actor.blueprint.defaults()
            if defaults.get("has_dynamic_doors", (0, "false"))[1] != "true" or not sides:
                return
            try:
                reach = float(actor.attribute("door_width") or defaults["door_width"][1])
            except ValueError:
                reach = float(defaults["door_width"][1])
            actor.doors = actor.doors | set(sides) if opened else actor.doors - set(sides)
            k = actor.slot
            st = self.sim.state
            ox, oy = (float(v[0]) for v in self._origins(np.array([k])))
            yaw = float(st.yaw[0, k])
            x, y, width = ox, oy, 2.0 * actor.blueprint.extent[1]
            for side in sorted(actor.doors):
                x, y, width = open_door(x, y, yaw, width, reach, side)
            st.x[0, k], st.y[0, k], st.width[0, k] = x, y, width
            self._door_shift[k] = -math.sin(yaw) * (x - ox) + math.cos(yaw) * (y - oy)

    # ------------------------------------------------------------------ settings and ticks

    def apply_settings(self, settings: wire.EpisodeSettings) -> None:
        with self.lock:
            self.settings = settings
            self.sim.set_step(settings.fixed_delta_seconds or self.default_dt)

    @property
    def dt(self) -> float:
        return float(self.sim.dt)

    def tick(self) -> int:
        """Advance by one step, publish the world state and sensor events; the new frame."""
        with self.lock:
            self.sim.step(np.zeros((1, 2)))
            self.frame += 1
            self.elapsed += self.dt
            records = self._records()
            self._last_state = wire.world_state(
                self.frame, self.elapsed, self.dt, self.episode_id, time.time(), records
            )
            self._publish(WORLD_STREAM, self._last_state)
            self._collision_events()
            return self.frame

    @property
    def last_state(self) -> bytes:
        with self.lock:
            return self._last_state

    def _records(self) -> np.ndarray:
        st = self.sim.state
        actors = list(self.actors.values())
        rec = np.zeros(len(actors), wire.ACTOR_RECORD)
        rec["id"] = [a.id for a in actors]
        rec["state"] = wire.ACTOR_ACTIVE
        bodies = np.array([i for i, a in enumerate(actors) if a.slot >= 0], dtype=np.int64)
        if len(bodies):
            slots = np.array([actors[i].slot for i in bodies])
            (x, y), yaw, v = self._origins(slots), st.yaw[0, slots], st.speed[0, slots]
            cx, cy, cyaw = map_to_carla(x, y, yaw)
            tf = np.zeros((len(bodies), 6))
            tf[:, 0], tf[:, 1], tf[:, 4] = cx, cy, cyaw
            rec["transform"][bodies] = tf
            vx, vy = v * np.cos(yaw), -v * np.sin(yaw)
            rec["velocity"][bodies] = np.stack([vx, vy, np.zeros_like(vx)], axis=1)
            steer = st.steer[0, slots]
            wheelbase = st.wheelbase[0, slots]
            beta = np.arctan(0.5 * np.tan(steer))
            yaw_rate = v * np.cos(beta) * np.tan(steer) / np.maximum(wheelbase, 1e-3)
            is_vehicle = st.kind[0, slots] == ActorKind.VEHICLE
            rec["angular_velocity"][bodies, 2] = np.where(is_vehicle, -np.degrees(yaw_rate), 0.0)
            vel = np.stack([vx, vy], axis=1)
            rec["acceleration"][bodies, :2] = (vel - self._prev_velocity[slots]) / self.dt
            self._prev_velocity[slots] = vel
            rm = self.road_map
            proj = rm.project(np.stack([x, y], axis=1), yaw, max_distance=5.0)
            limit = np.where(proj.lane >= 0, rm.lane_speed_limit[np.maximum(proj.lane, 0)], 0.0) * 3.6
            rec["speed_limit"][bodies] = np.where(is_vehicle, limit, 0.0)
            # a vehicle at no light reports Green, as CARLA's do (its vehicle telemetry's default):
            # the client's Traffic Manager takes a junction ahead of a car whose state is not Green
            # (nor Off) for an unsignalised one, where it stops and gives way to whoever is inside
            rec["light_state"][bodies[is_vehicle]] = int(wire.TrafficLightState.GREEN)
            # the light a vehicle approaches (within LIGHT_RANGE of its stop line), as CARLA's trigger boxes
            k = self._lane_stop[np.where(proj.lane >= 0, proj.lane, -1)]
            ahead = rm.stop_s[np.maximum(k, 0)] - proj.s if len(rm.stop_s) else np.zeros(len(k))
            at_light = is_vehicle & (k >= 0) & (ahead >= -1.0) & (ahead <= LIGHT_RANGE)
            if at_light.any():
                sig = rm.stop_signal[k[at_light]]
                rows = bodies[at_light]
                rec["has_light"][rows] = 1
                rec["light_state"][rows] = self._signal_states()[sig]
                rec["light_id"][rows] = self._signal_light[sig]
            cars, car_slots = bodies[is_vehicle], slots[is_vehicle]
            rec["control"][cars] = self._control[car_slots]
            rec["hand_brake"][cars] = self._control_flags[car_slots, 0]
            rec["reverse"][cars] = self._control_flags[car_slots, 1]
            rec["manual_gear_shift"][cars] = self._control_flags[car_slots, 2]
            rec["gear"][cars] = self._gear[car_slots]
        for i, a in enumerate(actors):
            if a.slot < 0:
                t = self.transform_of(a)
                rec["transform"][i] = (t.x, t.y, t.z, t.pitch, t.yaw, t.roll)
        if self.light_signal:
            rows = np.array([i for i, a in enumerate(actors) if a.id in self.light_signal], dtype=np.int64)
            sig = np.array([self.light_signal[actors[i].id] for i in rows], dtype=np.int64)
            light = np.zeros(len(rows), LIGHT_UNION)
            light["sign_id"] = self._sign_ids[sig]
            light["green"], light["yellow"], light["red"] = self._light_timing[sig].T
            light["frozen"] = st.frozen_light[0, sig] >= 0
            light["state"] = self._signal_states()[sig]
            raw = rec.view(np.uint8).reshape(len(rec), wire.ACTOR_RECORD.itemsize)
            raw[rows, wire.UNION_OFFSET :] = light.view(np.uint8).reshape(len(rows), LIGHT_UNION.itemsize)
        return rec

    def _collision_events(self) -> None:
        sensors = [a for a in self.actors.values() if a.blueprint.id == "sensor.other.collision" and a.parent]
        if not sensors:
            return
        st = self.sim.state
        by_slot = {a.slot: a for a in self.actors.values() if a.slot >= 0}
        slots = np.array(sorted(by_slot), dtype=np.int64)
        for sensor in sensors:
            parent = self.actors.get(sensor.parent)
            if parent is None or parent.slot < 0:
                continue
            p = parent.slot
            others = slots[slots != p]
            if not len(others):
                continue
            hit = in_contact(
                st.x[0, p], st.y[0, p], st.yaw[0, p], st.length[0, p], st.width[0, p],
                st.x[0, others], st.y[0, others], st.yaw[0, others], st.length[0, others], st.width[0, others],
            )  # fmt: skip
            for j in others[hit]:
                other = by_slot[int(j)]
                # on the parent, from the other towards it (the contact response has already
                # exchanged the bodies' momentum, so the closing speed is the size, not the sign)
                rel = self._velocity(p) - self._velocity(int(j))
                away = np.array([st.x[0, p] - st.x[0, j], st.y[0, p] - st.y[0, j]])
                away /= max(float(np.hypot(*away)), 1e-9)
                size = IMPULSE_MASS * float(np.hypot(*rel))
                impulse = [float(size * away[0]), float(-size * away[1]), 0.0]  # CARLA's y is ours flipped
                payload = wire.sensor_header(
                    wire.SensorType.COLLISION, self.frame, self.elapsed, self.transform_of(sensor)
                ) + msgpack.packb(
                    [self.pack_actor(parent), self.pack_actor(other), impulse], use_bin_type=True
                )
                self._publish(sensor.id, payload)

    def _velocity(self, slot: int) -> np.ndarray:
        st = self.sim.state
        v, yaw = st.speed[0, slot], st.yaw[0, slot]
        return np.array([v * np.cos(yaw), v * np.sin(yaw)])


_warm = False


def _warm_up(map_ref: MapRef, seed: int, sim_config: EmbeddedConfig) -> None:
    """Compile the simulator's kernels once per process, on a throwaway world with traffic and
    pedestrians, before any client waits on a tick: with numba's cache cold (a fresh checkout) the
    first tick took 37 s on a loaded 2-core machine, past a client's 10 s time-out, holding the
    world's lock; warm, this costs one extra reset."""
    global _warm
    if _warm:
        return
    sim = EmbeddedSimulator(sim_config)
    try:
        sim.reset(WorldSpec(map=map_ref, vehicles=2, pedestrians=2, route_length=50.0), seed)
        for _ in range(2):
            sim.step(np.zeros((1, 2)))
    finally:
        sim.close()
    _warm = True


def in_contact(x, y, yaw, length, width, ox, oy, oyaw, olength, owidth) -> np.ndarray:
    """Is one oriented box in contact with each of ``N`` others: overlapping, or closer than
    :data:`CONTACT_OFFSET`? ``bool [N]``. (The simulator separates bodies at each contact, so a
    crash leaves them touching rather than overlapping; PhysX reports contacts within its contact
    offset the same way.)"""
    out = np.zeros(len(ox), dtype=bool)
    for k in range(len(ox)):
        gap = box_gap(
            float(x), float(y), float(yaw), float(length), float(width),
            float(ox[k]), float(oy[k]), float(oyaw[k]), float(olength[k]), float(owidth[k]),
        )[0]  # fmt: skip
        out[k] = gap <= CONTACT_OFFSET
    return out
