"""``Observer``: one call per decision step turns a :class:`SensorFrame` into an ``Observation``.

It composes the three shared sensors (BEV raster, object list, ego vector) for all worlds at once.
Every call returns freshly allocated arrays, so an ``Observation`` handed out is never overwritten
by a later call. That is cheap: the allocator hands the memory of a dropped observation's BEV
(5.9 MB for 64 worlds) back without new page faults (measured: no slower than rendering into a
reused buffer).
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from sim_bridge.api import Observation
from sim_bridge.maps.road_map import Projection, RoadMap
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import BevRenderer
from sim_bridge.sensors.ego import ego_vector
from sim_bridge.sensors.frame import SensorFrame
from sim_bridge.sensors.layout import BevGeometry
from sim_bridge.sensors.objects import object_list

__all__ = ["Observer"]


class Observer:
    """The shared sensors of one map: ``observe(frame, routes, progress) -> Observation``.

    ``max_objects`` rows of the object list, actors within ``object_radius`` [m] of the ego;
    ``pool`` lets the BEV renderer use threads (see :class:`~sim_bridge.sensors.bev.BevRenderer`);
    ``render_bev=False`` skips the raster (all zeros), for physics-only runs.
    """

    def __init__(
        self,
        road_map: RoadMap,
        geometry: BevGeometry,
        max_objects: int = 32,
        object_radius: float = 50.0,
        pool: Executor | None = None,
        render_bev: bool = True,
    ) -> None:
        self.road_map = road_map
        self.geometry = geometry
        self.max_objects = int(max_objects)
        self.object_radius = float(object_radius)
        self.bev = BevRenderer(road_map, geometry, pool=pool)
        self.render_bev = render_bev

    def observe(
        self,
        frame: SensorFrame,
        routes: RouteBatch,
        progress: np.ndarray,
        projection: Projection | None = None,
    ) -> Observation:
        """The observation of every world (fresh arrays batched over ``B``).

        ``progress [B]`` [m] is each ego's route progress (``routes.update`` was called this step);
        ``projection`` optionally passes the ego's lane (``sensors.ego.ego_lane``) when the caller
        has it already, saving a second projection.
        """
        if self.render_bev:
            bev = self.bev.render(frame, routes)
        else:  # physics-only runs: a zero raster of the right shape
            g = self.geometry
            bev = np.zeros((frame.actors.shape[0], g.num_channels, g.size, g.size), dtype=np.uint8)
        objects, mask, ids = object_list(frame.actors, self.max_objects, self.object_radius)
        ego = ego_vector(self.road_map, frame, routes, progress, projection)
        a = frame.actors
        pose = np.stack([a.x[:, 0], a.y[:, 0], a.yaw[:, 0]], axis=1).astype(np.float64)
        return Observation(bev=bev, ego=ego, objects=objects, objects_mask=mask, object_ids=ids, pose=pose)
