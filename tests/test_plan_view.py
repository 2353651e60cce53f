"""Seeing what the planner imagines: imagined ego-frame points land where the map view and the BEV
draw the same place (closed form, and against the renderers themselves); ``drive render
agent=planner`` with a tiny checkpoint writes a GIF of readable width and a PNG of its middle frame.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drive.pipelines.plan_view import HEADER_PX, PlanTrace, bev_pixels, map_view_pixels
from planning.decision import Decision
from sim_bridge.api import ActorKind, LightState
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.maps.towns import make_town
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import BevRenderer
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import BevChannel, BevGeometry, ego_to_map
from sim_bridge.sensors.pictures import EGO_COLOUR, map_view_box, render_map_view


@pytest.fixture(scope="module")
def straight() -> RoadMap:
    return RoadMap.from_opendrive(make_town("straight", 0), "straight")


def test_ego_frame_to_map_and_bev_pixels_closed_form():
    # an ego at (10, 5) facing north: 2 m ahead and 1 m to its left is 1 m west, 2 m north
    np.testing.assert_allclose(
        ego_to_map(np.array([2.0, 1.0]), (10.0, 5.0, math.pi / 2)), [9.0, 7.0], atol=1e-12
    )
    # facing east it is the identity plus the translation; [N, H, 2] arrays keep their shape
    pts = np.array([[[1.0, 0.0], [3.0, -2.0]]])
    np.testing.assert_allclose(ego_to_map(pts, (10.0, 5.0, 0.0)), [[[11.0, 5.0], [13.0, 3.0]]], atol=1e-12)
    # facing west (yaw = pi) forward is -x and left is -y
    np.testing.assert_allclose(
        ego_to_map(np.array([4.0, 1.0]), (0.0, 0.0, math.pi)), [-4.0, -1.0], atol=1e-12
    )
    # the map view: columns grow east, rows grow south, px_per_m pixels per metre from (x0, y1)
    np.testing.assert_allclose(map_view_pixels(np.array([9.0, 7.0]), 0.0, 20.0, 4.0), [36.0, 52.0])
    # the BEV (96 px at 0.5 m/px, ego 16 m from the bottom: row 64, column 48, facing up):
    # 4 m ahead, 1 m to the left is 8 rows up and 2 columns left; scaled 5 times as drawn
    g = BevGeometry()
    np.testing.assert_allclose(g.ego_to_pixel(np.array([4.0, 1.0])), [56.0, 46.0])
    np.testing.assert_allclose(bev_pixels(np.array([4.0, 1.0]), g, 5), [230.0, 280.0])


def _one_car(ego_pose, car_xy) -> SensorFrame:
    x = np.array([[ego_pose[0], car_xy[0]]])
    y = np.array([[ego_pose[1], car_xy[1]]])
    actors = ActorArrays(
        x=x, y=y, yaw=np.array([[ego_pose[2], ego_pose[2]]]), speed=np.zeros((1, 2)), length=np.full((1, 2), 4.6),
        width=np.full((1, 2), 2.0), kind=np.full((1, 2), ActorKind.VEHICLE, np.int8), active=np.ones((1, 2), bool),
        ids=np.arange(2, dtype=np.int32)[None],
    )  # fmt: skip
    ego = EgoKinematics(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 2)))
    return SensorFrame(actors, (), np.full((1, 0), LightState.GREEN, np.int8), ego)


@pytest.mark.parametrize("yaw", [0.0, 0.4, -2.0])
def test_imagined_points_land_where_the_renderers_draw_that_place(straight: RoadMap, yaw: float):
    """A car put at the map point of an ego-frame point is drawn, in the BEV and in the map view,
    around the pixel the transforms give for that point."""
    pose = (100.0, -1.75, yaw)
    point = np.array([8.0, 3.0])  # 8 m ahead, 3 m to the left of the ego
    car = ego_to_map(point, pose)
    frame = _one_car(pose, car)
    g = BevGeometry()
    bev = BevRenderer(straight, g).render(frame, RouteBatch(1))[0]
    rows, cols = np.nonzero(bev[BevChannel.VEHICLES])
    col, row = bev_pixels(point, g)
    assert abs(rows.mean() + 0.5 - row) < 0.75 and abs(cols.mean() + 0.5 - col) < 0.75
    px_per_m, window = 6.0, 40.0
    view = render_map_view(straight, frame, 0, None, px_per_m=px_per_m, window=window)
    x0, y1, w, h = map_view_box(straight, (pose[0], pose[1]), px_per_m, window)
    assert view.shape == (h, w, 3)
    blue = np.all(view == (60, 160, 255), axis=-1)
    rows, cols = np.nonzero(blue)
    col, row = map_view_pixels(car, x0, y1, px_per_m)
    # (the white heading tick over the front edge pulls the blue centroid back by up to 1 px)
    assert abs(rows.mean() + 0.5 - row) < 1.5 and abs(cols.mean() + 0.5 - col) < 1.5
    # and the ego itself (the origin of the ego frame) sits at the centre of the window
    col, row = map_view_pixels(ego_to_map(np.zeros(2), pose), x0, y1, px_per_m)
    green = np.all(view == EGO_COLOUR, axis=-1)
    r, c = np.nonzero(green)
    assert abs(r.mean() + 0.5 - row) < 1.0 and abs(c.mean() + 0.5 - col) < 1.0


def test_trace_keeps_world_zero_and_a_fixed_colour_scale():
    B, N, H = 2, 5, 4
    rng = np.random.default_rng(0)
    d = Decision(
        actions=np.zeros((B, N, H, 2), np.float32),
        xy=rng.normal(size=(B, N, H, 2)).astype(np.float32),
        costs={"a": np.arange(B * N, dtype=np.float32).reshape(B, N), "b": np.ones((B, N), np.float32)},
        total=np.arange(B * N, dtype=np.float64).reshape(B, N) + 1.0,
        chosen_actions=np.zeros((B, H, 2), np.float32),
        chosen_xy=np.zeros((B, H, 2), np.float32),
        chosen_costs={"a": np.array([0.0, 5.0], np.float32), "b": np.array([1.0, 1.0], np.float32)},
        chosen_collision=np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32),
    )
    trace = PlanTrace()
    trace.record(3, (1.0, 2.0, 0.5), d)
    assert len(trace) == 1 and trace.steps == [3] and trace.xy[0].shape == (N, H, 2)
    np.testing.assert_array_equal(trace.total[0], [1, 2, 3, 4, 5])
    assert trace.chosen_costs[0] == {"a": 0.0, "b": 1.0}
    assert trace.collision[0] == pytest.approx(0.75)  # 1 - 0.5 · 0.5
    lo, hi = trace.cost_range()
    assert 1.0 <= lo < 1.2 and 4.7 < hi <= 5.0


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from sim_bridge.api import EGO_DIM
    from world_model.config import ModelConfig
    from world_model.model import WorldModel
    from world_model.train import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    cfg = ModelConfig(
        latent=8, channels=[4, 4], ego_hidden=8, fuse_hidden=16, predictor_hidden=16, head_hidden=8
    )
    model = WorldModel(cfg, (BevGeometry().num_channels, 96, 96), EGO_DIM)
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "shapes": model.shapes()}, path)
    return path


@pytest.mark.slow
def test_drive_render_with_the_planner_draws_its_imagined_paths(tmp_path):
    import imageio.v3 as iio

    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "plan.gif"
    proc = subprocess.run(
        [sys.executable, "-m", "drive.cli", "render", "agent=planner", f"agent.checkpoint={ckpt}",
         "world.town=straight", "steps=6", "every=2", "agent.optim.samples=32", "agent.optim.iterations=1",
         "agent.optim.horizon=6", f"out={out}"],
        cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = iio.imread(out, index=None)
    assert frames.ndim == 4 and frames.shape[0] >= 3 and frames.shape[2] >= 800
    still = iio.imread(out.with_suffix(".png"))
    assert still.shape[1] >= 800

    # the chosen path is drawn in white over the BEV (the right panel, under the header), where
    # nothing else is pure white on a road without stop signs (from a standstill the bicycle's
    # 0.6 s path is short: a few pixels); the last frame has no decision
    def white_on_bev(frame: np.ndarray) -> int:
        return int(np.all(frame[HEADER_PX : HEADER_PX + 480, 484:] == 255, axis=-1).sum())

    assert white_on_bev(frames[0]) > 8 and white_on_bev(frames[-1]) == 0
