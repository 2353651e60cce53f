"""The closed loop: one scenario, one agent, one simulator world, judged step by step.

:func:`run_episode` is what every executor runs (a top-level function over a picklable
:class:`EpisodeJob`). It never lets an agent failure pass silently: an exception or a NaN from the
agent ends the episode as ``agent_error`` with its traceback; a simulator failure raises (the
executor reports the episode as crashed, the suite goes on). The simulator is built once per worker
process and reused across episodes (``reset`` switches maps when needed).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planning.base import Agent, AgentInfo
from scenarios.criteria import EpisodeJudge
from scenarios.metrics import score_episode, success
from scenarios.records import EpisodeResult, Status
from scenarios.spec import ScenarioSpec
from sim_bridge.api import Pose, Simulator
from sim_bridge.replay import Replay

#: which episodes keep their replay file
SAVE_REPLAYS = ("none", "failed", "all")

_SIMULATORS: dict[str, Simulator] = {}
"""One simulator per worker process and simulator configuration (built on first use)."""


@dataclass(frozen=True)
class EpisodeJob:
    """Everything a worker needs for one episode (picklable)."""

    spec: ScenarioSpec
    agent_factory: Callable[[], Agent]
    """Builds a fresh agent (a ``functools.partial`` of a top-level function)."""
    sim_factory: Callable[[], Simulator]
    """Builds a one-world simulator (same); cached per worker under ``sim_key``."""
    sim_key: str
    """Identifies the simulator configuration (equal keys share a cached simulator)."""
    agent_name: str = "agent"
    replay_dir: str | None = None
    """Folder for replay files (``<name>.npz``)."""
    save_replays: str = "failed"
    """``none``, ``failed`` (unsuccessful or with infractions) or ``all``."""
    max_steps: int | None = None
    """Hard cap on decision steps (the criteria's time-outs normally end episodes first)."""


def _close_simulators() -> None:
    """At the worker's exit: close its simulators (a CARLA server keeps a client's actors after it
    is gone: the last episode's ego would drive on, its lead car stand in the next one's way)."""
    while _SIMULATORS:
        _, sim = _SIMULATORS.popitem()
        with contextlib.suppress(Exception):  # exiting: a server already gone has nothing to release
            sim.close()


def _simulator(job: EpisodeJob) -> Simulator:
    sim = _SIMULATORS.get(job.sim_key)
    if sim is None:
        if not _SIMULATORS:
            atexit.register(_close_simulators)
        sim = _SIMULATORS[job.sim_key] = job.sim_factory()
        if sim.num_worlds != 1:
            raise ValueError(
                f"the episode runner drives one world per simulator; got num_worlds={sim.num_worlds}"
            )
    return sim


def route_extent(spec: ScenarioSpec) -> float:
    """The length of the scenario's route as written [m]: the polyline from the ego's start (where
    it is given as a pose) through the route waypoints; the random route's length when none are
    given. A cheap estimate of an episode's duration, for scheduling."""
    world = spec.world
    if not world.route:
        return float(world.route_length)
    points = [(p[0], p[1]) for p in world.route]
    if isinstance(world.ego, Pose):
        points.insert(0, (world.ego.x, world.ego.y))
    return float(sum(math.dist(a, b) for a, b in itertools.pairwise(points)))


def longest_first(specs: Sequence[ScenarioSpec]) -> list[ScenarioSpec]:
    """``specs`` with the longest routes first (:func:`route_extent`), ties in the given order: a
    pool of workers then ends together instead of waiting on one long episode started last.
    Episodes do not depend on their order, so neither do the results."""
    return sorted(specs, key=lambda spec: -route_extent(spec))


def run_episode(job: EpisodeJob) -> EpisodeResult:
    """Run ``job.spec`` in closed loop and return its scored record (see module doc)."""
    if job.save_replays not in SAVE_REPLAYS:
        raise ValueError(f"save_replays={job.save_replays!r}; allowed: {', '.join(SAVE_REPLAYS)}")
    spec = job.spec
    start = time.perf_counter()
    result = EpisodeResult(name=spec.name, family=spec.family, params=dict(spec.params), seed=spec.seed,
                           agent=job.agent_name)  # fmt: skip
    sim = _simulator(job)
    obs = sim.reset(spec.world, spec.seed)
    road_map = sim.road_map
    route = sim.route(0)
    ego = sim.ego_vehicle
    judge = EpisodeJudge(spec, route_length=float(route.length), dt=sim.dt,
                         ego_length=ego.length, ego_width=ego.width)  # fmt: skip
    replay = None
    if job.save_replays != "none" and job.replay_dir:
        replay = Replay(
            map=spec.world.map, route=route, dt=sim.dt, meta={"scenario": spec.name, "agent": job.agent_name}
        )
        replay.record(sim.actor_arrays(), sim.light_states(), 0, None, None)
    try:
        agent = job.agent_factory()
        agent.seed([0], [spec.seed])  # an episode replays from its scenario's seed
        agent.reset(
            AgentInfo(num_worlds=1, dt=sim.dt, ego=ego, road_map=road_map, routes=(route,), simulator=sim)
        )
    except Exception:
        result.status = Status.AGENT_ERROR
        result.termination = "agent_error"
        result.error = traceback.format_exc()
        return _finish(result, judge, replay, job, start)

    steps = 0
    while True:
        try:
            action = agent.act(obs)
        except Exception:
            result.status = Status.AGENT_ERROR
            result.termination = "agent_error"
            result.error = traceback.format_exc()
            break
        obs, events = sim.step(action)
        steps += 1
        if replay is not None:
            replay.record(sim.actor_arrays(), sim.light_states(), 0, action[0], events)
        if judge.update(events.world(0), obs.ego[0], obs.objects[0], obs.objects_mask[0]):
            break
        if job.max_steps is not None and steps >= job.max_steps:
            result.termination = "max_steps"
            break
    result.agent_stats = {k: float(v) for k, v in agent.episode_stats(0).items()}
    return _finish(result, judge, replay, job, start)


def _finish(
    result: EpisodeResult, judge: EpisodeJudge, replay: Replay | None, job: EpisodeJob, start: float
) -> EpisodeResult:
    termination = result.termination
    result = score_episode(judge.finish(result))
    if termination and not result.termination:
        result.termination = termination
    keep = job.save_replays == "all" or (
        job.save_replays == "failed" and (not success(result) or result.infractions)
    )
    if replay is not None and keep and job.replay_dir:
        path = Path(job.replay_dir) / f"{result.name}.npz"
        replay.save(path)
        result.replay = str(path)
    result.wall_time = time.perf_counter() - start
    return result


def describe(result: EpisodeResult) -> dict[str, Any]:
    """A one-line summary of a record for logs."""
    return {
        "name": result.name,
        "status": result.status.value,
        "termination": result.termination,
        "ds": round(result.scores.get("driving_score", 0.0), 1),
        "rc": round(result.route_completion, 1),
        "infractions": len(result.infractions),
    }
