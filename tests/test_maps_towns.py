"""Procedural towns (``sim_bridge.maps.towns``) and the map catalog (``sim_bridge.maps.catalog``).

Every town is generated once per module and parsed with the real ``carla`` client parser; the
checks read CARLA's waypoints, topology and landmarks and compare them with the OpenDRIVE text.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import carla
import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.api import MapRef
from sim_bridge.maps import catalog, highway, town_parts, towns
from sim_bridge.maps.road_map import MapError, RoadMap

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"

#: how far a connecting road may start or end from the lanes it links [m]
JOIN_TOLERANCE = 0.05


# --------------------------------------------------------------------------------- xodr reading


@dataclass
class XRoad:
    id: int
    length: float
    junction: int
    pred: tuple[str, int] | None  # (elementType, elementId)
    succ: tuple[str, int] | None
    sections: list[tuple[float, float, dict[int, str]]] = field(default_factory=list)
    """``(s_start, s_end, {lane id: type})``"""
    speeds: list[float] = field(default_factory=list)
    """``<speed max>`` records [km/h]."""

    def lanes(self, s: float) -> dict[int, str]:
        for s0, s1, lanes in self.sections:
            if s0 <= s <= s1:
                return lanes
        raise AssertionError(f"s={s} outside road {self.id}")

    def driving(self, s: float, sign: int) -> list[int]:
        """Driving lane ids on one side (``sign`` = -1 right, +1 left) at ``s``."""
        return sorted(lid for lid, t in self.lanes(s).items() if t == "driving" and lid * sign > 0)


def read_roads(text: str) -> dict[int, XRoad]:
    root = ET.fromstring(text)
    roads = {}
    for el in root.findall("road"):

        def link(kind: str, el: ET.Element = el) -> tuple[str, int] | None:
            node = el.find(f"link/{kind}")
            return None if node is None else (node.get("elementType", ""), int(node.get("elementId", "-1")))

        road = XRoad(
            int(el.get("id", "")),
            float(el.get("length", "")),
            int(el.get("junction", "")),
            link("predecessor"),
            link("successor"),
        )
        sections = el.findall("lanes/laneSection")
        for k, sec in enumerate(sections):
            s0 = float(sec.get("s", ""))
            s1 = float(sections[k + 1].get("s", "")) if k + 1 < len(sections) else road.length
            lanes = {
                int(ln.get("id", "")): ln.get("type", "") for ln in sec.iter("lane") if ln.get("id") != "0"
            }
            road.sections.append((s0, s1, lanes))
        road.speeds = [float(sp.get("max", "")) for sp in el.findall("type/speed")]
        roads[road.id] = road
    return roads


def lane_ends(road: XRoad, lane: int) -> tuple[float, float]:
    """``(s at the lane's start, s at its end)`` in its driving direction (whole-road lanes)."""
    return (0.0, road.length) if lane < 0 else (road.length, 0.0)


def clamp_s(road: XRoad, s: float) -> float:
    return min(max(s, 1e-4), road.length - 1e-4)  # CARLA takes s as float32


def xy(w: carla.Waypoint) -> np.ndarray:
    loc = w.transform.location
    return np.array([loc.x, loc.y])


def at(cmap: carla.Map, road: XRoad, lane: int, s: float) -> carla.Waypoint:
    w = cmap.get_waypoint_xodr(road.id, lane, clamp_s(road, s))
    assert w is not None, f"no waypoint on road {road.id} lane {lane} s={s}"
    return w


def lane_polygon(
    cmap: carla.Map, road: XRoad, lane: int, s0: float, s1: float, step: float = 1.0
) -> shapely.Geometry:
    """Surface of a lane between ``s0`` and ``s1`` from CARLA's centreline and widths."""
    ss = np.linspace(s0, s1, max(2, int(abs(s1 - s0) / step) + 1))
    left, right = [], []
    for s in ss:
        w = at(cmap, road, lane, float(s))
        c, r = xy(w), w.transform.get_right_vector()
        half = 0.5 * w.lane_width * np.array([r.x, r.y])
        left.append(c - half)
        right.append(c + half)
    return shapely.Polygon(np.concatenate([left, right[::-1]])).buffer(0)


def junction_roads(roads: dict[int, XRoad]) -> dict[int, set[int]]:
    """Junction id → the non-junction roads that meet it."""
    out: dict[int, set[int]] = {}
    for road in roads.values():
        if road.junction >= 0:
            continue
        for link in (road.pred, road.succ):
            if link and link[0] == "junction":
                out.setdefault(link[1], set()).add(road.id)
    return out


def entering_lanes(road: XRoad, junction: int) -> list[int]:
    """Driving lanes of ``road`` that drive into ``junction``."""
    if road.succ == ("junction", junction):
        return road.driving(road.length, -1)
    return road.driving(0.0, +1)


# ----------------------------------------------------------------------------------- fixtures


@dataclass
class Town:
    name: str
    text: str
    cmap: carla.Map
    roads: dict[int, XRoad]


@pytest.fixture(scope="module")
def generated() -> dict[str, Town]:
    out = {}
    for name in towns.TOWNS:
        text = towns.make_town(name, 0)
        out[name] = Town(name, text, carla.Map(name, text), read_roads(text))
    return out


ALL = sorted(towns.TOWNS)


# -------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", ALL)
def test_same_seed_gives_identical_text(name: str) -> None:
    assert towns.make_town(name, 7) == towns.make_town(name, 7)


def test_seeds_change_grid_and_highway() -> None:
    assert towns.grid_town(0) != towns.grid_town(1)
    assert highway.highway(0) != highway.highway(1)


def test_unit_maps_ignore_the_seed() -> None:
    for name in ("straight", "cross", "tee"):
        assert towns.make_town(name, 0) == towns.make_town(name, 12345)


def test_unknown_town_names_the_allowed_ones() -> None:
    with pytest.raises(MapError) as info:
        towns.make_town("atlantis", 0)
    for name in towns.TOWNS:
        assert name in str(info.value)
    assert "atlantis" in str(info.value)


# ------------------------------------------------------------------------------ carla loading


@pytest.mark.parametrize("name", ALL)
def test_every_lane_samples_finite_in_carla(generated: dict[str, Town], name: str) -> None:
    town = generated[name]
    assert len(town.cmap.generate_waypoints(2.0)) > 0
    for road in town.roads.values():
        for s0, s1, lanes in road.sections:
            for lane in lanes:
                for s in np.linspace(s0 + 1e-3, s1 - 1e-3, 7):
                    w = at(town.cmap, road, lane, float(s))
                    assert np.isfinite(xy(w)).all(), (road.id, lane, s)
                    assert w.road_id == road.id and w.lane_id == lane


@pytest.mark.parametrize("name", ALL)
def test_road_and_junction_ids_are_distinct(generated: dict[str, Town], name: str) -> None:
    """CARLA takes a link to junction j for a link to road j when road j exists."""
    town = generated[name]
    junctions = {r.junction for r in town.roads.values() if r.junction >= 0}
    assert not junctions & set(town.roads)


@pytest.mark.parametrize("name", ALL)
def test_connecting_roads_join_their_lanes_exactly(generated: dict[str, Town], name: str) -> None:
    """Each driving lane that ends at a junction continues (CARLA ``next``) onto connecting lanes that
    start where it ends, and each of those ends where its next lane starts."""
    town = generated[name]
    checked = 0
    for road in town.roads.values():
        if road.junction >= 0:
            continue
        for link, sign in ((road.succ, -1), (road.pred, +1)):
            if not link or link[0] != "junction":
                continue
            for lane in road.driving(road.length if sign < 0 else 0.0, sign):
                end = at(town.cmap, road, lane, lane_ends(road, lane)[1])
                before = at(town.cmap, road, lane, lane_ends(road, lane)[1] + (-0.5 if lane < 0 else 0.5))
                nexts = before.next(1.0)
                assert nexts, f"road {road.id} lane {lane} ends at junction {link[1]} without a successor"
                for n in nexts:
                    conn = town.roads[n.road_id]
                    assert conn.junction == link[1], (road.id, lane, n.road_id)
                    start = at(town.cmap, conn, n.lane_id, lane_ends(conn, n.lane_id)[0])
                    assert np.linalg.norm(xy(start) - xy(end)) < JOIN_TOLERANCE, (road.id, lane, conn.id)
                    conn_end = at(town.cmap, conn, n.lane_id, lane_ends(conn, n.lane_id)[1])
                    after = conn_end.next(0.5)
                    assert after and all(town.roads[a.road_id].junction < 0 for a in after), conn.id
                    for a in after:
                        out = town.roads[a.road_id]
                        out_start = at(town.cmap, out, a.lane_id, lane_ends(out, a.lane_id)[0])
                        assert np.linalg.norm(xy(out_start) - xy(conn_end)) < JOIN_TOLERANCE, (
                            conn.id,
                            out.id,
                        )
                    checked += 1
    if name != "straight":
        assert checked > 0


@pytest.mark.parametrize("name", ALL)
def test_roads_outside_junctions_do_not_overlap(generated: dict[str, Town], name: str) -> None:
    """Non-junction roads (all lanes, sidewalks and shoulders included) never overlap; connecting
    lanes stay off them (their ends touch the lanes they link, so 0.5 m at each end is left out)."""
    town = generated[name]
    road_polys = {}
    for road in town.roads.values():
        if road.junction < 0:
            parts = [
                lane_polygon(town.cmap, road, lane, s0 + 1e-3, s1 - 1e-3)
                for s0, s1, lanes in road.sections
                for lane in lanes
            ]
            road_polys[road.id] = shapely.union_all(parts)
    ids = sorted(road_polys)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            area = road_polys[a].intersection(road_polys[b]).area
            assert area < 1e-3, f"roads {a} and {b} overlap by {area:.3f} m²"
    for road in town.roads.values():
        if road.junction < 0 or road.length < 2.0:
            continue
        for lane in road.lanes(0.0):
            poly = lane_polygon(town.cmap, road, lane, 0.5, road.length - 0.5, step=0.5)
            for rid, other in road_polys.items():
                area = poly.intersection(other).area
                assert area < 0.05, (
                    f"connecting road {road.id} lane {lane} overlaps road {rid} by {area:.2f} m²"
                )


# ---------------------------------------------------------------------------------- grid town


def lane_graph(town: Town, lane_changes: bool = False) -> nx.DiGraph:
    """Driving lanes ``(road, lane)`` linked end to start through CARLA ``next``; with
    ``lane_changes``, also to the neighbour lane of the same direction where CARLA allows a change
    (the drivable network: avenues need a lane change to reach some turns)."""
    graph = nx.DiGraph()
    for road in town.roads.values():
        for lane in road.driving(road.length / 2, -1) + road.driving(road.length / 2, +1):
            graph.add_node((road.id, lane))
            end_s = lane_ends(road, lane)[1] + (-0.3 if lane < 0 else 0.3)
            for n in at(town.cmap, road, lane, end_s).next(1.0):
                graph.add_edge((road.id, lane), (n.road_id, n.lane_id))
            if lane_changes and road.junction < 0:
                wp = at(town.cmap, road, lane, road.length / 2)
                for side in (wp.get_left_lane(), wp.get_right_lane()):
                    if (
                        side is not None
                        and side.lane_type == carla.LaneType.Driving
                        and side.lane_id * lane > 0
                    ):
                        graph.add_edge((road.id, lane), (road.id, side.lane_id))
    return graph


def test_grid_has_16_junctions_and_no_dead_ends(generated: dict[str, Town]) -> None:
    town = generated["grid"]
    junctions = {w.junction_id for w in town.cmap.generate_waypoints(2.0) if w.is_junction}
    assert len(junctions) == 16
    graph = lane_graph(town)
    dead = [node for node in graph if graph.out_degree(node) == 0]
    assert not dead, f"driving lanes without a successor: {dead}"
    assert nx.is_strongly_connected(lane_graph(town, lane_changes=True)), (
        "some driving lane cannot reach every other"
    )


def test_grid_junctions_connect_every_legal_movement(generated: dict[str, Town]) -> None:
    """From each approach every other arm of the junction is reachable (straight, left, right), from
    the innermost lane for left turns and the outermost for right turns; no U-turns."""
    town = generated["grid"]
    arms = junction_roads(town.roads)
    assert len(arms) == 16
    assert sorted(len(v) for v in arms.values()) == [2] * 4 + [3] * 8 + [4] * 4
    for jid, roads in arms.items():
        for rid in roads:
            road = town.roads[rid]
            lanes = entering_lanes(road, jid)
            reached: dict[int, set[int]] = {}
            for lane in lanes:
                end_s = lane_ends(road, lane)[1] + (-0.3 if lane < 0 else 0.3)
                for conn in at(town.cmap, road, lane, end_s).next(1.0):
                    croad = town.roads[conn.road_id]
                    conn_end = at(town.cmap, croad, conn.lane_id, lane_ends(croad, conn.lane_id)[1])
                    for out in conn_end.next(0.5):
                        reached.setdefault(out.road_id, set()).add(lane)
            assert set(reached) == roads - {rid}, f"junction {jid} from road {rid}: reaches {sorted(reached)}"


def test_grid_signals_and_stops(generated: dict[str, Town]) -> None:
    check_signals(generated["grid"], min_lit=3, min_stop=2)


def check_signals(town: Town, min_lit: int, min_stop: int) -> tuple[set[int], set[int]]:
    """Every landmark stands near the junction end of an approach, faces the entering traffic and
    is valid for exactly its entering driving lanes; each signalised junction has a light on every
    approach, grouped by one controller. Returns the signalised and stop-controlled junctions."""
    arms = junction_roads(town.roads)
    lit: dict[int, list[carla.Landmark]] = {}
    stops: dict[int, list[carla.Landmark]] = {}
    root = ET.fromstring(town.text)
    for lm in town.cmap.get_all_landmarks():
        road = town.roads[lm.road_id]
        assert road.junction < 0
        positive = lm.orientation == carla.LandmarkOrientation.Positive
        link = road.succ if positive else road.pred
        assert link and link[0] == "junction", f"signal {lm.id} is not at a junction end of road {road.id}"
        expected_s = road.length - town_parts.STOP_SETBACK if positive else town_parts.STOP_SETBACK
        assert lm.s == pytest.approx(expected_s, abs=1e-6)
        lanes = entering_lanes(road, link[1])
        assert lm.get_lane_validities() == [(min(lanes), max(lanes))]
        if lm.type == town_parts.TRAFFIC_LIGHT_TYPE:
            assert lm.is_dynamic
            lit.setdefault(link[1], []).append(lm)
        else:
            assert lm.type == town_parts.STOP_SIGN_TYPE and not lm.is_dynamic
            stops.setdefault(link[1], []).append(lm)
    assert not set(lit) & set(stops), "a junction has both lights and stop signs"
    assert len(lit) >= min_lit and len(stops) >= min_stop
    for jid, lights in lit.items():
        assert sorted(lm.road_id for lm in lights) == sorted(arms[jid])
        group = sorted(lm.id for lm in town.cmap.get_landmark_group(lights[0]))
        assert group == sorted(lm.id for lm in lights)
        assert root.find(f"junction[@id='{jid}']/controller") is not None
    for jid, signs in stops.items():
        assert 1 <= len(signs) <= len(arms[jid])
        # a T stops its stem (or its narrower arms), all-way stops only at a 4-way junction
        assert len(signs) < len(arms[jid]) or len(arms[jid]) == 4
    return set(lit), set(stops)


def test_grid_lane_types_marks_and_speeds(generated: dict[str, Town]) -> None:
    """Streets: one lane each way; avenues: two, with a broken line between them (changes allowed)
    and a solid centre line; sidewalks outermost on both sides; 50 km/h, avenues 60 km/h."""
    town = generated["grid"]
    counts = set()
    for road in town.roads.values():
        if road.junction >= 0:
            assert road.speeds and all(v in (50.0, 60.0) for v in road.speeds)
            continue
        lanes = road.lanes(0.0)
        n = len(road.driving(0.0, -1))
        counts.add(n)
        assert road.driving(0.0, +1) == list(range(1, n + 1))
        assert road.speeds == [50.0 if n == 1 else 60.0]
        mid = road.length / 2
        for sign in (-1, 1):
            sidewalk = at(town.cmap, road, sign * (n + 1), mid)
            assert sidewalk.lane_type == carla.LaneType.Sidewalk
            assert 2.0 <= sidewalk.lane_width <= 3.0
            assert sign * (n + 2) not in lanes
            inner = at(town.cmap, road, sign, mid)
            assert inner.lane_type == carla.LaneType.Driving
            centre_mark = inner.left_lane_marking
            assert centre_mark.type == carla.LaneMarkingType.Solid
            if n == 2:
                assert inner.right_lane_marking.type == carla.LaneMarkingType.Broken
                assert inner.lane_change == carla.LaneChange.Right
                assert at(town.cmap, road, 2 * sign, mid).lane_change == carla.LaneChange.Left
            else:
                assert inner.lane_change == carla.LaneChange.NONE
    assert counts == {1, 2}, "the grid mixes streets and avenues"


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_any_grid_seed_gives_a_valid_town(seed: int) -> None:
    text = towns.grid_town(seed)
    town = Town("grid", text, carla.Map("grid", text), read_roads(text))
    lit, stops = check_signals(town, min_lit=3, min_stop=2)
    assert len(junction_roads(town.roads)) == 16
    arms = junction_roads(town.roads)
    assert all(len(arms[j]) >= 3 for j in lit | stops), "corner bends are uncontrolled"
    graph = lane_graph(town, lane_changes=True)
    assert nx.is_strongly_connected(graph)
    spacing = [r.length for r in town.roads.values() if r.junction < 0]
    assert min(spacing) > 40.0 and max(spacing) < 120.0


# ----------------------------------------------------------------------------------- unit maps


def test_straight_road(generated: dict[str, Town]) -> None:
    town = generated["straight"]
    (road,) = town.roads.values()
    assert road.length == pytest.approx(300.0)
    assert road.driving(0.0, -1) == [-2, -1] and road.driving(0.0, 1) == [1, 2]
    for lane in (-3, 3):
        assert at(town.cmap, road, lane, 100.0).lane_type == carla.LaneType.Sidewalk
    assert town.cmap.get_all_landmarks() == []


def test_cross_is_one_signalised_junction(generated: dict[str, Town]) -> None:
    town = generated["cross"]
    arms = junction_roads(town.roads)
    (jid,) = arms
    assert arms[jid] == {1, 2, 3, 4}
    assert all(town.roads[r].length == pytest.approx(100.0) for r in arms[jid])
    lit, stops = check_signals(town, min_lit=1, min_stop=0)
    assert lit == {jid} and stops == set()
    assert len(town.cmap.get_all_landmarks()) == 4
    orientations = {lm.orientation for lm in town.cmap.get_all_landmarks()}
    assert orientations == {carla.LandmarkOrientation.Positive, carla.LandmarkOrientation.Negative}
    assert len([r for r in town.roads.values() if r.junction == jid]) == 12  # 4 arms x 3 movements


def test_tee_stops_its_stem(generated: dict[str, Town]) -> None:
    town = generated["tee"]
    (jid,) = junction_roads(town.roads)
    lit, stops = check_signals(town, min_lit=0, min_stop=1)
    assert lit == set() and stops == {jid}
    (sign,) = town.cmap.get_all_landmarks()
    assert sign.road_id == 3  # the stem, to the south
    assert len([r for r in town.roads.values() if r.junction == jid]) == 6  # 3 arms x 2 movements


# ------------------------------------------------------------------------------------- highway


def test_highway_lanes_ramps_and_speeds(generated: dict[str, Town]) -> None:
    town = generated["highway"]
    roads = town.roads
    main = [roads[i] for i in (1, 2, 3)]
    for road in main:
        assert len(road.driving(road.length / 2, -1)) >= 3 and len(road.driving(road.length / 2, 1)) >= 3
        assert road.speeds[0] in (100.0, 110.0, 120.0)
    for ramp in (roads[4], roads[5]):
        assert ramp.driving(0.0, -1) == [-1] and 60.0 <= ramp.speeds[0] <= 80.0
    total = sum(r.length for r in roads.values() if r.junction < 0 and r.id in (1, 2, 3)) + 2 * 40.0
    assert 1000.0 <= total <= 1500.0
    # the on-ramp's lane flows through junction 10 into the acceleration lane, road 2 lane -5
    ramp_end = at(town.cmap, roads[4], -1, roads[4].length - 0.3)
    (conn,) = ramp_end.next(1.0)
    (acc,) = at(town.cmap, roads[conn.road_id], conn.lane_id, roads[conn.road_id].length).next(0.5)
    assert (acc.road_id, acc.lane_id) == (2, -5)
    assert acc.lane_width == pytest.approx(3.5)
    assert acc.lane_change == carla.LaneChange.Left
    assert acc.get_left_lane().lane_type == carla.LaneType.Driving
    # ... which narrows to nothing and ends on road 2: its traffic must merge left
    w, widths = acc, [acc.lane_width]
    for _ in range(100):
        nxt = w.next(5.0)
        if not nxt:
            break
        (w,) = nxt
        assert (w.road_id, w.lane_id) == (2, -5)
        widths.append(w.lane_width)
    else:
        raise AssertionError("the acceleration lane never ends")
    assert widths[-1] < 0.1 and np.all(np.diff(widths) <= 1e-9)
    assert w.s < roads[2].length / 2
    # the deceleration lane at the end of road 2 leads into the off-ramp
    decel_end = at(town.cmap, roads[2], -5, roads[2].length - 0.3)
    (conn,) = decel_end.next(1.0)
    (off,) = at(town.cmap, roads[conn.road_id], conn.lane_id, roads[conn.road_id].length).next(0.5)
    assert off.road_id == 5
    # through lanes run the whole way in both directions
    graph = lane_graph(town)
    for lane in (-2, -3, -4):
        assert nx.has_path(graph, (1, lane), (3, lane))
    for lane in (2, 3, 4):
        assert nx.has_path(graph, (3, lane), (1, lane))
    assert town.cmap.get_all_landmarks() == []


# -------------------------------------------------------------------------------------- catalog


def test_save_town_round_trip(tmp_path: Path) -> None:
    path = catalog.save_town("cross", 3, tmp_path / "maps" / "cross.xodr")
    assert path == tmp_path / "maps" / "cross.xodr"
    assert path.read_text(encoding="utf-8") == towns.make_town("cross", 3)
    assert os.listdir(path.parent) == ["cross.xodr"], "no temporary file left behind"
    catalog.clear_cache()
    road_map = catalog.load_map(MapRef(xodr=str(path)))
    assert isinstance(road_map, RoadMap)
    assert road_map.name == "cross" and road_map.xodr == path.read_text(encoding="utf-8")
    assert len(road_map.signal_kind) == 4


def test_load_map_caches_by_ref_and_file_stamp(tmp_path: Path) -> None:
    catalog.clear_cache()
    first = catalog.load_map(MapRef(town="tee", seed=0))
    assert catalog.load_map(MapRef(town="tee", seed=0)) is first
    assert first.xodr == towns.tee(0)
    path = catalog.save_town("straight", 0, tmp_path / "s.xodr")
    from_file = catalog.load_map(MapRef(xodr=str(path)))
    assert catalog.load_map(MapRef(xodr=str(path))) is from_file
    path.write_text(towns.make_town("tee", 0), encoding="utf-8")
    os.utime(path, ns=(10**18, 10**18))
    reloaded = catalog.load_map(MapRef(xodr=str(path)))
    assert reloaded is not from_file and len(reloaded.signal_kind) == 1
    for k in range(catalog.CACHE_SIZE):
        catalog.load_map(MapRef(town="straight", seed=k))
    assert catalog.load_map(MapRef(town="tee", seed=0)) is not first, "least recently used map evicted"


def test_load_map_errors_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.xodr"
    with pytest.raises(MapError, match=r"nowhere\.xodr"):
        catalog.load_map(MapRef(xodr=str(missing)))
    with pytest.raises(MapError, match="grid"):
        catalog.load_map(MapRef(town="atlantis"))


def test_load_map_reads_a_map_written_by_others() -> None:
    if not SHARED_MAPS.is_dir():
        pytest.skip(f"shared OpenDRIVE maps not found at {SHARED_MAPS} (they live outside the repo)")
    road_map = catalog.load_map(MapRef(xodr=str(SHARED_MAPS / "simple_4way_intersection.xodr")))
    assert road_map.name == "simple_4way_intersection"
    assert len(road_map.driving_lanes) > 0


def test_signal_positions_sit_on_the_sidewalk(generated: dict[str, Town]) -> None:
    """Signals stand beside the entering lanes, on the right of the traffic they face."""
    town = generated["cross"]
    for lm in town.cmap.get_all_landmarks():
        road = town.roads[lm.road_id]
        (jid,) = junction_roads(town.roads)
        lane = entering_lanes(road, jid)[-1]
        w = at(town.cmap, road, lane, lm.s)
        right, forward = w.transform.get_right_vector(), w.transform.get_forward_vector()
        offset = xy_of(lm.transform.location) - xy(w)
        # on the sidewalk's centre line (CARLA shifts landmarks a little along the road)
        sidewalk = at(town.cmap, road, lane + (1 if lane > 0 else -1), lm.s)
        lateral = 0.5 * w.lane_width + 0.5 * sidewalk.lane_width
        assert float(offset @ np.array([right.x, right.y])) == pytest.approx(lateral, abs=1e-3)
        assert abs(float(offset @ np.array([forward.x, forward.y]))) < 0.5


def xy_of(loc: carla.Location) -> np.ndarray:
    return np.array([loc.x, loc.y])
