"""Replays to pictures: the map view beside the ego's BEV for each step, written as GIF or MP4."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from sim_bridge.maps.catalog import load_map
from sim_bridge.replay import Replay
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import BevRenderer
from sim_bridge.sensors.frame import EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import BevGeometry
from sim_bridge.sensors.pictures import bev_to_rgb, render_map_view


def replay_views(
    rep: Replay,
    geometry: BevGeometry | None = None,
    every: int = 1,
    map_window: float | None = 80.0,
    px_per_m: float = 3.0,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(t, map view uint8 [H, W, 3], BEV uint8 [S, S, 3])`` for steps ``start:stop:every``: the
    map view ``map_window`` m around the ego (the whole map for ``None``; its box is
    :func:`sim_bridge.sensors.pictures.map_view_box`) and the ego's BEV at its own size."""
    rm = load_map(rep.map)
    geometry = geometry or BevGeometry()
    renderer = BevRenderer(rm, geometry)
    routes = RouteBatch(1)
    routes.set(0, rep.route, rm)
    zero = np.zeros(1)
    for t in range(start, rep.num_steps if stop is None else min(stop, rep.num_steps), max(1, int(every))):
        actors = rep.actors(t)
        frame = SensorFrame(actors, (), rep.light[t][None], EgoKinematics(zero, zero, zero, np.zeros((1, 2))))
        routes.update(np.stack([actors.x[:, 0], actors.y[:, 0]], axis=1))
        left = render_map_view(rm, frame, 0, routes, px_per_m=px_per_m, window=map_window)
        yield t, left, bev_to_rgb(renderer.render(frame, routes)[0], geometry)


def replay_frames(
    rep: Replay,
    geometry: BevGeometry | None = None,
    every: int = 1,
    map_window: float | None = 80.0,
    px_per_m: float = 3.0,
    start: int = 0,
    stop: int | None = None,
) -> list[np.ndarray]:
    """``uint8 [H, W, 3]`` pictures of steps ``start:stop:every``: the map view (``map_window`` m
    around the ego, or the whole map for ``None``) on the left, the BEV (scaled to match) right."""
    frames = []
    for _, left, bev in replay_views(rep, geometry, every, map_window, px_per_m, start, stop):
        scale = max(1, left.shape[0] // bev.shape[0])
        right = np.repeat(np.repeat(bev, scale, axis=0), scale, axis=1)
        h = max(left.shape[0], right.shape[0])
        left, right = (np.pad(img, ((0, h - img.shape[0]), (0, 0), (0, 0))) for img in (left, right))
        frames.append(np.concatenate([left, np.full((h, 4, 3), 255, np.uint8), right], axis=1))
    return frames


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """GIF or MP4 (H.264, padded to multiples of 16 px) by the extension of ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    if ext == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    elif ext == ".mp4":
        stack = np.stack(frames)
        # H.264 wants sides in multiples of 16: pad (black) rather than let ffmpeg rescale
        pad_h, pad_w = -stack.shape[1] % 16, -stack.shape[2] % 16
        stack = np.pad(stack, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        iio.imwrite(path, stack, fps=fps, codec="libx264", plugin="FFMPEG", macro_block_size=16)
    else:
        raise ValueError(f"{path}: use a .gif or .mp4 extension")
    return path
