"""Scenario families: every family builds with its defaults, deterministically from its seed, puts
the ego and its actors where its docstring says (on driving lanes, in their direction), names the
allowed values in its errors, runs on held-out towns, and — in closed loop on the embedded
simulator — its scripted hazard actually happens."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.base import AgentInfo
from planning.lane_follower import LaneFollower
from scenarios.families import FAMILIES, make_scenario
from scenarios.families.base import FamilyError
from scenarios.families.obstacles import PARKED_WIDTH
from scenarios.schema import check_on_map
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, BehaviourKind, MapRef, Pose
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import RoadMap, SignalKind
from sim_bridge.sensors.layout import RouteCommand

NAMES = sorted(FAMILIES)
#: families whose town holds a single place of their kind (the ``tee``'s stem, the highway's
#: on-ramp): their seed changes the simulated episode (background traffic, light offsets), not
#: the placement
SINGLE_PLACE = {"stop_sign_priority", "merge_slow_traffic"}
#: heading of a placed vehicle against its lane [rad]
HEADING_TOLERANCE = 0.3
HELD_OUT = {"grid": MapRef("grid", 7), "highway": MapRef("highway", 7)}


def _build(name: str, seed: int = 0, town: MapRef | None = None, **params: object) -> ScenarioSpec:
    return make_scenario(name, dict(params), seed=seed, town=town)


def _on_lane(rm: RoadMap, pose: Pose, lateral: float = 0.0) -> tuple[int, float]:
    """The driving lane under ``pose`` agreeing with its yaw, and the arc length [m] there; fails
    unless ``pose`` lies within that lane (``lateral`` [m] off its centre allowed) facing its way."""
    proj = rm.project(np.array([[pose.x, pose.y]]), np.array([pose.yaw]), max_distance=abs(lateral) + 3.0)
    lane = int(proj.lane[0])
    assert lane >= 0, f"{pose} is not on a driving lane"
    assert abs(float(proj.heading_error[0])) < HEADING_TOLERANCE, f"{pose} faces against lane {lane}"
    assert abs(float(proj.lateral[0]) - lateral) < 0.1, f"{pose} is {proj.lateral[0]:.2f} m off lane {lane}"
    return lane, float(proj.s[0])


def _route(spec: ScenarioSpec, rm: RoadMap):
    ego = spec.world.ego
    assert ego is not None
    return rm.route(np.array([[ego.x, ego.y], *spec.world.route]), start_yaw=ego.yaw)


def _yaw_diff(a: float, b: float) -> float:
    return math.atan2(math.sin(a - b), math.cos(a - b))


# ------------------------------------------------------------------------------------ every family


@pytest.mark.parametrize("name", NAMES)
def test_family_builds_with_its_defaults_on_its_town(name: str) -> None:
    family = FAMILIES[name]
    spec = _build(name)
    assert (spec.name, spec.family, spec.seed, spec.world.map) == (f"{name}_s0", name, 0, family.town)
    assert spec.params == family.defaults
    check_on_map(spec, name)  # ego and vehicles on lanes, the route drivable from the ego's start
    rm = load_map(spec.world.map)
    ego = spec.world.ego
    assert ego is not None
    _on_lane(rm, ego)  # on a driving lane, facing its direction
    for actor in spec.world.actors:
        if actor.kind == ActorKind.VEHICLE:
            _on_lane(rm, actor.pose)
        gap = math.hypot(actor.pose.x - ego.x, actor.pose.y - ego.y)
        assert gap > (1.5 if actor.kind == ActorKind.PEDESTRIAN else 4.0), f"{actor} starts on the ego"
    assert _route(spec, rm).length > 30.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_an_equal_spec_and_other_seeds_other_ones(name: str) -> None:
    spec = _build(name, seed=3)
    assert _build(name, seed=3) == spec
    others = [_build(name, seed=s) for s in (4, 5, 6)]
    assert all(o != spec and o.seed != spec.seed for o in others)
    if name not in SINGLE_PLACE:
        assert any(o.world != spec.world for o in others), "the seed never changes the placement"


def test_unknown_family_error_names_the_known_families() -> None:
    with pytest.raises(FamilyError, match="unknown scenario family 'lead_brake'") as err:
        make_scenario("lead_brake")
    assert all(name in str(err.value) for name in NAMES)


@pytest.mark.parametrize("name", ["lead_vehicle_brake", "urban_route"])
def test_unknown_parameter_error_names_the_allowed_ones(name: str) -> None:
    with pytest.raises(FamilyError, match="has no parameter 'gap'") as err:
        make_scenario(name, {"gap": 3.0})
    assert all(key in str(err.value) for key in FAMILIES[name].defaults)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if not FAMILIES[n].town.xodr and FAMILIES[n].town.town in HELD_OUT]
)
def test_family_runs_on_the_held_out_town_of_its_kind(name: str) -> None:
    town = HELD_OUT[FAMILIES[name].town.town]
    assert load_map(town).bounds != load_map(FAMILIES[name].town).bounds  # another geometry
    spec = _build(name, seed=100, town=town)
    assert spec.world.map == town
    check_on_map(spec, name)
    rm = load_map(town)
    assert spec.world.ego is not None
    _on_lane(rm, spec.world.ego)


# ---------------------------------------------------------------------------------- placements


@settings(max_examples=15, deadline=None)
@given(
    gap=st.floats(10.0, 50.0),
    speed=st.floats(5.0, 15.0),
    seed=st.integers(0, 1000),
)
def test_lead_vehicle_is_ahead_of_the_ego_on_its_lane_at_the_gap(gap: float, speed: float, seed: int) -> None:
    spec = _build("lead_vehicle_brake", seed=seed, lead_gap=gap, speed=speed, decel=5.0, brake_after=3.0)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, s_ego = _on_lane(rm, spec.world.ego)
    (lead,) = spec.world.actors
    lead_lane, s_lead = _on_lane(rm, lead.pose)
    assert lead_lane == lane
    assert s_lead - s_ego == pytest.approx(gap, abs=0.05)
    assert lead.speed == lead.target_speed == spec.world.ego_speed == speed
    beh = lead.behaviour
    assert (beh.kind, beh.trigger_time, beh.decel) == (BehaviourKind.BRAKE, 3.0, 5.0)


@pytest.mark.parametrize(
    ("name", "side"),
    [
        ("cut_in_highway", "left"),
        ("cut_in_highway", "right"),
        ("cut_in_urban", "left"),
        ("cut_in_urban", "right"),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ttc", [1.5, 2.5])
def test_cutter_drives_in_the_neighbour_lane_on_its_side_and_cuts_towards_the_ego(
    name: str, side: str, seed: int, ttc: float
) -> None:
    spec = _build(name, seed=seed, side=side, ttc=ttc)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, s_ego = _on_lane(rm, spec.world.ego)
    (cutter,) = spec.world.actors
    cutter_lane, s_cutter = _on_lane(rm, cutter.pose)
    expected = rm.lane_left[lane] if side == "left" else rm.lane_right[lane]
    assert cutter_lane == expected
    assert cutter.behaviour.kind == BehaviourKind.CUT_IN
    assert cutter.behaviour.lane_change == (-1 if side == "left" else 1)  # towards the ego's lane
    assert s_cutter > s_ego + cutter.behaviour.trigger_distance  # ahead, before its trigger
    assert cutter.speed < spec.world.ego_speed


@pytest.mark.parametrize(
    ("lanes", "obstacle"), [(1, "parked"), (1, "accident"), (2, "parked"), (2, "accident")]
)
def test_parked_obstacle_blocks_the_ego_lane_ahead(lanes: int, obstacle: str) -> None:
    distance = 35.0
    spec = _build("parked_obstacle", lanes=lanes, obstacle=obstacle, distance=distance)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, s_ego = _on_lane(rm, spec.world.ego)
    if lanes == 2:
        assert rm.lane_right[lane] < 0  # the kerb lane of an avenue
    statics = [a for a in spec.world.actors if a.kind == ActorKind.STATIC]
    assert len(statics) == (1 if obstacle == "parked" else 2)
    proj = rm.project(np.array([[a.pose.x, a.pose.y] for a in statics]), max_distance=3.0)
    assert (proj.lane == lane).all() and proj.inside.all()  # in the ego's lane
    assert proj.s[0] - s_ego == pytest.approx(distance, abs=0.05)


def test_door_of_a_car_parked_on_the_kerb_opens_into_the_ego_lane() -> None:
    spec = _build("vehicle_opens_door", distance=40.0, door_width=1.2, trigger=24.0)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, s_ego = _on_lane(rm, spec.world.ego)
    (car,) = [a for a in spec.world.actors if a.kind == ActorKind.STATIC]
    proj = rm.project(np.array([[car.pose.x, car.pose.y]]), max_distance=5.0)
    width = float(rm.widths[rm.lane_start[lane]])
    assert int(proj.lane[0]) == lane
    assert proj.s[0] - s_ego == pytest.approx(40.0, abs=0.05)
    # right of the lane, its left side on the lane's edge: the door opens to the left, into the lane
    assert float(proj.lateral[0]) + 0.5 * PARKED_WIDTH == pytest.approx(-0.5 * width, abs=0.1)
    beh = car.behaviour
    assert (beh.kind, beh.lane_change, beh.door_width, beh.trigger_distance) == (
        BehaviourKind.OPEN_DOOR, 1, 1.2, 24.0,
    )  # fmt: skip


@pytest.mark.parametrize("side", ["right", "left"])
def test_crossing_pedestrian_waits_on_the_sidewalk_facing_across_the_road(side: str) -> None:
    spec = _build("pedestrian_crossing", side=side, distance=45.0)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    _on_lane(rm, spec.world.ego)
    (ped,) = [a for a in spec.world.actors if a.kind == ActorKind.PEDESTRIAN]
    assert not rm.on_drivable(np.array([[ped.pose.x, ped.pose.y]]))[0]  # off the road
    ego = spec.world.ego
    dx, dy = ped.pose.x - ego.x, ped.pose.y - ego.y
    along = dx * math.cos(ego.yaw) + dy * math.sin(ego.yaw)
    left = -dx * math.sin(ego.yaw) + dy * math.cos(ego.yaw)
    assert along == pytest.approx(45.0, abs=0.5)  # the ego starts on a straight block
    assert (left < 0) == (side == "right")
    # it faces across the road, towards the ego's lane: left when it stands right of it
    turn = _yaw_diff(ped.pose.yaw, ego.yaw)
    assert abs(abs(turn) - 0.5 * math.pi) < 0.05
    assert np.sign(turn) == -np.sign(left)
    assert ped.behaviour.kind == BehaviourKind.CROSS


def test_occluded_pedestrian_stands_in_front_of_the_parked_car_that_hides_it() -> None:
    spec = _build("occluded_pedestrian", distance=40.0)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, s_ego = _on_lane(rm, spec.world.ego)
    (car,) = [a for a in spec.world.actors if a.kind == ActorKind.STATIC]
    (ped,) = [a for a in spec.world.actors if a.kind == ActorKind.PEDESTRIAN]
    c, p = (rm.project(np.array([[a.pose.x, a.pose.y]]), max_distance=5.0) for a in (car, ped))
    assert int(c.lane[0]) == int(p.lane[0]) == lane
    assert 0.0 < p.s[0] - c.s[0] < 0.5 * 4.4 + 1.5  # just past its front bumper
    assert c.lateral[0] < 0 and p.lateral[0] < 0  # both on the kerb side
    assert c.s[0] - s_ego == pytest.approx(40.0, abs=0.05)


def test_invading_vehicle_comes_the_other_way_shifted_over_the_centre_line() -> None:
    spec = _build("invading_turn", overlap=0.2)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    lane, _ = _on_lane(rm, spec.world.ego)
    assert rm.lane_left[lane] < 0  # next to the centre line
    (car,) = spec.world.actors
    other, _ = _on_lane(rm, car.pose)
    assert rm.lane_road[other] == rm.lane_road[lane] and other != lane
    assert abs(_yaw_diff(car.pose.yaw, spec.world.ego.yaw)) > math.pi - 0.1
    w = float(rm.widths[rm.lane_start[other]])
    # its left side ends up `overlap` past where a centred ego's left side is
    assert car.behaviour.lateral_offset == pytest.approx(w - 1.9 + 0.2, abs=0.05)
    assert car.behaviour.ignore_actors


@pytest.mark.parametrize(
    ("name", "kind", "turn"),
    [
        ("signalised_left_turn", SignalKind.TRAFFIC_LIGHT, RouteCommand.LEFT),
        ("red_light_wait", SignalKind.TRAFFIC_LIGHT, None),
        ("red_light_runner", SignalKind.TRAFFIC_LIGHT, None),
        ("stop_sign_priority", SignalKind.STOP_SIGN, None),
    ],
)
def test_junction_family_routes_the_ego_over_a_controlled_stop_line(
    name: str, kind: SignalKind, turn: RouteCommand | None
) -> None:
    spec = _build(name)
    rm = load_map(spec.world.map)
    route = _route(spec, rm)
    lanes = route.lanes.tolist()
    crossed = [
        int(rm.signal_kind[g]) for ln, g in zip(rm.stop_lane.tolist(), rm.stop_signal.tolist()) if ln in lanes
    ]
    assert crossed == [int(kind)]
    junction_lanes = [ln for ln in lanes if rm.lane_junction[ln] >= 0]
    assert len(junction_lanes) == 1
    if turn is not None:
        assert rm.lane_turn[junction_lanes[0]] == int(turn)


@pytest.mark.parametrize("turn", ["left", "right"])
def test_stop_sign_family_takes_the_asked_turn(turn: str) -> None:
    spec = _build("stop_sign_priority", turn=turn)
    rm = load_map(spec.world.map)
    turns = [int(rm.lane_turn[ln]) for ln in _route(spec, rm).lanes.tolist() if rm.lane_junction[ln] >= 0]
    assert turns == [int(RouteCommand.LEFT if turn == "left" else RouteCommand.RIGHT)]


@settings(max_examples=12, deadline=None)
@given(length=st.floats(400.0, 1200.0), turns=st.integers(0, 3), seed=st.integers(0, 10_000))
def test_urban_route_has_its_length_turns_lights_and_stop_signs(length: float, turns: int, seed: int) -> None:
    spec = _build("urban_route", seed=seed, length=length, turns=turns, vehicles=33, pedestrians=21)
    rm = load_map(spec.world.map)
    route = _route(spec, rm)
    # as long as asked, or longer where it would end in a junction: then 10 m past it
    longest_junction_lane = rm.lane_length[rm.lane_junction >= 0].max()
    assert length - 0.5 <= route.length <= length + longest_junction_lane + 10.5
    lanes = route.lanes.tolist()
    assert rm.lane_junction[lanes[-1]] < 0
    junction_lanes = [ln for ln in lanes if rm.lane_junction[ln] >= 0]
    assert len(junction_lanes) >= 2
    assert (
        sum(int(rm.lane_turn[ln]) in (RouteCommand.LEFT, RouteCommand.RIGHT) for ln in junction_lanes)
        >= turns
    )
    kinds = {
        int(rm.signal_kind[g]) for ln, g in zip(rm.stop_lane.tolist(), rm.stop_signal.tolist()) if ln in lanes
    }
    assert kinds == {int(SignalKind.TRAFFIC_LIGHT), int(SignalKind.STOP_SIGN)}
    world = spec.world
    assert (world.ego_speed, world.vehicles, world.pedestrians, world.actors) == (0.0, 33, 21, ())
    assert spec.criteria.min_speed  # the full Leaderboard criteria


def test_urban_route_refuses_lengths_and_turns_it_cannot_give() -> None:
    with pytest.raises(
        FamilyError, match=r"length=20.0 is not allowed: length must be a number in \[100, 3000\] m"
    ):
        _build("urban_route", length=20.0)
    with pytest.raises(FamilyError, match="ask for fewer turns or a shorter route"):
        _build("urban_route", length=150.0, turns=6)


# ---------------------------------------------------------------------------- closed loop hazards


@pytest.fixture(scope="module")
def sim() -> Iterator[EmbeddedSimulator]:
    config = EmbeddedConfig(num_worlds=1, render_bev=False, max_vehicles=8, max_pedestrians=4, max_statics=4)
    with EmbeddedSimulator(config) as s:
        yield s


def _drive(sim: EmbeddedSimulator, spec: ScenarioSpec, seconds: float) -> Iterator[tuple[float, object]]:
    """Reset ``sim`` on ``spec`` without background actors; the blind lane follower drives the ego.
    Yields ``(time [s], actor boxes)`` after every step."""
    obs = sim.reset(spec.world.replace(vehicles=0, pedestrians=0), spec.seed)
    agent = LaneFollower()
    agent.reset(AgentInfo(1, sim.dt, sim.ego_vehicle, routes=(sim.route(0),)))
    for _ in range(round(seconds / sim.dt)):
        obs, events = sim.step(agent.act(obs))
        yield float(events.sim_time[0]), sim.actor_arrays()


def _slot(actors, actor_id: int) -> int:
    (slot,) = np.flatnonzero(actors.ids[0] == actor_id)
    return int(slot)


def test_lead_vehicle_keeps_its_speed_then_brakes_to_a_stop_after_its_trigger(sim: EmbeddedSimulator) -> None:
    p = {"lead_gap": 40.0, "speed": 10.0, "decel": 6.0, "brake_after": 3.0}
    spec = _build("lead_vehicle_brake", **p)
    times, speeds = [], []
    for t, actors in _drive(sim, spec, 5.5):
        times.append(t)
        speeds.append(float(actors.speed[0, _slot(actors, 1)]))  # the lead: the first scenario actor
    times_a, speeds_a = np.array(times), np.array(speeds)
    before = times_a < p["brake_after"] - 0.05
    assert (np.abs(speeds_a[before] - p["speed"]) < 0.3).all()  # cruising at its speed
    first_slow = times_a[np.argmax(speeds_a < p["speed"] - 1.0)]
    assert p["brake_after"] <= first_slow < p["brake_after"] + 0.5
    stop_time = p["brake_after"] + p["speed"] / p["decel"]
    assert speeds_a[times_a > stop_time + 0.4].max() < 0.2  # stopped about when decel says


def test_cut_in_vehicle_ends_up_in_the_ego_lane(sim: EmbeddedSimulator) -> None:
    spec = _build("cut_in_highway", side="left", ttc=2.5, lane_change_time=2.0)
    rm = load_map(spec.world.map)
    assert spec.world.ego is not None
    ego_lane, _ = _on_lane(rm, spec.world.ego)
    lanes = []
    for _, actors in _drive(sim, spec, 4.5):
        k = _slot(actors, 1)
        proj = rm.project(np.array([[actors.x[0, k], actors.y[0, k]]]), np.array([actors.yaw[0, k]]))
        lanes.append((int(proj.lane[0]), float(proj.lateral[0])))
    assert lanes[0][0] == rm.lane_left[ego_lane]
    route_lanes = set(_route(spec, rm).lanes.tolist())  # the ego's lane and its successors on the path
    # centred in the ego's lane
    assert any(lane in route_lanes and abs(lateral) < 0.5 for lane, lateral in lanes)


def test_parked_car_door_opens_when_the_ego_comes_within_its_trigger(sim: EmbeddedSimulator) -> None:
    spec = _build("vehicle_opens_door", traffic=0, door_width=1.2, trigger=24.0)
    car_id = 1  # the only scenario actor
    opened_at = None
    for t, actors in _drive(sim, spec, 5.0):
        k = _slot(actors, car_id)
        gap = math.hypot(actors.x[0, 0] - actors.x[0, k], actors.y[0, 0] - actors.y[0, k])
        width = float(actors.width[0, k])
        if opened_at is None:
            if width > PARKED_WIDTH + 1e-6:
                opened_at = t
                assert width == pytest.approx(PARKED_WIDTH + 1.2)
                assert gap < 24.0 + 2.0  # no earlier than the trigger (one step's travel)
            else:
                assert gap > 24.0 - 2.0  # no later than the trigger
    assert opened_at is not None


@pytest.mark.parametrize("name", ["pedestrian_crossing", "occluded_pedestrian"])
def test_pedestrian_walks_onto_the_road_ahead_of_the_ego(sim: EmbeddedSimulator, name: str) -> None:
    spec = _build(name, walk_speed=1.4)
    rm = load_map(spec.world.map)
    ped_id = 1 + sum(a.kind == ActorKind.VEHICLE for a in spec.world.actors)  # ids: vehicles first
    entered = None
    for t, actors in _drive(sim, spec, 5.0):
        k = _slot(actors, ped_id)
        xy = np.array([[actors.x[0, k], actors.y[0, k]]])
        if rm.on_drivable(xy)[0]:
            yaw = float(actors.yaw[0, 0])
            ahead = (xy[0, 0] - actors.x[0, 0]) * math.cos(yaw) + (xy[0, 1] - actors.y[0, 0]) * math.sin(yaw)
            entered = (t, ahead)
            break
    assert entered is not None, "the pedestrian never stepped onto the road"
    assert entered[1] > 5.0  # in front of the ego, not behind it
