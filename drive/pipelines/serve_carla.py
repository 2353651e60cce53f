"""``drive serve-carla``: serve the embedded simulator over CARLA 0.9.16's wire protocol.

``drive serve-carla town=grid port=2000`` then any ``carla==0.9.16`` client connects as to a CARLA
server (``carla.Client("127.0.0.1", 2000)``). See :mod:`sim_bridge.carla_server`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from sim_bridge.api import MapRef
from sim_bridge.carla_server import CarlaServer, CarlaServerConfig
from sim_bridge.embedded.config import EmbeddedConfig

log = logging.getLogger(__name__)


@dataclass
class ServeCarlaConfig:
    """``drive serve-carla``: the world served and where."""

    town: str = "grid"
    """Procedural town served (see ``sim_bridge.maps.towns.TOWNS``); ignored when ``xodr`` is set."""
    map_seed: int = 0
    """Seed of the procedural town."""
    xodr: str | None = None
    """Serve this OpenDRIVE file instead of a procedural town."""
    host: str = "127.0.0.1"
    """Address to bind (loopback unless asked: the protocol has no authentication)."""
    port: int = 2000
    """RPC port; the streams use ``port + 1``, as CARLA's."""
    seed: int = 0
    """Seed of the embedded world."""
    destroy_on_disconnect: bool = False
    """Destroy a client's actors when it disconnects (CARLA keeps them)."""
    tm_wake_after: float = 2.0
    """Wake a client's Traffic Manager that missed its tick signal (a 0.9.16 client race) after
    this long [s]; 0: never (see ``sim_bridge.carla_server.tm_watch``)."""
    sim: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    """Slots, limits and NPC driver of the served world (``num_worlds`` and ``render_bev`` are
    ignored: one world, no BEV); ``physics_dt`` is the step without ``fixed_delta_seconds``."""


def server_config(cfg: ServeCarlaConfig) -> CarlaServerConfig:
    """The server's settings from the command's."""
    sim = cfg.sim
    return CarlaServerConfig(
        host=cfg.host,
        port=cfg.port,
        map=MapRef(town=cfg.town, seed=cfg.map_seed, xodr=cfg.xodr),
        seed=cfg.seed,
        destroy_on_disconnect=cfg.destroy_on_disconnect,
        tm_wake_after=cfg.tm_wake_after,
        sim=EmbeddedConfig(
            num_worlds=1,
            physics_dt=sim.physics_dt,
            decision_dt=sim.physics_dt,
            max_vehicles=sim.max_vehicles,
            max_pedestrians=sim.max_pedestrians,
            max_statics=sim.max_statics,
            threads=1,
            render_bev=False,
            vehicle=sim.vehicle,
            driver=sim.driver,
        ),
    )


def run(cfg: DictConfig) -> int:
    conf: ServeCarlaConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    try:
        server = CarlaServer(server_config(conf))
    except OSError as exc:
        log.error(
            "cannot listen on %s:%d and %d (%s); pick free ports with port=…",
            conf.host, conf.port, conf.port + 1, exc,
        )  # fmt: skip
        return 1
    server.start()
    print(
        f"serving CARLA 0.9.16 on {conf.host}:{server.port} (streams {server.stream_port}); Ctrl-C stops",
        flush=True,
    )
    server.serve_forever()
    return 0
