"""EpisodeJudge on synthetic event streams (hand-built ``WorldEvents``, dt = 0.1 s)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.criteria import (
    COMFORT,
    PEDESTRIAN_DISTANCE_CAP,
    EpisodeJudge,
    Termination,
    comfort_checks,
    time_to_collision,
)
from scenarios.records import EpisodeResult, InfractionKind, Status
from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import ActorKind, StepEvents, WorldEvents, WorldSpec
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM, EgoFeature, ObjectFeature

DT = 0.1
EGO = np.zeros(EGO_DIM, dtype=np.float32)
NO_OBJECTS = np.zeros((4, OBJECT_DIM), dtype=np.float32)
NO_MASK = np.zeros(4, dtype=bool)


def spec(trigger_area=None, **criteria) -> ScenarioSpec:
    return ScenarioSpec(
        name="synthetic", world=WorldSpec(), criteria=CriteriaConfig(**criteria), trigger_area=trigger_area
    )


def events(**over) -> WorldEvents:
    """One step's events with quiet defaults; every StepEvents field is present."""
    base = {
        "sim_time": 0.0,
        "collision": False,
        "collision_actor": -1,
        "collision_kind": -1,
        "collision_other_speed": 0.0,
        "collision_bearing": 0.0,
        "off_road": False,
        "lane_invasion": False,
        "wrong_way": False,
        "on_route_lanes": True,
        "red_light": -1,
        "stop_sign": -1,
        "route_progress": 0.0,
        "route_length": 1000.0,
        "route_deviation": 0.0,
        "distance_driven": 0.0,
        "ego_x": 0.0,
        "ego_y": 0.0,
        "ego_yaw": 0.0,
        "ego_speed": 0.0,
        "ego_accel": 0.0,
        "speed_limit": 30.0,
        "traffic_speed": math.nan,
    }
    assert set(base) == {f.name for f in dataclasses.fields(StepEvents)}
    unknown = set(over) - set(base)
    assert not unknown, unknown
    base.update(over)
    return WorldEvents(**base)  # type: ignore[arg-type]


def drive(
    judge: EpisodeJudge, steps: int, speed: float = 10.0, start: int = 1, stop_when_done: bool = True, **over
):
    """Drive straight along the route at ``speed``; ``over`` values may be callables of the step k."""
    ended = []
    for k in range(start, start + steps):
        t = round(k * DT, 9)
        fields = dict(
            sim_time=t,
            ego_x=speed * t,
            route_progress=speed * t,
            distance_driven=speed * DT,
            ego_speed=speed,
        )
        fields.update({key: value(k) if callable(value) else value for key, value in over.items()})
        ev = events(**fields)
        done = judge.update(ev, EGO, NO_OBJECTS, NO_MASK)
        ended.append(done)
        if done and stop_when_done:
            break
    return ended


def kinds(judge_or_result) -> list[InfractionKind]:
    return [i.kind for i in judge_or_result.infractions]


# ------------------------------------------------------------------------------------ collisions


def collision_at(*ks: float, actor: int = 7, kind: int = int(ActorKind.VEHICLE)):
    hits = {round(k) for k in ks}

    def at(key):
        def f(k):
            hit = k in hits
            return {
                "collision": hit,
                "collision_actor": actor if hit else -1,
                "collision_kind": kind if hit else -1,
            }[key]

        return f

    return {
        "collision": at("collision"),
        "collision_actor": at("collision_actor"),
        "collision_kind": at("collision_kind"),
    }


def test_collision_repeated_for_3s_counts_once_and_again_after_6s_twice():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    # contact every step for 3 s (k = 10..40), then again at 6 s after the first (k = 70)
    drive(judge, 80, speed=10.0, **collision_at(*range(10, 41), 70))
    hits = [i for i in judge.infractions if i.kind == InfractionKind.COLLISION_VEHICLE]
    assert len(hits) == 2
    assert hits[0].time == pytest.approx(1.0) and hits[1].time == pytest.approx(7.0)
    assert hits[0].actor == 7 and hits[0].value == pytest.approx(10.0)  # ego speed at impact


def test_repeated_collision_within_dedup_distance_counts_once_even_after_the_time():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100, speed=0.2, **collision_at(10, 70))  # 6 s apart but the ego moved 1.2 m
    assert kinds(judge).count(InfractionKind.COLLISION_VEHICLE) == 1


def test_collisions_with_different_actors_each_count_by_kind():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 5, **collision_at(1, actor=1, kind=int(ActorKind.VEHICLE)), stop_when_done=False)
    drive(judge, 1, start=6, **collision_at(6, actor=2, kind=int(ActorKind.PEDESTRIAN)))
    drive(judge, 1, start=7, **collision_at(7, actor=3, kind=int(ActorKind.STATIC)))
    assert kinds(judge) == [
        InfractionKind.COLLISION_VEHICLE,
        InfractionKind.COLLISION_PEDESTRIAN,
        InfractionKind.COLLISION_STATIC,
    ]


@pytest.mark.parametrize(
    ("bearing", "other_speed", "invasion", "ego_speed", "at_fault", "why"),
    [
        (0.0, 5.0, False, 3.0, True, "front"),  # front
        (math.radians(40), 5.0, False, 3.0, True, "front"),  # within ±45° of ahead
        (math.pi, 5.0, False, 3.0, False, "rear"),  # rear-ended
        (math.pi, 0.0, False, 3.0, True, "other stopped"),  # the other was stopped
        (math.pi / 2, 5.0, False, 3.0, False, "lateral, ego in its lane"),  # side hit while in lane
        (-math.pi / 2, 5.0, True, 3.0, True, "lateral, ego off its lane"),  # ... straddling a marking
        (2 * math.pi, 5.0, False, 3.0, True, "front"),  # angles wrap
        (0.0, 1.4, False, 0.0, False, "ego stopped"),  # a walker walks into the standing ego's front
        (0.0, 0.0, True, 0.05, False, "ego stopped"),  # nuPlan's first rule wins over every other
        (0.0, 1.4, False, 0.2, True, "front"),  # creeping is not standing
    ],
)
def test_at_fault_classification(bearing, other_speed, invasion, ego_speed, at_fault, why):
    judge = EpisodeJudge(spec(), 1000.0, DT)
    judge.update(
        events(
            sim_time=0.1,
            collision=True,
            collision_actor=4,
            collision_kind=int(ActorKind.VEHICLE),
            collision_bearing=bearing,
            collision_other_speed=other_speed,
            lane_invasion=invasion,
            ego_speed=ego_speed,
        ),
        EGO,
        NO_OBJECTS,
        NO_MASK,
    )
    (hit,) = judge.infractions
    assert (hit.at_fault, hit.detail) == (at_fault, why)


def test_a_hit_that_stops_the_ego_within_its_step_is_judged_at_the_speed_it_hit_with():
    """The collision response can leave the ego at 0 m/s by the end of the impact step: it was not
    standing (nuPlan's stopped-ego rule must not excuse it), and the infraction keeps 8 m/s."""
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 5, speed=8.0)
    hit = collision_at(6, kind=int(ActorKind.PEDESTRIAN))
    drive(judge, 1, start=6, **{**hit, "ego_speed": 0.0, "collision_other_speed": 1.4})
    (infraction,) = judge.infractions
    assert (infraction.at_fault, infraction.detail, infraction.value) == (True, "front", 8.0)
    # a walker into the same ego standing since the step before: not at fault
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 5, speed=0.0)
    drive(judge, 1, start=6, speed=0.0, **{**hit, "collision_other_speed": 1.4})
    (infraction,) = judge.infractions
    assert (infraction.at_fault, infraction.detail) == (False, "ego stopped")


def test_end_on_collision_ends_the_episode():
    judge = EpisodeJudge(spec(end_on_collision=True), 1000.0, DT)
    ended = drive(judge, 50, **collision_at(12))
    assert len(ended) == 12 and ended[-1]
    assert judge.termination == Termination.COLLISION


# ------------------------------------------------------------------------------- signals, stretches


def test_red_light_run_is_one_infraction_with_the_signal_index():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 30, red_light=lambda k: 3 if k in (10, 11) else -1)  # reported twice in a row: one run
    result = judge.finish(EpisodeResult("r"))
    reds = [i for i in result.infractions if i.kind == InfractionKind.RED_LIGHT]
    assert len(reds) == 1 and reds[0].actor == 3 and reds[0].time == pytest.approx(1.0)


def test_stop_sign_run():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 30, stop_sign=lambda k: 5 if k == 20 else -1)
    assert [(i.kind, i.actor) for i in judge.infractions] == [(InfractionKind.STOP_SIGN, 5)]


def test_off_road_and_wrong_way_one_infraction_per_stretch_with_its_length():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    # 10 m/s: 1 m per step; off road k = 5..9 (5 m) and 20..22 (3 m); wrong way k = 30..39 (10 m)
    drive(
        judge,
        50,
        off_road=lambda k: 5 <= k <= 9 or 20 <= k <= 22,
        wrong_way=lambda k: 30 <= k <= 39,
    )
    off = [i.value for i in judge.infractions if i.kind == InfractionKind.OFF_ROAD]
    wrong = [i.value for i in judge.infractions if i.kind == InfractionKind.WRONG_WAY]
    assert off == pytest.approx([5.0, 3.0]) and wrong == pytest.approx([10.0])
    figures = judge.nuplan_figures()
    assert figures["nuplan_drivable_area"] == 0.0
    assert figures["nuplan_max_wrong_way_1s"] == pytest.approx(10.0)
    assert figures["nuplan_driving_direction"] == 0.0  # > 6 m within 1 s


@pytest.mark.parametrize(("steps", "expected"), [(0, 1.0), (2, 1.0), (5, 0.5), (7, 0.0)])
def test_driving_direction_thresholds(steps, expected):
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 40, wrong_way=lambda k: 10 <= k < 10 + steps)  # 1 m per step
    assert judge.nuplan_figures()["nuplan_driving_direction"] == expected


# ---------------------------------------------------------------------------------------- endings


def test_blocked_for_180s_ends_the_episode():
    judge = EpisodeJudge(spec(), 1000.0, DT)  # route time-out 805 s
    ended = drive(judge, 2000, speed=0.0)
    assert not any(ended[:1799])  # t = 0.1 .. 179.9 s
    assert ended[-1] and 1800 <= len(ended) <= 1801
    assert judge.termination == Termination.AGENT_BLOCKED
    assert kinds(judge) == [InfractionKind.AGENT_BLOCKED]
    result = judge.finish(EpisodeResult("b"))
    assert result.termination == "agent_blocked" and result.sim_time == pytest.approx(len(ended) * DT)


def test_moving_resets_the_blocked_clock():
    judge = EpisodeJudge(spec(blocked_time=10.0), 1000.0, DT)
    ended = drive(judge, 250, speed=0.0, ego_speed=lambda k: 1.0 if k == 90 else 0.0)
    assert len(ended) in (190, 191)  # 10 s after the last move at t = 9 s


def test_deviation_beyond_30m_ends_the_episode():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    ended = drive(judge, 100, route_deviation=lambda k: 30.0 if k < 50 else 30.5)
    assert len(ended) == 50 and ended[-1]
    assert judge.termination == Termination.ROUTE_DEVIATION
    assert kinds(judge) == [InfractionKind.ROUTE_DEVIATION]


def test_route_timeout_default_and_explicit():
    judge = EpisodeJudge(spec(), 100.0, DT)
    assert judge.route_timeout == pytest.approx(0.8 * 100 + 5)
    judge = EpisodeJudge(spec(route_timeout=10.0, blocked_time=1e9), 100.0, DT)
    ended = drive(judge, 500, speed=0.0)
    assert len(ended) in (100, 101)
    assert judge.termination == Termination.ROUTE_TIMEOUT and kinds(judge) == [InfractionKind.ROUTE_TIMEOUT]


def test_completion_needs_99_percent_and_the_completion_distance():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    assert not judge.update(events(sim_time=0.1, route_progress=985.0), EGO, NO_OBJECTS, NO_MASK)  # 15 m left
    assert judge.route_completion == pytest.approx(98.5)
    assert judge.update(events(sim_time=0.2, route_progress=991.0), EGO, NO_OBJECTS, NO_MASK)  # 9 m left
    result = judge.finish(EpisodeResult("c"))
    assert result.route_completion == 100.0 and result.termination == "route_completed"
    # a short route: 5 m left but only 98.3 % done
    judge = EpisodeJudge(spec(), 300.0, DT)
    assert not judge.update(events(sim_time=0.1, route_progress=295.0), EGO, NO_OBJECTS, NO_MASK)
    assert judge.route_completion == pytest.approx(100 * 295 / 300)
    assert judge.update(events(sim_time=0.2, route_progress=297.5), EGO, NO_OBJECTS, NO_MASK)


def test_progress_is_monotonic():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    judge.update(events(sim_time=0.1, route_progress=500.0), EGO, NO_OBJECTS, NO_MASK)
    judge.update(events(sim_time=0.2, route_progress=100.0), EGO, NO_OBJECTS, NO_MASK)
    assert judge.route_completion == pytest.approx(50.0)


def test_scenario_timeout_inside_the_trigger_area():
    judge = EpisodeJudge(spec(trigger_area=(50.0, 0.0, 20.0), scenario_timeout=20.0), 1000.0, DT)
    # 1 m/s: enters the area at x = 30 m (t = 30 s) and would leave at 70 m; times out after 20 s inside
    ended = drive(judge, 1000, speed=1.0)
    assert judge.termination == Termination.SCENARIO_TIMEOUT
    assert len(ended) * DT == pytest.approx(50.0, abs=0.25)
    assert kinds(judge) == [InfractionKind.SCENARIO_TIMEOUT]


def test_leaving_the_trigger_area_resets_the_scenario_clock():
    judge = EpisodeJudge(spec(trigger_area=(0.0, 0.0, 5.0), scenario_timeout=20.0), 1000.0, DT)
    ended = drive(judge, 400, speed=0.0, ego_speed=0.5, ego_x=lambda k: 0.0 if (k // 150) % 2 == 0 else 100.0)
    assert not any(ended)


def test_updates_after_the_end_change_nothing():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100, route_deviation=40.0)
    n = len(judge.infractions)
    assert drive(judge, 5, start=200, red_light=1, stop_when_done=False) == [True] * 5
    assert len(judge.infractions) == n


# ----------------------------------------------------------------------------- lanes, min speed


def test_outside_route_lanes_percentage():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100, on_route_lanes=lambda k: not 41 <= k <= 65)  # 25 of 100 m of progress outside
    result = judge.finish(EpisodeResult("o"))
    assert result.outside_route_lanes == pytest.approx(25.0)
    (out,) = [i for i in result.infractions if i.kind == InfractionKind.OUTSIDE_ROUTE_LANES]
    assert out.value == pytest.approx(25.0) and out.time == pytest.approx(4.1)


@pytest.mark.parametrize(
    ("allowed", "area_x", "expected"), [(True, 50.0, 5.0), (False, 50.0, 25.0), (True, 500.0, 25.0)]
)
def test_opposite_lane_pass_inside_the_trigger_area(allowed, area_x, expected):
    """Steps 41..65 off the route's lanes, of which 41..60 in an opposite-direction lane (wrong way):
    with ``pass_opposite_lane`` and the pass inside the trigger area only 61..65 count."""
    judge = EpisodeJudge(spec(trigger_area=(area_x, 0.0, 30.0), pass_opposite_lane=allowed), 1000.0, DT)
    drive(judge, 100, on_route_lanes=lambda k: not 41 <= k <= 65, wrong_way=lambda k: 41 <= k <= 60)
    result = judge.finish(EpisodeResult("o"))
    assert result.outside_route_lanes == pytest.approx(expected)


def test_no_outside_infraction_when_always_on_route():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100)
    result = judge.finish(EpisodeResult("o"))
    assert result.outside_route_lanes == 0.0 and not result.infractions


def test_min_speed_four_checkpoints_at_half_the_traffic_speed():
    judge = EpisodeJudge(spec(), 400.0, DT)
    ended = drive(judge, 2000, speed=5.0, traffic_speed=10.0)
    assert ended[-1] and judge.termination == Termination.ROUTE_COMPLETED
    result = judge.finish(EpisodeResult("m"))
    assert result.min_speed_ratios == [50.0, 50.0, 50.0, 50.0]
    assert kinds(result).count(InfractionKind.MIN_SPEED) == 4


def test_min_speed_skips_checkpoints_without_traffic_and_ignores_faster_ego():
    judge = EpisodeJudge(spec(), 400.0, DT)
    # no traffic in the first quarter; then traffic slower than the ego
    drive(judge, 2000, speed=5.0, traffic_speed=lambda k: math.nan if k * DT * 5.0 <= 100.0 else 4.0)
    result = judge.finish(EpisodeResult("m"))
    assert result.min_speed_ratios == [125.0, 125.0, 125.0]
    assert InfractionKind.MIN_SPEED not in kinds(result)


def test_min_speed_off_records_nothing():
    judge = EpisodeJudge(spec(min_speed=False), 400.0, DT)
    drive(judge, 2000, speed=5.0, traffic_speed=10.0)
    assert judge.finish(EpisodeResult("m")).min_speed_ratios == []


def test_last_checkpoint_not_closed_before_95_percent():
    judge = EpisodeJudge(spec(), 400.0, DT)
    drive(judge, 700, speed=5.0, traffic_speed=10.0)  # 350 m: 87.5 %
    assert judge.finish(EpisodeResult("m")).min_speed_ratios == [50.0, 50.0, 50.0]


# ------------------------------------------------------------------------------------- finish


def test_finish_fills_the_record_and_is_idempotent():
    judge = EpisodeJudge(spec(), 400.0, DT)
    drive(judge, 2000, speed=5.0, traffic_speed=10.0, on_route_lanes=lambda k: k > 10)
    result = judge.finish(EpisodeResult("f"))
    again = judge.finish(EpisodeResult("f"))
    assert result.status == Status.DONE
    assert result.to_dict() == again.to_dict()
    assert result.route_length == 400.0 and result.route_completion == 100.0
    assert result.distance_driven == pytest.approx(result.sim_time * 5.0)
    assert EpisodeResult.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_finish_keeps_a_runner_status():
    judge = EpisodeJudge(spec(), 400.0, DT)
    drive(judge, 20)
    result = judge.finish(EpisodeResult("f", status=Status.AGENT_ERROR, termination="agent_error"))
    assert result.status == Status.AGENT_ERROR and result.termination == "agent_error"


def test_bad_route_length_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="route_length must be a positive"):
        EpisodeJudge(spec(), 0.0, DT)


# ------------------------------------------------------------------------------------- nuPlan


def test_speed_limit_compliance():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100, speed=11.0, speed_limit=10.0)  # 1 m/s over for the whole episode
    assert judge.nuplan_figures()["nuplan_speed_limit"] == pytest.approx(1.0 - 1.0 / 2.23)
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 100, speed=15.0, speed_limit=10.0)
    assert judge.nuplan_figures()["nuplan_speed_limit"] == 0.0


def test_progress_ratio_and_making_progress():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 150, speed=10.0)  # 150 m
    f = judge.nuplan_figures()
    assert f["nuplan_progress"] == pytest.approx(0.15) and f["nuplan_making_progress"] == 0.0
    drive(judge, 100, start=151)
    f = judge.nuplan_figures()
    assert f["nuplan_progress"] == pytest.approx(0.25) and f["nuplan_making_progress"] == 1.0


def test_comfort_from_a_smooth_and_a_jerky_stream():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 60, ego_accel=1.0)
    f = judge.nuplan_figures()
    assert f["nuplan_comfort"] == 1.0 and f["comfort_segments"] == 1.0
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, 60, ego_accel=lambda k: 2.0 if k >= 30 else 0.0)  # 20 m/s³ jerk at k = 30
    f = judge.nuplan_figures()
    assert f["nuplan_comfort"] == 0.0 and f["comfort_segments"] == pytest.approx(2 / 3)


def test_comfort_checks_each_bound():
    n = 5
    zeros = np.zeros(n)
    assert comfort_checks(zeros, zeros, zeros, DT).all()
    assert not comfort_checks(np.full(n, COMFORT.min_lon_accel - 0.01), zeros, zeros, DT).any()
    assert not comfort_checks(zeros, np.full(n, -4.9), zeros, DT).any()
    assert not comfort_checks(zeros, zeros, np.full(n, 0.96), DT).any()
    ramp = np.arange(n) * 0.2  # yaw rate changing at 2 rad/s² > 1.93
    assert comfort_checks(zeros, zeros, ramp, DT).tolist() == [True] + [False] * (n - 1)
    lon = np.arange(n) * 0.42  # 4.2 m/s³ > 4.13 lon jerk, within 8.37
    assert comfort_checks(lon - 1.0, zeros, zeros, DT).tolist() == [True] + [False] * (n - 1)
    lat = np.arange(n) * 0.85  # lateral jerk 8.5 m/s³ > 8.37
    assert comfort_checks(zeros, lat - 1.0, zeros, DT).tolist() == [True] + [False] * (n - 1)


def obj(x, y=0.0, yaw=0.0, speed=0.0, length=4.6, width=1.9, kind=ObjectFeature.IS_VEHICLE) -> np.ndarray:
    row = np.zeros(OBJECT_DIM, dtype=np.float32)
    row[ObjectFeature.X], row[ObjectFeature.Y] = x, y
    row[ObjectFeature.COS_YAW], row[ObjectFeature.SIN_YAW] = math.cos(yaw), math.sin(yaw)
    row[ObjectFeature.VX], row[ObjectFeature.VY] = speed * math.cos(yaw), speed * math.sin(yaw)
    row[ObjectFeature.LENGTH], row[ObjectFeature.WIDTH] = length, width
    row[kind] = 1.0
    return row


def ttc(speed, *rows, mask=None):
    objects = np.stack(rows) if rows else NO_OBJECTS
    mask = np.ones(len(objects), dtype=bool) if mask is None else np.asarray(mask)
    return time_to_collision(speed, 4.6, 1.9, objects, mask)


def test_ttc_closed_forms():
    # stopped car 10 m ahead (centres): gap 5.4 m at 10 m/s -> contact between 0.5 and 0.6 s
    assert ttc(10.0, obj(10.0)) == pytest.approx(0.6)
    assert ttc(10.0, obj(10.0, speed=10.0)) == math.inf  # same speed ahead
    assert ttc(10.0, obj(10.0, speed=5.0)) == pytest.approx(1.1)  # closing at 5 m/s: 1.08 s
    assert ttc(10.0, obj(-10.0)) == math.inf  # behind
    assert ttc(10.0, obj(10.0, y=3.5)) == math.inf  # next lane
    assert ttc(0.0, obj(3.0)) == math.inf  # stopped ego
    assert ttc(10.0, obj(10.0), mask=[False]) == math.inf
    assert ttc(10.0, obj(2.0)) == math.inf  # already overlapping: the collision criterion's
    assert ttc(10.0, obj(50.0)) == math.inf  # 45.4 m gap: beyond 3 s
    # a pedestrian crossing from the right: at x = 20 m, y = -6 m, walking left at 2 m/s
    ped = obj(
        20.0, y=-6.0, yaw=math.pi / 2, speed=2.0, length=0.6, width=0.6, kind=ObjectFeature.IS_PEDESTRIAN
    )
    # x overlap (ego front 2.3 + 8t ≥ 19.7, rear −2.3 + 8t ≤ 20.3): t in [2.175, 2.825] s;
    # y overlap (pedestrian's edge −6.3 + 2t + 0.6 ≥ −0.95): t ≥ 2.375 s -> first step 2.4 s
    assert ttc(8.0, ped) == pytest.approx(2.4)
    assert ttc(8.0, obj(10.0), ped) == pytest.approx(0.7)  # the nearest threat wins


@settings(max_examples=60, deadline=None)
@given(gap=st.floats(0.3, 40.0), speed=st.floats(1.0, 30.0))
def test_ttc_against_a_stopped_car_ahead(gap, speed):
    t = ttc(speed, obj(4.6 + gap))
    exact = gap / speed
    if exact > 3.0 + 1e-6:
        assert t == math.inf
    elif exact < 2.9:
        assert exact - 1e-6 <= t <= exact + 0.1 + 1e-6


def test_ttc_figures_in_the_judge():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    objects = np.stack([obj(10.0), obj(60.0), obj(0.0), obj(0.0)])
    mask = np.array([True, True, False, False])
    judge.update(events(sim_time=0.1, ego_speed=10.0), EGO, objects, mask)
    f = judge.nuplan_figures()
    assert f["nuplan_min_ttc"] == pytest.approx(0.6) and f["nuplan_ttc"] == 0.0
    judge = EpisodeJudge(spec(), 1000.0, DT)
    judge.update(events(sim_time=0.1, ego_speed=10.0), EGO, objects[1:], mask[1:])
    f = judge.nuplan_figures()
    assert f["nuplan_min_ttc"] == 3.0 and f["nuplan_ttc"] == 1.0


def test_min_pedestrian_distance_counts_observed_pedestrians_only():
    """The least centre distance to a pedestrian over the steps; vehicles and masked rows do not
    count; none seen: the cap."""
    judge = EpisodeJudge(spec(), 1000.0, DT)
    assert judge.nuplan_figures()["min_pedestrian_distance"] == PEDESTRIAN_DISTANCE_CAP
    walker = dict(length=0.6, width=0.6, kind=ObjectFeature.IS_PEDESTRIAN)
    steps = [
        (np.stack([obj(3.0, y=4.0, **walker), obj(1.0)]), np.array([True, True])),  # 5 m; a car 1 m
        (np.stack([obj(2.0, **walker), obj(0.0)]), np.array([False, True])),  # masked walker
        (np.stack([obj(6.0, y=-8.0, **walker), obj(0.5)]), np.array([True, True])),  # 10 m
    ]
    for k, (objects, mask) in enumerate(steps):
        judge.update(events(sim_time=0.1 * (k + 1), ego_speed=5.0), EGO, objects, mask)
    assert judge.nuplan_figures()["min_pedestrian_distance"] == pytest.approx(5.0)


def test_lateral_acceleration_and_yaw_rate_are_read_from_the_ego_vector():
    judge = EpisodeJudge(spec(), 1000.0, DT)
    ego = EGO.copy()
    ego[EgoFeature.ACCEL_LAT] = 5.0  # > 4.89
    judge.update(events(sim_time=0.1), ego, NO_OBJECTS, NO_MASK)
    assert judge.nuplan_figures()["nuplan_comfort"] == 0.0


# ---------------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=120))
def test_a_stationary_ego_counts_one_collision_per_actor(flags):
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(judge, len(flags), speed=0.0, **collision_at(*[k + 1 for k, f in enumerate(flags) if f]))
    assert kinds(judge).count(InfractionKind.COLLISION_VEHICLE) == int(any(flags))


@settings(max_examples=40, deadline=None)
@given(
    flags=st.lists(st.booleans(), min_size=1, max_size=200),
    speed=st.floats(0.0, 20.0),
    outside=st.lists(st.booleans(), min_size=1, max_size=200),
)
def test_counted_collisions_are_spread_and_figures_bounded(flags, speed, outside):
    judge = EpisodeJudge(spec(), 1000.0, DT)
    drive(
        judge,
        len(flags),
        speed=speed,
        on_route_lanes=lambda k: not outside[k % len(outside)],
        **collision_at(*[k + 1 for k, f in enumerate(flags) if f]),
    )
    result = judge.finish(EpisodeResult("p"))
    times = [i.time for i in result.infractions if i.kind == InfractionKind.COLLISION_VEHICLE]
    assert all(b - a > 5.0 for a, b in itertools.pairwise(times))
    assert 0.0 <= result.route_completion <= 100.0
    assert 0.0 <= result.outside_route_lanes <= 100.0 + 1e-9
    for key, value in result.scores.items():
        if key not in ("nuplan_min_ttc", "nuplan_max_wrong_way_1s", "min_pedestrian_distance"):
            assert 0.0 <= value <= 1.0, key


def _ttc_by_polygons(speed: float, rows: np.ndarray) -> float:
    """Reference: shapely boxes stepped at 0.1 s (independent of the closed form)."""
    from shapely import affinity
    from shapely.geometry import box

    ego0 = box(-2.3, -0.95, 2.3, 0.95)
    best = math.inf
    for row in rows:
        if row[ObjectFeature.X] <= 0.0:
            continue
        yaw = math.atan2(row[ObjectFeature.SIN_YAW], row[ObjectFeature.COS_YAW])
        hl, hw = 0.5 * row[ObjectFeature.LENGTH], 0.5 * row[ObjectFeature.WIDTH]
        other0 = affinity.rotate(box(-hl, -hw, hl, hw), yaw, origin=(0, 0), use_radians=True)

        def at(t, other0=other0, row=row):
            o = affinity.translate(
                other0,
                row[ObjectFeature.X] + row[ObjectFeature.VX] * t,
                row[ObjectFeature.Y] + row[ObjectFeature.VY] * t,
            )
            return affinity.translate(ego0, speed * t, 0.0).intersects(o)

        if at(0.0):
            continue
        for k in range(1, 31):
            if at(k * 0.1):
                best = min(best, k * 0.1)
                break
    return best


@settings(max_examples=80, deadline=None)
@given(
    speed=st.floats(0.5, 25.0),
    objs=st.lists(
        st.tuples(
            st.floats(-10.0, 60.0),
            st.floats(-15.0, 15.0),
            st.floats(-math.pi, math.pi),
            st.floats(0.0, 15.0),
            st.floats(0.5, 6.0),
            st.floats(0.5, 2.5),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_ttc_matches_stepped_polygons(speed, objs):
    rows = np.stack([obj(x, y, yaw, v, length, width) for x, y, yaw, v, length, width in objs])
    got = time_to_collision(speed, 4.6, 1.9, rows, np.ones(len(rows), dtype=bool))
    want = _ttc_by_polygons(speed, rows.astype(np.float64))
    assert got == pytest.approx(want)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_judge_min_ttc_equals_the_per_step_minimum_across_chunks(seed):
    """The judge buffers TTC rows and evaluates them in chunks (> TTC_CHUNK rows here)."""
    rng = np.random.default_rng(seed)
    judge = EpisodeJudge(spec(), 1e5, DT)
    best = math.inf
    for k in range(1, 121):
        rows = np.stack(
            [
                obj(rng.uniform(-20, 80), rng.uniform(-8, 8), rng.uniform(-3.2, 3.2), rng.uniform(0, 15))
                for _ in range(8)
            ]
        )
        mask = rng.random(8) < 0.7
        speed = float(rng.uniform(0.0, 20.0))
        best = min(best, time_to_collision(speed, 4.6, 1.9, rows, mask))
        judge.update(events(sim_time=k * DT, ego_speed=speed), EGO, rows, mask)
    assert judge.nuplan_figures()["nuplan_min_ttc"] == pytest.approx(min(best, 3.0))
