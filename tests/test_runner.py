"""The closed-loop runner and `drive eval`: criteria on hand-made scenarios where the answer is known,
agent failures recorded, determinism, and resume after the suite process is killed."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from planning.base import Agent
from scenarios.records import InfractionKind, Status
from scenarios.runner import EpisodeJob, run_episode
from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    LightState,
    MapRef,
    Observation,
    Pose,
    WorldSpec,
)
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map

ROOT = Path(__file__).resolve().parents[1]


class ConstantAgent(Agent):
    """Always the same action (a test double that ignores everything)."""

    name = "constant"

    def __init__(self, accel: float, steer: float = 0.0, nan_after: int | None = None) -> None:
        self.action = np.array([accel, steer], np.float32)
        self.nan_after = nan_after
        self.calls = 0

    def _act(self, obs: Observation) -> np.ndarray:
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            return np.full((obs.num_worlds, 2), np.nan, np.float32)
        return np.tile(self.action, (obs.num_worlds, 1))


def _sim() -> EmbeddedSimulator:
    return EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, max_vehicles=6,
                                            max_pedestrians=4, max_statics=4))  # fmt: skip


def _same(agent: Agent) -> Agent:
    return agent


def job(spec: ScenarioSpec, agent: Agent, **kw) -> EpisodeJob:
    return EpisodeJob(spec=spec, agent_factory=functools.partial(_same, agent), sim_factory=_sim,
                      sim_key="test", agent_name=agent.name, **kw)  # fmt: skip


def straight_lane() -> tuple[int, object]:
    rm = load_map(MapRef("straight"))
    lane = next(int(l) for l in rm.driving_lanes if rm.lane_keys[l][2] == -1)
    return lane, rm


def pose(rm, lane: int, s: float) -> Pose:
    xy, yaw = rm.pose_at(np.array([lane]), np.array([s]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def test_forced_collision_is_recorded_once_with_the_actor():
    lane, rm = straight_lane()
    ego, wall, end = pose(rm, lane, 20.0), pose(rm, lane, 50.0), pose(rm, lane, 250.0)
    parked = ActorSpec(ActorKind.VEHICLE, wall, behaviour=Behaviour(kind=BehaviourKind.STOPPED))
    spec = ScenarioSpec(name="crash", world=WorldSpec(map=MapRef("straight"), ego=ego, route=((end.x, end.y),),
                        actors=(parked,), vehicles=0, pedestrians=0),
                        criteria=CriteriaConfig(route_timeout=20.0))  # fmt: skip
    result = run_episode(job(spec, ConstantAgent(0.6)))
    collisions = [i for i in result.infractions if i.kind == InfractionKind.COLLISION_VEHICLE]
    assert len(collisions) == 1 and collisions[0].actor == 1 and collisions[0].at_fault
    assert result.status == Status.DONE
    assert result.scores["infraction_penalty"] == pytest.approx(0.60)


def test_red_light_run_and_blocked_agent():
    rm = load_map(MapRef("cross"))
    k = 0
    lane = int(rm.stop_lane[k])
    start = pose(rm, lane, float(rm.stop_s[k]) - 40.0)
    signals = tuple((s, LightState.RED) for s in range(len(rm.signal_kind)))
    world = WorldSpec(map=MapRef("cross"), ego=start, ego_speed=8.0, route_length=120.0, vehicles=0, pedestrians=0,
                      signal_states=signals)  # fmt: skip
    spec = ScenarioSpec(name="red", world=world, criteria=CriteriaConfig(route_timeout=30.0))
    result = run_episode(job(spec, ConstantAgent(0.3)))
    reds = [i for i in result.infractions if i.kind == InfractionKind.RED_LIGHT]
    assert len(reds) == 1 and reds[0].actor == int(rm.stop_signal[k])
    # the same world, braking to a halt: blocked after blocked_time
    spec = ScenarioSpec(
        name="blocked", world=world, criteria=CriteriaConfig(blocked_time=5.0, route_timeout=60.0)
    )
    result = run_episode(job(spec, ConstantAgent(-1.0)))
    assert result.termination == "agent_blocked"
    assert 5.0 <= result.sim_time <= 8.0  # ~1 s to stop from 8 m/s, then 5 s still


def test_nan_from_the_agent_is_an_agent_error_not_a_crash():
    lane, rm = straight_lane()
    spec = ScenarioSpec(name="nan", world=WorldSpec(map=MapRef("straight"), ego=pose(rm, lane, 20.0), vehicles=0,
                        pedestrians=0, route_length=150.0))  # fmt: skip
    result = run_episode(job(spec, ConstantAgent(0.5, nan_after=5)))
    assert result.status == Status.AGENT_ERROR
    assert "non-finite" in result.error
    assert result.sim_time == pytest.approx(0.5)


SUITE = """
name: tiny
entries:
  - family: lead_vehicle_brake
    params: {lead_gap: [20.0, 30.0, 40.0]}
    seeds: [0, 1]
"""


def _eval(out: Path, *extra: str) -> subprocess.Popen:
    suite = out.parent / "tiny.yaml"
    suite.write_text(SUITE)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "drive.cli", "eval", f"suite_file={suite}", "agent=expert", "workers=1", f"out={out}",
         "save_replays=none", "worst_gifs=0", "tensorboard=false", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_eval_resumes_after_kill_without_losing_or_duplicating(tmp_path):
    out = tmp_path / "run"
    proc = _eval(out)
    # wait for two finished episodes, then kill the whole process group (parent and worker) with SIGKILL
    deadline = time.time() + 400
    while time.time() < deadline:
        if (out / "results.jsonl").exists() and sum(r["status"] == "done" for r in _records(out)) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"eval ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["name"]: r for r in _records(out) if r["status"] == "done"}
    assert len(before) >= 2
    proc = _eval(out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    final = {}
    for r in _records(out):
        final[r["name"]] = r
    assert len(final) == 6 and all(r["status"] == "done" for r in final.values())
    for name, r in before.items():  # finished episodes were kept, not re-run
        assert final[name]["wall_time"] == r["wall_time"]
    assert len(_records(out)) == 6  # compacted: one line per episode
    assert "lead_vehicle_brake" in stdout


@pytest.mark.slow
def test_same_suite_same_metrics(tmp_path):
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = _eval(out)
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        outs.append(json.loads((out / "summary.json").read_text())["overall"])
    for key in ("driving_score", "route_completion", "infraction_penalty"):
        assert outs[0][key] == outs[1][key]


def test_a_blind_crash_into_a_parked_car_blocks_the_route():
    """Collision response: the blind driver is stopped by the parked car and pinned behind it,
    so the episode ends blocked with the route barely begun (before, it drove through to the end)."""
    lane, rm = straight_lane()
    ego, wall, end = pose(rm, lane, 20.0), pose(rm, lane, 50.0), pose(rm, lane, 250.0)
    parked = ActorSpec(ActorKind.VEHICLE, wall, behaviour=Behaviour(kind=BehaviourKind.STOPPED))
    spec = ScenarioSpec(name="pinned", world=WorldSpec(map=MapRef("straight"), ego=ego, route=((end.x, end.y),),
                        actors=(parked,), vehicles=0, pedestrians=0),
                        criteria=CriteriaConfig(blocked_time=5.0, route_timeout=60.0))  # fmt: skip
    result = run_episode(job(spec, ConstantAgent(1.0)))
    assert result.termination == "agent_blocked"
    assert result.route_completion < 30.0  # the car was shoved a few metres; the ego stayed behind it
    assert result.scores["driving_score"] < 0.3 * 30.0


def test_longest_routes_are_scheduled_first_and_nothing_is_lost():
    from drive.cli import compose_config
    from drive.pipelines.eval import resolve_suite
    from scenarios.runner import longest_first, route_extent

    exam = resolve_suite(compose_config("eval", ["suite=exam"])).scenarios
    order = longest_first(exam)
    assert sorted(s.name for s in order) == sorted(s.name for s in exam)
    extents = [route_extent(s) for s in order]
    assert extents == sorted(extents, reverse=True)
    assert {s.family for s in order[:6]} == {"urban_route"}  # the exam's longest episodes
    assert order[-1].family != "urban_route"
