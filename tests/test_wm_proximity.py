"""Proximity targets of the world model (``world_model.proximity``): closed-form gaps in the ego's
corridor, the shift to the end of each step, and the proximity loss's masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.sensors.layout import OBJECT_DIM
from sim_bridge.sensors.layout import ObjectFeature as OF
from world_model import losses
from world_model.proximity import (
    CORRIDOR_MARGIN,
    EGO_HALF_LENGTH,
    EGO_HALF_WIDTH,
    GAP_CAP,
    NEAREST_VISIBLE,
    end_of_step,
    gap_ahead,
    proximity_columns,
)


def objects(*boxes: tuple[float, float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """One step's object list from ``(x, y, yaw, length, width)`` boxes: ``[1, N, F]``, ``[1, N]``."""
    arr = np.zeros((1, max(len(boxes), 1), OBJECT_DIM), dtype=np.float32)
    for i, (x, y, yaw, length, width) in enumerate(boxes):
        arr[0, i, [OF.X, OF.Y, OF.COS_YAW, OF.SIN_YAW, OF.LENGTH, OF.WIDTH]] = (
            x, y, math.cos(yaw), math.sin(yaw), length, width
        )  # fmt: skip
        arr[0, i, OF.IS_VEHICLE] = 1.0
    mask = np.zeros((1, arr.shape[1]), dtype=bool)
    mask[0, : len(boxes)] = True
    return arr, mask


def test_gap_to_a_car_straight_ahead_is_bumper_to_bumper():
    o, m = objects((12.0, 0.0, 0.0, 4.0, 2.0))
    assert gap_ahead(o, m)[0] == pytest.approx(12.0 - 2.0 - EGO_HALF_LENGTH)


def test_gap_ignores_cars_beside_behind_and_masked_and_takes_the_nearest():
    side = (5.0, 3.5, 0.0, 4.6, 1.9)  # in the next lane: its inner edge at 2.55 m
    behind = (-8.0, 0.0, 0.0, 4.6, 1.9)
    far, near = (25.0, 0.2, 0.0, 4.6, 1.9), (15.0, -0.5, 0.0, 4.6, 1.9)
    o, m = objects(side, behind, far, near)
    assert gap_ahead(o, m)[0] == pytest.approx(15.0 - 2.3 - EGO_HALF_LENGTH)
    m[0, 3] = False  # the near one is not observed
    assert gap_ahead(o, m)[0] == pytest.approx(25.0 - 2.3 - EGO_HALF_LENGTH)
    o, m = objects(side, behind)
    assert gap_ahead(o, m)[0] == GAP_CAP  # nothing in the corridor


def test_a_car_across_the_lane_reaches_in_with_its_length():
    """A car crossing at 90° with its centre 3 m to the side: its half length (2.3 m) reaches to
    0.7 m of the ego's axis, inside the corridor; lengthwise it spans its half width."""
    crossing = (10.0, 3.0, math.pi / 2, 4.6, 1.9)
    o, m = objects(crossing)
    assert gap_ahead(o, m)[0] == pytest.approx(10.0 - 0.95 - EGO_HALF_LENGTH, abs=1e-5)
    parallel = (10.0, 3.0, 0.0, 4.6, 1.9)  # the same place, parallel: 2.05 m off the axis, outside
    o, m = objects(parallel)
    assert gap_ahead(o, m)[0] == GAP_CAP


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(0.1, 60.0), y=st.floats(-10.0, 10.0), yaw=st.floats(-math.pi, math.pi),
    length=st.floats(0.4, 12.0), width=st.floats(0.4, 3.0),
)  # fmt: skip
def test_gap_is_in_range_and_counts_exactly_the_corridor(x, y, yaw, length, width):
    o, m = objects((x, y, yaw, length, width))
    gap = float(gap_ahead(o, m)[0])
    assert 0.0 <= gap <= GAP_CAP
    lat = 0.5 * width * abs(math.cos(yaw)) + 0.5 * length * abs(math.sin(yaw))
    lon = 0.5 * length * abs(math.cos(yaw)) + 0.5 * width * abs(math.sin(yaw))
    if abs(y) - lat < EGO_HALF_WIDTH + CORRIDOR_MARGIN - 1e-4:
        assert gap == pytest.approx(min(max(x - lon - EGO_HALF_LENGTH, 0.0), GAP_CAP), abs=1e-3)
    elif abs(y) - lat > EGO_HALF_WIDTH + CORRIDOR_MARGIN + 1e-4:
        assert gap == GAP_CAP


def test_end_of_step_shifts_inside_each_episode():
    per_obs = np.arange(7, dtype=np.float32)  # two episodes: rows 0–3 and 4–6
    out = end_of_step(per_obs, np.array([0, 4]), np.array([4, 3]))
    np.testing.assert_array_equal(out, [1, 2, 3, np.nan, 5, 6, np.nan])


def test_proximity_columns_clip_nearest_and_shift_the_gap():
    o = np.zeros((3, 1, OBJECT_DIM), dtype=np.float32)
    o[:, 0, OF.X] = [30.0, 20.0, 10.0]
    o[:, 0, OF.COS_YAW], o[:, 0, OF.LENGTH], o[:, 0, OF.WIDTH] = 1.0, 4.0, 2.0
    m = np.ones((3, 1), dtype=bool)
    cols = proximity_columns(o, m, np.array([40.0, 20.0, 5.0]), np.array([0]), np.array([3]))
    np.testing.assert_allclose(cols[:, 0], [NEAREST_VISIBLE, NEAREST_VISIBLE, 5.0])
    np.testing.assert_allclose(cols[:2, 1], [20.0 - 2.0 - EGO_HALF_LENGTH, 10.0 - 2.0 - EGO_HALF_LENGTH])
    assert np.isnan(cols[2, 1])


def test_proximity_loss_ignores_unknown_and_masked_targets():
    pred = torch.tensor([[[0.5, 0.5], [0.2, 0.9]]], requires_grad=True)
    target = torch.tensor([[[0.5, float("nan")], [1.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    loss = losses.proximity_loss(pred, target, mask)
    assert float(loss.detach()) == 0.0  # the only known, unmasked target is met exactly
    loss.backward()
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())
    mask[:] = True
    assert float(losses.proximity_loss(pred, target, mask).detach()) > 0.0
