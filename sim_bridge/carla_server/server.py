"""``CarlaServer``: the embedded simulator behind CARLA 0.9.16's own wire protocol.

The unmodified ``carla`` client connects to it as to a CARLA server: RPC on ``port``, sensor and
world-state streams on ``port + 1`` (as CARLA's ``-carla-streaming-port`` default). Several
clients may connect at once; they share one world. Calls this server does not implement answer
CARLA's error reply naming the call (the client raises ``RuntimeError``), never a hang.

Implemented calls: connection (``version``, ``get_episode_info``, ``get_sensor_token``), settings
(``get/set_episode_settings``, synchronous mode, ``fixed_delta_seconds``), map (``get_map_info``
with spawn points, ``get_map_data`` = our OpenDRIVE, ``get_required_files``,
``copy_opendrive_to_file`` + ``load_new_episode`` = ``generate_opendrive_world``), blueprints
(``get_actor_definitions``), actors (``spawn_actor``, ``spawn_actor_with_parent``,
``destroy_actor``, ``get_actors_by_id``, ``get_actor_bounding_box``, ``get_spectator``,
transforms, target velocity, ``set_actor_autopilot``), controls (``apply_control_to_vehicle``,
``apply_control_to_walker``), vehicle doors (``open_vehicle_door``, ``close_vehicle_door``: an
open side door widens the car's body, as the embedded OPEN_DOOR behaviour), ``apply_batch`` (spawn
with ``do_after``, destroy, vehicle and walker control, transform, autopilot), ``tick_cue``,
weather, traffic lights (``set_traffic_light_state``, ``set_traffic_light_green_time`` / ``yellow``
/ ``red``, ``freeze_traffic_light``, ``freeze_all_traffic_lights``, ``reset_all_traffic_lights``,
``reset_traffic_light_group``, ``get_group_traffic_lights``), vehicle light states, the Traffic Manager registry (and waking a
client's Traffic Manager that lost its tick signal: :mod:`sim_bridge.carla_server.tm_watch`).
Streams: the world state every tick (actors, vehicle controls and the light each vehicle stands
at, traffic-light states with their OpenDRIVE ids) and collision events. See
:mod:`sim_bridge.carla_server.world` for the physics mapping.

AI walker controllers (``controller.ai.walker``): once started (the client's ``start()``, seen as
its walker's collisions turned off), the walker walks along the sidewalks at its ``speed``
attribute, as our background pedestrians; ``go_to_location`` and ``set_max_speed`` are the
client's own navigation, which needs a navigation mesh this server does not serve (the client
prints ``NAV: failed``, ``get_random_location_from_navigation()`` is ``None``): never seen here.
Destroying the controller stops its walker.

Not served (the call's error names it): cameras, lidars and other rendered sensors, navigation
meshes, physics control, recorder and replayer, Ackermann control, debug drawing,
map layers, environment objects.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim_bridge.api import ActorKind, MapRef
from sim_bridge.carla_server import wire
from sim_bridge.carla_server.blueprints import LIBRARY
from sim_bridge.carla_server.tm_watch import TrafficManagerWatch
from sim_bridge.carla_server.transport import RpcServer, StreamServer
from sim_bridge.carla_server.world import WORLD_STREAM, ServerWorld, SpawnError
from sim_bridge.embedded.config import EmbeddedConfig

log = logging.getLogger(__name__)


@dataclass
class CarlaServerConfig:
    """``drive serve-carla``: where to listen and which world to serve."""

    host: str = "127.0.0.1"
    """Address to bind; another than loopback only when asked (the protocol has no authentication)."""
    port: int = 2000
    """RPC port [TCP]; streams use ``port + 1`` (0: any free pair, for tests)."""
    map: MapRef = field(default_factory=MapRef)
    """The map served (a procedural town or an ``.xodr`` file)."""
    seed: int = 0
    """Seed of the embedded world."""
    destroy_on_disconnect: bool = False
    """Destroy the actors a client spawned when it disconnects (CARLA keeps them)."""
    tm_wake_after: float = 2.0
    """Wake a client's Traffic Manager that missed its tick signal after this long [s] (0: never;
    see :mod:`sim_bridge.carla_server.tm_watch`). Its cycle normally starts within milliseconds of
    the tick, and within about 0.15 s on a loaded 2-core machine."""
    sim: EmbeddedConfig = field(
        default_factory=lambda: EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05)
    )
    """The embedded world: slots (``max_vehicles`` …), vehicle limits, NPC driver; its
    ``physics_dt`` is the step of asynchronous mode and of synchronous mode without a fixed delta."""


Handler = Callable[[int, list], Any]


class CarlaServer:
    """Start with :meth:`start` (or as a context manager), stop with :meth:`stop`."""

    def __init__(self, config: CarlaServerConfig | None = None) -> None:
        self.config = config or CarlaServerConfig()
        cfg = self.config
        self._rpc = RpcServer(cfg.host, cfg.port, self._dispatch, self._disconnected)
        stream_port = self._rpc.port + 1 if cfg.port else 0
        self._streams = StreamServer(cfg.host, stream_port, self._subscribed)
        self.world = ServerWorld(cfg.map, cfg.seed, cfg.sim, self._streams.send, cfg.host, self._streams.port)
        self.traffic_managers = TrafficManagerWatch(cfg.tm_wake_after, self._synchronous)
        self._map_ref = cfg.map
        self._pending_xodr: str | None = None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._async_ticks, name="carla-async-ticks", daemon=True)
        self._handlers: dict[str, Handler] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    @property
    def port(self) -> int:
        return self._rpc.port

    @property
    def stream_port(self) -> int:
        return self._streams.port

    def start(self) -> CarlaServer:
        self._streams.start()
        self._rpc.start()
        self._ticker.start()
        self.traffic_managers.start()
        log.info(
            "CARLA %s server on %s:%d (streams :%d), map %s",
            wire.CARLA_VERSION, self.config.host, self.port, self.stream_port, self.world.map_name,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._stop.set()
        self.traffic_managers.stop()
        self._rpc.stop()
        self._streams.stop()
        self.world.sim.close()

    def __enter__(self) -> CarlaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted."""
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # ------------------------------------------------------------------ plumbing

    def _dispatch(self, cid: int, name: str, args: list) -> Any:
        handler = self._handlers.get(name)
        if handler is None:
            log.warning("unimplemented RPC %s%s", name, tuple(args))
            return wire.error(
                f"hours2drive CARLA server: RPC '{name}' is not implemented "
                f"(this server speaks CARLA {wire.CARLA_VERSION} for the calls listed in sim_bridge.carla_server)"
            )
        try:
            with self.traffic_managers.call(cid, name):
                return handler(cid, *args)
        except (SpawnError, KeyError, ValueError, TypeError, IndexError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return wire.error(f"{name}: {message}")

    def _disconnected(self, cid: int) -> None:
        self.traffic_managers.disconnected(cid)
        if self.config.destroy_on_disconnect:
            n = self.world.destroy_owned_by(cid)
            if n:
                log.info("client %d left: destroyed its %d actors", cid, n)

    def _subscribed(self, stream_id: int, sock) -> None:
        if stream_id == WORLD_STREAM and self.world.last_state:
            self._streams.send_to(sock, stream_id, self.world.last_state)

    def _async_ticks(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            if self.world.settings.synchronous_mode:
                self._stop.wait(0.01)
                next_time = time.monotonic()
                continue
            self.world.tick()
            next_time += self.world.dt
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def _synchronous(self) -> bool:
        return bool(self.world.settings.synchronous_mode)

    def _token(self, stream_id: int) -> bytes:
        return wire.stream_token(stream_id, self.config.host, self.stream_port)

    # ------------------------------------------------------------------ connection, settings, map

    def rpc_version(self, cid: int) -> list:
        return wire.ok(wire.CARLA_VERSION)

    def rpc_get_episode_info(self, cid: int) -> list:
        return wire.ok([self.world.episode_id, [self._token(WORLD_STREAM)]])

    def rpc_get_sensor_token(self, cid: int, stream_id: int) -> list:
        return wire.ok([self._token(int(stream_id))])

    def rpc_get_episode_settings(self, cid: int) -> list:
        return wire.ok(self.world.settings.pack())

    def rpc_set_episode_settings(self, cid: int, settings: list) -> list:
        self.world.apply_settings(wire.EpisodeSettings.unpack(settings))
        return wire.ok(self.world.frame)

    def rpc_get_required_files(self, cid: int, folder: str = "") -> list:
        return wire.ok([])

    def rpc_get_map_info(self, cid: int) -> list:
        return wire.ok([self.world.map_name, [t.pack() for t in self.world.spawn_points]])

    def rpc_get_map_data(self, cid: int) -> list:
        return wire.ok(self.world.road_map.xodr)

    def rpc_copy_opendrive_to_file(self, cid: int, opendrive: str, params: Any = None) -> list:
        """``client.generate_opendrive_world``, first half: keep the OpenDRIVE for the next load."""
        self._pending_xodr = opendrive
        return wire.void()

    def rpc_load_new_episode(self, cid: int, map_name: str, reset_settings: bool = True, *rest: Any) -> list:
        """Load a map: ``OpenDriveMap`` (the OpenDRIVE sent by ``copy_opendrive_to_file``), a
        procedural town by name, or the current map again (a fresh episode)."""
        name = str(map_name).rsplit("/", 1)[-1]
        if name == "OpenDriveMap":
            if self._pending_xodr is None:
                raise ValueError("load OpenDriveMap: no OpenDRIVE was sent (copy_opendrive_to_file)")
            digest = hashlib.sha1(self._pending_xodr.encode()).hexdigest()[:12]
            path = Path(tempfile.gettempdir()) / f"hours2drive-carla-{digest}.xodr"
            path.write_text(self._pending_xodr, encoding="utf-8")
            ref = MapRef(xodr=str(path))
        elif name == self.world.map_name.rsplit("/", 1)[-1]:
            ref = self._map_ref
        else:
            town, _, seed = name.rpartition("_")
            if not town or not seed.isdigit():
                raise ValueError(
                    f"unknown map {map_name!r}: this server loads OpenDriveMap (generate_opendrive_world), "
                    f"procedural towns as <town>_<seed> (e.g. grid_0) or the current map"
                )
            ref = MapRef(town=town, seed=int(seed))
        self.world.load(ref, reset_settings=bool(reset_settings))
        self._map_ref = ref
        log.info("loaded %s (episode %d)", self.world.map_name, self.world.episode_id)
        return wire.void()

    def rpc_get_available_maps(self, cid: int) -> list:
        return wire.ok([self.world.map_name])

    def rpc_get_weather_parameters(self, cid: int) -> list:
        return wire.ok(self.world.weather)

    def rpc_set_weather_parameters(self, cid: int, weather: list) -> list:
        self.world.weather = [float(v) for v in weather]
        return wire.void()

    def rpc_query_lights_state(self, cid: int, *args: Any) -> list:
        return wire.ok([])

    def rpc_update_lights_state(self, cid: int, *args: Any) -> list:
        return wire.void()

    def rpc_get_vehicle_light_states(self, cid: int, *args: Any) -> list:
        return wire.ok([])

    def rpc_get_vehicle_light_state(self, cid: int, actor_id: int) -> list:
        return wire.ok(0)

    def rpc_set_vehicle_light_state(self, cid: int, actor_id: int, state: int) -> list:
        return wire.void()

    def rpc_get_names_of_all_objects(self, cid: int) -> list:
        return wire.ok([])

    def rpc_freeze_all_traffic_lights(self, cid: int, frozen: bool) -> list:
        self.world.freeze_all_lights(bool(frozen))
        return wire.void()

    def rpc_reset_all_traffic_lights(self, cid: int) -> list:
        self.world.freeze_all_lights(False)
        return wire.void()

    def rpc_set_traffic_light_state(self, cid: int, actor_id: int, state: int) -> list:
        """Holds the light in ``state`` (CARLA lets the cycle go on unless frozen: here it is held
        until ``freeze(False)`` or ``reset_all_traffic_lights``)."""
        self.world.set_light(int(actor_id), int(state))
        return wire.void()

    def rpc_freeze_traffic_light(self, cid: int, actor_id: int, freeze: bool) -> list:
        self.world.freeze_light(int(actor_id), bool(freeze))
        return wire.void()

    def rpc_set_traffic_light_green_time(self, cid: int, actor_id: int, seconds: float) -> list:
        self.world.set_light_time(int(actor_id), "green", float(seconds))
        return wire.void()

    def rpc_set_traffic_light_yellow_time(self, cid: int, actor_id: int, seconds: float) -> list:
        self.world.set_light_time(int(actor_id), "yellow", float(seconds))
        return wire.void()

    def rpc_set_traffic_light_red_time(self, cid: int, actor_id: int, seconds: float) -> list:
        self.world.set_light_time(int(actor_id), "red", float(seconds))
        return wire.void()

    def rpc_reset_traffic_light_group(self, cid: int, actor_id: int) -> list:
        """The group's lights follow the world's cycle again (held states released)."""
        for light in self.world.group_of(int(actor_id)):
            self.world.set_light(light, None)
        return wire.void()

    def rpc_get_group_traffic_lights(self, cid: int, actor_id: int) -> list:
        return wire.ok(self.world.group_of(int(actor_id)))

    # ------------------------------------------------------------------ actors

    def rpc_get_actor_definitions(self, cid: int) -> list:
        return wire.ok([bp.pack() for bp in LIBRARY])

    def rpc_get_spectator(self, cid: int) -> list:
        return wire.ok(self.world.pack_actor(self.world.spectator))

    def rpc_spawn_actor(self, cid: int, description: list, transform: list) -> list:
        return wire.ok(self.world.pack_actor(self.world.spawn(description, transform, owner=cid)))

    def rpc_spawn_actor_with_parent(
        self, cid: int, description: list, transform: list, parent: int, attachment: int = 0, *rest: Any
    ) -> list:
        return wire.ok(self.world.pack_actor(self.world.spawn(description, transform, int(parent), cid)))

    def rpc_get_actor_bounding_box(self, cid: int, actor_id: int) -> list:
        with self.world.lock:
            actor = self.world.actors.get(int(actor_id))
            bp = actor.blueprint if actor is not None else self.world.destroyed.get(int(actor_id))
            if bp is None:
                raise KeyError(f"actor {actor_id} does not exist")
            # a destroyed actor's box too: the client's Traffic Manager asks for it until it notices
            # the actor is gone, and an error there aborts the client process
            return wire.ok(wire.bounding_box(bp.extent))

    def rpc_destroy_actor(self, cid: int, actor_id: int) -> list:
        return wire.ok(self.world.destroy(int(actor_id)))

    def rpc_get_actors_by_id(self, cid: int, ids: list) -> list:
        with self.world.lock:
            actors = [self.world.actors[i] for i in ids if i in self.world.actors]
            return wire.ok([self.world.pack_actor(a) for a in actors])

    def rpc_apply_control_to_vehicle(self, cid: int, actor_id: int, control: list) -> list:
        self.world.apply_vehicle_control(int(actor_id), wire.VehicleControl.unpack(control))
        return wire.void()

    def rpc_apply_control_to_walker(self, cid: int, actor_id: int, control: list) -> list:
        self.world.apply_walker_control(int(actor_id), control)
        return wire.void()

    def rpc_open_vehicle_door(self, cid: int, actor_id: int, door: int) -> list:
        self.world.set_door(int(actor_id), int(door), True)
        return wire.void()

    def rpc_close_vehicle_door(self, cid: int, actor_id: int, door: int) -> list:
        self.world.set_door(int(actor_id), int(door), False)
        return wire.void()

    def rpc_set_actor_autopilot(self, cid: int, actor_id: int, enabled: bool) -> list:
        self.world.set_autopilot(int(actor_id), bool(enabled))
        return wire.void()

    def rpc_set_actor_transform(self, cid: int, actor_id: int, transform: list) -> list:
        self.world.set_transform(int(actor_id), wire.Transform.unpack(transform))
        return wire.void()

    def rpc_set_actor_location(self, cid: int, actor_id: int, location: list) -> list:
        with self.world.lock:
            now = self.world.transform_of(self.world.actors[int(actor_id)])
            x, y, z = (float(v) for v in location)
            self.world.set_transform(int(actor_id), wire.Transform(x, y, z, now.pitch, now.yaw, now.roll))
        return wire.void()

    def rpc_set_actor_target_velocity(self, cid: int, actor_id: int, velocity: list) -> list:
        self.world.set_velocity(int(actor_id), velocity)
        return wire.void()

    def rpc_set_actor_simulate_physics(self, cid: int, actor_id: int, enabled: bool) -> list:
        return wire.void()

    def rpc_set_actor_enable_gravity(self, cid: int, actor_id: int, enabled: bool) -> list:
        return wire.void()

    def rpc_set_actor_collisions(self, cid: int, actor_id: int, enabled: bool) -> list:
        """Collisions stay on; but the 0.9.16 client's ``WalkerAIController.start()`` turns its
        walker's off, the one call of it the server sees: that walker starts walking."""
        with self.world.lock:
            actor = self.world.actors.get(int(actor_id))
            if not enabled and actor is not None and actor.blueprint.kind == ActorKind.PEDESTRIAN:
                self.world.start_walker_ai(actor.id)
        return wire.void()

    # ------------------------------------------------------------------ ticks and batches

    def rpc_tick_cue(self, cid: int) -> list:
        return wire.ok(self.world.tick())

    def rpc_apply_batch(self, cid: int, commands: list, do_tick_cue: bool = False) -> list:
        out = [self._command(cid, *command[0]) for command in commands]  # Command = [[index, fields]]
        if do_tick_cue:
            self.world.tick()
        return out

    def _command(self, cid: int, index: int, fields: list) -> list:
        """One ``rpc::Command`` → ``CommandResponse`` (``[[1, actor id]]`` or an error)."""
        C = wire.CommandType
        try:
            if index == C.SPAWN_ACTOR:
                description, transform, parent = fields[0], fields[1], fields[2]
                parent_id = int(parent[1]) if len(parent) == 2 else 0
                actor = self.world.spawn(description, transform, parent_id, cid)
                for (sub_index, sub_fields), *_ in fields[-1]:  # do_after: actor 0 is the new one
                    sub = list(sub_fields)
                    if sub and sub[0] == 0:
                        sub[0] = actor.id
                    self._command(cid, sub_index, sub)
                return wire.ok(actor.id)
            actor_id = int(fields[0])
            if index == C.DESTROY_ACTOR:
                if not self.world.destroy(actor_id):
                    raise KeyError(f"actor {actor_id} does not exist")
            elif index == C.APPLY_VEHICLE_CONTROL:
                self.world.apply_vehicle_control(actor_id, wire.VehicleControl.unpack(fields[1]))
            elif index == C.APPLY_WALKER_CONTROL:
                self.world.apply_walker_control(actor_id, fields[1])
            elif index == C.APPLY_TRANSFORM:
                self.world.set_transform(actor_id, wire.Transform.unpack(fields[1]))
            elif index == C.SET_AUTOPILOT:
                self.world.set_autopilot(actor_id, bool(fields[1]))
            else:
                raise ValueError(f"batch command {index} is not implemented by the hours2drive CARLA server")
            return wire.ok(actor_id)
        except (SpawnError, KeyError, ValueError, TypeError, IndexError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return wire.error(str(message))

    # ------------------------------------------------------------------ Traffic Manager registry

    def rpc_is_traffic_manager_running(self, cid: int, port: int) -> list:
        return wire.ok(self.traffic_managers.get(port) is not None)

    def rpc_add_traffic_manager_running(self, cid: int, info: list) -> list:
        host, port = info
        self.traffic_managers.register(cid, str(host), int(port))
        return wire.ok(True)

    def rpc_get_traffic_manager_running(self, cid: int, port: int) -> list:
        tm = self.traffic_managers.get(port)
        return wire.ok([tm.host, tm.port] if tm is not None else ["", 0])

    def rpc_destroy_traffic_manager(self, cid: int, port: int) -> list:
        self.traffic_managers.remove(port)
        return wire.void()
