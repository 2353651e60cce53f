"""The privileged expert in closed loop on hazards that once defeated it (regression guards)."""

from __future__ import annotations

import functools

from drive import build
from scenarios.families import make_scenario
from scenarios.metrics import success
from scenarios.records import InfractionKind
from scenarios.runner import EpisodeJob, run_episode
from sim_bridge.api import MapRef


def _run(family: str, params: dict, seed: int, town: MapRef):
    spec = make_scenario(family, params, seed=seed, town=town)
    job = EpisodeJob(
        spec=spec,
        agent_factory=functools.partial(build.agent, {"name": "expert"}),
        sim_factory=functools.partial(build.simulator, {}, num_worlds=1, threads=1),
        sim_key="expert-tests",
        agent_name="expert",
    )
    return run_episode(job)


def test_expert_steers_round_an_askew_accident_through_the_oncoming_lane():
    """Two crashed cars askew in a two-way street's lane, oncoming traffic: the expert stops with
    room to steer out, lets the oncoming cars by, passes and completes the route (it used to stop
    too close behind the askew car and wait until the route time-out)."""
    params = {"lanes": 1, "obstacle": "accident", "distance": 35.0, "speed": 8.0, "traffic": 2,
              "traffic_speed": 9.0, "vehicles": 0, "pedestrians": 8}  # fmt: skip
    result = _run("parked_obstacle", params, seed=102, town=MapRef(town="grid", seed=7))
    assert result.termination == "route_completed", result.termination
    assert success(result)
    kinds = {i.kind for i in result.infractions}
    assert not kinds & {InfractionKind.COLLISION_STATIC, InfractionKind.COLLISION_VEHICLE,
                        InfractionKind.OUTSIDE_ROUTE_LANES}  # fmt: skip
