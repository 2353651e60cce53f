"""Oriented-box collision agrees with shapely on random boxes."""

from __future__ import annotations

import math

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.embedded.collision import boxes_overlap, ego_collisions


def _poly(x, y, yaw, length, width):
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [
        (x + c * a - s * b, y + s * a + c * b)
        for a, b in (
            (length / 2, width / 2),
            (length / 2, -width / 2),
            (-length / 2, -width / 2),
            (-length / 2, width / 2),
        )
    ]
    return shapely.Polygon(pts)


box = st.tuples(
    st.floats(-6, 6), st.floats(-6, 6), st.floats(-math.pi, math.pi), st.floats(0.3, 8), st.floats(0.3, 3)
)


@settings(max_examples=400, deadline=None)
@given(a=box, b=box)
def test_overlap_matches_shapely(a, b):
    pa, pb = _poly(*a), _poly(*b)
    gap = pa.distance(pb)
    inter = pa.intersection(pb).area
    if gap > 1e-6:
        assert not boxes_overlap(*a, *b)
    elif inter > 1e-6:
        assert boxes_overlap(*a, *b)


def test_ego_collisions_reports_first_overlapping_active_actor():
    x = np.array([[0.0, 10.0, 1.0, 2.0]])
    y = np.zeros((1, 4))
    yaw = np.zeros((1, 4))
    length = np.full((1, 4), 4.0)
    width = np.full((1, 4), 2.0)
    active = np.array([[True, True, False, True]])
    assert ego_collisions(x, y, yaw, length, width, active)[0] == 3  # slot 2 overlaps but is inactive
    active[0, 3] = False
    assert ego_collisions(x, y, yaw, length, width, active)[0] == -1
