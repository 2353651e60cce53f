"""CARLA Leaderboard routes (``scenarios.leaderboard``): routes start on the right lane heading and
pass their waypoints, scenario types become the right actors where they belong, malformed files
give errors naming the file, the route and the element."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenarios.leaderboard import (
    CROSS_SPEED,
    DOOR_GAP,
    FAMILY,
    PASS_TOLERANCE,
    SCENARIO_BUILDERS,
    SLOW_FACTOR,
    TRIGGER_RADIUS,
    load_routes,
)
from scenarios.schema import ScenarioError, check_on_map, dump_scenario, load_scenario
from scenarios.spec import ScenarioSpec
from sim_bridge.api import Action, ActorKind, BehaviourKind, MapRef
from sim_bridge.frames import carla_to_map, map_to_carla, wrap_angle
from sim_bridge.maps.catalog import load_map, save_town
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.sensors.layout import RouteCommand

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
EXAMPLE = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "routes_procedural.xml"
TOWNS = {"straight": MapRef(town="straight"), "cross": MapRef(town="cross")}

#: straight town: eastbound lanes at y = -1.75 (inner, 3.5 m wide) and -5.25; road edge at -7.0
LANE_Y, LANE_W, EDGE_Y = -1.75, 3.5, -7.0
SPEED_LIMIT = 50.0 / 3.6
#: half the widest lane of the test maps [m]
HALF_LANE = 2.0


@pytest.fixture(scope="module")
def example() -> dict[str, ScenarioSpec]:
    return {s.params["route_id"]: s for s in load_routes(EXAMPLE, TOWNS)}


def route_xml(routes: list[str]) -> str:
    return "<routes>\n" + "\n".join(routes) + "\n</routes>\n"


def lb2_route(rid: str, town: str, xy: np.ndarray, scenarios: str = "") -> str:
    """A Leaderboard 2.0 ``<route>`` through map-frame points ``xy [W, 2]`` (converted to CARLA)."""
    cx, cy, _ = map_to_carla(xy[:, 0], xy[:, 1])
    positions = "".join(f'<position x="{x!r}" y="{y!r}" z="0.0"/>' for x, y in zip(cx.tolist(), cy.tolist()))
    return (
        f'<route id="{rid}" town="{town}"><waypoints>{positions}</waypoints>'
        f"<scenarios>{scenarios}</scenarios></route>"
    )


def scenario_xml(stype: str, x: float, y: float, yaw: float, params: str = "") -> str:
    cx, cy, cyaw = map_to_carla(x, y, yaw)
    return (
        f'<scenario name="{stype}_1" type="{stype}"><trigger_point x="{cx}" y="{cy}" z="0" yaw="{cyaw}"/>'
        f"{params}</scenario>"
    )


def write(tmp_path: Path, text: str, name: str = "routes_test.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path, towns: object = TOWNS) -> str:
    with pytest.raises(ScenarioError) as info:
        load_routes(path, towns)  # type: ignore[arg-type]
    return str(info.value)


def route_of(spec: ScenarioSpec):
    rm = load_map(spec.world.map)
    ego = spec.world.ego
    assert ego is not None
    return rm, rm.route(np.array([[ego.x, ego.y], *spec.world.route]), start_yaw=ego.yaw)


def distance_to_polyline(points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``[K]`` distance [m] from each of ``xy [K, 2]`` to the polyline ``points [P, 2]``."""
    a, b = points[:-1], points[1:]
    ab = b - a
    t = np.clip(np.einsum("kpi,pi->kp", xy[:, None, :] - a, ab) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    closest = a + t[..., None] * ab
    return np.hypot(*(closest - xy[:, None, :]).transpose(2, 0, 1)).min(axis=1)


def check_start_and_waypoints(spec: ScenarioSpec, waypoints_map: np.ndarray) -> RoadMap:
    """The ego starts on the lane under the first waypoint facing its heading; the route passes all
    waypoints (through those it is planned through, within ``PASS_TOLERANCE`` of junction ones left out)."""
    rm, route = route_of(spec)
    ego = spec.world.ego
    assert ego is not None
    proj = rm.project(np.array([[ego.x, ego.y]]), np.array([ego.yaw]))
    assert proj.lane[0] >= 0 and abs(proj.lateral[0]) < 1e-6 and abs(proj.heading_error[0]) < 1e-6
    first = rm.project(waypoints_map[:1], np.array([ego.yaw]))
    assert proj.lane[0] == first.lane[0] and proj.s[0] == pytest.approx(first.s[0], abs=1e-6)
    rest = [tuple(p) for p in waypoints_map[1:].tolist()]
    planned = list(spec.world.route)
    assert planned[-1] == rest[-1] and all(p in rest for p in planned)
    assert [rest.index(p) for p in planned] == sorted(rest.index(p) for p in planned)  # in order
    # the route runs along a lane containing each waypoint: within half a lane width of it, and
    # within PASS_TOLERANCE of the junction waypoints it was not planned through
    assert distance_to_polyline(route.points, waypoints_map).max() < HALF_LANE
    left_out = np.array([p for p in rest if p not in planned]).reshape(-1, 2)
    assert (distance_to_polyline(route.points, left_out) <= PASS_TOLERANCE).all()
    return rm


# ------------------------------------------------------------------------------ the example file


def test_example_routes_start_on_lane_heading_and_pass_their_waypoints(
    example: dict[str, ScenarioSpec],
) -> None:
    assert sorted(example) == ["0", "1", "2"]
    for rid, spec in example.items():
        assert spec.name == f"routes_procedural_{rid}" and spec.family == FAMILY
        assert spec.params["leaderboard_format"] == "2.0"
        assert spec.params["town"] == ("cross" if rid == "2" else "straight")
        check_on_map(spec)
    # closed form: CARLA (10, 1.75) → map (10, -1.75) on the eastbound lane, heading east
    assert example["0"].world.ego is not None
    e0 = example["0"].world.ego
    assert (e0.x, e0.y, e0.yaw) == pytest.approx((10.0, LANE_Y, 0.0), abs=1e-3)
    check_start_and_waypoints(
        example["0"], np.array([[10.0, LANE_Y], [100, LANE_Y], [200, LANE_Y], [290, LANE_Y]])
    )
    assert all(len(s.world.route) == 3 for s in example.values())  # nothing left out
    for spec in example.values():  # on lane centres: the routes pass exactly through them
        assert distance_to_polyline(route_of(spec)[1].points, np.array(spec.world.route)).max() < 1e-3
    e2 = example["2"].world.ego
    assert e2 is not None and (e2.x, e2.y, e2.yaw) == pytest.approx((1.625, -99.249, math.pi / 2), abs=1e-3)
    wp2 = np.array([[1.625, -99.249], [1.625, -40.0], [1.625, 40.0], [1.625, 90.0]])
    check_start_and_waypoints(example["2"], wp2)


def test_unsupported_types_are_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scenarios.leaderboard"):
        specs = {s.params["route_id"]: s for s in load_routes(EXAMPLE, TOWNS)}
    assert specs["0"].params["scenario_types"] == [
        "ParkedObstacle",
        "HardBreakRoute",
        "ControlLoss",
        "ConstructionObstacle",
    ]
    assert specs["0"].params["unsupported_scenarios"] == ["ControlLoss"]
    assert specs["1"].params["unsupported_scenarios"] == []
    assert specs["2"].params["unsupported_scenarios"] == ["SignalizedJunctionLeftTurn"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("route 0" in m and "'ControlLoss'" in m and "unsupported_scenarios" in m for m in logged)
    assert any("route 2" in m and "'SignalizedJunctionLeftTurn'" in m for m in logged)
    assert "ControlLoss" not in SCENARIO_BUILDERS


def test_obstacles_stand_in_the_lane_ahead_of_their_trigger(example: dict[str, ScenarioSpec]) -> None:
    spec = example["0"]
    assert spec.trigger_area == (30.0, LANE_Y, TRIGGER_RADIUS)  # the first reproduced trigger point
    parked, _lead, *construction = spec.world.actors
    # ParkedObstacle: trigger x = 30, distance 25, its centre on the right edge of the lane
    assert parked.kind is ActorKind.STATIC
    assert (parked.pose.x, parked.pose.y, parked.pose.yaw) == pytest.approx((55.0, LANE_Y - LANE_W / 2, 0.0))
    # ConstructionObstacle: trigger 200, distance 40: cones taper in from the edge, then a block
    cones, block = construction[:3], construction[3]
    assert [c.pose.x for c in cones] == pytest.approx([234.0, 237.0, 240.0])
    assert all(c.kind is ActorKind.STATIC and c.length == 0.5 for c in cones)
    ys = [c.pose.y for c in cones]
    assert ys[0] < ys[1] < ys[2] < LANE_Y  # moving toward the lane centre, on its right half
    assert block.pose.x == pytest.approx(244.0) and block.width == pytest.approx(LANE_W / 2)
    assert block.pose.y + block.width / 2 == pytest.approx(LANE_Y)  # covers the right half exactly
    # Accident (route 1): trigger 220, distance 20: three cars at +0, +10, +16 m, 0.75 half-widths right
    accident = example["1"].world.actors[3:]
    assert [a.pose.x for a in accident] == pytest.approx([240.0, 250.0, 256.0])
    assert [a.pose.y for a in accident] == pytest.approx([LANE_Y - 0.75 * LANE_W / 2] * 3)


def test_lead_vehicle_brakes_and_follows_the_ego_route(example: dict[str, ScenarioSpec]) -> None:
    lead = example["0"].world.actors[1]
    assert lead.kind is ActorKind.VEHICLE and lead.behaviour.kind is BehaviourKind.BRAKE
    assert (lead.pose.x, lead.pose.y, lead.pose.yaw) == pytest.approx((115.0, LANE_Y, 0.0))  # 90 + 25
    assert lead.target_speed == pytest.approx(SLOW_FACTOR * SPEED_LIMIT)  # the ego catches up
    assert lead.route == ((200.0, LANE_Y), (290.0, LANE_Y))  # the ego's waypoints beyond it
    assert lead.behaviour.trigger_distance > 0


def test_cut_in_crossing_and_door(example: dict[str, ScenarioSpec]) -> None:
    cut_in, walker, door = example["1"].world.actors[:3]
    # StaticCutIn: in the lane to the right (y = -5.25) at 40 + 30 m, cutting left into the ego lane
    assert cut_in.kind is ActorKind.VEHICLE and cut_in.behaviour.kind is BehaviourKind.CUT_IN
    assert (cut_in.pose.x, cut_in.pose.y, cut_in.pose.yaw) == pytest.approx((70.0, LANE_Y - LANE_W, 0.0))
    assert cut_in.behaviour.lane_change == 1
    # DynamicObjectCrossing: beyond the right road edge at 120 + 15 m, facing north across the road
    assert walker.kind is ActorKind.PEDESTRIAN and walker.behaviour.kind is BehaviourKind.CROSS
    assert (walker.pose.x, walker.pose.y) == pytest.approx((135.0, EDGE_Y - 1.0), abs=1e-6)
    assert walker.pose.yaw == pytest.approx(math.pi / 2) and walker.target_speed == CROSS_SPEED
    rm = load_map(MapRef(town="straight"))
    assert not rm.on_drivable(np.array([walker.pose.x, walker.pose.y]))
    # VehicleOpensDoorTwoWays: parked just right of the ego lane at 180 + 30 m; the opened door
    # (+1 m on its left) reaches into the ego lane
    assert door.kind is ActorKind.STATIC and door.behaviour.kind is BehaviourKind.OPEN_DOOR
    assert door.behaviour.lane_change == 1
    assert door.width is not None
    assert door.pose.x == pytest.approx(210.0)
    assert door.pose.y + door.width / 2 == pytest.approx(LANE_Y - LANE_W / 2 - DOOR_GAP)  # outside the lane
    assert (
        door.pose.y + door.width / 2 + door.behaviour.door_width > LANE_Y - LANE_W / 2
    )  # door opens into it


def test_opposite_vehicle_crosses_the_junction_from_the_right(example: dict[str, ScenarioSpec]) -> None:
    spec = example["2"]
    runner, walker = spec.world.actors
    ego = spec.world.ego
    assert ego is not None
    assert runner.kind is ActorKind.VEHICLE and runner.behaviour.kind is BehaviourKind.STOPPED
    assert runner.behaviour.ignore_signals and runner.behaviour.ignore_actors
    # the ego drives north; the runner comes from the east (its right) heading west
    assert wrap_angle(runner.pose.yaw - ego.yaw) == pytest.approx(math.pi / 2)
    assert runner.pose.x > 9.0 and runner.pose.y == pytest.approx(1.625)
    rm = load_map(MapRef(town="cross"))
    path = rm.route(np.array([[runner.pose.x, runner.pose.y], *runner.route]), start_yaw=runner.pose.yaw)
    assert path.points[-1, 0] < -9.0  # straight through the junction to the west arm
    _, ego_route = route_of(spec)
    gaps = np.hypot(*(path.points[:, None, :] - ego_route.points[None, :, :]).transpose(2, 0, 1))
    assert gaps.min() < 0.5  # the two paths cross
    # PedestrianCrossing, direction left: beyond the west road edge at y = -20 + 15 m, facing east
    assert walker.behaviour.kind is BehaviourKind.CROSS
    assert (walker.pose.x, walker.pose.y, walker.pose.yaw) == pytest.approx(
        (-3.25 - 1.0, 35.0, 0.0), abs=1e-6
    )


def test_loaded_routes_round_trip_through_yaml_and_run(
    example: dict[str, ScenarioSpec], tmp_path: Path
) -> None:
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    for spec in example.values():
        assert load_scenario(dump_scenario(spec, tmp_path / f"{spec.name}.yaml"), check_map=True) == spec
        sim = EmbeddedSimulator()
        sim.reset(spec.world.replace(vehicles=0, pedestrians=0), seed=0)
        _, events = sim.step(Action(0.0, 0.0))
        assert events.route_length[0] == pytest.approx(route_of(spec)[1].length, abs=1e-6)
        sim.close()


# --------------------------------------------------------------------------- 1.0 form, other maps


def test_leaderboard_1_0_form_with_yaw(tmp_path: Path) -> None:
    # westbound on the straight town: lane (1, 0, 1) at map y = +1.75, i.e. CARLA y = -1.75, yaw 180
    points = "".join(
        f'<waypoint x="{x}" y="-1.75" z="0.0" pitch="0.0" roll="0.0" yaw="180.0"/>'
        for x in (280.0, 150.0, 20.0)
    )
    path = write(tmp_path, route_xml([f'<route id="7" town="straight">{points}</route>']))
    (spec,) = load_routes(path, MapRef(town="straight"))
    assert spec.params["leaderboard_format"] == "1.0" and spec.params["scenario_types"] == []
    ego = spec.world.ego
    assert ego is not None and (ego.x, ego.y) == pytest.approx((280.0, 1.75), abs=1e-3)
    assert abs(ego.yaw) == pytest.approx(math.pi)
    check_start_and_waypoints(spec, np.array([[280.0, 1.75], [150.0, 1.75], [20.0, 1.75]]))


def test_one_xodr_path_for_every_town(tmp_path: Path) -> None:
    xodr = save_town("straight", 0, tmp_path / "straight.xodr")
    xy = np.array([[10.0, LANE_Y], [150.0, LANE_Y]])
    path = write(tmp_path, route_xml([lb2_route("a", "Town12", xy), lb2_route("b", "Town13", xy)]))
    specs = load_routes(path, str(xodr))
    assert [s.world.map for s in specs] == [MapRef(xodr=str(xodr))] * 2
    assert [s.params["town"] for s in specs] == ["Town12", "Town13"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), spacing=st.floats(15.0, 40.0))
def test_random_grid_routes_round_trip_through_carla_coordinates(
    tmp_path: Path, seed: int, spacing: float
) -> None:
    """Property: waypoints sampled along any random route of the grid town, written in CARLA
    coordinates, load back to an ego on the first waypoint's lane heading and a route through them."""
    rm = load_map(MapRef(town="grid"))
    check_random_route(tmp_path, rm, MapRef(town="grid"), seed, spacing)


@pytest.mark.parametrize("name", ["simple_4way_intersection", "fabriksgatan", "multi_lane_3way_intersection"])
def test_random_routes_on_real_maps(tmp_path: Path, name: str) -> None:
    if not SHARED_MAPS.is_dir():
        pytest.skip(f"shared OpenDRIVE maps not found at {SHARED_MAPS}")
    ref = MapRef(xodr=str(SHARED_MAPS / f"{name}.xodr"))
    rm = load_map(ref)
    for seed in range(4):
        check_random_route(tmp_path, rm, ref, seed, 20.0)


def check_random_route(tmp_path: Path, rm: RoadMap, ref: MapRef, seed: int, spacing: float) -> None:
    rng = np.random.default_rng(seed)
    lanes, ss = rm.spawn_points(spacing=10.0)
    k = int(rng.integers(len(lanes)))
    route = rm.random_route(int(lanes[k]), float(ss[k]), 150.0, rng)
    if route.length < 2 * spacing:
        return
    picks = np.unique(
        np.append(np.searchsorted(route.s, np.arange(0.0, route.length, spacing)), len(route.s) - 1)
    )
    changing = np.isin(route.commands[picks], [RouteCommand.CHANGE_LANE_LEFT, RouteCommand.CHANGE_LANE_RIGHT])
    waypoints = route.points[picks[~changing]]  # on lane centres (not halfway through a lane change)
    path = write(tmp_path, route_xml([lb2_route(str(seed), "T", waypoints)]))
    (spec,) = load_routes(path, ref)
    check_start_and_waypoints(spec, waypoints)
    # no detour: the generating route passes every waypoint, so the loaded one is no longer
    true_length = route.s[picks[~changing][-1]] - route.s[picks[~changing][0]]
    assert route_of(spec)[1].length <= true_length + 1.0
    # positions went through CARLA's frame and back
    cx, cy, _ = map_to_carla(waypoints[:, 0], waypoints[:, 1])
    assert np.allclose(np.stack(carla_to_map(cx, cy)[:2], axis=1), waypoints)


# ------------------------------------------------------------------------------------- errors


STRAIGHT_XY = np.array([[10.0, LANE_Y], [100.0, LANE_Y], [200.0, LANE_Y]])


def test_missing_town_names_file_and_route(tmp_path: Path) -> None:
    route = lb2_route("5", "straight", STRAIGHT_XY).replace(' town="straight"', "")
    path = write(tmp_path, route_xml([route]))
    message = errors_of(path)
    assert message.startswith(f"{path}: route 5: <route> has no 'town' attribute"), message


def test_town_without_a_map(tmp_path: Path) -> None:
    path = write(tmp_path, route_xml([lb2_route("3", "Town12", STRAIGHT_XY)]))
    message = errors_of(path)
    assert f"{path}: route 3: town 'Town12' has no map: town_xodr names cross, straight" in message
    message = errors_of(path, {"Town12": str(tmp_path / "nowhere.xodr")})
    assert (
        "route 3: the OpenDRIVE file" in message and "nowhere.xodr" in message and "does not exist" in message
    )


def test_waypoint_off_the_map_names_route_and_index(tmp_path: Path) -> None:
    xy = STRAIGHT_XY.copy()
    xy[2] = (200.0, 60.0)  # 60 m north of the road
    path = write(tmp_path, route_xml([lb2_route("11", "straight", xy)]))
    message = errors_of(path)
    assert message.startswith(f"{path}: route 11: waypoints/position[2]: waypoint (map x=200.00, y=60.00)")
    assert "more than 5 m from every driving lane of map 'straight_0'" in message


def test_bad_xml_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, '<routes>\n  <route id="1" town="straight">\n    <waypoints>\n  </route>\n</routes>\n'
    )
    message = errors_of(path)
    assert message.startswith(f"{path}:4:"), message
    assert "XML syntax error: mismatched tag" in message
    path = write(tmp_path, "<scenarios/>", "other.xml")
    assert "the root element is <scenarios>; a routes file has <routes>" in errors_of(path)


def test_bad_values_and_placements_name_the_element(tmp_path: Path) -> None:
    good = lb2_route("1", "straight", STRAIGHT_XY)
    bad_number = good.replace('y="1.75"', 'y="north"', 1)
    off_trigger = lb2_route("2", "straight", STRAIGHT_XY, scenario_xml("ParkedObstacle", 50.0, 30.0, 0.0))
    no_left_lane = lb2_route(
        "3",
        "straight",
        STRAIGHT_XY,
        scenario_xml("StaticCutIn", 40.0, LANE_Y, 0.0, '<direction value="left"/>'),
    )
    too_far = lb2_route(
        "4",
        "straight",
        STRAIGHT_XY,
        scenario_xml("ParkedObstacle", 40.0, LANE_Y, 0.0, '<distance value="500"/>'),
    )
    bad_direction = lb2_route(
        "5", "straight", STRAIGHT_XY, scenario_xml("Accident", 40.0, LANE_Y, 0.0, '<direction value="up"/>')
    )
    no_junction = lb2_route(
        "6", "straight", STRAIGHT_XY, scenario_xml("OppositeVehicleTakingPriority", 40, LANE_Y, 0)
    )
    duplicate = lb2_route("6", "straight", STRAIGHT_XY)
    path = write(
        tmp_path,
        route_xml([bad_number, off_trigger, no_left_lane, too_far, bad_direction, no_junction, duplicate]),
    )
    with pytest.raises(ScenarioError) as info:
        load_routes(path, TOWNS)
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 7  # every route's problem, reported together
    assert messages[0] == f"{path}: route 1: waypoints/position[0]: y='north' is not a number"
    assert messages[1].startswith(f"{path}: route 2: scenarios/scenario[0] (name='ParkedObstacle_1', ")
    assert "trigger_point: (map x=50.00, y=30.00) is 31.8 m from the route" in messages[1]
    assert (
        "route 3: scenarios/scenario[0]" in messages[2] and "needs a driving lane to the left" in messages[2]
    )
    assert "route 4:" in messages[3] and "beyond the end of the route" in messages[3]
    assert "route 5:" in messages[4] and "<direction value='up'> must be 'left' or 'right'" in messages[4]
    assert (
        "route 6:" in messages[5] and "needs a junction on the route after the trigger point" in messages[5]
    )
    assert "route 6: route id '6' is used twice" in messages[6]


def test_route_driven_against_its_lane_is_refused(tmp_path: Path) -> None:
    xy = STRAIGHT_XY[::-1].copy()  # westward along the eastbound lane
    path = write(tmp_path, route_xml([lb2_route("9", "straight", xy)]))
    message = errors_of(path)
    assert f"{path}: route 9: waypoints/position[0]: the route leaves its first waypoint against" in message
