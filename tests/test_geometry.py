"""Oriented-box geometry (``sim_bridge.geometry``) agrees with shapely on random boxes and with
closed forms on aligned ones."""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.geometry import box_gap, boxes_overlap


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


@settings(max_examples=400, deadline=None)
@given(a=box, b=box)
def test_gap_is_a_lower_bound_of_the_distance_and_its_sign_says_overlap(a, b):
    pa, pb = _poly(*a), _poly(*b)
    gap, nx, ny = box_gap(*a, *b)
    assert math.hypot(nx, ny) == pytest.approx(1.0)
    assert gap <= pa.distance(pb) + 1e-9
    if pa.intersection(pb).area > 1e-6:
        assert gap < 0.0
        # moving box b by the depth along the normal separates them (up to touching)
        moved = _poly(b[0] + nx * (-gap + 1e-6), b[1] + ny * (-gap + 1e-6), *b[2:])
        assert pa.intersection(moved).area < 1e-6
    elif pa.distance(pb) > 1e-6:
        assert gap > 0.0


def test_gap_and_depth_in_closed_form():
    # aligned cars, 0.2 m overlap along x (1.9 m across): depth 0.2 along +x
    gap, nx, ny = box_gap(0.0, 0.0, 0.0, 4.6, 1.9, 4.4, 0.5, 0.0, 4.6, 1.9)
    assert gap == pytest.approx(-0.2) and (nx, ny) == pytest.approx((1.0, 0.0))
    # side by side, 0.1 m into each other across y; normal towards the second box
    gap, nx, ny = box_gap(0.0, 0.0, 0.0, 4.6, 1.9, 0.0, -1.8, 0.0, 4.6, 1.9)
    assert gap == pytest.approx(-0.1) and (nx, ny) == pytest.approx((0.0, -1.0))
    # 10 m apart centre to centre: 5.4 m bumper to bumper
    assert box_gap(0.0, 0.0, 0.0, 4.6, 1.9, 10.0, 0.0, 0.0, 4.6, 1.9)[0] == pytest.approx(5.4)
    assert not boxes_overlap(0.0, 0.0, 0.0, 4.6, 1.9, 10.0, 0.0, 0.0, 4.6, 1.9)
    assert boxes_overlap(0.0, 0.0, 0.0, 4.6, 1.9, 4.6, 0.0, 0.0, 4.6, 1.9)  # touching counts
