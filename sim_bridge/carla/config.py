"""Settings of the CARLA backend (the Hydra schema ``sim/carla`` is this dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_bridge.backends import BackendConfig
from sim_bridge.embedded.config import VehicleLimits


@dataclass
class CarlaConfig(BackendConfig):
    """A CARLA 0.9.16 server (or ``drive serve-carla``) driven through the ``carla`` client. One
    server is one world: ``num_worlds`` must be 1 (run more servers for more worlds)."""

    backend: str = "carla"
    """This schema's backend (``sim_bridge.backends``)."""
    host: str = "127.0.0.1"
    """Server address."""
    port: int = 2000
    """Server RPC port (its streams use the ports the server announces)."""
    timeout: float = 10.0
    """Client time-out for every call and tick [s]; a tick that takes longer ends the episode as
    crashed (never scored)."""
    load_timeout: float = 300.0
    """Time-out of loading a map on the server (``generate_opendrive_world``) [s]: CARLA takes
    10-60 s; ``drive serve-carla`` measured 20 s to 4 min for the ``straight`` town on 2 loaded cores."""
    restart_command: str | None = None
    """Shell-free command that starts the server when none answers, before a suite and after a
    server fault (e.g. ``drive serve-carla port=2000``, or ``CarlaUE4.sh -carla-rpc-port=2000``);
    unset: report the missing server and stop. The server it starts keeps running afterwards."""
    restart_wait: float = 300.0
    """How long a restarted server may take to answer [s]."""
    tm_port: int = 8000
    """Traffic Manager port (background traffic and cruising scenario vehicles)."""
    tm_wake_after: float = 5.0
    """Wake the client's Traffic Manager when a tick has not returned after this long [s] (0:
    never): the carla 0.9.16 client's TM can miss a tick's signal and hang it for good
    (:mod:`sim_bridge.carla.tick_watch`). A CARLA tick takes tens of milliseconds; ``drive
    serve-carla`` wakes a hung TM itself after 2 s."""
    physics_dt: float = 0.05
    """``fixed_delta_seconds`` of CARLA's synchronous mode [s]."""
    decision_dt: float = 0.1
    """One ``step`` [s]: ``decision_dt / physics_dt`` server ticks."""
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    """Blueprint of the ego (the Leaderboard's)."""
    spawn_height: float = 0.5
    """Actors are spawned this far above the road, as CARLA's own spawn points [m]."""
    max_actors: int = 64
    """Actor slots read back per step (the ego included; the nearest are kept)."""
    render_bev: bool = True
    """Render the BEV raster (off: all zeros)."""
    vehicle: VehicleLimits = field(default_factory=VehicleLimits)
    """How ``Action`` maps to CARLA's control: ``accel`` ≥ 0 is throttle, < 0 brake, ``steer``
    (left > 0) is ``-steer``; these limits only describe the ego to agents (``ego_vehicle``)."""
