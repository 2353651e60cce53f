"""The world-model planner as an agent: it brakes for an obstacle and drives on a free road with a
hand-constructed model (exact kinematics in its latent, a collision head on the gap), with CEM and
with MPPI; same seed, same actions; a NaN from the model is an ``AgentError`` naming the worlds;
reset clears the warm start of the restarted worlds only; the shield brakes and counts;
``drive eval agent=planner agent.checkpoint=… suite=smoke`` runs in a subprocess.

The hand-constructed model: the latent holds ``[speed, gap]`` read from the ego vector (the gap to
the obstacle is put in the ``STOP_DISTANCE`` column of a synthetic observation); the predictor is
the ego's longitudinal kinematics (``speed += 3·relu(a) - 8·relu(-a)`` per second, ``gap -=
speed · dt``); the heads give the motion (``dx = speed · dt``), the progress, the proximity
(``gap``) and a collision logit that rises as the gap closes. A trained model is exercised by the
subprocess test and by ``drive bench plan``; training one that reliably brakes takes minutes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planning.base import AgentError, AgentInfo
from planning.optim import SamplerConfig
from planning.world_model_planner import PlannerConfig, ShieldConfig, WorldModelPlanner
from sim_bridge.api import EGO_DIM, NUM_ROUTE_TARGETS, OBJECT_DIM, EgoFeature, EgoVehicle, Observation
from sim_bridge.api import ObjectFeature as OF

DT = 0.1
ROOT = Path(__file__).resolve().parents[1]
SPEED, GAP = 0, 1  # latent dimensions


def kinematic_model(bev_shape=(10, 32, 32)):
    """A :class:`WorldModel` whose weights implement the kinematics above (see the module doc)."""
    import torch

    from world_model.config import ModelConfig
    from world_model.model import EVENT_HEADS, WorldModel

    # identity normalisation, no clipping: the latent reads raw metres and m/s
    cfg = ModelConfig(latent=4, channels=[4, 4], ego_hidden=4, fuse_hidden=4, predictor_hidden=4,
                      predictor_layers=2, head_hidden=4, ego_clip=math.inf)  # fmt: skip
    model = WorldModel(cfg, bev_shape, EGO_DIM).eval()
    K = len(cfg.event_within)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # encoder: the BEV is ignored (zero convs); ego → [speed, gap] through identities
        model.ego_net[0].weight[0, EgoFeature.SPEED] = 1.0
        model.ego_net[0].weight[1, EgoFeature.STOP_DISTANCE] = 1.0
        n_bev = model.bev_net.out_features
        model.fuse[0].weight[0, n_bev + 0] = 1.0
        model.fuse[0].weight[1, n_bev + 1] = 1.0
        model.fuse[2].weight[SPEED, 0] = 1.0
        model.fuse[2].weight[GAP, 1] = 1.0
        # predictor: hidden units relu(accel), relu(-accel), relu(speed), carried through one layer
        pr = model.predictor
        pr.inp_a.weight[0, 0], pr.inp_a.weight[1, 0] = 1.0, -1.0
        pr.inp_z.weight[2, SPEED] = 1.0
        pr.hidden[0].weight.copy_(torch.eye(4))
        pr.out.weight[SPEED, 0], pr.out.weight[SPEED, 1] = 3.0 * DT, -8.0 * DT
        pr.out.weight[GAP, 2] = -DT
        # heads: trunk units relu(speed), relu(gap), relu(0.5 - gap)
        model.head_trunk[0].weight[0, SPEED] = 1.0
        model.head_trunk[0].weight[1, GAP] = 1.0
        model.head_trunk[0].weight[2, GAP] = -1.0
        model.head_trunk[0].bias[2] = 0.5
        out = model.head_out
        n_ev = len(EVENT_HEADS) * K
        out.bias[:n_ev] = -20.0  # no off-road, no red light, no stop sign …
        out.bias[:K] = -8.0  # … and a collision logit of 0 at contact, +8 half a metre in
        out.weight[:K, 2] = 16.0
        reg = n_ev
        out.weight[reg + 0, 0] = DT  # dx
        out.weight[reg + 3, 0] = 1.0  # speed
        out.weight[reg + 4, 0] = DT  # progress
        out.weight[reg + 5, 1] = 1.0 / 16.0  # nearest (over its scale)
        out.weight[reg + 6, 1] = 1.0 / 30.0  # gap ahead
    return model


def observation(speed: np.ndarray, gap: np.ndarray, bev_shape=(10, 32, 32)) -> Observation:
    B = len(speed)
    ego = np.zeros((B, EGO_DIM), dtype=np.float32)
    ego[:, EgoFeature.SPEED] = speed
    ego[:, EgoFeature.STOP_DISTANCE] = gap
    ego[:, EgoFeature.SPEED_LIMIT] = 10.0
    ego[:, EgoFeature.ROUTE_REMAINING] = 1000.0
    for k in range(NUM_ROUTE_TARGETS):
        ego[:, EgoFeature.ROUTE_X0 + 2 * k] = 5.0 * (k + 1)
    return Observation(
        bev=np.zeros((B, *bev_shape), dtype=np.uint8),
        ego=ego,
        objects=np.zeros((B, 1, OBJECT_DIM), dtype=np.float32),
        objects_mask=np.zeros((B, 1), dtype=bool),
        object_ids=np.full((B, 1), -1, dtype=np.int32),
        pose=np.zeros((B, 3)),
    )


def planner(optimizer: str = "cem", model=None, **kw) -> WorldModelPlanner:
    cfg = PlannerConfig(optimizer=optimizer, optim=SamplerConfig(samples=64, iterations=3), **kw)
    agent = WorldModelPlanner(cfg, seed=0, model=model if model is not None else kinematic_model())
    return agent


def drive(agent: WorldModelPlanner, gap0: np.ndarray, steps: int, speed0: float = 8.0):
    """Close the loop on the model's own kinematics (exact: the model is the world here)."""
    vehicle = EgoVehicle()
    B = len(gap0)
    agent.reset(AgentInfo(num_worlds=B, dt=DT, ego=vehicle))
    speed, gap = np.full(B, speed0), gap0.astype(np.float64).copy()
    min_gap = gap.copy()
    for _ in range(steps):
        a = agent.act(observation(speed, gap))[:, 0]
        accel = np.where(a >= 0, a * 3.0, a * 8.0)
        gap -= speed * DT
        speed = np.maximum(speed + accel * DT, 0.0)
        min_gap = np.minimum(min_gap, gap)
    return speed, gap, min_gap


@pytest.mark.parametrize(
    ("optimizer", "ego_motion"), [("cem", "kinematic"), ("mppi", "kinematic"), ("cem", "model")]
)
def test_brakes_for_an_obstacle_and_drives_on_a_free_road(one_torch_thread, optimizer, ego_motion):
    agent = planner(optimizer, ego_motion=ego_motion)
    start = np.array([25.0, 1000.0])  # world 0: an obstacle 25 m ahead; world 1: none
    speed, gap, min_gap = drive(agent, start, steps=80)
    assert min_gap[0] > 0.0, "hit the obstacle"
    assert speed[0] < 0.5 and gap[0] < 15.0  # stopped, and only after closing in
    assert start[1] - gap[1] > 50.0 and speed[1] > 6.0  # the free road: drove on at speed
    assert set(agent.last_costs) >= {"collision", "progress", "proximity"}
    assert all(v.shape == (2,) for v in agent.last_costs.values())


def test_same_seed_same_actions_and_callback_sees_the_costs(one_torch_thread):
    seen = []
    a, b = planner(), planner()
    a.on_decision = seen.append
    runs = [drive(x, np.array([20.0, 40.0]), steps=5) for x in (a, b)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(a.last_plan.actions, b.last_plan.actions)
    assert len(seen) == 5 and seen[-1] is a.last_costs


def test_reset_clears_the_warm_start_of_restarted_worlds_only(one_torch_thread):
    agent = planner()
    drive(agent, np.array([20.0, 40.0]), steps=3)
    before = agent.optimizer.warm_start()
    assert np.abs(before).max() > 0
    agent.reset(agent.info, worlds=[1])
    after = agent.optimizer.warm_start()
    np.testing.assert_array_equal(after[0], before[0])
    assert np.abs(after[1]).max() == 0.0


@pytest.mark.filterwarnings("ignore:overflow encountered")  # the absurd speed below, on purpose
def test_nan_from_the_model_is_an_agent_error_naming_the_worlds(one_torch_thread):
    import torch

    model = kinematic_model()
    agent = planner(model=model)
    agent.reset(AgentInfo(num_worlds=3, dt=DT, ego=EgoVehicle()))
    # world 1 alone: a finite but absurd speed whose imagined path overflows float32 (inf)
    obs = observation(np.array([0.0, 3e38, 0.0]), np.array([30.0, 30.0, 30.0]))
    with pytest.raises(AgentError, match=r"NaN/inf for world\(s\) \[1\]$"):
        agent.act(obs)
    obs = observation(np.array([0.0, 5.0, 0.0]), np.array([30.0, 30.0, 30.0]))
    with torch.no_grad():
        model.head_out.bias[0] = float("nan")
    with pytest.raises(AgentError, match=r"NaN/inf for world\(s\) \[0, 1, 2\]"):
        agent.act(obs)
    with torch.no_grad():
        model.fuse[2].bias[0] = float("inf")
    with pytest.raises(AgentError, match="latent"):
        agent.act(obs)


def test_shield_brakes_on_an_actor_close_ahead_and_counts(one_torch_thread):
    agent = planner(shield=ShieldConfig(enabled=True))
    agent.reset(AgentInfo(num_worlds=2, dt=DT, ego=EgoVehicle()))
    obs = observation(np.array([10.0, 10.0]), np.array([1000.0, 1000.0]))  # the model sees a free road
    objects = obs.objects.copy()
    objects[0, 0, [OF.X, OF.COS_YAW, OF.LENGTH, OF.WIDTH, OF.IS_VEHICLE]] = [8.0, 1.0, 4.5, 1.8, 1.0]
    mask = np.array([[True], [False]])
    obs = Observation(obs.bev, obs.ego, objects, mask, obs.object_ids, obs.pose)
    action = agent.act(obs)
    assert action[0, 0] == -1.0 and action[1, 0] > -1.0
    assert agent.shield_overrides == 1 and agent.shield_active.tolist() == [True, False]
    stats = [agent.episode_stats(w) for w in (0, 1)]
    assert stats[0]["plan/shield_overrides"] == 1.0 and stats[1]["plan/shield_overrides"] == 0.0
    assert stats[0]["plan/decisions"] == 1.0 and stats[0]["plan/cost_progress"] < 0.0
    agent.reset(agent.info, worlds=[0])
    assert agent.episode_stats(0)["plan/decisions"] == 0.0 and agent.episode_stats(1)["plan/decisions"] == 1.0
    assert planner().config.shield.enabled is False  # off by default


def test_needs_a_checkpoint_matching_shapes_and_room_for_the_proposals(one_torch_thread):
    with pytest.raises(ValueError, match=r"agent\.checkpoint"):
        WorldModelPlanner(PlannerConfig())
    with pytest.raises(ValueError, match=r"samples >= 22"):
        WorldModelPlanner(PlannerConfig(optim=SamplerConfig(samples=16)), model=kinematic_model())
    agent = planner()
    agent.reset(AgentInfo(num_worlds=1, dt=DT, ego=EgoVehicle()))
    with pytest.raises(AgentError, match="sensor setup"):
        agent.act(observation(np.array([1.0]), np.array([10.0]), bev_shape=(10, 16, 16)))


def save_checkpoint(model, path: Path) -> Path:
    import torch

    from world_model.train import CHECKPOINT_FORMAT

    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "shapes": model.shapes()}, path)
    return path


def test_registry_builds_the_planner_from_a_checkpoint(tmp_path, one_torch_thread):
    from drive import build
    from drive.cli import compose_config

    ckpt = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "model.pt")
    cfg = compose_config("eval", ["agent=planner", f"agent.checkpoint={ckpt}", "agent.optimizer=mppi",
                                  "agent.costs.collision.weight=250", "agent.optim.samples=32"])  # fmt: skip
    agent = build.agent(cfg.agent)
    assert isinstance(agent, WorldModelPlanner) and agent.optimizer.name == "mppi"
    assert agent.costs.config.collision.weight == 250 and agent.config.optim.samples == 32
    assert math.isclose(agent.model.predictor.out.weight[GAP, 2].item(), -DT, rel_tol=1e-6)


@pytest.mark.slow
def test_drive_eval_with_the_planner_on_the_smoke_suite(tmp_path):
    ckpt = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "model.pt")
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "drive.cli", "eval", "agent=planner", f"agent.checkpoint={ckpt}", "suite=smoke",
         "executor=inline", f"out={out}", "agent.optim.samples=32", "agent.optim.iterations=1",
         "agent.optim.horizon=5", "save_replays=none", "worst_gifs=0", "tensorboard=false"],
        cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    final = {r["name"]: r for r in records if r["status"] != "started"}
    assert len(final) == 4 and all(r["agent"] == "planner" for r in final.values())
    assert all(r["status"] != "agent_error" for r in final.values()), [r.get("error") for r in final.values()]
    assert all(
        r["agent_stats"]["plan/decisions"] > 0 and "plan/cost_collision" in r["agent_stats"]
        for r in final.values()
    )
    summary = json.loads((out / "summary.json").read_text())
    assert "driving_score" in json.dumps(summary)


def test_bench_plan_prints_latency_and_throughput_lines(capsys, one_torch_thread):
    from drive.cli import main

    small = ["model.latent=8", "model.channels=[4,4]", "model.ego_hidden=8", "model.fuse_hidden=16",
             "model.predictor_hidden=16", "model.head_hidden=8", "bev_size=32"]  # fmt: skip
    assert (
        main(["bench", "plan", "worlds=[1,3]", "decisions=4", "warmup=1", "agent.optimizer=mppi", *small])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["worlds"] for line in lines] == [1, 3]
    for line in lines:
        assert line["bench"] == "plan" and line["optimizer"] == "mppi" and line["model"] == "random"
        assert 0 < line["p50_ms"] <= line["p99_ms"] and line["decisions_per_s"] > 0
        assert (
            line["samples"] == 64
            and line["iterations"] == 2
            and line["horizon"] == 20
            and line["proposals"] == 31
        )


def test_kinematic_ego_motion_replaces_the_models_geometry(one_torch_thread):
    import torch

    from planning.kinematics import bicycle_rollout

    model = kinematic_model()
    with torch.no_grad():
        model.head_out.weight[3 * 3 + 1, 0] = 5.0  # the model's motion head hallucinates a drift left
    agent = planner(model=model, ego_motion="kinematic")
    agent.reset(AgentInfo(num_worlds=1, dt=DT, ego=EgoVehicle()))
    obs = observation(np.array([8.0]), np.array([1000.0]))
    actions = np.random.default_rng(0).uniform(-1, 1, (1, 5, 15, 2)).astype(np.float32)
    from planning.costs import CostContext

    futures = agent._kinematic(
        agent.source.futures(agent.source.encode(obs.bev, obs.ego), actions), actions, obs,
        CostContext.from_ego(obs.ego),
    )  # fmt: skip
    xy, _, speed = bicycle_rollout(actions, np.array([8.0]), EgoVehicle(), DT)
    np.testing.assert_allclose(futures.xy, xy)
    np.testing.assert_allclose(futures.speed, speed)
    np.testing.assert_allclose(
        futures.progress.sum(-1), xy[..., -1, 0], rtol=1e-4
    )  # along the straight route
    # and in closed loop it keeps to the route despite the model's drift
    agent.act(obs)
    assert abs(agent.last_plan.actions[0, 0, 1]) < 0.2
    with pytest.raises(ValueError, match="ego_motion"):
        planner(ego_motion="teleport")


@pytest.mark.parametrize("select", ["best", "mean"])
def test_last_decision_holds_every_sample_and_the_chosen_future(one_torch_thread, select):
    cfg = PlannerConfig(
        optim=SamplerConfig(samples=32, iterations=2, horizon=10, select=select), ego_motion="model"
    )
    agent = WorldModelPlanner(cfg, seed=0, model=kinematic_model())
    assert agent.last_decision is None  # nothing imagined yet
    drive(agent, np.array([12.0, 1000.0]), steps=2)
    d = agent.last_decision
    assert d is not None and d.shape == (2, 32, 10)
    assert d.xy.shape == (2, 32, 10, 2) and d.chosen_xy.shape == (2, 10, 2)
    assert set(d.costs) == set(agent.last_costs) >= {"collision", "progress"}
    assert all(v.shape == (2, 32) and np.isfinite(v).all() for v in d.costs.values())
    np.testing.assert_allclose(d.total, sum(d.costs.values()), rtol=1e-6)
    # the chosen plan is the optimiser's: its costs are the planner's last costs …
    for term, value in d.chosen_costs.items():
        np.testing.assert_array_equal(value, agent.last_costs[term])
    np.testing.assert_array_equal(d.chosen_actions, agent.last_plan.actions)
    # … no worse than any sample of the last round (select=best), and its imagined path is the
    # model's kinematics: straight ahead (dy = 0), x growing by speed · dt
    if select == "best":
        assert (agent.last_plan.total <= d.total.min(axis=1) + 1e-5).all()
    assert np.abs(d.chosen_xy[..., 1]).max() < 1e-5
    assert (np.diff(d.chosen_xy[..., 0], axis=1) >= -1e-6).all() and d.chosen_xy[1, -1, 0] > 1.0
    p = d.collision_within_horizon()
    assert p.shape == (2,) and ((p >= d.chosen_collision.max(axis=1) - 1e-6) & (p <= 1.0)).all()


@pytest.mark.slow
@pytest.mark.parametrize("weight", [0.0, 20.0])
def test_stop_at_task_rests_the_planner_at_the_point_without_retraining(tmp_path, one_torch_thread, weight):
    """``scenarios/examples/task_stop_at.yaml``: the model never saw the task; a cost weight alone
    makes the planner come to rest at the point 40 m before the route's end (route completion
    (130 - 40) / 130 = 69.2 %); with the weight 0 it drives through."""
    import functools

    from drive.build import from_dict
    from scenarios.runner import EpisodeJob, run_episode
    from scenarios.schema import load_scenario
    from sim_bridge.embedded.config import EmbeddedConfig
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    ckpt = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "model.pt")
    spec = load_scenario(Path(__file__).parents[1] / "scenarios/examples/task_stop_at.yaml")
    config = from_dict(PlannerConfig, {"checkpoint": str(ckpt), "optim": {"samples": 48, "iterations": 2},
                                       "costs": {"stop_at": {"weight": weight, "before_end": 40.0}}})  # fmt: skip
    job = EpisodeJob(spec=spec, agent_factory=functools.partial(WorldModelPlanner, config),
                     sim_factory=functools.partial(EmbeddedSimulator, EmbeddedConfig(threads=1)),
                     sim_key="task-stop-at", save_replays="none", max_steps=400)  # fmt: skip
    result = run_episode(job)
    assert not result.error, result.error
    stop_point = 100.0 * (130.0 - 40.0) / 130.0
    if weight:
        assert result.termination == "agent_blocked"  # it stood still …
        assert abs(result.route_completion - stop_point) < 100.0 * 3.0 / 130.0  # … within 3 m of the point
    else:
        assert result.route_completion > 95.0


def test_the_simulator_follows_the_checkpoints_bev_history(tmp_path, one_torch_thread):
    """A checkpoint trained with two BEV history frames (14 channels) sets ``sim.bev.history=2``
    for ``drive eval``; a contradicting ``sim.bev.history`` on the command line is refused."""
    from drive.checks import ConfigProblem, load

    ckpt = save_checkpoint(kinematic_model((14, 96, 96)), tmp_path / "model.pt")
    cfg = load("eval", ["agent=planner", f"agent.checkpoint={ckpt}", "suite=smoke"])
    assert cfg.sim.bev.history == 2
    assert (
        load("eval", ["agent=planner", f"agent.checkpoint={ckpt}", "sim.bev.history=2"]).sim.bev.history == 2
    )
    with pytest.raises(
        ConfigProblem, match=r"sim.bev.history=0, but agent.checkpoint=.* trained with sim.bev.history=2"
    ):
        load("eval", ["agent=planner", f"agent.checkpoint={ckpt}", "sim.bev.history=0"])
    plain = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "plain.pt")
    assert load("eval", ["agent=planner", f"agent.checkpoint={plain}"]).sim.bev.history == 0


def test_the_planner_preset_has_the_tuned_oracles_weights():
    """``agent=planner`` (and its former name ``planner_tuned``, and ``driver=planner``) prices
    futures as ``agent=oracle_planner_tuned`` does but for the standstill gap and the patience
    after a standstill, so the exam gap between the two is (nearly all) the model's."""
    from drive.cli import compose_config

    planner = compose_config("eval", ["suite=smoke", "agent=planner"]).agent
    assert planner == compose_config("eval", ["suite=smoke", "agent=planner_tuned"]).agent
    assert planner == compose_config("collect", ["driver=planner"]).driver  # it collects as examined
    oracle = compose_config("eval", ["suite=smoke", "agent=oracle_planner_tuned"]).agent
    assert planner.name == "planner"
    # the hold-offset proposals get the learned planner out of a stop mid-pass; the oracle never
    # stops there and keeps the proposals its figures were measured with
    assert planner.proposals.hold_offset and not oracle.proposals.hold_offset
    planner.proposals.hold_offset = oracle.proposals.hold_offset
    assert planner.proposals == oracle.proposals
    # the oracle's weights, with a larger standstill gap (the model planner waits too close otherwise)
    assert planner.costs.proximity.min_gap == 8.0 and oracle.costs.proximity.min_gap == 3.0
    planner.costs.proximity.min_gap = oracle.costs.proximity.min_gap
    planner.costs.progress.patience = oracle.costs.progress.patience
    assert planner.costs == oracle.costs
    assert planner.optim.horizon == oracle.optim.horizon == 20
    assert PlannerConfig().costs.progress.weight == 12.0  # the dataclass keeps its own weights


@pytest.mark.slow
def test_the_planner_stops_for_a_crossing_pedestrian_on_a_unit_map(tmp_path):
    """Closed loop, seeded: ``agent=planner`` with a small hand-made model that sees no walker
    (the kinematic model above) on the straight unit map, a pedestrian crossing 65 m ahead as the
    ego comes within 25 m at 6 m/s (``scenarios/examples/crossing_pedestrian.yaml``): it lets the
    walker cross and completes the route. (Here the model alone gets through too, the walker's
    timing lets it; ``tests/test_bev_geometry.py`` has the case only the object list saves.)"""
    ckpt = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "model.pt")
    suite = tmp_path / "one.yaml"
    suite.write_text(
        f"name: one\nentries:\n  - file: {ROOT / 'scenarios/examples/crossing_pedestrian.yaml'}\n"
    )
    outcome = {}
    for source in ("objects",):
        out = tmp_path / source
        proc = subprocess.run(
            [sys.executable, "-m", "drive.cli", "eval", "agent=planner", f"agent.checkpoint={ckpt}",
             f"suite_file={suite}", "executor=inline", f"out={out}", f"agent.geometry.pedestrians={source}",
             "save_replays=none", "worst_gifs=0", "tensorboard=false"],
            cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        (final,) = [r for r in records if r["status"] != "started"]
        kinds = {i["kind"] for i in final["infractions"]}
        outcome[source] = (final["termination"], "collisions_pedestrian" in kinds)
    assert outcome["objects"] == ("route_completed", False), outcome
