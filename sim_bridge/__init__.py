"""Simulator bridge: the ``Simulator`` contract (``api``), its backends (``embedded``, ``carla``),
maps (OpenDRIVE → ``RoadMap``) and the sensors every backend shares."""
