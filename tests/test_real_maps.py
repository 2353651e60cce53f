"""Scenario families on real OpenDRIVE maps written by others (``../shared/maps``, esmini's): every
family a map can hold places there along lane paths (across roads, lane sections and junctions),
deterministically, and the expert drives it; a family the map cannot hold names the family, the
map and the feature it lacks."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.expert import Expert, ExpertConfig
from scenarios.families import FAMILIES, make_scenario
from scenarios.families.base import MissingFeature
from scenarios.families.following import CHANGE_FROM, CHANGE_TO
from scenarios.families.lane_paths import LanePath, lane_curvature, lane_paths, max_curvature
from scenarios.metrics import success
from scenarios.runner import EpisodeJob, run_episode
from scenarios.schema import check_on_map
from scenarios.spec import ScenarioSpec
from sim_bridge.api import MapRef, Pose
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.sensors.layout import RouteCommand

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
pytestmark = pytest.mark.skipif(
    not SHARED_MAPS.is_dir(), reason=f"real OpenDRIVE maps not found at {SHARED_MAPS} (not shipped)"
)
STREETS = {
    "invading_turn",
    "occluded_pedestrian",
    "parked_obstacle",
    "pedestrian_crossing",
    "vehicle_opens_door",
}
#: what each map holds (with the families' default parameters)
HOLDS = {
    "fabriksgatan": STREETS,
    "simple_4way_intersection": STREETS,
    "highway_example_with_merge_and_split": {
        "cut_in_highway", "cut_in_urban", "lead_vehicle_brake", "merge_slow_traffic",
    },
    "multi_lane_3way_intersection": {"cut_in_urban"},
    "star": set(),
}  # fmt: skip
#: the feature named in the error of a family a map cannot hold
LACKS = {
    ("star", "pedestrian_crossing"): "street of 62 m outside junctions with 1 lane(s) each way",
    ("fabriksgatan", "signalised_left_turn"): "signalised junction",
    ("fabriksgatan", "lead_vehicle_brake"): "with a lane to the left",
    ("simple_4way_intersection", "merge_slow_traffic"): "on-ramp with an acceleration lane",
    ("multi_lane_3way_intersection", "stop_sign_priority"): "stop sign",
    ("multi_lane_3way_intersection", "cut_in_highway"): "highway of",
    ("highway_example_with_merge_and_split", "urban_route"): "route of 800 m",
}


def _ref(name: str) -> MapRef:
    return MapRef(xodr=str(SHARED_MAPS / f"{name}.xodr"))


def _on_lane(rm: RoadMap, pose: Pose) -> int:
    """The driving lane under ``pose`` facing its way (fails otherwise)."""
    proj = rm.project(np.array([[pose.x, pose.y]]), np.array([pose.yaw]), max_distance=2.0)
    assert proj.lane[0] >= 0, f"{pose} is off every driving lane"
    assert abs(float(proj.heading_error[0])) < 0.3, f"{pose} faces against lane {rm.lane_keys[proj.lane[0]]}"
    return int(proj.lane[0])


@pytest.mark.parametrize("map_name", sorted(HOLDS))
def test_every_family_the_map_holds_places_there_and_the_others_name_what_it_lacks(map_name: str) -> None:
    ref = _ref(map_name)
    rm = load_map(ref)
    for name in sorted(FAMILIES):
        if name not in HOLDS[map_name]:
            with pytest.raises(MissingFeature) as err:
                make_scenario(name, seed=0, town=ref)
            text = str(err.value)
            assert f"family {name!r}" in text and ref.key() in text and "the map has no" in text, text
            assert LACKS.get((map_name, name), "") in err.value.feature
            continue
        spec = make_scenario(name, seed=0, town=ref)
        assert spec.world.map == ref
        check_on_map(spec, name)  # ego and vehicles on lanes, the route drivable from the ego's start
        assert spec.world.ego is not None
        _on_lane(rm, spec.world.ego)
        ego = spec.world.ego
        route = rm.route(np.array([[ego.x, ego.y], *spec.world.route]), start_yaw=ego.yaw)
        assert route.length > 30.0, name


@pytest.mark.parametrize("map_name", ["fabriksgatan", "highway_example_with_merge_and_split"])
def test_placement_is_deterministic_and_the_seed_moves_it(map_name: str) -> None:
    ref = _ref(map_name)
    for name in sorted(HOLDS[map_name]):
        spec = make_scenario(name, seed=5, town=ref)
        assert make_scenario(name, seed=5, town=ref) == spec
        if name == "merge_slow_traffic":  # the map's one on-ramp: the seed changes the traffic only
            continue
        others = [make_scenario(name, seed=s, town=ref).world for s in (6, 7, 8)]
        assert any(o.ego != spec.world.ego for o in others), f"{name}: the seed never moves the ego"


def test_the_route_passes_the_standing_lead_in_the_left_lane_of_its_lane_section() -> None:
    """Real maps split a road into short lane sections: the lead stops inside one, and the route
    changes into that section's left lane just before the lead (on the highway example a route
    through the standing car left the expert stuck behind it)."""
    ref = _ref("highway_example_with_merge_and_split")
    rm = load_map(ref)
    for seed in range(4):
        spec = make_scenario("lead_vehicle_brake", seed=seed, town=ref)
        ego = spec.world.ego
        assert ego is not None
        p = spec.params
        # where the lead stands along the route (which follows the lead's lane up to there)
        stop = p["lead_gap"] + p["speed"] * p["brake_after"] + p["speed"] ** 2 / (2.0 * p["decel"])
        route = rm.route(np.array([[ego.x, ego.y], *spec.world.route]), start_yaw=ego.yaw)
        before, beside = (
            int(route.point_lane[np.searchsorted(route.s, s)]) for s in (stop - CHANGE_FROM - 1.0, stop)
        )
        assert rm.lane_junction[before] < 0 and rm.lane_left[before] == beside  # one section, its left lane
        changing = route.commands == int(RouteCommand.CHANGE_LANE_LEFT)
        assert changing.any()
        s_change = route.s[changing]
        assert stop - CHANGE_FROM - 1.0 <= s_change.min() and s_change.max() <= stop - CHANGE_TO + 1.0


@settings(max_examples=20, deadline=None)
@given(frac=st.floats(0.0, 1.0), which=st.integers(0, 10_000))
def test_a_lane_path_is_one_continuous_arc_length_over_its_lanes(frac: float, which: int) -> None:
    rm = load_map(_ref("highway_example_with_merge_and_split"))
    paths = lane_paths(rm, 150.0, junctions=True)
    assert any(len(p.lanes) > 2 for p in paths)  # no single lane is that long: paths span several
    path = paths[which % len(paths)]
    for a, b in zip(path.lanes, path.lanes[1:], strict=False):
        assert b in rm.lane_successors[a]
    s = frac * path.length
    lane, ls = path.locate(s)
    assert 0.0 <= ls <= rm.lane_length[lane] + 1e-6
    # a metre on along the path is a metre on in the map, across lane ends too
    here, there = path.pose(rm, s), path.pose(rm, min(s + 1.0, path.length))
    step = math.hypot(there.x - here.x, there.y - here.y)
    assert step == pytest.approx(min(s + 1.0, path.length) - s, abs=0.15)


def test_a_path_window_keeps_to_its_conditions_and_curvature() -> None:
    rm = load_map(_ref("fabriksgatan"))
    limit = max_curvature(10.0)
    paths = lane_paths(rm, 60.0, 20.0, lambda k: rm.lane_right[k] < 0, limit)
    assert paths
    bend = lane_curvature(rm)
    for path in paths:
        for lane, start in zip(path.lanes, path.starts, strict=True):
            if start < 60.0:  # the window's lanes
                assert rm.lane_junction[lane] < 0 and bend[lane] <= limit and rm.lane_right[lane] < 0
        assert isinstance(path, LanePath) and path.clear >= 60.0 and path.length >= 80.0


def _drive(spec: ScenarioSpec):
    job = EpisodeJob(
        spec, functools.partial(Expert, ExpertConfig()), functools.partial(EmbeddedSimulator, EmbeddedConfig()),
        "embedded", "expert",
    )  # fmt: skip
    return run_episode(job)


@pytest.mark.parametrize(
    ("map_name", "name", "seed"),
    [
        # the lead stops in narrow (3 m) lanes: the expert must keep room to steer round it
        ("highway_example_with_merge_and_split", "lead_vehicle_brake", 1),
        ("highway_example_with_merge_and_split", "merge_slow_traffic", 0),
        # a route that ends near a dead end, a street of curved paramPoly3 roads
        ("fabriksgatan", "pedestrian_crossing", 0),
        ("simple_4way_intersection", "parked_obstacle", 0),
    ],
)
def test_the_expert_drives_families_on_real_maps(map_name: str, name: str, seed: int) -> None:
    result = _drive(make_scenario(name, seed=seed, town=_ref(map_name)))
    assert success(result), (result.termination, result.infractions)
    assert result.scores["driving_score"] >= 90.0
