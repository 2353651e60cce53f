"""Our embedded simulator beside HighwayEnv's ``highway-v0`` at the same vehicle count, in one run.

    pip install -e '.[bench]'      # highway-env==1.12.1
    python benchmarks/sim_vs_peers.py --vehicles 50 --seconds 20

Both are timed on ``step`` only (resets excluded) with random (HighwayEnv) or lane-following (ours)
actions. HighwayEnv steps 1 simulated second per call (policy 1 Hz, physics 15 Hz, kinematics
observation); ours steps 0.1 s (physics 20 Hz) on the procedural highway, without the BEV (as
HighwayEnv's default observation has no raster) and, as a second row, with it. Prints one JSON line
per simulator and the ratio of real-time factors.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def highway_env_rtf(vehicles: int, seconds: float, seed: int) -> dict:
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    env = gym.make("highway-v0", config={"vehicles_count": vehicles})
    env.reset(seed=seed)
    cfg = env.unwrapped.config
    sim_per_step = 1.0 / cfg["policy_frequency"]
    rng = np.random.default_rng(seed)
    steps, elapsed = 0, 0.0
    while elapsed < seconds:
        action = int(rng.integers(env.action_space.n))
        t0 = time.perf_counter()
        _, _, term, trunc, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        steps += 1
        if term or trunc:
            env.reset(seed=seed + steps)
    env.close()
    return {
        "sim": "highway-env 1.12.1 highway-v0",
        "vehicles": vehicles,
        "steps_per_s": round(steps / elapsed, 2),
        "sim_s_per_wall_s": round(steps * sim_per_step / elapsed, 2),
    }


def ours_rtf(vehicles: int, seconds: float, seed: int, bev: bool) -> dict:
    from planning.base import AgentInfo
    from planning.lane_follower import LaneFollower
    from sim_bridge.api import MapRef, WorldSpec
    from sim_bridge.embedded.config import EmbeddedConfig
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    sim = EmbeddedSimulator(EmbeddedConfig(num_worlds=1, max_vehicles=vehicles + 1, render_bev=bev))
    spec = WorldSpec(
        map=MapRef("highway", 0), vehicles=vehicles, pedestrians=0, traffic_radius=250.0, route_length=1500.0
    )
    obs = sim.reset(spec, seed)
    agent = LaneFollower()
    agent.reset(AgentInfo(num_worlds=1, dt=sim.dt, ego=sim.ego_vehicle))
    for _ in range(20):  # warm-up: compiled kernels, caches
        obs, _ = sim.step(agent.act(obs))
    steps, elapsed = 0, 0.0
    while elapsed < seconds:
        action = agent.act(obs)
        t0 = time.perf_counter()
        obs, events = sim.step(action)
        elapsed += time.perf_counter() - t0
        steps += 1
        if events.collision[0] or events.route_progress[0] >= events.route_length[0] - 5.0:
            obs = sim.reset(spec, seed + steps)
    active = int(sim.state.active[0, : vehicles + 1].sum())
    return {
        "sim": f"hours2drive embedded ({'with' if bev else 'no'} BEV)",
        "vehicles": vehicles,
        "vehicles_active": active - 1,
        "steps_per_s": round(steps / elapsed, 1),
        "sim_s_per_wall_s": round(steps * sim.dt / elapsed, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds of stepping per simulator")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    peer = highway_env_rtf(args.vehicles, args.seconds, args.seed)
    print(json.dumps(peer), flush=True)
    for bev in (False, True):
        ours = ours_rtf(args.vehicles, args.seconds, args.seed, bev)
        ours["rtf_ratio_vs_highway_env"] = round(ours["sim_s_per_wall_s"] / peer["sim_s_per_wall_s"], 1)
        print(json.dumps(ours), flush=True)


if __name__ == "__main__":
    main()
