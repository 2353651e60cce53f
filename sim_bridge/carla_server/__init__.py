"""A CARLA 0.9.16 server backed by the embedded simulator (``drive serve-carla``)."""

from sim_bridge.carla_server.server import CarlaServer, CarlaServerConfig

__all__ = ["CarlaServer", "CarlaServerConfig"]
