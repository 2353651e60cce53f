"""``drive render`` / ``drive demo``: an episode to a GIF or MP4, the map view beside the ego's BEV."""

from __future__ import annotations

import logging
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from omegaconf import DictConfig

from drive import build
from planning.base import AgentInfo
from sim_bridge.maps.catalog import load_map
from sim_bridge.replay import Replay
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import BevRenderer
from sim_bridge.sensors.frame import EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import BevGeometry
from sim_bridge.sensors.pictures import bev_to_rgb, render_map_view

log = logging.getLogger("drive.render")


def live_episode(cfg: DictConfig) -> Replay:
    """Run the configured agent for ``cfg.steps`` steps in one world and record it."""
    sim = build.simulator(cfg.sim, num_worlds=1)
    spec = build.world(cfg.world).to_spec()
    agent = build.agent(cfg.agent)
    obs = sim.reset(spec, cfg.seed)
    assert sim.road_map is not None
    agent.reset(AgentInfo(num_worlds=1, dt=sim.dt, ego=sim.ego_vehicle, road_map=sim.road_map))
    st = sim.state
    rep = Replay(
        map=spec.map, route=sim.route(0), dt=sim.dt, meta={"agent": cfg.agent.name, "seed": int(cfg.seed)}
    )
    rep.record(sim.actor_arrays(), st.light, 0, None, None)
    for _ in range(int(cfg.steps)):
        action = agent.act(obs)
        obs, events = sim.step(action)
        rep.record(sim.actor_arrays(), st.light, 0, action[0], events)
        if events.collision[0] or events.route_progress[0] >= events.route_length[0] - 1.0:
            break
    sim.close()
    return rep


def frames_of(rep: Replay, cfg: DictConfig) -> list[np.ndarray]:
    """Pictures of every ``cfg.every``-th step: map view (left) and BEV (right, scaled to match)."""
    rm = load_map(rep.map)
    geometry = BevGeometry(**{k: v for k, v in dict(cfg.sim.bev).items()})
    renderer = BevRenderer(rm, geometry)
    routes = RouteBatch(1)
    routes.set(0, rep.route, rm)
    zero = np.zeros(1)
    frames = []
    for t in range(0, rep.num_steps, max(1, int(cfg.every))):
        actors = rep.actors(t)
        frame = SensorFrame(actors, (), rep.light[t][None], EgoKinematics(zero, zero, zero, np.zeros((1, 2))))
        routes.update(np.stack([actors.x[:, 0], actors.y[:, 0]], axis=1))
        window = float(cfg.map_window) or None
        left = render_map_view(rm, frame, 0, routes, px_per_m=float(cfg.px_per_m), window=window)
        bev = bev_to_rgb(renderer.render(frame, routes)[0], geometry)
        scale = max(1, left.shape[0] // bev.shape[0])
        right = np.repeat(np.repeat(bev, scale, axis=0), scale, axis=1)
        h = max(left.shape[0], right.shape[0])
        left, right = (np.pad(img, ((0, h - img.shape[0]), (0, 0), (0, 0))) for img in (left, right))
        frames.append(np.concatenate([left, np.full((h, 4, 3), 255, np.uint8), right], axis=1))
    return frames


def write_video(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    """GIF or MP4 (H.264, padded to multiples of 16 px) by the extension of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    elif ext == ".mp4":
        stack = np.stack(frames)
        # H.264 wants sides in multiples of 16: pad (black) rather than let ffmpeg rescale
        pad_h, pad_w = -stack.shape[1] % 16, -stack.shape[2] % 16
        stack = np.pad(stack, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        iio.imwrite(path, stack, fps=fps, codec="libx264", plugin="FFMPEG", macro_block_size=16)
    else:
        raise ValueError(f"out={path}: use a .gif or .mp4 extension")
    return path


def run(cfg: DictConfig) -> int:
    out = Path(cfg.out)
    if cfg.replay:
        rep = Replay.load(cfg.replay)
        log.info("replay %s: %d steps", cfg.replay, rep.num_steps)
    else:
        rep = live_episode(cfg)
        saved = rep.save(out.with_suffix(".npz"))
        log.info("episode of %d steps recorded to %s", rep.num_steps - 1, saved)
    frames = frames_of(rep, cfg)
    write_video(frames, out, int(cfg.fps))
    progress = rep.events.get("route_progress", [0.0])[-1]
    print(
        f"wrote {out} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]} px); "
        f"route progress {progress:.1f} m"
    )
    return 0


def run_demo(cfg: DictConfig) -> int:
    """The main job on the embedded default. Until the learning pipeline lands, a lane follower
    drives a short route through the town and the episode is written to a GIF."""
    return run(cfg)
