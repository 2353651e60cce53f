"""``drive bench plan``: decision latency and throughput of the world-model planner, one JSON line
per batch size.

For each ``B`` in ``worlds``: ``warmup`` untimed decisions, then ``decisions`` timed calls of
``agent.act`` on ``B`` synthetic observations (a random binary BEV of the model's shape, a straight
route ahead, 8 m/s under a 10 m/s limit, a full object list of 24 vehicles and 8 walkers at random
within 40 m, moving; the cost of a decision hardly depends on the content, and this content makes
every geometry part of ``agent.geometry`` do its whole work: a tenth of the picture's STATIC
pixels set is a worst case for the gap ahead).
Reported: wall-time p50 / p99 / mean per decision [ms], the CPU time of this process per decision
(p50; with one torch thread it is what the decision takes on an idle core even when other work
pre-empts it), and world-decisions per second (``B / mean wall time``).

The planner is the configured ``agent`` (``drive/conf/agent/planner.yaml`` defaults); without
``agent.checkpoint`` it plans with a randomly initialised model of the ``model`` size (the same
arithmetic as a trained one).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from drive.build import from_dict
from planning.base import AgentInfo
from planning.world_model_planner import PlannerConfig, WorldModelPlanner
from sim_bridge.api import EGO_DIM, NUM_ROUTE_TARGETS, OBJECT_DIM, EgoFeature, EgoVehicle, Observation
from sim_bridge.api import ObjectFeature as OF
from world_model.config import ModelConfig
from world_model.model import WorldModel

#: the synthetic object list: vehicles, then walkers (32 rows: the simulators' default ``max_objects``)
NUM_VEHICLES, NUM_WALKERS = 24, 8


def synthetic_observation(B: int, bev_shape: tuple[int, int, int], rng: np.random.Generator) -> Observation:
    """``B`` worlds driving 8 m/s on a straight route under a 10 m/s limit, random BEV content."""
    ego = np.zeros((B, EGO_DIM), dtype=np.float32)
    ego[:, EgoFeature.SPEED] = 8.0
    ego[:, EgoFeature.SPEED_LIMIT] = 10.0
    ego[:, EgoFeature.ROUTE_REMAINING] = 500.0
    ego[:, EgoFeature.STOP_DISTANCE] = 50.0
    ego[:, EgoFeature.CMD_LANE_FOLLOW] = 1.0
    for k in range(NUM_ROUTE_TARGETS):
        ego[:, EgoFeature.ROUTE_X0 + 2 * k] = 5.0 * (k + 1)
    bev = ((rng.random((B, *bev_shape)) < 0.1) * 255).astype(np.uint8)
    M = NUM_VEHICLES + NUM_WALKERS
    objects = np.zeros((B, M, OBJECT_DIM), dtype=np.float32)
    walker = np.arange(M) >= NUM_VEHICLES
    yaw = rng.uniform(-np.pi, np.pi, (B, M))
    speed = np.where(walker, rng.uniform(0.0, 1.5, (B, M)), rng.uniform(0.0, 10.0, (B, M)))
    objects[..., OF.X] = rng.uniform(-40.0, 40.0, (B, M))
    objects[..., OF.Y] = rng.uniform(-40.0, 40.0, (B, M))
    objects[..., OF.COS_YAW], objects[..., OF.SIN_YAW] = np.cos(yaw), np.sin(yaw)
    objects[..., OF.VX], objects[..., OF.VY] = speed * np.cos(yaw), speed * np.sin(yaw)
    objects[..., OF.LENGTH] = np.where(walker, 0.5, 4.6)
    objects[..., OF.WIDTH] = np.where(walker, 0.5, 1.9)
    objects[..., OF.IS_VEHICLE] = ~walker
    objects[..., OF.IS_PEDESTRIAN] = walker
    return Observation(
        bev=bev,
        ego=ego,
        objects=objects,
        objects_mask=np.ones((B, M), dtype=bool),
        object_ids=np.tile(np.arange(M, dtype=np.int32), (B, 1)),
        pose=np.zeros((B, 3)),
    )


def measure(agent: WorldModelPlanner, B: int, decisions: int, warmup: int, seed: int) -> dict[str, Any]:
    """Latency figures of ``decisions`` decisions for ``B`` worlds (see the module doc)."""
    rng = np.random.default_rng(seed)
    obs = synthetic_observation(B, agent.model.bev_shape, rng)
    agent.reset(AgentInfo(num_worlds=B, dt=0.1, ego=EgoVehicle()))
    for _ in range(warmup):
        agent.act(obs)
    wall, cpu = [], []
    for _ in range(decisions):
        t0, c0 = time.perf_counter(), time.process_time()
        agent.act(obs)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    w = 1000.0 * np.asarray(wall)
    return {
        "p50_ms": round(float(np.percentile(w, 50)), 2),
        "p99_ms": round(float(np.percentile(w, 99)), 2),
        "mean_ms": round(float(w.mean()), 2),
        "cpu_p50_ms": round(1000.0 * float(np.median(cpu)), 2),
        "decisions_per_s": round(B / float(np.mean(wall)), 1),
    }


def run(cfg: DictConfig) -> int:
    agent_node = OmegaConf.to_container(cfg.agent, resolve=True)
    assert isinstance(agent_node, dict)
    agent_node.pop("name", None)
    planner_cfg = from_dict(PlannerConfig, {str(k): v for k, v in agent_node.items()})
    model = None
    if not planner_cfg.checkpoint:
        torch.manual_seed(int(cfg.seed))
        model_cfg = from_dict(ModelConfig, OmegaConf.to_container(cfg.model, resolve=True))  # type: ignore[arg-type]
        shape = (int(cfg.bev_channels), int(cfg.bev_size), int(cfg.bev_size))
        model = WorldModel(model_cfg, shape, EGO_DIM).eval()
    agent = WorldModelPlanner(planner_cfg, seed=int(cfg.seed), model=model)
    opt = planner_cfg.optim
    for B in [int(b) for b in cfg.worlds]:
        figures = measure(agent, B, int(cfg.decisions), int(cfg.warmup), int(cfg.seed))
        line = {
            "bench": "plan",
            "worlds": B,
            "optimizer": planner_cfg.optimizer,
            "samples": opt.samples,
            "iterations": opt.iterations,
            "horizon": opt.horizon,
            "proposals": planner_cfg.proposals.count if planner_cfg.use_proposals else 0,
            "model": planner_cfg.checkpoint or "random",
            "threads": torch.get_num_threads(),
            **figures,
        }
        print(json.dumps(line), flush=True)
    return 0
