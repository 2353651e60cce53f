"""Maps: OpenDRIVE text → :class:`RoadMap` (lanes, lane graph, signals, drivable area), procedural
towns written as OpenDRIVE, and a cache keyed by :class:`~sim_bridge.api.MapRef`."""

from sim_bridge.maps.road_map import LaneType, MapError, MarkType, Projection, RoadMap, Route, SignalKind

__all__ = ["LaneType", "MapError", "MarkType", "Projection", "RoadMap", "Route", "SignalKind"]
