"""Scenario YAML files (``scenarios.schema``): round trips, and for every kind of mistake an error
that names the file, the field path and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenarios import schema
from scenarios.schema import (
    BEHAVIOUR_ACTORS,
    BOUNDS,
    ScenarioError,
    check_on_map,
    dump_scenario,
    dump_scenarios,
    load_scenario,
    load_scenarios,
    scenario_from_dict,
    scenario_to_dict,
)
from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    LightState,
    MapRef,
    Pose,
    SignalTiming,
    WorldSpec,
)
from sim_bridge.maps.catalog import load_map, save_town
from sim_bridge.maps.towns import TOWNS

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
EXAMPLES = Path(__file__).resolve().parents[1] / "scenarios" / "examples"

LEAD_BRAKE = """\
name: lead_brake_01
family: lead_vehicle_brake
seed: 3
params: {gap: 25.0, decel: 6.0}
world:
  map: {town: straight, seed: 0}
  ego: {x: 20.0, y: -1.75, yaw: 0.0}
  ego_speed: 8.0
  route: [[250.0, -1.75]]
  vehicles: 0
  pedestrians: 0
  signals: {green: 10, yellow: 3, all_red: 1}
  actors:
    - kind: vehicle
      pose: {x: 45.0, y: -1.75, yaw: 0.0}
      speed: 8.0
      behaviour: {kind: brake, trigger_distance: 30.0, decel: 6.0}
    - kind: Pedestrian
      pose: {x: 60.0, y: -8.0, yaw: 1.5707963267948966}
      behaviour: {kind: CROSS, trigger_distance: 20.0}
criteria: {route_timeout: 60.0}
trigger_area: [45.0, -1.75, 30.0]
"""


def write(folder: Path, text: str, name: str = "x.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def error_of(path: Path, **kwargs: bool) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------- loading


def test_layout_maps_onto_the_dataclasses(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, LEAD_BRAKE))
    assert spec.name == "lead_brake_01" and spec.family == "lead_vehicle_brake" and spec.seed == 3
    assert spec.params == {"gap": 25.0, "decel": 6.0}
    w = spec.world
    assert w.map == MapRef(town="straight", seed=0)
    assert w.ego == Pose(20.0, -1.75, 0.0) and w.ego_speed == 8.0
    assert w.route == ((250.0, -1.75),) and isinstance(w.route[0], tuple)
    assert (w.vehicles, w.pedestrians) == (0, 0)
    assert w.signals == SignalTiming(green=10.0, yellow=3.0, all_red=1.0)
    lead, walker = w.actors
    assert lead.kind is ActorKind.VEHICLE and lead.speed == 8.0
    assert lead.behaviour == Behaviour(kind=BehaviourKind.BRAKE, trigger_distance=30.0, decel=6.0)
    assert walker.kind is ActorKind.PEDESTRIAN and walker.behaviour.kind is BehaviourKind.CROSS  # any case
    assert walker.behaviour.trigger_time == math.inf  # defaults come from the dataclass
    assert spec.criteria == CriteriaConfig(route_timeout=60.0)
    assert spec.trigger_area == (45.0, -1.75, 30.0)


def test_examples_load_and_pass_the_map_check() -> None:
    lead = load_scenario(EXAMPLES / "lead_brake_straight.yaml", check_map=True)
    assert lead.world.actors[0].behaviour.kind is BehaviourKind.BRAKE
    walker = load_scenario(EXAMPLES / "crossing_pedestrian.yaml", check_map=True)
    # lane-relative ego: 15 m along lane (1, 0, -1) of the straight town, which starts at x = 0.001
    assert walker.world.ego is not None
    assert walker.world.ego.x == pytest.approx(15.001, abs=1e-6)
    assert (walker.world.ego.y, walker.world.ego.yaw) == pytest.approx((-1.75, 0.0))
    assert walker.world.actors[0].behaviour.kind is BehaviourKind.CROSS


def test_inf_is_accepted_where_the_default_is_inf_only(tmp_path: Path) -> None:
    text = edited(LEAD_BRAKE, "trigger_distance: 30.0,", "trigger_distance: 30.0, trigger_time: .inf,")
    assert load_scenario(write(tmp_path, text)).world.actors[0].behaviour.trigger_time == math.inf
    bad = edited(LEAD_BRAKE, "speed: 8.0\n      behaviour", "speed: .inf\n      behaviour")
    assert "world.actors[0].speed: inf is not allowed; expected a finite number" in str(
        error_of(write(tmp_path, bad))
    )


# ------------------------------------------------------------------------------------ round trip


def test_round_trip_of_the_examples(tmp_path: Path) -> None:
    for src in ("lead_brake_straight.yaml", "crossing_pedestrian.yaml"):
        spec = load_scenario(EXAMPLES / src)
        for include in (True, False):
            out = dump_scenario(spec, tmp_path / f"{include}_{src}", include_defaults=include)
            assert load_scenario(out) == spec
    assert scenario_from_dict(scenario_to_dict(spec)) == spec


def test_dump_writes_enums_by_name_and_tuples_as_lists(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, LEAD_BRAKE)).replace(
        world=load_scenario(write(tmp_path, LEAD_BRAKE)).world.replace(signal_states=((0, LightState.RED),))
    )
    data = yaml.safe_load((dump_scenario(spec, tmp_path / "out.yaml")).read_text())
    assert data["world"]["actors"][0]["kind"] == "vehicle"
    assert data["world"]["actors"][0]["behaviour"]["kind"] == "brake"
    assert data["world"]["signal_states"] == [[0, "red"]]
    assert data["world"]["route"] == [[250.0, -1.75]]
    short = scenario_to_dict(spec, include_defaults=False)
    assert "route_length" not in short["world"] and short["world"]["ego_speed"] == 8.0


def test_several_scenarios_round_trip_under_scenarios(tmp_path: Path) -> None:
    one = load_scenario(write(tmp_path, LEAD_BRAKE))
    two = one.replace(name="lead_brake_02", seed=4)
    path = dump_scenarios([one, two], tmp_path / "suite.yaml")
    assert list(yaml.safe_load(path.read_text())) == ["scenarios"]
    assert load_scenarios(path) == [one, two]
    with pytest.raises(ScenarioError, match="holds 2 scenarios; load it with load_scenarios"):
        load_scenario(path)


def test_xodr_inside_the_folder_is_written_relative_and_read_back_absolute(tmp_path: Path) -> None:
    xodr = save_town("straight", 0, tmp_path / "maps" / "straight.xodr")
    spec = ScenarioSpec(name="file_map", world=WorldSpec(map=MapRef(xodr=str(xodr)), ego=Pose(20.0, -1.75)))
    inside = dump_scenario(spec, tmp_path / "s.yaml")
    assert yaml.safe_load(inside.read_text())["world"]["map"]["xodr"] == str(Path("maps") / "straight.xodr")
    assert load_scenario(inside) == spec
    beside = dump_scenario(spec, tmp_path / "specs" / "s.yaml")  # outside the YAML's folder: kept absolute
    assert yaml.safe_load(beside.read_text())["world"]["map"]["xodr"] == str(xodr)
    assert load_scenario(beside) == spec


# ----------------------------------------------------------------- property: any valid spec round-trips

finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e6, max_value=1e6)
non_negative = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789 -", min_size=1, max_size=12).filter(str.strip)
poses = st.builds(Pose, finite, finite, finite)
plain = st.one_of(st.none(), st.booleans(), st.integers(-(10**9), 10**9), finite, words)


@st.composite
def behaviours(draw: st.DrawFn, actor: ActorKind) -> Behaviour:
    kinds = [k for k, actors in BEHAVIOUR_ACTORS.items() if actor in actors]
    return Behaviour(
        kind=draw(st.sampled_from(kinds)),
        trigger_distance=draw(non_negative),
        trigger_time=draw(st.one_of(st.just(math.inf), non_negative)),
        decel=draw(positive),
        lane_change=draw(st.sampled_from([-1, 1])),
        lane_change_time=draw(positive),
        door_width=draw(non_negative),
        ignore_signals=draw(st.booleans()),
        ignore_actors=draw(st.booleans()),
        lateral_offset=draw(finite),
    )


@st.composite
def actors(draw: st.DrawFn) -> ActorSpec:
    kind = draw(st.sampled_from(list(ActorKind)))
    return ActorSpec(
        kind=kind,
        pose=draw(poses),
        speed=draw(non_negative),
        target_speed=draw(st.none() | non_negative),
        length=draw(st.none() | positive),
        width=draw(st.none() | positive),
        route=tuple(draw(st.lists(st.tuples(finite, finite), max_size=3))),
        behaviour=draw(behaviours(kind)),
    )


@st.composite
def specs(draw: st.DrawFn) -> ScenarioSpec:
    signals = draw(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(list(LightState))), max_size=3))
    unique = tuple({s: (s, light) for s, light in signals}.values())
    world = WorldSpec(
        map=MapRef(town=draw(st.sampled_from(sorted(TOWNS))), seed=draw(st.integers(0, 2**31))),
        ego=draw(st.none() | poses),
        ego_speed=draw(non_negative),
        route=tuple(draw(st.lists(st.tuples(finite, finite), max_size=4))),
        route_length=draw(positive),
        actors=tuple(draw(st.lists(actors(), max_size=3))),
        vehicles=draw(st.integers(0, 100)),
        pedestrians=draw(st.integers(0, 100)),
        traffic_radius=draw(positive),
        signals=SignalTiming(draw(positive), draw(non_negative), draw(non_negative), draw(st.booleans())),
        signal_states=unique,
    )
    criteria = CriteriaConfig(
        route_timeout=draw(st.none() | positive),
        scenario_timeout=draw(positive),
        blocked_speed=draw(non_negative),
        end_on_collision=draw(st.booleans()),
    )
    return ScenarioSpec(
        name=draw(words),
        world=world,
        criteria=criteria,
        family=draw(words),
        params=draw(st.dictionaries(words, st.one_of(plain, st.lists(plain, max_size=3)), max_size=3)),
        seed=draw(st.integers(0, 2**31)),
        trigger_area=draw(st.none() | st.tuples(finite, finite, positive)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs(), include=st.booleans())
def test_any_valid_spec_round_trips(tmp_path: Path, spec: ScenarioSpec, include: bool) -> None:
    path = dump_scenario(spec, tmp_path / "rt.yaml", include_defaults=include)
    assert load_scenario(path) == spec
    assert scenario_from_dict(scenario_to_dict(spec, include)) == spec


# -------------------------------------------------------------------------------------- errors


def test_bad_enum_names_file_field_and_allowed_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "scenarios").mkdir()
    write(tmp_path / "scenarios", edited(LEAD_BRAKE, "kind: CROSS", "kind: brak"))
    monkeypatch.chdir(tmp_path)  # the file is named as given
    message = str(error_of(Path("scenarios/x.yaml")))
    assert message.startswith(
        "scenarios/x.yaml: world.actors[1].behaviour.kind: 'brak' is not one of cruise, stopped, brake, "
        "cut_in, cross, open_door"
    )
    assert message.endswith("(line 20)")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unknown key, with the closest known one
        (
            "      behaviour: {kind: brake",
            "      behavior: {kind: brake",
            "world.actors[0].behavior: unknown key in ActorSpec; did you mean 'behaviour'?",
        ),
        (
            "ego_speed: 8.0",
            "ego_sped: 8.0",
            "world.ego_sped: unknown key in WorldSpec; did you mean 'ego_speed'?",
        ),
        (
            "criteria: {route_timeout",
            "critera: {route_timeout",
            "critera: unknown key in ScenarioSpec; did you mean 'criteria'?",
        ),
        # wrong types
        ("ego_speed: 8.0", "ego_speed: fast", "world.ego_speed: expected a number, got 'fast'"),
        ("vehicles: 0", "vehicles: 2.5", "world.vehicles: expected an integer, got 2.5"),
        ("vehicles: 0", "vehicles: true", "world.vehicles: expected an integer, got True"),
        ("seed: 3", "seed: '3'", "seed: expected an integer, got '3'"),
        (
            "route: [[250.0, -1.75]]",
            "route: [[250.0]]",
            "world.route[0]: expected 2 items [a number, a number], got 1",
        ),
        (
            "route: [[250.0, -1.75]]",
            "route: 250.0",
            "world.route: expected a list of ([a number, a number]), got 250.0",
        ),
        (
            "trigger_area: [45.0, -1.75, 30.0]",
            "trigger_area: {x: 1}",
            "trigger_area: expected [a number, a number, a number], got {'x': 1}",
        ),
        ("params: {gap: 25.0, decel: 6.0}", "params: [1, 2]", "params: expected a mapping, got [1, 2]"),
        # enums
        (
            "kind: vehicle",
            "kind: car",
            "world.actors[0].kind: 'car' is not one of vehicle, pedestrian, static",
        ),
        (
            "  actors:",
            "  signal_states: [[0, purple]]\n  actors:",
            "world.signal_states[0][1]: 'purple' is not one of green, yellow, red",
        ),
        # non-finite numbers
        ("ego: {x: 20.0", "ego: {x: .nan", "world.ego.x: nan is not allowed; expected a finite number"),
        (
            "params: {gap: 25.0",
            "params: {gap: .nan",
            "params.gap: nan is not allowed; expected a finite number",
        ),
        (
            "trigger_distance: 30.0",
            "trigger_distance: -.inf",
            "world.actors[0].behaviour.trigger_distance: -inf is not allowed",
        ),
        # meaningless negatives: speed, count, duration, size; choices
        (
            "      speed: 8.0\n",
            "      speed: -1.0\n",
            "world.actors[0].speed: -1.0 is not allowed; must be >= 0",
        ),
        ("pedestrians: 0", "pedestrians: -2", "world.pedestrians: -2 is not allowed; must be >= 0"),
        ("{green: 10,", "{green: 0,", "world.signals.green: 0.0 is not allowed; must be > 0"),
        (
            "route_timeout: 60.0",
            "route_timeout: -5",
            "criteria.route_timeout: -5.0 is not allowed; must be > 0",
        ),
        (
            "30.0, decel: 6.0}",
            "30.0, decel: 6.0, trigger_time: -1}",
            "world.actors[0].behaviour.trigger_time: -1.0 is not allowed; must be >= 0",
        ),
        (
            "      speed: 8.0\n",
            "      speed: 8.0\n      length: 0\n",
            "world.actors[0].length: 0.0 is not allowed; must be > 0",
        ),
        (
            "30.0, decel: 6.0}",
            "30.0, decel: 6.0, lane_change: 2}",
            "world.actors[0].behaviour.lane_change: 2 is not one of -1, 1",
        ),
        (
            "trigger_area: [45.0, -1.75, 30.0]",
            "trigger_area: [45.0, -1.75, 0.0]",
            "trigger_area[2]: radius 0.0 is not allowed; must be > 0",
        ),
        (
            "  actors:",
            "  signal_states: [[-1, red]]\n  actors:",
            "world.signal_states[0][0]: signal index -1 is not allowed; must be >= 0",
        ),
        # missing required fields
        ("name: lead_brake_01\n", "", "name: missing required field (a string)"),
        (
            "pose: {x: 45.0, y: -1.75, yaw: 0.0}",
            "pose: {x: 45.0, yaw: 0.0}",
            "world.actors[0].pose.y: missing required field (a number)",
        ),
        (
            "    - kind: vehicle\n",
            "    - speed: 1.0\n",
            "world.actors[0].kind: missing required field (one of vehicle, pedestrian, static)",
        ),
        # maps
        (
            "town: straight",
            "town: stright",
            "world.map.town: 'stright' is not one of grid, highway, straight, cross, tee (did you mean 'straight'?)",
        ),
        (
            "{town: straight, seed: 0}",
            "{xodr: maps/none.xodr}",
            "world.map.xodr: OpenDRIVE file 'maps/none.xodr' not found",
        ),
        # behaviour that does not apply to the actor kind
        (
            "kind: CROSS",
            "kind: brake",
            "world.actors[1].behaviour.kind: 'brake' applies to vehicle, not to a pedestrian; behaviours for a pedestrian: cruise, stopped, cross",
        ),
        # YAML-level: duplicate keys
        ("ego_speed: 8.0", "ego_speed: 8.0\n  ego_speed: 9.0", "world.ego_speed: duplicate key"),
    ],
)
def test_each_mistake_names_file_field_and_what_is_allowed(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, edited(LEAD_BRAKE, old, new))
    message = str(error_of(path))
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_known_keys_are_listed_from_the_dataclass(tmp_path: Path) -> None:
    message = str(error_of(write(tmp_path, edited(LEAD_BRAKE, "ego_speed: 8.0", "zzz: 8.0"))))
    names = [f.name for f in dataclasses.fields(WorldSpec)]
    assert f"known keys: {', '.join(names)}" in message


def test_all_mistakes_of_a_file_are_reported_together(tmp_path: Path) -> None:
    text = LEAD_BRAKE
    for old, new in [
        ("town: straight", "town: stright"),
        ("ego_speed: 8.0", "ego_speed: -1.0"),
        ("kind: vehicle", "kind: car"),
        ("kind: CROSS", "kind: brak"),
        ("route_timeout: 60.0", "route_timeout: .nan"),
    ]:
        text = edited(text, old, new)
    err = error_of(write(tmp_path, text))
    assert len(err.errors) == 5
    assert {e.path for e in err.errors} == {
        "world.map.town",
        "world.ego_speed",
        "world.actors[0].kind",
        "world.actors[1].behaviour.kind",
        "criteria.route_timeout",
    }
    assert str(err).startswith(f"{tmp_path / 'x.yaml'}: 5 errors:")
    assert all(e.source == str(tmp_path / "x.yaml") and e.line is not None for e in err.errors)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, edited(LEAD_BRAKE, "ego: {x: 20.0, y: -1.75, yaw: 0.0}", "ego: {x: 20.0, y: -1.75")
    )
    message = str(error_of(path))
    assert message.startswith(f"{path}:8:"), message
    assert "YAML syntax error" in message


def test_file_that_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(
        ScenarioError, match=r"expected a scenario \(a mapping\) or 'scenarios: \[...\]', got \[1, 2\]"
    ):
        load_scenario(write(tmp_path, "[1, 2]\n"))
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_suite_errors_carry_the_scenario_index_and_names_are_unique(tmp_path: Path) -> None:
    body = LEAD_BRAKE.replace("\n", "\n    ")
    good = "  - " + body.rstrip()
    bad = "  - " + edited(LEAD_BRAKE, "kind: CROSS", "kind: brak").replace("\n", "\n    ").rstrip()
    message = str(error_of_suite(write(tmp_path, f"scenarios:\n{good}\n{bad}\n")))
    assert "scenarios[1].world.actors[1].behaviour.kind: 'brak' is not one of" in message
    message = str(error_of_suite(write(tmp_path, f"scenarios:\n{good}\n{good}\n")))
    assert "scenarios[1].name: 'lead_brake_01' is already used by scenarios[0]" in message
    message = str(error_of_suite(write(tmp_path, f"scenarios:\n{good}\nextra: 1\n")))
    assert "extra: unknown key in a file of scenarios" in message


def error_of_suite(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    return info.value


def test_tables_name_real_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls, name in [*BOUNDS, *schema.CHOICES]:
        assert cls in schema.SCHEMA_CLASSES and name in {f.name for f in dataclasses.fields(cls)}
    monkeypatch.setitem(BOUNDS, (WorldSpec, "no_such_field"), ">= 0")
    with pytest.raises(RuntimeError, match=r"WorldSpec\.no_such_field, which is not a field"):
        schema._check_tables()


# ------------------------------------------------------------------------------ paths and poses


def test_relative_xodr_resolves_against_the_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xodr = save_town("straight", 0, tmp_path / "maps" / "straight.xodr")
    folder = tmp_path / "deep" / "specs"
    folder.mkdir(parents=True)
    path = write(folder, edited(LEAD_BRAKE, "{town: straight, seed: 0}", "{xodr: ../../maps/straight.xodr}"))
    monkeypatch.chdir(tmp_path / "deep")  # not the YAML's folder: the path must not depend on it
    spec = load_scenario(path, check_map=True)
    assert spec.world.map.xodr == str(xodr) and os.path.isabs(spec.world.map.xodr)
    # scenario_from_dict takes relative paths from base_dir, else the working directory
    data = yaml.safe_load(path.read_text())
    assert scenario_from_dict(data, base_dir=folder).world.map.xodr == str(xodr)
    with pytest.raises(
        ScenarioError, match=r"<dict>: world.map.xodr: OpenDRIVE file '../../maps/straight.xodr' not found"
    ):
        scenario_from_dict(data)


def test_lane_relative_pose_is_resolved_on_the_map(tmp_path: Path) -> None:
    text = edited(
        LEAD_BRAKE, "ego: {x: 20.0, y: -1.75, yaw: 0.0}", "ego: {lane: [1, 0, 2], s: 100.0, offset: 0.5}"
    )
    spec = load_scenario(write(tmp_path, text))
    # lane (1, 0, 2) drives west (yaw pi) at y = 5.25 from x = 300; 0.5 m to its left is south
    ego = spec.world.ego
    assert ego is not None
    assert (ego.x, ego.y) == pytest.approx((300.0 - 100.0, 5.25 - 0.5), abs=0.01)
    assert abs(abs(ego.yaw) - math.pi) < 1e-9
    # actors too; the default map (grid) serves a world without map:
    text = "name: g\nworld:\n  ego: {lane: [1, 0, -1], s: 5.0}\n"
    grid = load_map(MapRef())
    lane = grid.lane_keys.index((1, 0, -1))
    xy, yaw = grid.pose_at(np.array([lane]), np.array([5.0]))
    got = load_scenario(write(tmp_path, text, "g.yaml")).world.ego
    assert got == Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


@pytest.mark.parametrize(
    ("ego", "expected"),
    [
        (
            "{lane: [1, 0, -5], s: 5.0}",
            "world.ego.lane: [1, 0, -5] is not a lane of map 'straight_0'; lanes of road 1: [1, 0, -1], [1, 0, -2], "
            "[1, 0, -3], [1, 0, 1], [1, 0, 2], [1, 0, 3]",
        ),
        (
            "{lane: [1, 0, -1], s: 400.0}",
            "world.ego.s: 400.0 is past the end of lane [1, 0, -1] (300.0 m long); use 0 <= s <= 300.0",
        ),
        ("{lane: [1, 0, -1]}", "world.ego.s: missing required field"),
        ("{lane: [1, 0, -1], s: 5.0, yaw: 1.0}", "world.ego.yaw: unknown key in a lane-relative pose"),
        ("{lane: [1, -1], s: 5.0}", "world.ego.lane: expected 3 items"),
    ],
)
def test_lane_relative_pose_errors(tmp_path: Path, ego: str, expected: str) -> None:
    message = str(error_of(write(tmp_path, edited(LEAD_BRAKE, "{x: 20.0, y: -1.75, yaw: 0.0}", ego))))
    assert expected in message, message


# --------------------------------------------------------------------------------- map checks


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "ego: {x: 20.0, y: -1.75",
            "ego: {x: 20.0, y: -30.0",
            "world.ego: ego start (20.00, -30.00) is more than 5 m from every driving lane of map 'straight_0'",
        ),
        (
            "route: [[250.0, -1.75]]",
            "route: [[250.0, -1.75], [250.0, 40.0]]",
            "world.route[1]: waypoint (250.00, 40.00) is more than 5 m from every driving lane",
        ),
        (
            "route: [[250.0, -1.75]]",
            "route: [[10.0, -1.75]]",
            "world.route: no drivable route from the start through these waypoints on map 'straight_0'",
        ),
        (
            "pose: {x: 45.0, y: -1.75",
            "pose: {x: 45.0, y: 20.0",
            "world.actors[0].pose: vehicle (45.00, 20.00) is more than 5 m from every driving lane",
        ),
        (
            "  actors:",
            "  signal_states: [[0, red]]\n  actors:",
            "world.signal_states[0][0]: signal 0 does not exist on map 'straight_0' (signals: none: the map has no signals)",
        ),
    ],
)
def test_map_check_names_the_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = write(tmp_path, edited(LEAD_BRAKE, old, new))
    load_scenario(path)  # structurally fine …
    message = str(error_of(path, check_map=True))  # … wrong on the map
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_signal_indices_are_checked_against_the_map(tmp_path: Path) -> None:
    text = (
        "name: red\nworld:\n  map: {town: cross}\n  ego: {lane: [4, 0, -1], s: 20.0}\n"
        "  signal_states: [[3, red], [4, green]]\n"
    )
    path = write(tmp_path, text)
    err = error_of(path, check_map=True)
    assert [e.path for e in err.errors] == ["world.signal_states[1][0]"]
    assert "signal 4 does not exist on map 'cross_0' (signals: 0..3)" in str(err)
    spec = check_on_map(load_scenario(write(tmp_path, text.replace("[4, green]", "[2, green]"))))
    assert spec is None


def test_real_map_by_relative_path(tmp_path: Path) -> None:
    if not SHARED_MAPS.is_dir():
        pytest.skip(f"shared OpenDRIVE maps not found at {SHARED_MAPS}")
    xodr = SHARED_MAPS / "simple_4way_intersection.xodr"
    rm = load_map(MapRef(xodr=str(xodr)))
    lane, s = rm.spawn_points(spacing=20.0)
    key = list(rm.lane_keys[int(lane[0])])
    rel = os.path.relpath(xodr, tmp_path)
    text = f"name: real\nworld:\n  map: {{xodr: {rel}}}\n  ego: {{lane: {key}, s: {float(s[0])}}}\n"
    spec = load_scenario(write(tmp_path, text), check_map=True)
    assert spec.world.map.xodr == str(xodr)
    xy, yaw = rm.pose_at(lane[:1], s[:1])
    assert spec.world.ego == Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
