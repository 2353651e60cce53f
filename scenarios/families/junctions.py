"""Junctions: a left turn against oncoming traffic on green (Leaderboard SignalizedJunctionLeftTurn,
NHTSA "left turn across path / opposite direction"), waiting at a red light for green
(SignalJunctionCrossingRoute), a stop sign with crossing traffic that has priority
(NoSignalJunctionCrossing / PriorityAtJunction, NHTSA "straight crossing paths") and a crossing
vehicle running its red light (OppositeVehicleRunningRedLight / OppositeVehicleTakingPriority).

Every family works on any town with a junction of the right kind: the unit maps ``cross`` (one
signalised 4-way) and ``tee`` (a stop sign on the stem) by default, the grid town's junctions
otherwise. Traffic-light timing uses the phase plan of the simulator's light cycles: the lights of a
junction take turns by approach direction (parallel and opposite approaches share a phase).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from scenarios.families.base import (
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    MissingFeature,
    pose_on,
    register,
    route_end,
)
from scenarios.families.junction_places import (
    LEFT,
    RIGHT,
    STRAIGHT,
    Approach,
    approaches,
    crossing,
    opposite,
    signal_lights,
)
from scenarios.families.lane_paths import lane_min_width
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, LightState, MapRef, SignalTiming, WorldSpec
from sim_bridge.embedded.map_arrays import MIN_LANE_WIDTH
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.signals import build_signal_plan

T = TypeVar("T")
#: turn names of the parameters → RouteCommand
TURNS = {"left": LEFT, "right": RIGHT, "straight": STRAIGHT}
#: yellow and all-red times of the light cycle [s]
YELLOW, ALL_RED = 3.0, 1.0
#: the ego's route runs this far along the exit lane [m]
EXIT_RUN = 40.0


def _choose(
    road_map: RoadMap,
    rng: np.random.Generator,
    town: MapRef,
    what: str,
    want: Callable[[Approach, list[Approach]], T | None],
) -> T:
    """A seeded choice among the junction approaches ``want`` accepts (its non-``None`` results)."""
    found = []
    narrowest = lane_min_width(road_map)
    for junction in sorted(approaches(road_map)):
        # (not a turn pocket opening from zero width: a car placed there stands on its neighbours)
        group = [a for a in approaches(road_map)[junction] if narrowest[a.lane] >= MIN_LANE_WIDTH]
        for approach in group:
            got = want(approach, [a for a in group if a is not approach])
            if got is not None:
                found.append(got)
    if not found:
        raise MissingFeature(what)
    return found[int(rng.integers(len(found)))]


def _start(road_map: RoadMap, approach: Approach, distance: float) -> float:
    """Arc length on the approach lane ``distance`` [m] before its end (at least 2 m in)."""
    return max(2.0, float(road_map.lane_length[approach.lane]) - distance)


def _route_through(
    road_map: RoadMap, approach: Approach, turn: int, run: float = EXIT_RUN
) -> tuple[float, float]:
    """The end of a route taking ``approach``'s ``turn`` and running ``run`` [m] on (short of a dead
    end, see :func:`route_end`)."""
    move = approach.movement(turn)
    assert move is not None
    return route_end(road_map, move[1], 0.0, run)


def _stream(
    road_map: RoadMap, approach: Approach, turn: int, times: list[float], speed: float, at: float = 0.0
) -> list[ActorSpec]:
    """Vehicles on ``approach`` at ``speed`` [m/s] whose centres reach ``at`` [m] along its ``turn``
    movement's connecting lane at ``times`` [s] (``at`` = 0: the approach's end); the ones that
    would start before the approach lane's beginning are left out."""
    length = float(road_map.lane_length[approach.lane])
    target = _route_through(road_map, approach, turn, 15.0)
    out = []
    for t in times:
        s = length + at - speed * t
        if 2.0 <= s <= length - 1.0:
            pose = pose_on(road_map, approach.lane, s)
            out.append(ActorSpec(ActorKind.VEHICLE, pose, speed=speed, target_speed=speed, route=(target,)))
    return out


def _conflict(
    road_map: RoadMap, ego: Approach, ego_turn: int, other: Approach, other_turn: int
) -> tuple[float, float]:
    """Arc lengths [m] along the two movements' connecting lanes where their paths cross."""
    a, b = ego.movement(ego_turn), other.movement(other_turn)
    assert a is not None and b is not None
    return _crossing_point(road_map, a[0], b[0])


def _centred(t: float, count: int, headway: float, delay: float) -> list[float]:
    """``count`` times ``headway`` [s] apart centred on ``t + delay`` [s]."""
    return [t + delay + (k - 0.5 * (count - 1)) * headway for k in range(count)]


def _frozen(road_map: RoadMap, junction: int, green: tuple[int, ...]) -> tuple[tuple[int, LightState], ...]:
    """Every light of ``junction`` frozen: ``green`` ones green, the others red."""
    return tuple(
        (k, LightState.GREEN if k in green else LightState.RED) for k in signal_lights(road_map, junction)
    )


def _world(
    town: MapRef, road_map: RoadMap, approach: Approach, s: float, p: dict[str, Any], **fields: Any
) -> WorldSpec:
    return WorldSpec(
        map=town, ego=pose_on(road_map, approach.lane, s), ego_speed=p["speed"], vehicles=p["vehicles"],
        pedestrians=p["pedestrians"], **fields,
    )  # fmt: skip


def _spec(road_map: RoadMap, approach: Approach, world: WorldSpec, radius: float = 35.0) -> ScenarioSpec:
    return ScenarioSpec(name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*approach.end, radius))


# ------------------------------------------------------------------------------------- families


def signalised_left_turn(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego turns left at a signalised junction, its light and the opposite one frozen green (the
    others red). ``oncoming`` vehicles go straight from the opposite approach at ``oncoming_speed``
    [m/s], ``headway`` [s] apart, passing the point where the paths cross around ``delay`` [s] after
    the ego would at its ``speed``; the ego must wait for a gap."""

    def want(a: Approach, others: list[Approach]) -> tuple[Approach, Approach] | None:
        o = opposite(a, others)
        if a.control != "light" or a.movement(LEFT) is None or o is None or o.movement(STRAIGHT) is None:
            return None
        return (a, o) if road_map.lane_length[a.lane] > 30.0 else None

    ego_app, opp = _choose(
        road_map, rng, town, "signalised junction with a left turn and oncoming lanes", want
    )
    s = _start(road_map, ego_app, p["distance"])
    x_ego, x_opp = _conflict(road_map, ego_app, LEFT, opp, STRAIGHT)
    t_cross = (float(road_map.lane_length[ego_app.lane]) - s + x_ego) / p["speed"]
    times = _centred(t_cross, p["oncoming"], p["headway"], p["delay"])
    actors = _stream(road_map, opp, STRAIGHT, times, p["oncoming_speed"], x_opp)
    world = _world(town, road_map, ego_app, s, p, route=(_route_through(road_map, ego_app, LEFT),),
                   actors=tuple(actors), signal_states=_frozen(road_map, ego_app.junction, (*ego_app.signals, *opp.signals)))  # fmt: skip
    return _spec(road_map, ego_app, world)


def red_light_wait(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego drives straight towards a signalised junction whose light is red when it arrives and
    turns green ``wait`` [s] later; ``cross_traffic`` vehicles cross on their green meanwhile. Every
    junction's cycle starts at phase 0 (no random offset); the ego's approach is in phase 1."""
    plan = build_signal_plan(road_map)

    def want(a: Approach, others: list[Approach]) -> tuple[Approach, Approach] | None:
        lights = list(a.signals)
        if a.control != "light" or a.movement(STRAIGHT) is None or any(plan.phase[lights] != 1):
            return None
        if any(plan.num_phases[lights] != 2) or road_map.lane_length[a.lane] < 30.0:
            return None
        for side in (-1, 1):
            c = crossing(a, others, side)
            if c is not None and c.control == "light" and c.movement(STRAIGHT) is not None:
                return a, c
        return None

    ego_app, cross = _choose(road_map, rng, town, "signalised junction crossing with two phases", want)
    s = _start(road_map, ego_app, p["distance"])
    # at constant speed, then braking at ~2 m/s² to the line
    t_arrive = (float(road_map.lane_length[ego_app.lane]) - s) / p["speed"] + p["speed"] / 4.0
    cycle = t_arrive + p["wait"]  # the ego's phase 1 starts (green) one phase length in
    green = cycle - YELLOW - ALL_RED
    if green < 3.0:
        raise FamilyError(
            f"wait={p['wait']} s leaves the crossing traffic a green of {green:.1f} s; raise wait or distance"
        )
    times = [t_arrive - 1.0 + k * 2.5 for k in range(p["cross_traffic"])]
    actors = _stream(road_map, cross, STRAIGHT, [t for t in times if 1.0 < t < green - 1.0], p["cross_speed"])
    timing = SignalTiming(green=green, yellow=YELLOW, all_red=ALL_RED, random_offset=False)
    world = _world(town, road_map, ego_app, s, p, route=(_route_through(road_map, ego_app, STRAIGHT),),
                   actors=tuple(actors), signals=timing)  # fmt: skip
    return _spec(road_map, ego_app, world)


def stop_sign_priority(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego comes to a stop sign and turns (``turn``: left, right, straight or any) onto or across
    a road with priority; ``traffic`` vehicles on it, from the ``side`` (left, right or both) at
    ``traffic_speed`` [m/s], 2.5 s apart, passing the point where the paths cross around ``delay``
    [s] after the ego would at its ``speed`` without stopping. The ego must stop, then yield."""
    turns = list(TURNS.values()) if p["turn"] == "any" else [TURNS.get(p["turn"], -1)]
    if -1 in turns:
        raise FamilyError(f"turn must be left, right, straight or any; got {p['turn']!r}")
    sides = {"left": [1], "right": [-1], "both": [1, -1]}.get(p["side"])
    if sides is None:
        raise FamilyError(f"side must be left, right or both; got {p['side']!r}")

    def want(a: Approach, others: list[Approach]) -> tuple[Approach, int, list[Approach]] | None:
        if a.control != "stop" or road_map.lane_length[a.lane] < 25.0:
            return None
        turn = next((t for t in turns if a.movement(t) is not None), None)
        found = [crossing(a, others, side) for side in sides]
        prio = [
            c for c in found if c is not None and c.control == "none" and c.movement(STRAIGHT) is not None
        ]
        if turn is None or not prio:
            return None
        return a, turn, prio

    ego_app, turn, prio = _choose(road_map, rng, town, "stop sign facing a road with priority", want)
    s = _start(road_map, ego_app, p["distance"])
    actors = []
    for c in prio:
        x_ego, x_c = _conflict(road_map, ego_app, turn, c, STRAIGHT)
        t_cross = (float(road_map.lane_length[ego_app.lane]) - s + x_ego) / p["speed"]
        actors += _stream(
            road_map, c, STRAIGHT, _centred(t_cross, p["traffic"], 2.5, p["delay"]), p["traffic_speed"], x_c
        )
    world = _world(
        town, road_map, ego_app, s, p, route=(_route_through(road_map, ego_app, turn),), actors=tuple(actors)
    )
    return _spec(road_map, ego_app, world)


def red_light_runner(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego goes straight on green (the junction's other lights frozen red); a vehicle from the
    ``side`` (left or right) runs its red light at ``runner_speed`` [m/s], blind to signals and to
    other actors, timed to reach the crossing point ``delay`` [s] after the ego would at its
    ``speed``. The ego must see it coming and yield."""
    side = {"left": 1, "right": -1}.get(p["side"])
    if side is None:
        raise FamilyError(f"side must be left or right; got {p['side']!r}")

    def want(a: Approach, others: list[Approach]) -> tuple[Approach, Approach] | None:
        c = crossing(a, others, side)
        if a.control != "light" or a.movement(STRAIGHT) is None or c is None or c.movement(STRAIGHT) is None:
            return None
        return (a, c) if road_map.lane_length[a.lane] > 30.0 and road_map.lane_length[c.lane] > 40.0 else None

    ego_app, run_app = _choose(
        road_map, rng, town, f"signalised crossing with a road from the {p['side']}", want
    )
    s_ego_x, s_run_x = _conflict(road_map, ego_app, STRAIGHT, run_app, STRAIGHT)
    s = _start(road_map, ego_app, p["distance"])
    t_cross = (float(road_map.lane_length[ego_app.lane]) - s + s_ego_x) / p["speed"]
    run_length = float(road_map.lane_length[run_app.lane])
    s_run = run_length + s_run_x - p["runner_speed"] * (t_cross + p["delay"])
    if s_run < 2.0:
        raise FamilyError(
            f"the runner would start {2.0 - s_run:.0f} m before its lane begins; lower runner_speed or distance"
        )
    runner = ActorSpec(
        ActorKind.VEHICLE, pose_on(road_map, run_app.lane, s_run), speed=p["runner_speed"],
        target_speed=p["runner_speed"], route=(_route_through(road_map, run_app, STRAIGHT, 15.0),),
        behaviour=Behaviour(ignore_signals=True, ignore_actors=True),
    )  # fmt: skip
    lights = _frozen(road_map, ego_app.junction, ego_app.signals)
    world = _world(town, road_map, ego_app, s, p, route=(_route_through(road_map, ego_app, STRAIGHT),),
                   actors=(runner,), signal_states=lights)  # fmt: skip
    return _spec(road_map, ego_app, world)


def _crossing_point(road_map: RoadMap, lane_a: int, lane_b: int) -> tuple[float, float]:
    """Arc lengths [m] along two junction lanes where their centrelines come closest."""
    a = slice(road_map.lane_start[lane_a], road_map.lane_start[lane_a + 1])
    b = slice(road_map.lane_start[lane_b], road_map.lane_start[lane_b + 1])
    d = np.hypot(*(road_map.points[a][:, None, :] - road_map.points[b][None, :, :]).transpose(2, 0, 1))
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(road_map.s[a][i]), float(road_map.s[b][j])


register(
    Family(
        name="signalised_left_turn",
        build=signalised_left_turn,
        defaults={
            "distance": 40.0,
            "speed": 8.0,
            "oncoming": 3,
            "oncoming_speed": 10.0,
            "headway": 2.5,
            "delay": 0.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("cross"),
        description="turn left on green through a stream of oncoming traffic; wait for a gap",
        grid={"oncoming": [2, 4], "headway": [2.0, 3.5], "delay": [-0.5, 0.5]},
    )
)

register(
    Family(
        name="red_light_wait",
        build=red_light_wait,
        defaults={
            "distance": 45.0,
            "speed": 9.0,
            "wait": 6.0,
            "cross_traffic": 3,
            "cross_speed": 9.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("cross"),
        description="the light turns red before the ego arrives; stop at the line, go on green",
        grid={"wait": [3.0, 10.0], "speed": [7.0, 11.0], "cross_traffic": [0, 3]},
    )
)

register(
    Family(
        name="stop_sign_priority",
        build=stop_sign_priority,
        defaults={
            "turn": "any",
            "side": "both",
            "distance": 35.0,
            "speed": 8.0,
            "traffic": 2,
            "traffic_speed": 10.0,
            "delay": 1.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("tee"),
        description="stop at the stop sign, then yield to crossing traffic with priority",
        grid={"turn": ["left", "right"], "delay": [0.0, 2.0], "traffic": [1, 3]},
    )
)

register(
    Family(
        name="red_light_runner",
        build=red_light_runner,
        defaults={
            "side": "left",
            "distance": 45.0,
            "speed": 12.0,
            "runner_speed": 12.0,
            "delay": 0.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("cross"),
        description="a crossing vehicle runs its red light across the ego's green; yield to it",
        grid={"side": ["left", "right"], "runner_speed": [10.0, 14.0], "delay": [-0.5, 0.5]},
    )
)
