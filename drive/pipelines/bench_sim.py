"""``drive bench sim``: simulator throughput, one JSON line per ``[worlds, vehicles, bev]``.

Each configuration runs in a fresh process (so peak RSS is its own) with the lane follower
driving every ego; only ``Simulator.step`` is timed. Figures: batched steps per second, world
steps per second, simulated seconds per wall second in aggregate (real-time factor), peak RSS;
then the milliseconds of a ``snapshot`` of every world, a ``restore`` of it and a ``fork`` of
world 0 into every world (``measure_forks``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from drive import build
from planning.base import AgentInfo
from planning.lane_follower import LaneFollower
from sim_bridge.embedded.simulator import EmbeddedSimulator


def measure(
    sim_node: Any,
    world_node: Any,
    worlds: int,
    vehicles: int,
    bev: bool,
    steps: int,
    warmup: int,
    seed: int,
    repeats: int = 3,
) -> dict[str, Any]:
    """Time ``repeats`` chunks of ``steps`` decision steps of one configuration in this process
    (after ``warmup`` untimed ones); the median chunk is reported."""
    world_cfg = build.world(world_node)
    world_cfg.vehicles = vehicles
    sim = build.simulator(sim_node, num_worlds=worlds, render_bev=bev, max_vehicles=max(vehicles + 1, 2))
    if not isinstance(sim, EmbeddedSimulator):
        raise ValueError(
            f"drive bench sim measures the embedded backend; got sim.backend={sim_node.get('backend')!r} "
            "(a server backend has its own benchmark)"
        )
    spec = world_cfg.to_spec()
    obs = sim.reset(spec, seed)
    agent = LaneFollower()
    agent.reset(AgentInfo(num_worlds=worlds, dt=sim.dt, ego=sim.ego_vehicle))
    chunks = []  # seconds per chunk of ``steps`` timed steps; the median is reported
    elapsed = 0.0
    for i in range(warmup + repeats * steps):
        action = agent.act(obs)
        t0 = time.perf_counter()
        obs, events = sim.step(action)
        if i >= warmup:
            elapsed += time.perf_counter() - t0
            if (i - warmup + 1) % steps == 0:
                chunks.append(elapsed)
                elapsed = 0.0
        done = events.route_progress >= events.route_length - 5.0
        if done.any():  # keep every ego driving: restart finished worlds
            obs = sim.reset(spec, seed + i, worlds=np.flatnonzero(done).tolist())
            agent.reset(
                AgentInfo(num_worlds=worlds, dt=sim.dt, ego=sim.ego_vehicle), np.flatnonzero(done).tolist()
            )
    elapsed = float(np.median(chunks))
    snapshot_ms, restore_ms, fork_ms = measure_forks(sim)
    active = int(sim.state.active[:, : sim.config.max_vehicles].sum()) - worlds
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "worlds": worlds,
        "vehicles": vehicles,
        "vehicles_active": round(active / worlds, 1),
        "pedestrians": world_cfg.pedestrians,
        "bev": bev,
        "town": world_cfg.town,
        "steps_per_s": round(steps / elapsed, 1),
        "world_steps_per_s": round(worlds * steps / elapsed, 1),
        "sim_s_per_wall_s": round(worlds * steps * sim.dt / elapsed, 1),
        "ms_per_step": round(1000 * elapsed / steps, 3),
        "snapshot_ms": snapshot_ms,
        "restore_ms": restore_ms,
        "fork_ms": fork_ms,
        "peak_rss_mb": round(rss_mb, 1),
    }


def measure_forks(sim: Any, repeats: int = 200) -> tuple[float, float, float]:
    """Milliseconds per ``snapshot()`` of every world, per ``restore`` of it and per ``fork`` of
    world 0 into every world (the oracle planner's and the counterfactual evaluation's step)."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        snap = sim.snapshot()
    t1 = time.perf_counter()
    for _ in range(repeats):
        sim.restore(snap)
    t2 = time.perf_counter()
    for _ in range(repeats):
        sim.fork(snap, 0)
    t3 = time.perf_counter()
    return tuple(round(1000 * t / repeats, 4) for t in (t1 - t0, t2 - t1, t3 - t2))  # type: ignore[return-value]


def run(cfg: DictConfig) -> int:
    sim_node = OmegaConf.to_container(cfg.sim, resolve=True)
    world_node = OmegaConf.to_container(cfg.world, resolve=True)
    ctx = mp.get_context("spawn")
    for worlds, vehicles, bev in cfg.configs:
        args = (
            sim_node,
            world_node,
            int(worlds),
            int(vehicles),
            bool(bev),
            int(cfg.steps),
            int(cfg.warmup),
            int(cfg.seed),
        )
        # a fresh process per configuration, so that peak RSS is its own
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            result = pool.submit(measure, *args).result()
        print(json.dumps(result), flush=True)
    return 0
