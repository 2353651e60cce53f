"""OpenDRIVE → RoadMap: geometry in our frame, lane topology, marks, speeds, signals, areas, errors.

Small maps are written here with scenariogeneration (closed-form answers); the five real maps in
``../shared/maps`` check topology and sampling on geometry nobody here drew.
"""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import shapely
from scenariogeneration import xodr

from sim_bridge.frames import wrap_angle
from sim_bridge.maps import LaneType, MapError, MarkType, RoadMap, SignalKind
from sim_bridge.maps.opendrive import load_opendrive
from sim_bridge.maps.town_parts import BUILD_LOCK, opendrive
from sim_bridge.sensors.layout import RouteCommand

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
REAL_MAPS = (
    "fabriksgatan",
    "highway_example_with_merge_and_split",
    "multi_lane_3way_intersection",
    "simple_4way_intersection",
    "star",
)
KMH = 1.0 / 3.6


# ------------------------------------------------------------------------------------------ maps


def _text(odr: xodr.OpenDrive) -> str:
    odr.adjust_roads_and_lanes()
    return ET.tostring(odr.get_element(), encoding="unicode")


def straight_xodr(x0: float = 0.0, y0: float = 0.0, hdg: float = 0.0, road_type: str | None = None) -> str:
    """One 200 m road, two 3.5 m lanes each way, starting at ``(x0, y0)`` heading ``hdg``."""
    road = xodr.create_road(xodr.Line(200), id=0, left_lanes=2, right_lanes=2, lane_width=3.5)
    road.planview.set_start_point(x0, y0, hdg)
    if road_type == "motorway":
        road.add_type(xodr.RoadType.motorway)
    elif road_type == "mph":
        road.add_type(xodr.RoadType.town, speed=30, speed_unit="mph")
    odr = xodr.OpenDrive("straight")
    odr.add_road(road)
    return _text(odr)


def junction_xodr() -> str:
    """Four 100 m roads (one lane each way) into a 4-way junction at (115, 0), with signals.

    Road 0 (from the west) has a 30 km/h limit and a traffic light at s = 98 for its lane -1 (orientation +); road 1
    (from the north) a stop sign at s = 98; road 2 (from the east) a light at s = 5 with orientation
    - (its lane +1, leaving the junction); the straight connecting road 101 (road 0 → road 2) a light
    at s = 2 valid for lane -1 only; road 3 a speed sign (ignored).
    """
    with BUILD_LOCK:
        opendrive("junction")  # scenariogeneration keeps used signal ids per process: start afresh
        return _junction_xodr()


def _junction_xodr() -> str:
    roads = [
        xodr.create_road(xodr.Line(100), id=i, left_lanes=1, right_lanes=1, lane_width=3.5) for i in range(4)
    ]
    roads[0].add_type(xodr.RoadType.town, speed=30, speed_unit="km/h")
    roads[0].add_signal(
        xodr.Signal(s=98.0, t=-4.0, country="DEU", Type="1000001", id="10", dynamic=xodr.Dynamic.yes)
    )
    roads[1].add_signal(xodr.Signal(s=98.0, t=-4.0, country="DEU", Type="206", id="11"))
    roads[2].add_signal(
        xodr.Signal(
            s=5.0, t=4.0, country="DEU", Type="1000001", id="12", orientation=xodr.Orientation.negative
        )
    )
    roads[3].add_signal(
        xodr.Signal(s=50.0, t=-4.0, country="DEU", Type="274", subtype="53", id="13", value=50, unit="km/h")
    )
    jc = xodr.CommonJunctionCreator(id=100, name="j", startnum=100)
    for i, angle in enumerate([np.pi, np.pi / 2, 0.0, 3 * np.pi / 2]):
        jc.add_incoming_road_circular_geometry(roads[i], 15, angle, "successor")
    for i in range(4):
        for j in range(i + 1, 4):
            jc.add_connection(i, j)
    odr = xodr.OpenDrive("junction")
    for road in roads:
        odr.add_road(road)
    odr.add_junction_creator(jc)
    signal = xodr.Signal(s=2.0, t=-4.0, country="DEU", Type="1000001", id="14")
    signal.add_validity(-1, -1)
    odr.roads["101"].add_signal(signal)
    return _text(odr)


@functools.cache
def straight_map() -> RoadMap:
    return load_opendrive(straight_xodr(), "straight")


@functools.cache
def junction_map() -> RoadMap:
    return load_opendrive(junction_xodr(), "junction")


@functools.cache
def real_map(name: str) -> RoadMap:
    if not SHARED_MAPS.is_dir():
        pytest.skip(f"the shared real maps are not here ({SHARED_MAPS} is missing)")
    return load_opendrive((SHARED_MAPS / f"{name}.xodr").read_text(), name)


def lane_index(m: RoadMap, key: tuple[int, int, int]) -> int:
    return m.lane_keys.index(key)


def lane_points(m: RoadMap, lane: int) -> np.ndarray:
    return m.points[m.lane_start[lane] : m.lane_start[lane + 1]]


# ------------------------------------------------------------------------------ straight road


def test_straight_road_lanes_lengths_and_widths():
    m = straight_map()
    assert sorted(m.lane_keys) == [(0, 0, -2), (0, 0, -1), (0, 0, 1), (0, 0, 2)]
    assert (m.lane_type == LaneType.DRIVING).all()
    np.testing.assert_allclose(m.lane_length, 200.0, atol=0.01)
    np.testing.assert_allclose(m.widths, 3.5, atol=1e-6)
    assert (m.lane_junction == -1).all()
    assert (m.lane_turn == RouteCommand.LANE_FOLLOW).all()


def test_straight_road_centrelines_are_in_the_opendrive_frame():
    """OpenDRIVE's inertial frame (x east, y north) is ours: lane -1 lies right of the reference line."""
    m = straight_map()
    expect_y = {-1: -1.75, -2: -5.25, 1: 1.75, 2: 5.25}
    for key, y in expect_y.items():
        pts = lane_points(m, lane_index(m, (0, 0, key)))
        np.testing.assert_allclose(pts[:, 1], y, atol=1e-4)
        # driving order: negative lanes run east (along s), positive lanes west
        assert np.all(np.diff(pts[:, 0]) > 0) == (key < 0)
        assert pts[:, 0].min() == pytest.approx(0.0, abs=0.01) and pts[:, 0].max() == pytest.approx(
            200.0, abs=0.01
        )
    h = m.headings
    np.testing.assert_allclose(h[m.point_lane == lane_index(m, (0, 0, -1))], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.abs(h[m.point_lane == lane_index(m, (0, 0, 1))]), math.pi, atol=1e-6)


def test_rotated_road_stays_in_the_opendrive_frame():
    """A road heading north from (10, 20): its right lane lies east of it, heading +pi/2."""
    m = load_opendrive(straight_xodr(10.0, 20.0, math.pi / 2), "north")
    pts = lane_points(m, lane_index(m, (0, 0, -1)))
    np.testing.assert_allclose(pts[:, 0], 10.0 + 1.75, atol=1e-4)
    assert pts[0, 1] == pytest.approx(20.0, abs=0.01) and pts[-1, 1] == pytest.approx(220.0, abs=0.01)
    np.testing.assert_allclose(m.headings[m.point_lane == lane_index(m, (0, 0, -1))], math.pi / 2, atol=1e-6)


def test_straight_road_neighbours_marks_and_changes():
    m = straight_map()
    i = {k: lane_index(m, (0, 0, k)) for k in (-2, -1, 1, 2)}
    # in the driving direction: left of -2 is -1, right of -1 is -2; the centre line has no neighbour
    assert m.lane_left[i[-2]] == i[-1] and m.lane_right[i[-1]] == i[-2]
    assert m.lane_left[i[-1]] == -1 and m.lane_right[i[-2]] == -1
    assert m.lane_left[i[2]] == i[1] and m.lane_right[i[1]] == i[2]
    assert m.lane_left[i[1]] == -1
    # centre solid, between lanes broken, outer solid (scenariogeneration's create_road)
    assert m.lane_mark_left[i[-1]] == MarkType.SOLID and m.lane_mark_right[i[-1]] == MarkType.BROKEN
    assert m.lane_mark_left[i[-2]] == MarkType.BROKEN and m.lane_mark_right[i[-2]] == MarkType.SOLID
    assert m.lane_change_right[i[-1]] and m.lane_change_left[i[-2]]
    assert not m.lane_change_left[i[-1]] and not m.lane_change_right[i[-2]]
    edges = {(u, v): d["kind"] for u, v, d in m.graph.edges(data=True)}
    assert edges == {
        (i[-1], i[-2]): "change_right",
        (i[-2], i[-1]): "change_left",
        (i[1], i[2]): "change_right",
        (i[2], i[1]): "change_left",
    }
    assert m.graph[i[-1]][i[-2]]["weight"] == pytest.approx(0.5 * m.lane_length[i[-1]] + 10.0)


def test_straight_road_areas_and_bounds():
    m = straight_map()
    assert m.drivable_area.area == pytest.approx(200.0 * 14.0, rel=1e-3)
    assert m.sidewalk_area.is_empty
    np.testing.assert_allclose(m.bounds, (0.0, -7.0, 200.0, 7.0), atol=0.02)
    assert len(m.lane_polygons) == m.num_lanes
    for poly in m.lane_polygons:
        assert poly.area == pytest.approx(200.0 * 3.5, rel=1e-3)


@pytest.mark.parametrize(
    ("road_type", "limit"),
    [(None, 50 * KMH), ("motorway", 120 * KMH), ("mph", 30 * 0.44704)],
)
def test_speed_limits_from_road_type_and_speed_records(road_type, limit):
    m = load_opendrive(straight_xodr(road_type=road_type), "speed")
    np.testing.assert_allclose(m.lane_speed_limit, limit, rtol=1e-9)


# -------------------------------------------------------------------------------- junction map


def test_junction_topology_turns_and_conflicts():
    m = junction_map()
    idx = {k: i for i, k in enumerate(m.lane_keys)}
    junction = np.flatnonzero(m.lane_junction == 100)
    assert len(junction) == 12  # 6 connecting roads, both directions
    for i in junction:
        assert len(m.lane_predecessors[i]) == 1 and len(m.lane_successors[i]) == 1
    # road 0's lane -1 (eastbound into the junction) feeds left, straight and right
    entry = idx[(0, 0, -1)]
    turns = sorted(RouteCommand(int(m.lane_turn[j])).name for j in m.lane_successors[entry])
    assert turns == ["LEFT", "RIGHT", "STRAIGHT"]
    for j in m.lane_successors[entry]:
        # the turn agrees with the lane's heading change (+ left, counter-clockwise)
        h = m.headings[m.point_lane == j]
        change = float(np.sum(wrap_angle(np.diff(h))))
        expected = "LEFT" if change > 0.5 else "RIGHT" if change < -0.5 else "STRAIGHT"
        assert RouteCommand(int(m.lane_turn[j])).name == expected
    # conflicts are symmetric, only inside the junction, and never include lanes of a fork only
    for i in range(m.num_lanes):
        for j in m.conflicts[i]:
            assert i in m.conflicts[j] and m.lane_junction[j] == m.lane_junction[i] >= 0
    for i in np.flatnonzero(m.lane_junction < 0):
        assert m.conflicts[i] == []
    straight_we = idx[(101, 0, -1)]  # road 0 → road 2
    straight_ns = idx[(104, 0, -1)]  # road 1 → road 3
    assert straight_ns in m.conflicts[straight_we]
    forks = set(m.lane_successors[entry])
    assert not (forks - {straight_we}) & set(m.conflicts[straight_we])
    # two lanes ending in the same lane merge: they conflict
    into_2 = [j for j in junction if idx[(2, 0, 1)] in m.lane_successors[j]]
    assert len(into_2) == 3
    for a in into_2:
        assert set(into_2) - {a} <= set(m.conflicts[a])


def test_junction_lanes_inherit_the_speed_limit_of_their_entry():
    m = junction_map()
    idx = {k: i for i, k in enumerate(m.lane_keys)}
    assert m.lane_speed_limit[idx[(0, 0, -1)]] == pytest.approx(30 * KMH)
    assert m.lane_speed_limit[idx[(2, 0, -1)]] == pytest.approx(50 * KMH)  # no record, no type
    for i in np.flatnonzero(m.lane_junction >= 0):
        (entry,) = m.lane_predecessors[i]
        assert m.lane_speed_limit[i] == m.lane_speed_limit[entry]
    assert sorted(set(np.round(m.lane_speed_limit[m.lane_junction >= 0] / KMH, 6))) == [30.0, 50.0]


def test_junction_signals_and_stop_lines():
    m = junction_map()
    idx = {k: i for i, k in enumerate(m.lane_keys)}
    by_id = {sid: n for n, sid in enumerate(m.signal_xodr_id)}
    assert sorted(by_id) == ["10", "11", "12", "14"]  # the speed sign "13" is not a signal here
    assert m.signal_kind[by_id["10"]] == SignalKind.TRAFFIC_LIGHT
    assert m.signal_kind[by_id["11"]] == SignalKind.STOP_SIGN
    # the poles at (s, t) = (98, -4): on road 0 (east from the origin), on road 1 (south from (115, 115))
    np.testing.assert_allclose(m.signal_position[by_id["10"]], (98.0, -4.0), atol=1e-4)
    np.testing.assert_allclose(m.signal_position[by_id["11"]], (111.0, 17.0), atol=1e-4)

    def lines(sid: str) -> list[tuple[tuple[int, int, int], float, np.ndarray]]:
        k = np.flatnonzero(m.stop_signal == by_id[sid])
        return [(m.lane_keys[m.stop_lane[n]], float(m.stop_s[n]), m.stop_segment[n]) for n in k]

    # road 0's light: across lane -1 at s = 98, from the centre line (y = 0) to the outer edge (y = -3.5)
    ((key, s, seg),) = lines("10")
    assert key == (0, 0, -1) and s == pytest.approx(98.0, abs=0.01)
    np.testing.assert_allclose(seg, [[98.0, 0.0], [98.0, -3.5]], atol=0.01)
    assert m.signal_junction[by_id["10"]] == 100
    # the stop sign on road 1 (heading south from (115, 115)): its lane -1 at s = 98
    ((key, s, seg),) = lines("11")
    assert key == (1, 0, -1) and s == pytest.approx(98.0, abs=0.01)
    np.testing.assert_allclose(sorted(seg[:, 0]), [111.5, 115.0], atol=0.01)
    np.testing.assert_allclose(seg[:, 1], 17.0, atol=0.01)
    # orientation '-' on road 2: its lane +1, which runs against s, at its own s = length - 5
    ((key, s, _),) = lines("12")
    assert key == (2, 0, 1)
    assert s == pytest.approx(m.lane_length[idx[(2, 0, 1)]] - 5.0, abs=0.01)
    assert m.signal_junction[by_id["12"]] == -1  # that lane leaves the map, not into a junction
    # a light inside the junction, valid for lane -1 of road 101: stop where its entry ends
    ((key, s, _),) = lines("14")
    assert key == (0, 0, -1) and s == pytest.approx(m.lane_length[idx[(0, 0, -1)]], abs=1e-9)
    assert m.signal_junction[by_id["14"]] == 100


def test_junction_spirals_are_evaluated_correctly():
    """scenariogeneration writes constant-curvature spirals that CARLA 0.9.16 evaluates as NaN or
    metres off; the loader reads them as arcs, so every junction lane meets its roads."""
    m = junction_map()
    assert m.cache["curves_fixed"] > 0
    assert np.isfinite(m.points).all()
    for a in range(m.num_lanes):
        for b in m.lane_successors[a]:
            assert np.hypot(*(lane_points(m, a)[-1] - lane_points(m, b)[0])) < 0.01


@pytest.mark.parametrize("kind", ["spiral", "arc"])
def test_degenerate_curves_follow_their_closed_form(kind):
    """A spiral with equal curvatures is an arc; an arc of curvature 1e-9 is a line."""
    k, length = (0.05, 20.0) if kind == "spiral" else (1e-9, 50.0)
    shape = f'<spiral curvStart="{k}" curvEnd="{k}"/>' if kind == "spiral" else f'<arc curvature="{k}"/>'
    text = f"""<OpenDRIVE><header revMajor="1" revMinor="5"/>
      <road id="7" junction="-1" length="{length}"><link/>
        <planView><geometry s="0" x="3" y="4" hdg="0.3" length="{length}">{shape}</geometry></planView>
        <lanes><laneSection s="0"><center><lane id="0" type="none"/></center>
          <right><lane id="-1" type="driving"><width sOffset="0" a="3" b="0" c="0" d="0"/></lane></right>
        </laneSection></lanes></road></OpenDRIVE>"""
    m = load_opendrive(text, kind)
    s = m.cache["xodr_s"]
    h = 0.3 + k * s
    ref_x = 3.0 + (np.sin(h) - np.sin(0.3)) / k
    ref_y = 4.0 - (np.cos(h) - np.cos(0.3)) / k
    # lane -1's centre is 1.5 m to the right of the reference line
    np.testing.assert_allclose(m.points[:, 0], ref_x + 1.5 * np.sin(h), atol=1e-3)
    np.testing.assert_allclose(m.points[:, 1], ref_y - 1.5 * np.cos(h), atol=1e-3)


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not xml", "not valid OpenDRIVE XML"),
        ("", "not valid OpenDRIVE XML"),
        ("<road><lane/></road>", "not OpenDRIVE"),
        ('<OpenDRIVE><header revMajor="1" revMinor="5"/></OpenDRIVE>', r"0 driving lanes found in 0 roads"),
        (
            """<OpenDRIVE><header/><road id="1" junction="-1" length="50"><planView>
            <geometry s="0" x="0" y="0" hdg="0" length="50"><line/></geometry></planView><lanes><laneSection s="0">
            <center><lane id="0" type="none"/></center><right><lane id="-1" type="sidewalk">
            <width sOffset="0" a="2" b="0" c="0" d="0"/></lane></right></laneSection></lanes></road></OpenDRIVE>""",
            r"no drivable lane \(0 driving lanes found in 1 roads\)",
        ),
        ('<OpenDRIVE><road id="main" length="10"/></OpenDRIVE>', "road id 'main' is not an integer"),
    ],
)
def test_bad_input_raises_map_error_naming_the_problem(text, message):
    with pytest.raises(MapError, match=message):
        load_opendrive(text, "bad")


def test_from_opendrive_is_load_opendrive():
    m = RoadMap.from_opendrive(straight_xodr(), "alias")
    assert m.name == "alias" and m.num_lanes == 4


# ------------------------------------------------------------------------------------ real maps


@pytest.mark.parametrize("name", REAL_MAPS)
def test_real_map_samples(name):
    m = real_map(name)
    assert len(m.driving_lanes) > 0
    assert m.lane_start[0] == 0 and m.lane_start[-1] == len(m.points)
    assert np.all(np.diff(m.lane_start) >= 2)
    same = m.point_lane[1:] == m.point_lane[:-1]
    gaps = np.hypot(*np.diff(m.points, axis=0).T)[same]
    assert gaps.max() <= 1.05
    assert np.all(np.diff(m.s)[same] >= 0)
    assert np.all(m.s[m.lane_start[:-1]] == 0.0)
    np.testing.assert_allclose(m.s[m.lane_start[1:] - 1], m.lane_length)
    assert np.isfinite(m.points).all() and np.isfinite(m.headings).all()
    assert (m.widths >= 0).all()


@pytest.mark.parametrize("name", REAL_MAPS)
def test_real_map_headings_follow_the_direction_of_travel(name):
    """Stored headings point along each lane's sample order (its driving direction), for left
    (positive id) lanes as much as for right ones."""
    m = real_map(name)
    for lane in range(m.num_lanes):
        lo, hi = m.lane_start[lane], m.lane_start[lane + 1]
        d = np.diff(m.points[lo:hi], axis=0)
        ok = np.hypot(*d.T) > 0.05
        travel = np.arctan2(d[ok, 1], d[ok, 0])
        h = m.headings[lo:hi]
        mid = (h[:-1] + 0.5 * wrap_angle(np.diff(h)))[ok]
        err = np.abs(wrap_angle(travel - mid))
        assert err.max() < 0.1, (m.lane_keys[lane], err.max())


@pytest.mark.parametrize("name", REAL_MAPS)
def test_real_map_successors_are_consistent(name):
    m = real_map(name)
    assert m.cache["dropped_links"] == []
    for a in range(m.num_lanes):
        for b in m.lane_successors[a]:
            assert np.hypot(*(lane_points(m, a)[-1] - lane_points(m, b)[0])) <= 0.5
            assert a in m.lane_predecessors[b]
            assert m.lane_type[a] == m.lane_type[b]
        np.testing.assert_array_equal(
            m.succ_index[m.succ_start[a] : m.succ_start[a + 1]], m.lane_successors[a]
        )
    driving = m.driving_lanes
    starts = np.array([lane_points(m, i)[0] for i in driving])
    start_h = m.headings[m.lane_start[driving]]
    for i in driving:
        end, end_h = lane_points(m, i)[-1], m.headings[m.lane_start[i + 1] - 1]
        touching = (np.hypot(*(starts - end).T) < 0.05) & (np.abs(wrap_angle(start_h - end_h)) < 0.5)
        # every driving lane starting where this one ends is a successor (none missing) ...
        assert set(driving[touching].tolist()) - {i} <= set(m.lane_successors[i]), m.lane_keys[i]
        # ... junction lanes connect in and out
        if m.lane_junction[i] >= 0:
            assert m.lane_successors[i] and m.lane_predecessors[i], m.lane_keys[i]


def test_real_map_details():
    fab = real_map("fabriksgatan")
    assert len(fab.sidewalk_lanes) > 0 and fab.sidewalk_area.area > 100.0
    assert (fab.lane_turn[fab.lane_junction >= 0] != RouteCommand.LANE_FOLLOW).all()
    np.testing.assert_allclose(fab.lane_speed_limit[fab.driving_lanes], 50 * KMH)  # type="town"
    four = real_map("simple_4way_intersection")
    np.testing.assert_allclose(four.lane_speed_limit, 10.0)  # <speed max="10" unit="m/s">
    hw = real_map("highway_example_with_merge_and_split")
    assert hw.lane_change_left.any() and hw.lane_change_right.any()
    # the drivable area is the union of the driving lanes and covers every driving centreline sample
    d = np.isin(hw.point_lane, hw.driving_lanes)
    inside = shapely.contains_xy(hw.drivable_area, hw.points[d, 0], hw.points[d, 1])
    assert inside[hw.widths[d] > 0.2].all()
