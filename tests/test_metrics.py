"""Leaderboard / Bench2Drive / nuPlan scores against the published example and hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.criteria import EpisodeJudge
from scenarios.metrics import (
    PENALTY_FACTORS_2_0,
    PENALTY_WEIGHTS_2_1,
    driving_score,
    infraction_penalty,
    infractions_per_km,
    km_driven,
    nuplan_score,
    scenario_key,
    score_episode,
    success,
    summarise,
)
from scenarios.records import EpisodeResult, Infraction, InfractionKind, Status
from scenarios.spec import ScenarioSpec
from sim_bridge.api import WorldEvents, WorldSpec
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM

K = InfractionKind
NUPLAN_OK = {
    "nuplan_progress": 1.0,
    "nuplan_ttc": 1.0,
    "nuplan_speed_limit": 1.0,
    "nuplan_comfort": 1.0,
    "nuplan_drivable_area": 1.0,
    "nuplan_making_progress": 1.0,
    "nuplan_driving_direction": 1.0,
}


def inf(kind: InfractionKind, at_fault: bool | None = None) -> Infraction:
    return Infraction(kind, 1.0, 0.0, 0.0, at_fault=at_fault)


def result(*kinds: InfractionKind, rc: float = 100.0, ratios=(), outside: float = 0.0, **kw) -> EpisodeResult:
    kw.setdefault("status", Status.DONE)
    kw.setdefault("route_length", 1000.0)
    return EpisodeResult(
        name=kw.pop("name", "r"),
        route_completion=rc,
        infractions=[inf(k) for k in kinds],
        min_speed_ratios=list(ratios),
        outside_route_lanes=outside,
        scores=dict(kw.pop("scores", NUPLAN_OK)),
        **kw,
    )


# ------------------------------------------------------------------------------------- penalty


def test_published_min_speed_example():
    """Leaderboard 2.0 record: min-speed 89.22 % and 79.46 % -> score_penalty 0.908033."""
    r = result(ratios=[89.22, 79.46])
    assert round(infraction_penalty(r, "2.0"), 6) == 0.908033
    assert round(driving_score(r, "2.0"), 4) == 90.8033  # score_composed 90.803279


@pytest.mark.parametrize(
    ("kind", "factor", "weight"),
    [
        (K.COLLISION_PEDESTRIAN, 0.50, 1.0),
        (K.COLLISION_VEHICLE, 0.60, 0.7),
        (K.COLLISION_STATIC, 0.65, 0.6),
        (K.RED_LIGHT, 0.70, 0.4),
        (K.STOP_SIGN, 0.80, 0.25),
        (K.SCENARIO_TIMEOUT, 0.70, 0.4),
    ],
)
def test_each_factor_and_weight(kind, factor, weight):
    assert infraction_penalty(result(kind), "2.0") == pytest.approx(factor)
    assert infraction_penalty(result(kind, kind), "2.0") == pytest.approx(factor**2)
    assert infraction_penalty(result(kind), "2.1") == pytest.approx(1.0 / (1.0 + weight))
    assert infraction_penalty(result(kind, kind), "2.1") == pytest.approx(1.0 / (1.0 + 2 * weight))


@pytest.mark.parametrize(
    "kind",
    [
        K.OFF_ROAD,
        K.WRONG_WAY,
        K.ROUTE_DEVIATION,
        K.AGENT_BLOCKED,
        K.ROUTE_TIMEOUT,
        K.MIN_SPEED,
        K.OUTSIDE_ROUTE_LANES,
    ],
)
def test_kinds_without_a_factor(kind):
    """Route-ending kinds and informational ones carry no factor; MIN_SPEED and OUTSIDE_ROUTE_LANES
    entries are counted from the record's own fields, never twice."""
    assert infraction_penalty(result(kind), "2.0") == 1.0
    assert infraction_penalty(result(kind), "2.1") == 1.0


def test_min_speed_and_outside_lanes_by_hand():
    assert infraction_penalty(result(ratios=[50.0]), "2.0") == pytest.approx(1 - 0.3 * 0.5)
    assert infraction_penalty(result(ratios=[50.0]), "2.1") == pytest.approx(1 / (1 + 0.4 * 0.5))
    assert infraction_penalty(result(ratios=[100.0, 140.0]), "2.0") == 1.0  # at or above traffic speed
    assert infraction_penalty(result(ratios=[50.0]), "2.0", min_speed=False) == 1.0
    assert infraction_penalty(result(outside=20.0), "2.0") == pytest.approx(0.8)
    assert infraction_penalty(result(outside=20.0), "2.1") == pytest.approx(0.8)
    # everything together, 2.0: 0.5 * 0.6 * 0.7 * (1 - 0.3 * 0.2) * 0.9
    r = result(K.COLLISION_PEDESTRIAN, K.COLLISION_VEHICLE, K.RED_LIGHT, ratios=[80.0], outside=10.0)
    assert infraction_penalty(r, "2.0") == pytest.approx(0.5 * 0.6 * 0.7 * 0.94 * 0.9)
    # 2.1: 1 / (1 + 1.0 + 0.7 + 0.4 + 0.4 * 0.2) * 0.9
    assert infraction_penalty(r, "2.1") == pytest.approx(0.9 / (1 + 1.0 + 0.7 + 0.4 + 0.08))


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unknown Leaderboard version"):
        infraction_penalty(result(), "3.0")


def test_driving_score_and_crashed_routes():
    r = result(K.COLLISION_VEHICLE, rc=50.0)
    assert driving_score(r) == pytest.approx(50.0 * 0.6)
    assert driving_score(r, "2.1") == pytest.approx(50.0 / 1.7)
    assert driving_score(result(rc=80.0, status=Status.CRASHED)) == 0.0
    assert driving_score(result(rc=80.0, status=Status.STARTED)) == 0.0
    assert driving_score(result(rc=30.0, status=Status.AGENT_ERROR)) == pytest.approx(30.0)


# ------------------------------------------------------------------------------------- success


def test_success_per_bench2drive():
    assert success(result(ratios=[60.0]))
    assert success(result(K.MIN_SPEED, K.OFF_ROAD, K.WRONG_WAY))
    assert not success(result(K.RED_LIGHT))
    assert not success(result(K.SCENARIO_TIMEOUT))
    assert not success(result(outside=0.5))
    assert not success(result(rc=99.5))
    assert not success(result(status=Status.CRASHED))
    assert not success(result(status=Status.AGENT_ERROR))


# ------------------------------------------------------------------------------------- per km


def test_infractions_per_km():
    a = result(K.COLLISION_VEHICLE, K.COLLISION_VEHICLE, route_length=1000.0, rc=100.0)
    b = result(K.COLLISION_VEHICLE, K.RED_LIGHT, route_length=500.0, rc=50.0)
    assert km_driven([a, b]) == pytest.approx(1.25)
    rates = infractions_per_km([a, b])
    assert rates["collisions_vehicle"] == pytest.approx(3 / 1.25)
    assert rates["red_light"] == pytest.approx(1 / 1.25)
    assert rates["collisions_pedestrian"] == 0.0
    assert set(rates) == {k.value for k in InfractionKind}
    # nothing driven: the Leaderboard's 1 m floor
    assert infractions_per_km([result(K.RED_LIGHT, rc=0.0)])["red_light"] == pytest.approx(1000.0)


# -------------------------------------------------------------------------------------- nuPlan


def with_collisions(*pairs: tuple[InfractionKind, bool], **scores: float) -> EpisodeResult:
    r = result(scores={**NUPLAN_OK, **scores})
    r.infractions = [inf(k, at_fault=f) for k, f in pairs]
    return r


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), 1.0),
        (((K.COLLISION_STATIC, True),), 0.5),
        (((K.COLLISION_STATIC, True), (K.COLLISION_STATIC, True)), 0.0),
        (((K.COLLISION_VEHICLE, True),), 0.0),
        (((K.COLLISION_PEDESTRIAN, True),), 0.0),
        (((K.COLLISION_VEHICLE, False), (K.COLLISION_PEDESTRIAN, False)), 1.0),
        (((K.COLLISION_VEHICLE, None),), 1.0),
    ],
)
def test_nuplan_no_at_fault_collisions_multiplier(pairs, expected):
    assert nuplan_score(with_collisions(*pairs)) == pytest.approx(expected)


def test_nuplan_weights_and_multipliers_by_hand():
    r = with_collisions(nuplan_progress=0.5, nuplan_ttc=1.0, nuplan_speed_limit=1.0, nuplan_comfort=0.0)
    assert nuplan_score(r) == pytest.approx((5 * 0.5 + 5 * 1 + 4 * 1 + 2 * 0) / 16)
    r = with_collisions(nuplan_ttc=0.0, nuplan_speed_limit=0.5)
    assert nuplan_score(r) == pytest.approx((5 + 0 + 2 + 2) / 16)
    assert nuplan_score(with_collisions(nuplan_driving_direction=0.5)) == pytest.approx(0.5)
    assert nuplan_score(with_collisions(nuplan_drivable_area=0.0)) == 0.0
    assert nuplan_score(with_collisions(nuplan_making_progress=0.0)) == 0.0
    r = with_collisions((K.COLLISION_STATIC, True), nuplan_driving_direction=0.5, nuplan_comfort=0.0)
    assert nuplan_score(r) == pytest.approx(0.5 * 0.5 * 14 / 16)


def test_nuplan_needs_the_judges_figures():
    with pytest.raises(ValueError, match="EpisodeJudge"):
        nuplan_score(result(scores={}))
    assert nuplan_score(result(scores={}, status=Status.CRASHED)) == 0.0
    assert nuplan_score(result(scores={}, status=Status.AGENT_ERROR)) == 0.0
    assert nuplan_score(result(status=Status.AGENT_ERROR)) == 1.0  # judged up to the error


# ------------------------------------------------------------------------------- score_episode


def test_score_episode_fills_every_figure():
    r = score_episode(result(K.COLLISION_VEHICLE, rc=90.0, ratios=[80.0], outside=10.0))
    s = r.scores
    assert s["infraction_penalty"] == pytest.approx(0.6 * 0.94 * 0.9)
    assert s["driving_score"] == pytest.approx(90.0 * 0.6 * 0.94 * 0.9)
    assert s["infraction_penalty_2.1"] == pytest.approx(0.9 / (1 + 0.7 + 0.08))
    assert s["driving_score_2.1"] == pytest.approx(90.0 * 0.9 / 1.78)
    assert s["driving_score_b2d"] == pytest.approx(90.0 * 0.6 * 0.9)
    assert s["min_speed_factor"] == pytest.approx(0.94) and s["outside_lanes_factor"] == pytest.approx(0.9)
    assert s["route_completion"] == 90.0 and s["success"] == 0.0
    assert s["nuplan_score"] == 1.0 and s["nuplan_progress"] == 1.0  # the judge's figures are kept
    assert EpisodeResult.from_dict(json.loads(json.dumps(r.to_dict()))).scores == s


def test_score_episode_of_a_crashed_route():
    s = score_episode(result(rc=40.0, status=Status.CRASHED, scores={})).scores
    assert s["driving_score"] == 0.0 and s["driving_score_2.1"] == 0.0 and s["nuplan_score"] == 0.0


def test_judge_to_scores_end_to_end():
    spec = ScenarioSpec(name="e2e", world=WorldSpec())
    judge = EpisodeJudge(spec, 100.0, 0.1)
    ego, objects, mask = np.zeros(EGO_DIM), np.zeros((2, OBJECT_DIM)), np.zeros(2, bool)
    for k in range(1, 200):
        t = k * 0.1
        ev = WorldEvents(**{
            "sim_time": t, "collision": k == 50, "collision_actor": 9 if k == 50 else -1,
            "collision_kind": 2 if k == 50 else -1, "collision_other_speed": 0.0, "collision_bearing": 0.0,
            "off_road": False, "lane_invasion": False, "wrong_way": False, "on_route_lanes": True,
            "red_light": -1, "stop_sign": -1, "route_progress": 10.0 * t, "route_length": 100.0,
            "route_deviation": 0.0, "distance_driven": 1.0, "ego_x": 10.0 * t, "ego_y": 0.0, "ego_yaw": 0.0,
            "ego_speed": 10.0, "ego_accel": 0.0, "speed_limit": 13.9, "traffic_speed": math.nan,
        })  # fmt: skip
        if judge.update(ev, ego, objects, mask):
            break
    r = score_episode(judge.finish(EpisodeResult("e2e")))
    assert r.termination == "route_completed" and r.route_completion == 100.0
    assert [i.kind for i in r.infractions] == [K.COLLISION_STATIC] and r.infractions[0].at_fault
    assert r.scores["driving_score"] == pytest.approx(65.0)
    assert r.scores["nuplan_score"] == pytest.approx(0.5)  # one at-fault object hit
    assert not success(r)


# ------------------------------------------------------------------------------------ summaries


def test_summarise_families_crashed_and_counts():
    a = result(K.COLLISION_VEHICLE, name="cut_in_0_seed1", family="cut_in", seed=1, rc=100.0)
    b = result(name="cut_in_0_seed2", family="cut_in", seed=2, rc=100.0)
    c = result(name="crossing_0_seed1", family="crossing", seed=1, rc=80.0, status=Status.CRASHED)
    out = summarise([a, b, c])
    json.dumps(out, allow_nan=False)
    assert out["leaderboard_version"] == "2.0"
    overall = out["overall"]
    assert overall["episodes"] == 3 and overall["crashed"] == 1
    ds = [60.0, 100.0, 0.0]  # the crashed route counts 0
    assert overall["driving_score"]["mean"] == pytest.approx(np.mean(ds))
    assert overall["driving_score"]["std"] == pytest.approx(np.std(ds, ddof=1))
    assert overall["success_rate"] == pytest.approx(1 / 3)
    assert overall["infractions"]["collisions_vehicle"] == 1
    assert overall["at_fault_collisions"]["collisions_vehicle"] == 0  # `result` leaves at_fault unset
    assert "red_light" not in overall["at_fault_collisions"]
    assert overall["km_driven"] == pytest.approx(2.8)
    assert overall["infractions_per_km"]["collisions_vehicle"] == pytest.approx(1 / 2.8)
    fam = out["families"]
    assert set(fam) == {"cut_in", "crossing"}
    assert fam["cut_in"]["driving_score"] == {
        "mean": pytest.approx(80.0),
        "std": pytest.approx(math.sqrt(800)),
        "n": 2,
    }
    assert fam["crossing"]["driving_score"] == {"mean": 0.0, "std": 0.0, "n": 1}
    assert fam["crossing"]["route_completion"]["mean"] == 0.0
    seeds = out["over_seeds"]
    assert seeds["scenarios_with_several_seeds"] == 1
    assert seeds["driving_score_std_within_scenario"] == pytest.approx(math.sqrt(800))
    assert seeds["seeds"] == 2
    assert seeds["driving_score_over_seed_means"]["mean"] == pytest.approx((30.0 + 100.0) / 2)


def test_summarise_counts_at_fault_collisions_apart():
    r = result(name="x_s1", family="x", seed=1, rc=100.0)
    r.infractions = [inf(K.COLLISION_PEDESTRIAN, at_fault=False), inf(K.COLLISION_PEDESTRIAN, at_fault=True),
                     inf(K.COLLISION_VEHICLE, at_fault=True), inf(K.COLLISION_STATIC, at_fault=None)]  # fmt: skip
    overall = summarise([r])["overall"]
    assert overall["infractions"]["collisions_pedestrian"] == 2
    assert overall["at_fault_collisions"] == {
        "collisions_pedestrian": 1,
        "collisions_vehicle": 1,
        "collisions_layout": 0,
    }


def test_summarise_empty_suite():
    out = summarise([])
    json.dumps(out, allow_nan=False)
    assert out["overall"]["episodes"] == 0 and out["families"] == {}


@pytest.mark.parametrize(
    ("name", "seed", "key"),
    [
        ("cut_in_003_seed7", 7, "cut_in_003"),
        ("x-s12", 12, "x"),
        ("x_07", 7, "x"),
        ("x_17", 7, "x_17"),
        ("x", 0, "x"),
    ],
)
def test_scenario_key(name, seed, key):
    assert scenario_key(EpisodeResult(name, seed=seed)) == key


# ----------------------------------------------------------------------------------- properties

penalised = st.sampled_from(sorted(PENALTY_FACTORS_2_0, key=lambda k: k.value))
any_kind = st.sampled_from(list(InfractionKind))
ratio = st.floats(0.0, 200.0)


@st.composite
def results(draw) -> EpisodeResult:
    return result(
        *draw(st.lists(any_kind, max_size=12)),
        rc=draw(st.floats(0.0, 100.0)),
        ratios=draw(st.lists(ratio, max_size=4)),
        outside=draw(st.floats(0.0, 99.0)),
    )


@settings(max_examples=150, deadline=None)
@given(r=results(), version=st.sampled_from(["2.0", "2.1"]))
def test_penalty_in_unit_interval_and_ds_is_rc_times_penalty(r, version):
    p = infraction_penalty(r, version)
    assert 0.0 < p <= 1.0
    assert driving_score(r, version) == pytest.approx(r.route_completion * p)
    assert 0.0 <= driving_score(r, version) <= 100.0


@settings(max_examples=150, deadline=None)
@given(r=results(), extra=any_kind, version=st.sampled_from(["2.0", "2.1"]), more=ratio)
def test_penalty_never_rises_with_more_infractions(r, extra, version, more):
    before = infraction_penalty(r, version)
    r.infractions.append(inf(extra))
    after = infraction_penalty(r, version)
    assert after <= before
    if extra in PENALTY_FACTORS_2_0:
        assert after < before
    r.min_speed_ratios.append(more)
    assert infraction_penalty(r, version) <= after


@settings(max_examples=100, deadline=None)
@given(r=results())
def test_versions_agree_on_a_clean_route(r):
    if not any(i.kind in PENALTY_WEIGHTS_2_1 for i in r.infractions) and all(
        x >= 100 for x in r.min_speed_ratios
    ):
        assert infraction_penalty(r, "2.0") == pytest.approx(infraction_penalty(r, "2.1"))
        assert infraction_penalty(r, "2.0") == pytest.approx(1.0 - r.outside_route_lanes / 100.0)


@settings(max_examples=60, deadline=None)
@given(rs=st.lists(results(), min_size=1, max_size=8))
def test_summary_mean_matches_the_episode_scores(rs):
    out = summarise(rs)
    assert out["overall"]["driving_score"]["mean"] == pytest.approx(np.mean([driving_score(r) for r in rs]))
    assert out["overall"]["success_rate"] == pytest.approx(np.mean([success(r) for r in rs]))
    json.dumps(out, allow_nan=False)
