"""The CARLA backend: the ``Simulator`` contract on a CARLA 0.9.16 server through the ``carla`` client."""

from sim_bridge.carla.config import CarlaConfig
from sim_bridge.carla.connection import CarlaConnectionError
from sim_bridge.carla.simulator import CarlaSimulator

__all__ = ["CarlaConfig", "CarlaConnectionError", "CarlaSimulator"]
