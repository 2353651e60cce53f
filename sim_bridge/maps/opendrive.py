"""OpenDRIVE text → :class:`~sim_bridge.maps.road_map.RoadMap`: :func:`load_opendrive`.

Geometry (positions, headings, widths) comes from CARLA's own OpenDRIVE parser (``carla.Map(name,
text)``, no server needed), which evaluates lines, arcs, spirals, paramPoly3 and lane offsets; the
*structure* CARLA does not expose conveniently (lane sections, lane links, junction connections, speed
records, road types, road marks, signal validities) is read from the XML with ``xml.etree``.

Steps, each in its own module: parse and check the XML and fix degenerate curves
(:mod:`~sim_bridge.maps.xodr`), sample every lane of every lane section at ≤ 1 m in its driving
direction (:mod:`~sim_bridge.maps.sampling`), link lanes end to start, find junction conflicts and
build the routing graph (:mod:`~sim_bridge.maps.topology`), neighbours, marks, speed limits and
junction turns (:mod:`~sim_bridge.maps.lane_attributes`), signals and their stop lines
(:mod:`~sim_bridge.maps.signals`), lane surfaces (:mod:`~sim_bridge.maps.surfaces`). This module
runs them and packs the result into a ``RoadMap``. Right-hand traffic only (as CARLA).
"""

from __future__ import annotations

import carla
import numpy as np
import shapely

from sim_bridge.maps.lane_attributes import neighbours, speed_limits, turn
from sim_bridge.maps.road_map import LaneType, MapError, RoadMap
from sim_bridge.maps.sampling import sample_lanes
from sim_bridge.maps.signals import signals, stop_segments
from sim_bridge.maps.surfaces import lane_polygon, union
from sim_bridge.maps.topology import conflicts, graph, topology
from sim_bridge.maps.xodr import fix_curves, read_xml, with_georeference
from sim_bridge.sensors.layout import RouteCommand


def _carla_map(xodr: str, name: str) -> carla.Map:
    try:
        return carla.Map(name, xodr)
    except RuntimeError as e:
        raise MapError(f"not valid OpenDRIVE XML: CARLA's parser failed ({e})") from None


def load_opendrive(xodr: str, name: str) -> RoadMap:
    """Build a :class:`RoadMap` from OpenDRIVE text; :class:`MapError` says what is wrong with bad input.

    ``xodr``: the text of an ``.xodr`` file (not its path); ``name``: a label for logs and CARLA.
    The map keeps the text CARLA parsed, i.e. with degenerate spirals and arcs rewritten (see
    :func:`~sim_bridge.maps.xodr.fix_curves`), so that a CARLA server given ``road_map.xodr``
    builds the same geometry.
    ``road_map.cache`` also holds ``xodr_s`` (OpenDRIVE s of every sample), ``curves_fixed`` and
    ``dropped_links`` (lane links of the XML whose ends do not meet, as key pairs).
    """
    if not isinstance(xodr, str):
        raise MapError(f"expected OpenDRIVE text (str), got {type(xodr).__name__}; read the file first")
    xmap = read_xml(xodr)
    xodr, n_fixed = fix_curves(with_georeference(xodr))
    cmap = _carla_map(xodr, name)
    lanes = sample_lanes(cmap, xmap)
    n_driving = sum(lane.type == LaneType.DRIVING for lane in lanes)
    if n_driving == 0:
        raise MapError(
            f"the map has no drivable lane ({n_driving} driving lanes found in {len(xmap.roads)} roads); "
            "an OpenDRIVE map needs <road> elements with lanes of type 'driving'"
        )
    index = {lane.key: i for i, lane in enumerate(lanes)}

    # --- samples (CSR over lanes)
    counts = np.array([len(lane.points) for lane in lanes], dtype=np.int64)
    lane_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    points = np.concatenate([lane.points for lane in lanes])
    headings = np.concatenate([lane.headings for lane in lanes])
    widths = np.concatenate([lane.widths for lane in lanes])
    lane_s = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(lane.points, axis=0).T))]) for lane in lanes]
    s = np.concatenate(lane_s)
    lane_length = np.array([ls[-1] for ls in lane_s], dtype=np.float64)

    # --- lanes
    lane_type = np.array([int(lane.type) for lane in lanes], dtype=np.int8)
    driving = lane_type == LaneType.DRIVING
    lane_junction = np.array([xmap.roads[lane.key[0]].junction for lane in lanes], dtype=np.int64)
    succ, pred, dropped = topology(xmap, lanes, index)
    nb = neighbours(xmap, lanes, index)
    lane_turn = np.full(len(lanes), int(RouteCommand.LANE_FOLLOW), dtype=np.int8)
    for i in np.flatnonzero(lane_junction >= 0).tolist():
        lane_turn[i] = int(turn(lanes[i].headings))

    # --- signals
    sig = signals(cmap, xmap, lanes, index, lane_s, lane_junction, succ, pred)
    stop_lane = np.array(sig.stop_lane, dtype=np.int64)
    stop_s = np.array(sig.stop_s, dtype=np.float64)

    # --- surfaces
    lane_polygons = [lane_polygon(lane.points, lane.headings, lane.widths) for lane in lanes]
    xmin, ymin, xmax, ymax = shapely.total_bounds(lane_polygons)

    road_map = RoadMap(
        name=name,
        xodr=xodr,
        lane_keys=[(int(lane.key[0]), int(lane.key[1]), int(lane.key[2])) for lane in lanes],
        lane_type=lane_type,
        lane_start=lane_start,
        lane_length=lane_length,
        lane_road=np.array([lane.key[0] for lane in lanes], dtype=np.int64),
        lane_junction=lane_junction,
        lane_speed_limit=speed_limits(xmap, lanes, lane_junction, pred),
        lane_left=nb["left"],
        lane_right=nb["right"],
        lane_change_left=nb["change_left"],
        lane_change_right=nb["change_right"],
        lane_mark_left=nb["mark_left"],
        lane_mark_right=nb["mark_right"],
        lane_successors=succ,
        lane_predecessors=pred,
        succ_start=np.concatenate([[0], np.cumsum([len(x) for x in succ])]).astype(np.int64),
        succ_index=np.array([j for x in succ for j in x], dtype=np.int64),
        lane_turn=lane_turn,
        points=points,
        headings=headings,
        s=s,
        widths=widths,
        point_lane=np.repeat(np.arange(len(lanes), dtype=np.int64), counts),
        conflicts=conflicts(lanes, lane_junction, driving, succ, pred),
        signal_kind=np.array(sig.kind, dtype=np.int8),
        signal_xodr_id=sig.xodr_id,
        signal_position=np.array(sig.position, dtype=np.float64).reshape(-1, 2),
        signal_junction=np.array(sig.junction, dtype=np.int64),
        stop_lane=stop_lane,
        stop_s=stop_s,
        stop_signal=np.array(sig.stop_signal, dtype=np.int64),
        stop_segment=stop_segments(stop_lane, stop_s, lane_start, s, points, headings, widths),
        drivable_area=union([p for p, d in zip(lane_polygons, driving) if d]),
        sidewalk_area=union([p for p, t in zip(lane_polygons, lane_type) if t == LaneType.SIDEWALK]),
        lane_polygons=lane_polygons,
        bounds=(float(xmin), float(ymin), float(xmax), float(ymax)),
        graph=graph(
            driving, lane_length, succ, nb["left"], nb["right"], nb["change_left"], nb["change_right"]
        ),
    )
    road_map.cache["xodr_s"] = np.concatenate([lane.road_s for lane in lanes])
    road_map.cache["curves_fixed"] = n_fixed
    road_map.cache["dropped_links"] = [(lanes[a].key, lanes[b].key) for a, b in dropped]
    return road_map
