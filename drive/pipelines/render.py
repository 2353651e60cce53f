"""``drive render``: an episode to a GIF or MP4, the map view beside the ego's BEV.

An agent that plans (``planner``, ``oracle_planner``: it has ``last_decision``) is drawn with what
it imagined at each decision (``drive.pipelines.plan_view``): its sampled paths coloured by cost,
the chosen one, a strip chart of the chosen plan's collision probability and cost terms; the
middle frame is also written as a PNG beside the video."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from drive import build
from drive.pipelines.plan_view import PlanTrace, plan_frames
from planning.base import AgentInfo
from sim_bridge.replay import Replay
from sim_bridge.replay_video import replay_frames, write_video
from sim_bridge.sensors.layout import BevGeometry

log = logging.getLogger("drive.render")


def live_episode(cfg: DictConfig, trace: PlanTrace | None = None) -> Replay:
    """Run the configured agent for ``cfg.steps`` steps in one world and record it; ``trace``
    collects the agent's ``last_decision`` after every step when it has one."""
    sim = build.simulator(cfg.sim, num_worlds=1)
    spec = build.world(cfg.world).to_spec()
    agent = build.agent(cfg.agent)
    obs = sim.reset(spec, cfg.seed)
    assert sim.road_map is not None
    agent.seed([0], [int(cfg.seed)])
    agent.reset(
        AgentInfo(
            num_worlds=1,
            dt=sim.dt,
            ego=sim.ego_vehicle,
            road_map=sim.road_map,
            routes=(sim.route(0),),
            simulator=sim,  # as the closed-loop runner: the oracle planner forks it
        )
    )
    rep = Replay(
        map=spec.map, route=sim.route(0), dt=sim.dt, meta={"agent": cfg.agent.name, "seed": int(cfg.seed)}
    )
    rep.record(sim.actor_arrays(), sim.light_states(), 0, None, None)
    for k in range(int(cfg.steps)):
        action = agent.act(obs)
        decision = getattr(agent, "last_decision", None) if trace is not None else None
        if decision is not None and trace is not None:
            a = rep.actors(k)
            trace.record(k, (float(a.x[0, 0]), float(a.y[0, 0]), float(a.yaw[0, 0])), decision)
        obs, events = sim.step(action)
        rep.record(sim.actor_arrays(), sim.light_states(), 0, action[0], events)
        if events.collision[0] or events.route_progress[0] >= events.route_length[0] - 1.0:
            break
    sim.close()
    return rep


def frames_of(rep: Replay, cfg: DictConfig) -> list[np.ndarray]:
    """Pictures of every ``cfg.every``-th step (see :func:`sim_bridge.replay_video.replay_frames`)."""
    geometry = BevGeometry(**dict(cfg.sim.bev))
    return replay_frames(rep, geometry, int(cfg.every), float(cfg.map_window) or None, float(cfg.px_per_m))


def run(cfg: DictConfig) -> int:
    out = Path(cfg.out)
    trace = PlanTrace()
    if cfg.replay:
        rep = Replay.load(cfg.replay)
        log.info("replay %s: %d steps", cfg.replay, rep.num_steps)
    else:
        rep = live_episode(cfg, trace)
        saved = rep.save(out.with_suffix(".npz"))
        log.info("episode of %d steps recorded to %s", rep.num_steps - 1, saved)
    if len(trace):
        geometry = BevGeometry(**dict(cfg.sim.bev))
        window = float(cfg.map_window) or 80.0
        frames = plan_frames(rep, trace, geometry, int(cfg.every), window, int(cfg.panel))
        still = out.with_suffix(".png")
        Image.fromarray(frames[len(frames) // 2]).save(still)
        log.info("%d decisions drawn; middle frame %s", len(trace), still)
    else:
        frames = frames_of(rep, cfg)
    write_video(frames, out, int(cfg.fps))
    progress = rep.events.get("route_progress", [0.0])[-1]
    print(
        f"wrote {out} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]} px); "
        f"route progress {progress:.1f} m"
    )
    return 0
