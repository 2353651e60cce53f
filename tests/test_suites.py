"""The ``nhtsa`` and ``exam`` suites: they compose through Hydra like ``drive eval suite=<name>``,
expand into uniquely named scenarios, cover every family, and the exam is held out from the nhtsa
suite (seeds, parameter values) and from experience collection (towns; the scenario-family
situations of ``recipe=hazards``: towns, seeds, parameter values)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from drive.cli import compose_config
from drive.pipelines.collect import episode_seed, map_ref
from drive.pipelines.eval import resolve_suite
from drive.pipelines.situations import held_out, is_situation, placeable, situation
from drive.schemas import CollectConfig
from scenarios.families import FAMILIES
from scenarios.spec import ScenarioSpec
from scenarios.suites import Suite, SuiteError, suite_from_dict

NHTSA_SEEDS = [0, 1, 2]


def _compose(name: str) -> tuple[Any, Suite]:
    cfg = compose_config("eval", [f"suite={name}", "agent=lane_follower", "workers=1"])
    return cfg, resolve_suite(cfg)


@pytest.fixture(scope="module")
def nhtsa() -> tuple[Any, Suite]:
    return _compose("nhtsa")


@pytest.fixture(scope="module")
def exam() -> tuple[Any, Suite]:
    return _compose("exam")


def _key(spec: ScenarioSpec) -> tuple[str, str, tuple[tuple[str, Any], ...], int]:
    """What makes two episodes the same: family, town, parameters, seed."""
    return (spec.family, spec.world.map.key(), tuple(sorted(spec.params.items())), spec.seed)


def test_nhtsa_composes_and_runs_every_family_over_its_whole_grid_and_three_seeds(nhtsa) -> None:
    cfg, suite = nhtsa
    assert cfg.suite.name == suite.name == "nhtsa"
    entries = {e["family"]: e for e in cfg.suite.entries}
    assert set(entries) == set(FAMILIES)
    per_family = Counter(s.family for s in suite.scenarios)
    for name, family in FAMILIES.items():
        entry = entries[name]
        # the suite file repeats each family's registered grid: they must agree
        assert {k: list(v) for k, v in entry["params"].items()} == family.grid, name
        assert list(entry["seeds"]) == NHTSA_SEEDS
        assert per_family[name] == math.prod(len(v) for v in family.grid.values()) * len(NHTSA_SEEDS)
    for spec in suite.scenarios:
        assert spec.world.map == FAMILIES[spec.family].town  # each family on its own town
        assert spec.seed in NHTSA_SEEDS
    names = [s.name for s in suite.scenarios]
    assert len(set(names)) == len(names)


def test_nhtsa_grid_points_are_all_distinct_episodes(nhtsa) -> None:
    _, suite = nhtsa
    keys = [_key(s) for s in suite.scenarios]
    assert len(set(keys)) == len(keys)


def test_exam_composes_to_a_held_out_suite_of_every_family(exam) -> None:
    cfg, suite = exam
    assert cfg.suite.name == suite.name == "exam"
    assert 60 <= len(suite.scenarios) <= 100
    assert {s.family for s in suite.scenarios} == set(FAMILIES)
    names = [s.name for s in suite.scenarios]
    assert len(set(names)) == len(names)
    # towns experience is never collected on
    collected = set(CollectConfig().towns)
    for spec in suite.scenarios:
        assert spec.world.map.key() not in collected, spec.name
        home = FAMILIES[spec.family].town
        if home.town in ("grid", "highway") and not home.xodr:
            assert spec.world.map.town == home.town and spec.world.map.seed not in (0, 1, 2, 3)


def test_exam_is_disjoint_from_nhtsa_in_seeds_and_parameters(nhtsa, exam) -> None:
    _, ref = nhtsa
    _, held = exam
    assert not {_key(s) for s in ref.scenarios} & {_key(s) for s in held.scenarios}
    assert not {s.seed for s in ref.scenarios} & {s.seed for s in held.scenarios}
    grid_points: dict[str, set[tuple[tuple[str, Any], ...]]] = {}
    for spec in ref.scenarios:
        grid_points.setdefault(spec.family, set()).add(tuple(sorted(spec.params.items())))
    for spec in held.scenarios:  # every exam parameter point is off the nhtsa grid
        assert tuple(sorted(spec.params.items())) not in grid_points[spec.family], spec.name


def test_collection_situations_are_disjoint_from_the_exam_in_towns_seeds_and_parameters(exam) -> None:
    """As the nhtsa suite is: the scenario-family situations ``drive collect recipe=hazards`` mixes
    into its episodes never use the exam's towns, seeds or parameter points."""
    _, held = exam
    cfg = compose_config("collect", ["recipe=hazards"])
    situ = cfg.situations
    assert situ.share > 0.0 and list(situ.held_out) == ["exam"]
    footprint = held_out(list(situ.held_out))
    # what collection reads from the exam file is what `drive eval suite=exam` expands
    assert footprint.towns == {s.world.map.key() for s in held.scenarios}
    assert footprint.seeds == {s.seed for s in held.scenarios}
    assert all(footprint.holds_point(s.family, s.params) for s in held.scenarios)
    # the situations of the first episodes of every job of the default towns (job 0's episode
    # seeds include the exam's 100-102)
    collected = []
    for job, town in enumerate(str(t) for t in cfg.towns):
        ref = map_ref(town)
        families = placeable(list(situ.families), ref, situ.spread)
        for i in range(120 if job == 0 else 30):
            seed = episode_seed(int(cfg.seed), job, 0, i)
            spec = situation(seed, ref, families, situ.spread, footprint) if is_situation(
                seed, situ.share, footprint) else None  # fmt: skip
            if spec is not None:
                collected.append(spec)
    assert len(collected) > 80 and len({s.family for s in collected}) >= 10
    assert not {_key(s) for s in collected} & {_key(s) for s in held.scenarios}
    assert not {s.world.map.key() for s in collected} & {s.world.map.key() for s in held.scenarios}
    assert not {s.seed for s in collected} & {s.seed for s in held.scenarios}
    exam_points: dict[str, set[tuple[tuple[str, Any], ...]]] = {}
    for spec in held.scenarios:
        exam_points.setdefault(spec.family, set()).add(tuple(sorted(spec.params.items())))
    for spec in collected:
        assert tuple(sorted(spec.params.items())) not in exam_points.get(spec.family, set()), spec.name


def test_exam_parameters_stay_within_the_range_the_nhtsa_grid_spans_or_near_it(exam) -> None:
    _, suite = exam
    for spec in suite.scenarios:
        family = FAMILIES[spec.family]
        for key, values in family.grid.items():
            value = spec.params[key]
            if isinstance(value, str) or not all(isinstance(v, int | float) for v in values):
                assert value in values or value == family.defaults[key], (spec.name, key)
                continue
            lo, hi = min(values), max(values)
            span = max(hi - lo, 1e-9)
            assert lo - 0.25 * span <= value <= hi + 0.25 * span, (spec.name, key, value)


def test_a_suite_naming_an_unknown_family_or_parameter_says_what_is_allowed() -> None:
    with pytest.raises(SuiteError, match=r"entries\[0\]\.family: 'urban' is not one of .*urban_route"):
        suite_from_dict({"name": "x", "entries": [{"family": "urban", "seeds": [0]}]})
    with pytest.raises(SuiteError, match=r"has no parameter 'len'; its parameters: .*length"):
        suite_from_dict({"name": "x", "entries": [{"family": "urban_route", "params": {"len": [1.0]}}]})


def test_one_family_on_two_maps_with_the_same_seeds_gets_one_name_per_map() -> None:
    entry = {"family": "pedestrian_crossing", "params": {"walk_speed": [1.2, 1.6]}, "seeds": [0, 1]}
    suite = suite_from_dict(
        {
            "name": "two_maps",
            "entries": [
                {**entry, "town": {"town": "grid", "seed": 0}},
                {**entry, "town": {"town": "grid", "seed": 1}},
                {**entry, "town": {"town": "grid", "seed": 1}},  # the same map again
                entry,  # the family's own town
            ],
        }
    )
    names = [s.name for s in suite.scenarios]
    assert len(names) == len(set(names)) == 16
    assert names[:4] == [f"pedestrian_crossing_grid0_{g:03d}_s{s}" for g in (0, 1) for s in (0, 1)]
    assert names[4] == "pedestrian_crossing_grid1_000_s0"
    assert names[8] == "pedestrian_crossing_grid1e2_000_s0"  # entry 2 repeats entry 1's map
    assert names[12] == "pedestrian_crossing_000_s0"
    # same seeds and parameters, other maps: other placements
    assert suite.scenarios[0].world.ego != suite.scenarios[4].world.ego
    assert suite.scenarios[4] == suite.scenarios[8].replace(name=suite.scenarios[4].name)


def test_a_family_on_a_map_without_its_feature_names_the_entry_family_map_and_feature() -> None:
    entry = {"family": "signalised_left_turn", "town": {"town": "straight", "seed": 0}, "seeds": [0]}
    with pytest.raises(SuiteError) as err:
        suite_from_dict({"name": "x", "entries": [entry]})
    text = str(err.value)
    assert "entries[0]" in text and "'signalised_left_turn'" in text and "straight:0" in text
    assert "the map has no signalised junction" in text


def test_a_scenario_file_given_as_a_suite_is_a_suite_of_that_scenario() -> None:
    from scenarios.suites import PACKAGE_ROOT, load_suite

    suite = load_suite(PACKAGE_ROOT / "scenarios/examples/task_stop_at.yaml")
    assert suite.name == "task_stop_at" and [s.name for s in suite.scenarios] == ["task_stop_at_01"]
    assert suite.scenarios[0].family == "task_stop_at"
