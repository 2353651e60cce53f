"""What the planner reads from the observed BEV (``planning.bev_geometry``): box points in closed
form; the off-road risk read from a rendered BEV agrees with the map's own drivable raster at the
box's corners (the simulator's off-road test); boxes leaving the picture keep the model's value;
a parked car drawn in the BEV gives the collision risk and free gap of imagined boxes, and leaves
the model's input; the planner keeps to the road and clear of the parked car only when told to
read them from the BEV; walkers and vehicles of the object list moved on at their velocity mark
the imagined boxes they reach, in closed form (followers left out), and the planner stops for
them only when told to read them; a bad source is refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from planning.base import AgentInfo
from planning.bev_geometry import (
    GeometryConfig,
    apply,
    bev_off_road,
    bev_static_collision,
    bev_static_gap,
    box_points,
    model_input,
    sample_bilinear,
)
from planning.futures import STEP_FIELDS, Futures
from planning.world_model_planner import PlannerConfig
from sim_bridge.api import EgoVehicle
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.maps.towns import make_town
from sim_bridge.sensors.layout import BevChannel, BevGeometry, ego_to_map
from tests.test_sensors_bev import actors, frame_of, render
from tests.test_world_model_planner import DT, kinematic_model, observation, planner

EGO = EgoVehicle()
BEV = GeometryConfig(off_road="bev")


def test_box_points_in_closed_form():
    c = box_points(np.array([[1.0, 2.0]]), np.array([math.pi / 2]), 2.0, 1.0)  # facing +y
    # rear right, rear left, front right, front left
    np.testing.assert_allclose(c[0], [[2.0, 0.0], [0.0, 0.0], [2.0, 4.0], [0.0, 4.0]], atol=1e-12)
    g = box_points(np.zeros((1, 2)), np.zeros(1), 2.0, 1.0, (3, 3))
    assert g.shape == (1, 9, 2) and [0.0, 0.0] in g[0].tolist()


def test_bilinear_samples_ramp_across_an_edge_and_flag_the_outside():
    image = np.zeros((1, 4, 4))
    image[0, :, :2] = 1.0  # columns 0, 1 set: the edge lies between the centres 1.5 and 2.5
    v, inside = sample_bilinear(image, np.full((1, 4), 2.0), np.array([[1.0, 1.5, 2.0, 2.5]]))
    np.testing.assert_allclose(v[0], [1.0, 1.0, 0.5, 0.0])
    assert inside.all()
    v, inside = sample_bilinear(image, np.array([[-0.5, 2.0, np.nan]]), np.array([[1.0, 4.5, 1.0]]))
    assert not inside.any() and (v == 0).all()


@pytest.fixture(scope="module")
def straight() -> RoadMap:
    return RoadMap.from_opendrive(make_town("straight", 0), "straight")


def test_the_bevs_risk_agrees_with_the_maps_raster_at_the_corners(straight):
    """Egos on the straight road (|y| ≤ 7 m) at random poses and headings; imagined boxes at random
    poses within the picture: where the BEV says "on" (risk 0) every corner is on the map's 0.1 m
    raster, where it says "off" (risk 1) one is off; the boxes within half a pixel of the edge may
    disagree."""
    rng = np.random.default_rng(0)
    B, N = 6, 400
    ex, ey = rng.uniform(50, 150, B), rng.uniform(-6, 6, B)
    eyaw = rng.uniform(-0.6, 0.6, B) + np.where(rng.random(B) < 0.5, 0.0, math.pi)
    bev = render(straight, frame_of(actors(ex[:, None], ey[:, None], yaw=eyaw[:, None]), 0))
    xy = np.stack([rng.uniform(-8, 25, (B, N)), rng.uniform(-14, 14, (B, N))], -1)
    yaw = rng.uniform(-math.pi, math.pi, (B, N))
    p, known = bev_off_road(bev, xy[:, :, None], yaw[:, :, None], EGO, BEV)
    p, known = p[:, :, 0], known[:, :, 0]
    assert known.all() and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    corners = box_points(xy, yaw, EGO.length / 2, EGO.width / 2)  # [B, N, 4, 2] ego frame
    truth_off = np.stack(
        [~straight.on_drivable(ego_to_map(corners[b], (ex[b], ey[b], eyaw[b]))).all(-1) for b in range(B)]
    )
    assert 0.2 < truth_off.mean() < 0.8  # both kinds are well represented
    clear = (p < 1e-6) | (p > 1 - 1e-6)
    assert clear.mean() > 0.8
    agree = (p > 0.5) == truth_off
    assert agree[clear].mean() > 0.98, agree[clear].mean()
    assert agree.mean() > 0.95


def test_a_box_leaving_the_picture_keeps_the_models_value():
    B, N, H = 1, 3, 2
    fields = {name: np.zeros((B, N, H), np.float32) for name in STEP_FIELDS}
    fields["off_road"] = np.full((B, N, H), 0.3, np.float32)
    futures = Futures(xy=np.zeros((B, N, H, 2), np.float32), **fields)
    futures = dataclasses.replace(
        futures, xy=np.array([[[[0, 0], [0, 0]], [[0, 30], [0, 30]], [[60, 0], [0, 0]]]], np.float32)
    )
    bev = np.zeros((1, 10, 96, 96), np.uint8)
    bev[:, BevChannel.DRIVABLE] = 255  # everything in the picture is drivable
    obs = dataclasses.replace(
        observation(np.array([5.0]), np.array([1000.0]), bev_shape=bev.shape[1:]), bev=bev
    )
    out = apply(futures, obs, EGO, DT, BEV)
    np.testing.assert_allclose(out.off_road, [[[0.0, 0.0], [0.3, 0.3], [0.3, 0.0]]])
    assert apply(futures, obs, EGO, DT, GeometryConfig()) is futures  # all from the model
    with pytest.raises(ValueError, match=r"geometry\.off_road"):
        apply(futures, obs, EGO, DT, GeometryConfig(off_road="lidar"))


def chosen_poses(geometry: GeometryConfig, obs) -> tuple[np.ndarray, np.ndarray]:
    """One decision of the planner with the hand-made model and ``geometry`` on ``obs``: the
    poses of the chosen plan (``xy [1, 1, H, 2]``, ``yaw [1, 1, H]``, its bicycle rollout, checked
    against the positions the plan imagined)."""
    from planning.kinematics import bicycle_rollout
    from sim_bridge.api import EgoFeature

    agent = planner(model=kinematic_model(), geometry=geometry)
    agent.reset(AgentInfo(num_worlds=1, dt=DT, ego=EGO))
    agent.act(obs)
    d = agent.last_decision
    assert d is not None
    xy, yaw, _ = bicycle_rollout(d.chosen_actions[:, None], obs.ego[:, EgoFeature.SPEED], EGO, DT)
    np.testing.assert_allclose(xy[:, 0], d.chosen_xy, atol=1e-4)
    return xy, yaw


def test_the_planner_keeps_to_the_road_the_bev_shows_only_with_source_bev(one_torch_thread):
    """The route asks for a 3 m step to the right, but the BEV's road ends 1.5 m to the ego's right;
    the hand-made model has no off-road head. With ``geometry.off_road=bev`` the chosen plan keeps
    its box on the road and its predicted off-road risk is nil; with the model's head it follows
    the route off the road."""
    from sim_bridge.api import NUM_ROUTE_TARGETS, EgoFeature

    g = BevGeometry(size=32, resolution=0.5, ego_from_bottom=2.0)  # 14 m ahead, 8 m to each side
    obs = observation(np.array([4.0]), np.array([1000.0]))
    for k in range(NUM_ROUTE_TARGETS):
        obs.ego[:, EgoFeature.ROUTE_X0 + 2 * k + 1] = -3.0
    edge = -1.5
    obs.bev[:, BevChannel.DRIVABLE, :, : int(g.ego_col - edge / g.resolution)] = 255
    right_side = {}
    for source in ("bev", "model"):
        geometry = GeometryConfig(off_road=source, resolution=g.resolution, ego_from_bottom=g.ego_from_bottom)
        xy, yaw = chosen_poses(geometry, obs)
        corners = box_points(xy[0, 0], yaw[0, 0], EGO.length / 2, EGO.width / 2)
        right_side[source] = float(corners[..., 1].min())
        if source == "bev":  # the plan's own off-road risk, read from the picture, is nil
            assert float(bev_off_road(obs.bev, xy, yaw, EGO, geometry)[0].max()) < 0.05
    assert right_side["bev"] > edge - 0.3  # on the road, within a pixel
    assert right_side["model"] < edge - 0.5  # the route's pull, unpriced


def test_a_parked_car_in_the_bev_gives_the_collision_risk_and_gap_of_imagined_boxes(straight):
    """A static car 12 m ahead in the ego's lane (lane 0 at y = -1.75 on the straight town)."""
    from sim_bridge.api import ActorKind

    a = actors([[100.0, 112.0]], [[-1.75, -1.75]], kind=[[ActorKind.VEHICLE, ActorKind.STATIC]])
    bev = render(straight, frame_of(a, 0))
    cfg = GeometryConfig(statics="bev")
    xy = np.array([[[[0.0, 0.0]], [[12.0, 0.0]], [[12.0, 3.5]], [[7.5, 0.0]], [[6.0, 0.0]]]])  # [1, 5, 1, 2]
    yaw = np.zeros((1, 5, 1))
    p = bev_static_collision(bev, xy, yaw, EGO, cfg)[0, :, 0]
    np.testing.assert_allclose(
        p, [0.0, 1.0, 0.0, 1.0, 0.0], atol=1e-6
    )  # 7.5: within the margin; 6.0: a pixel clear
    gap = bev_static_gap(bev, xy, yaw, EGO, cfg)[0, :, 0]
    free = 12.0 - 4.6  # centre to centre minus the two half lengths [m]
    assert abs(gap[0] - free) <= 0.75 and np.isinf(gap[2])  # the picture's pixel and the search step
    assert gap[1] == 0.0
    # the model never sees it with statics=bev; with statics=model it does
    obs = observation(np.array([8.0]), np.array([1000.0]), bev_shape=bev.shape[1:])
    obs = dataclasses.replace(obs, bev=bev)
    assert not model_input(obs, cfg)[:, BevChannel.STATIC].any() and obs.bev[:, BevChannel.STATIC].any()
    assert model_input(obs, GeometryConfig()) is obs.bev


def test_the_gap_to_a_picture_full_of_statics_is_sampled_along_the_corridor():
    """More than ``MAX_GAP_PIXELS`` STATIC pixels (a wall across the road from 10 m ahead): the
    gap comes from the corridor samples, and agrees with the pixel-wise gap of a few of them."""
    from planning.bev_geometry import MAX_GAP_PIXELS

    g = BevGeometry()
    bev = np.zeros((1, 10, g.size, g.size), np.uint8)
    wall = slice(int(g.ego_row - 14.0 / g.resolution), int(g.ego_row - 10.0 / g.resolution))
    bev[0, BevChannel.STATIC, wall, :] = 255
    assert (bev[0, BevChannel.STATIC] > 0).sum() > MAX_GAP_PIXELS
    xy = np.array([[[[0.0, 0.0]], [[3.0, 1.0]], [[0.0, 0.0]]]])
    yaw = np.array([[[0.0], [0.0], [math.pi]]])  # the last faces away from the wall
    gap = bev_static_gap(bev, xy, yaw, EGO, GeometryConfig())[0, :, 0]
    assert abs(gap[0] - (10.0 - 2.3)) <= 0.5 and abs(gap[1] - (7.0 - 2.3)) <= 0.5 and np.isinf(gap[2])
    few = bev.copy()
    few[0, BevChannel.STATIC, :, : g.size // 2 - 6] = 0  # 12 columns of the wall: pixel-wise
    few[0, BevChannel.STATIC, :, g.size // 2 + 6 :] = 0
    assert (few[0, BevChannel.STATIC] > 0).sum() <= MAX_GAP_PIXELS
    np.testing.assert_allclose(bev_static_gap(few, xy, yaw, EGO, GeometryConfig())[0, :, 0], gap, atol=0.5)


def test_the_planner_keeps_clear_of_a_parked_car_the_model_cannot_see_only_with_statics_bev(one_torch_thread):
    """A parked car 6-10.6 m ahead in the BEV; the hand-made model reads only the ego vector (its
    gap says the road is free). With ``geometry.statics=bev`` the chosen plan's boxes stay clear
    of the car; with the model alone the plan drives into it."""

    g = BevGeometry(size=32, resolution=0.5, ego_from_bottom=2.0)
    obs = observation(np.array([8.0]), np.array([1000.0]))
    obs.bev[:, BevChannel.DRIVABLE] = 255
    rows = slice(int(g.ego_row - 10.6 / g.resolution), int(g.ego_row - 6.0 / g.resolution))
    cols = slice(int(g.ego_col - 1.0 / g.resolution), int(g.ego_col + 1.0 / g.resolution))
    obs.bev[:, BevChannel.STATIC, rows, cols] = 255
    hits = {}
    for source in ("bev", "model"):
        geometry = GeometryConfig(statics=source, resolution=g.resolution, ego_from_bottom=g.ego_from_bottom)
        xy, yaw = chosen_poses(geometry, obs)
        p = bev_static_collision(obs.bev, xy, yaw, EGO, GeometryConfig(static_margin=0.0, **{
            "resolution": g.resolution, "ego_from_bottom": g.ego_from_bottom}))  # fmt: skip
        hits[source] = float(p.max())
    assert hits["bev"] < 0.5 < hits["model"]


def walker_ahead(obs, x: float, y: float, vx: float, vy: float):
    from sim_bridge.api import ObjectFeature as OF

    obs.objects[0, 0, [OF.X, OF.Y, OF.VX, OF.VY, OF.IS_PEDESTRIAN]] = (x, y, vx, vy, 1.0)
    obs.objects[0, 0, [OF.COS_YAW, OF.LENGTH, OF.WIDTH]] = (1.0, 0.5, 0.5)
    obs.objects_mask[0, 0] = True
    return obs


def three_standing_boxes(H: int) -> tuple[np.ndarray, np.ndarray]:
    """``xy [1, 3, H, 2]``, ``yaw [1, 3, H]``: a box standing 10 m ahead, one 10 m ahead in the next
    lane to the left (y = 3.5 m), and the ego's present box."""
    xy = np.zeros((1, 3, H, 2))
    xy[0, 0, :, 0] = xy[0, 1, :, 0] = 10.0
    xy[0, 1, :, 1] = 3.5
    return xy, np.zeros((1, 3, H))


def test_a_walker_moved_on_at_its_velocity_marks_the_imagined_boxes_it_reaches():
    """A walker 10 m ahead, 2.95 m to the right, crossing left at 1.5 m/s: the risk of a box
    standing 10 m ahead rises from 0 when the walker is 0.35 + 0.5 m from its side (after 0.77 s,
    step 7) to 1 at contact (0.35 m, step 10 on); a box 10 m ahead in the next lane to the left
    (y = 3.5) is not reached within the 2 s horizon, the ego's present box never. Without the
    walker flag, or with it masked, nothing is marked."""
    from planning.bev_geometry import object_pedestrian_collision

    obs = walker_ahead(observation(np.array([0.0]), np.array([1000.0])), 10.0, -2.95, 0.0, 1.5)
    H = 20
    xy, yaw = three_standing_boxes(H)
    cfg = GeometryConfig(pedestrians="objects")
    p = object_pedestrian_collision(obs, xy, yaw, EGO, DT, cfg)
    t = DT * np.arange(1, H + 1)
    gap = np.maximum(np.abs(-2.95 + 1.5 * t) - EGO.width / 2, 0.0)  # walker centre to the box
    np.testing.assert_allclose(p[0, 0], np.clip((0.35 + 0.5 - gap) / 0.5, 0, 1), atol=1e-5)
    assert p[0, 0, :7].max() == 0 and 0 < p[0, 0, 7] < 1 and p[0, 0, 10:].min() > 0.999
    assert p[0, 1].max() == 0 and p[0, 2].max() == 0
    obs.objects_mask[0, 0] = False
    assert object_pedestrian_collision(obs, xy, yaw, EGO, DT, cfg).max() == 0


def test_the_planner_stops_for_a_walker_the_model_cannot_see_only_with_pedestrians_objects(one_torch_thread):
    """A walker standing in the lane 9 m ahead; the hand-made model reads only the ego vector.
    With ``geometry.pedestrians=objects`` the chosen plan never reaches it; with the model alone
    it drives on at 8 m/s into it."""
    from planning.bev_geometry import object_pedestrian_collision

    reach = {}
    for source in ("objects", "model"):
        obs = walker_ahead(observation(np.array([8.0]), np.array([1000.0])), 9.0, 0.0, 0.0, 0.0)
        xy, yaw = chosen_poses(GeometryConfig(pedestrians=source), obs)
        tight = GeometryConfig(pedestrians="objects", pedestrian_margin=0.0)
        reach[source] = float(object_pedestrian_collision(obs, xy, yaw, EGO, DT, tight).max())
    assert reach == {"objects": 0.0, "model": 1.0}


def test_beside_a_standing_walker_waiting_adds_no_risk_and_every_move_closer_does():
    """A walker standing 0.2 m in front of a stopped ego's bumper, inside the 0.5 m margin: the
    margin shrinks to those 0.2 m, so standing still scores 0 at every step (a plain margin scored
    it 0.6 per step, near a crash's price, and the planner drove into the walker), a box creeping
    0.1 m per step scores the share of the 0.2 m it has eaten (0.5, then 1 from contact on), and a
    box stepping sideways away scores 0. The planner then waits with the model alone seeing
    nothing."""
    from planning.bev_geometry import object_pedestrian_collision

    gap = 0.2
    obs = walker_ahead(
        observation(np.array([0.0]), np.array([1000.0])), EGO.length / 2 + 0.35 + gap, 0.0, 0.0, 0.0
    )
    H = 10
    xy = np.zeros((1, 3, H, 2))
    xy[0, 1, :, 0] = 0.1 * np.arange(1, H + 1)  # creeping forward
    xy[0, 2, :, 1] = np.linspace(0.3, 3.0, H)  # stepping left, away
    yaw = np.zeros((1, 3, H))
    p = object_pedestrian_collision(obs, xy, yaw, EGO, DT, GeometryConfig(pedestrians="objects"))
    np.testing.assert_allclose(p[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(p[0, 1], np.clip(0.1 * np.arange(1, H + 1) / gap, 0, 1), atol=1e-5)
    np.testing.assert_allclose(p[0, 2], 0.0, atol=1e-6)
    xy_chosen, yaw_chosen = chosen_poses(GeometryConfig(pedestrians="objects"), obs)
    tight = GeometryConfig(pedestrians="objects", pedestrian_margin=1e-6)
    assert object_pedestrian_collision(obs, xy_chosen, yaw_chosen, EGO, DT, tight).max() == 0.0


def with_vehicles(obs, rows):
    """``obs`` whose object list holds vehicles ``rows``: ``(x, y, yaw, speed, length, width,
    static)`` each (ego frame; the velocity along the yaw)."""
    from sim_bridge.api import ObjectFeature as OF

    objects = np.zeros((1, len(rows), obs.objects.shape[-1]), dtype=np.float32)
    for k, (x, y, yaw, speed, length, width, static) in enumerate(rows):
        c, s = math.cos(yaw), math.sin(yaw)
        objects[0, k, [OF.X, OF.Y, OF.COS_YAW, OF.SIN_YAW, OF.VX, OF.VY]] = (x, y, c, s, speed * c, speed * s)
        objects[0, k, [OF.LENGTH, OF.WIDTH, OF.IS_VEHICLE, OF.IS_STATIC]] = (
            length,
            width,
            1.0,
            float(static),
        )
    return dataclasses.replace(obs, objects=objects, objects_mask=np.ones((1, len(rows)), dtype=bool))


def test_a_vehicle_moved_on_at_its_velocity_marks_the_imagined_boxes_it_reaches():
    """An oncoming car (4 × 2 m) 30 m ahead in the ego's lane at 10 m/s, and a box standing 10 m
    ahead: the car's front (its stadium's tip, 2 m from its centre) meets the box's front bumper
    when ``30 - 10 t - 2 = 10 + 2.3``; the risk is 1 from contact on and falls linearly to 0 at
    ``vehicle_margin`` (0.5 m) before. A box 10 m ahead in the next lane (y = 3.5) is never
    reached (1.5 m apart). A car flagged static (the BEV's business), a follower closing in from
    behind in the ego's lane, and a masked row mark nothing; the same car closing in from behind
    in the next lane marks the box that steps into its lane."""
    from planning.bev_geometry import object_vehicle_collision

    H = 20
    xy, yaw = three_standing_boxes(H)
    cfg = GeometryConfig(vehicles="objects")
    base = observation(np.array([0.0]), np.array([1000.0]))
    obs = with_vehicles(base, [(30.0, 0.0, math.pi, 10.0, 4.0, 2.0, False)])
    p = object_vehicle_collision(obs, xy, yaw, EGO, DT, cfg)
    t = DT * np.arange(1, H + 1)
    gap = np.maximum(30.0 - 10.0 * t - 2.0 - (10.0 + EGO.length / 2), 0.0)
    np.testing.assert_allclose(p[0, 0], np.clip((0.5 - gap) / 0.5, 0, 1), atol=1e-5)
    assert p[0, 0].max() == 1.0 and p[0, 0, 0] == 0.0
    assert p[0, 1].max() == 0.0
    static = with_vehicles(base, [(30.0, 0.0, math.pi, 10.0, 4.0, 2.0, True)])
    assert object_vehicle_collision(static, xy, yaw, EGO, DT, cfg).max() == 0
    masked = dataclasses.replace(obs, objects_mask=np.zeros((1, 1), dtype=bool))
    assert object_vehicle_collision(masked, xy, yaw, EGO, DT, cfg).max() == 0
    follower = with_vehicles(base, [(-8.0, 0.0, 0.0, 15.0, 4.0, 2.0, False)])
    xy_here = np.zeros((1, 1, H, 2))  # the ego stopped where it is
    assert object_vehicle_collision(follower, xy_here, yaw[:, :1], EGO, DT, cfg).max() == 0
    overtaker = with_vehicles(base, [(-8.0, 3.5, 0.0, 15.0, 4.0, 2.0, False)])
    xy_left = np.zeros((1, 1, H, 2))
    xy_left[0, 0, :, 1] = 3.5  # the ego steps into the overtaker's lane
    assert object_vehicle_collision(overtaker, xy_left, yaw[:, :1], EGO, DT, cfg).max() == 1.0
    assert object_vehicle_collision(overtaker, xy_here, yaw[:, :1], EGO, DT, cfg).max() == 0.0


def test_a_vehicles_box_corner_is_reached_where_its_stadiums_round_end_is_not():
    """A car (4 × 2 m) standing ahead-left, its rear-right corner 1 m ahead of the ego's front and
    0.15 m left of its side; the imagined box creeps 0.9 m forward. The corners are then 0.1 m and
    0.15 m apart (0.18 m: risk (0.5 - 0.18) / 0.5 = 0.64 at ``vehicle_margin`` 0.5 m); the stadium
    alone (axis 2 m long, radius 1 m) would still be 0.59 m away and mark nothing. Mirrored to the
    right, and the car turned end for end, the same."""
    from planning.bev_geometry import object_vehicle_collision

    H = 4
    xy = np.zeros((1, 1, H, 2))
    xy[0, 0, :, 0] = 0.9
    yaw = np.zeros((1, 1, H))
    cfg = GeometryConfig(vehicles="objects")
    base = observation(np.array([0.0]), np.array([1000.0]))
    cx, cy = EGO.length / 2 + 1.0 + 2.0, EGO.width / 2 + 0.15 + 1.0
    expected = (0.5 - math.hypot(0.1, 0.15)) / 0.5
    for y, heading in ((cy, 0.0), (-cy, 0.0), (cy, math.pi)):
        car = with_vehicles(base, [(cx, y, heading, 0.0, 4.0, 2.0, False)])
        p = object_vehicle_collision(car, xy, yaw, EGO, DT, cfg)
        np.testing.assert_allclose(p[0, 0], expected, atol=1e-5)
    # standing where it is, the ego keeps its 1 m: no risk
    here = object_vehicle_collision(car, np.zeros_like(xy), yaw, EGO, DT, cfg)
    assert here.max() == 0.0


def test_a_walkers_box_corner_is_reached_where_its_circle_is_not():
    """A walker (box 0.7 × 0.7 m, facing the ego's way) standing ahead-left, its rear-right corner
    1 m ahead of the ego's front and 0.1 m left of its side; the imagined box creeps 0.9 m forward.
    Corner to corner is then hypot(0.1, 0.1) = 0.14 m (risk (0.5 - 0.14) / 0.5 = 0.72 at
    ``pedestrian_margin`` 0.5 m); the circle alone (radius 0.35 m) would be 0.29 m away (0.43).
    Mirrored to the right, and the walker turned 90°, the same; face on, the circle is what reaches."""
    from planning.bev_geometry import PEDESTRIAN_RADIUS, object_pedestrian_collision
    from sim_bridge.api import ObjectFeature as OF

    H = 4
    xy = np.zeros((1, 1, H, 2))
    xy[0, 0, :, 0] = 0.9
    yaw = np.zeros((1, 1, H))
    cfg = GeometryConfig(pedestrians="objects")
    half = 0.35
    cx, cy = EGO.length / 2 + 1.0 + half, EGO.width / 2 + 0.1 + half
    expected = (0.5 - math.hypot(0.1, 0.1)) / 0.5
    for y, heading in ((cy, 0.0), (-cy, 0.0), (cy, math.pi / 2)):
        obs = walker_ahead(observation(np.array([0.0]), np.array([1000.0])), cx, y, 0.0, 0.0)
        obs.objects[0, 0, [OF.COS_YAW, OF.SIN_YAW, OF.LENGTH, OF.WIDTH]] = (
            math.cos(heading), math.sin(heading), 2 * half, 2 * half)  # fmt: skip
        p = object_pedestrian_collision(obs, xy, yaw, EGO, DT, cfg)
        np.testing.assert_allclose(p[0, 0], expected, atol=1e-5)
    # standing where it is, the ego keeps its 1 m: no risk
    assert object_pedestrian_collision(obs, np.zeros_like(xy), yaw, EGO, DT, cfg).max() == 0.0
    # a 0.5 m walker straight ahead, 0.4 m from the crept box's front: the circle (0.35 m) reaches
    # beyond its box's face (0.25 m): 0.05 m apart, risk (0.5 - 0.05) / 0.5
    obs = walker_ahead(
        observation(np.array([0.0]), np.array([1000.0])), EGO.length / 2 + 0.9 + 0.4, 0.0, 0.0, 0.0
    )
    obs.objects[0, 0, [OF.LENGTH, OF.WIDTH]] = (0.5, 0.5)
    p = object_pedestrian_collision(obs, xy, yaw, EGO, DT, cfg)
    np.testing.assert_allclose(p[0, 0], (0.5 - (0.4 - PEDESTRIAN_RADIUS)) / 0.5, atol=1e-5)


def test_an_oncoming_vehicle_nearly_parallel_is_forecast_parallel_with_oncoming_parallel():
    """An oncoming car 30 m ahead in the next lane (y = 3.5 m) at 10 m/s, 8° off the ego's reverse
    axis towards the ego's lane. At its heading it crosses into the ego's lane and marks the box
    standing there; with ``oncoming_parallel`` at 10° it is forecast straight down its own lane,
    exactly as a car heading that way: it marks the box standing in that lane instead. At 5° (less
    than its 8°) nothing changes, and a car ahead going the ego's way 8° off (cutting in) keeps its
    heading."""
    from planning.bev_geometry import object_vehicle_collision

    H = 20
    xy, yaw = three_standing_boxes(H)
    base = observation(np.array([0.0]), np.array([1000.0]))
    drifting = with_vehicles(base, [(30.0, 3.5, math.pi + math.radians(8.0), 10.0, 4.0, 2.0, False)])
    straight = with_vehicles(base, [(30.0, 3.5, math.pi, 10.0, 4.0, 2.0, False)])
    alone = GeometryConfig(vehicles="objects")
    p_heading = object_vehicle_collision(drifting, xy, yaw, EGO, DT, alone)
    p_straight = object_vehicle_collision(straight, xy, yaw, EGO, DT, alone)
    assert p_heading[0, 0].max() == 1.0 and p_heading[0, 1].max() < 0.5  # into the ego's lane
    assert p_straight[0, 1].max() == 1.0 and p_straight[0, 0].max() == 0.0
    wide = GeometryConfig(vehicles="objects", oncoming_parallel=10.0)
    np.testing.assert_allclose(
        object_vehicle_collision(drifting, xy, yaw, EGO, DT, wide), p_straight, atol=1e-6
    )
    narrow = GeometryConfig(vehicles="objects", oncoming_parallel=5.0)
    np.testing.assert_array_equal(object_vehicle_collision(drifting, xy, yaw, EGO, DT, narrow), p_heading)
    cutter = with_vehicles(base, [(3.0, 3.5, -math.radians(8.0), 5.0, 4.0, 2.0, False)])
    np.testing.assert_array_equal(
        object_vehicle_collision(cutter, xy, yaw, EGO, DT, wide),
        object_vehicle_collision(cutter, xy, yaw, EGO, DT, alone),
    )


def test_the_models_collision_risk_is_scaled_before_the_forecast_vehicles_risk_joins_it():
    """The model predicts a collision probability of 0.4 at every step of three boxes; the oncoming
    car of the test above marks the first box. ``model_collision`` scales the model's 0.4 before
    the two combine as ``1 - (1 - s·0.4)(1 - p_vehicle)``: 1 keeps it, 0 leaves the forecast alone
    (the box it never reaches at 0), and the forecast risk stays whatever the scale."""
    from planning.bev_geometry import object_vehicle_collision

    H = 20
    xy, yaw = three_standing_boxes(H)
    obs = with_vehicles(
        observation(np.array([0.0]), np.array([1000.0])), [(30.0, 0.0, math.pi, 10.0, 4.0, 2.0, False)]
    )
    fields = {name: np.zeros((1, 3, H), np.float32) for name in STEP_FIELDS}
    fields["collision"] = np.full((1, 3, H), 0.4, np.float32)
    futures = Futures(**{**fields, "xy": xy.astype(np.float32), "yaw": yaw.astype(np.float32)})
    p_car = object_vehicle_collision(obs, xy, yaw, EGO, DT, GeometryConfig(vehicles="objects"))
    assert p_car[0, 0].max() == 1.0 and p_car[0, 1:].max() == 0.0
    for scale in (1.0, 0.5, 0.0):
        cfg = GeometryConfig(vehicles="objects", model_collision=scale)
        got = apply(futures, obs, EGO, DT, cfg).collision
        np.testing.assert_allclose(got, 1.0 - (1.0 - scale * 0.4) * (1.0 - p_car), atol=1e-6)
    alone = apply(futures, obs, EGO, DT, GeometryConfig(model_collision=0.0)).collision
    assert (alone == 0.0).all()
    assert apply(futures, obs, EGO, DT, GeometryConfig()) is futures


def test_a_lead_is_forecast_braking_to_a_stop_with_lead_brake_and_no_one_else_is():
    """With ``lead_brake=5`` a lead 20 m ahead at 10 m/s is forecast at ``20 + 10 t - 2.5 t²`` until
    it stands at 30 m (t = 2 s); an oncoming car in the next lane and a car ahead in the next lane
    keep their velocity, and so does the lead with ``lead_brake=0``. An imagined ego following at
    10 m/s from 10 m never nears the constant-velocity lead (its rear stays 8 m less the box's half
    length ahead of the box's front), but closes on the braking one by ``2.5 t²``: no risk at 1 s,
    contact before the lead stands."""
    from planning.bev_geometry import _vehicle_centres, object_vehicle_collision

    H = 30
    t = DT * np.arange(1, H + 1)
    rows = [(20.0, 0.0, 0.0, 10.0, 4.0, 2.0, False), (40.0, 3.5, math.pi, 8.0, 4.0, 2.0, False),
            (20.0, 3.5, 0.0, 10.0, 4.0, 2.0, False)]  # fmt: skip
    obs = with_vehicles(observation(np.array([10.0]), np.array([1000.0])), rows)
    o = obs.objects.astype(np.float64)
    cx, cy = _vehicle_centres(o, t, EGO, 5.0)
    tb = np.minimum(t, 2.0)
    np.testing.assert_allclose(cx[0, 0], 20.0 + 10.0 * tb - 2.5 * tb**2, atol=1e-9)
    np.testing.assert_allclose(cx[0, 1], 40.0 - 8.0 * t, atol=1e-9)
    np.testing.assert_allclose(cx[0, 2], 20.0 + 10.0 * t, atol=1e-9)
    np.testing.assert_allclose(cy[0], [[0.0] * H, [3.5] * H, [3.5] * H], atol=1e-9)
    cv, _ = _vehicle_centres(o, t, EGO, 0.0)
    np.testing.assert_allclose(cv[0, 0], 20.0 + 10.0 * t, atol=1e-9)
    # with the lanes beside the ego's in the band (lead_width 5.25 m) the car ahead in the next lane
    # brakes as well; the oncoming car still does not
    wide, _ = _vehicle_centres(o, t, EGO, 5.0, lead_width=5.25)
    np.testing.assert_allclose(wide[0, [0, 2]], [cx[0, 0], cx[0, 0]], atol=1e-9)
    np.testing.assert_allclose(wide[0, 1], cx[0, 1], atol=1e-9)
    lead_only = with_vehicles(observation(np.array([10.0]), np.array([1000.0])), rows[:1])
    xy = np.zeros((1, 1, H, 2))
    xy[0, 0, :, 0] = 10.0 + 10.0 * t  # the ego following at 10 m/s, 10 m behind the lead's centre
    yaw = np.zeros((1, 1, H))
    cfg = GeometryConfig(vehicles="objects", lead_brake=5.0)
    braking = object_vehicle_collision(lead_only, xy, yaw, EGO, DT, cfg)
    steady = object_vehicle_collision(lead_only, xy, yaw, EGO, DT, GeometryConfig(vehicles="objects"))
    assert steady.max() == 0.0
    gap = 18.0 - 2.5 * tb**2 - (10.0 + EGO.length / 2)  # the braking lead's rear to the box's front
    assert braking[0, 0, 9] == 0.0 and gap[9] > 0.5  # at 1 s, farther than the margin
    contact = np.flatnonzero(gap <= 0.0)
    assert len(contact) and braking[0, 0, contact[0]] == 1.0


def test_the_planner_waits_for_a_crossing_car_the_model_cannot_see_only_with_vehicles_objects(
    one_torch_thread,
):
    """A car crossing from the right at 8 m/s, set to pass the ego's lane 12 m ahead just as an
    ego driving on at 8 m/s gets there; the hand-made model reads only the ego vector. With
    ``geometry.vehicles=objects`` the chosen plan never touches the car's forecast; with the model
    alone it drives on into it."""
    from planning.bev_geometry import object_vehicle_collision

    reach = {}
    for source in ("objects", "model"):
        base = observation(np.array([8.0]), np.array([1000.0]))
        obs = with_vehicles(base, [(14.0, -13.0, math.pi / 2, 8.0, 4.6, 1.9, False)])
        xy, yaw = chosen_poses(GeometryConfig(vehicles=source), obs)
        tight = GeometryConfig(vehicles="objects", vehicle_margin=1e-6)
        reach[source] = float(object_vehicle_collision(obs, xy, yaw, EGO, DT, tight).max())
    assert reach == {"objects": 0.0, "model": 1.0}


def test_the_gap_ahead_read_from_the_object_list_follows_the_forecast_into_the_imagined_corridor():
    """Three imagined plans, each standing for 2 s (:func:`three_standing_boxes`): 10 m ahead, 10 m
    ahead in the next lane (y = 3.5), and where the ego is. A car (4 × 2 m) 20 m ahead in the ego's lane driving away at 5 m/s: the
    gap from the standing box's front bumper is ``20 + 5 t - 2 - 2.3`` (the model's definition:
    the car's rear), from the box 10 m on 10 m less; the box in the next lane has nothing ahead.
    A car in the next lane, standing, is in that box's corridor only. A car beyond ``gap_range``,
    behind the box, or masked counts as nothing (``inf``). The model's own gap is not read."""
    from planning.bev_geometry import object_gap

    H = 20
    xy, yaw = three_standing_boxes(H)
    cfg = GeometryConfig(gap_ahead="objects")
    base = observation(np.array([0.0]), np.array([1000.0]))
    t = DT * np.arange(1, H + 1)
    away = with_vehicles(base, [(20.0, 0.0, 0.0, 5.0, 4.0, 2.0, False)])
    gap = object_gap(away, xy, yaw, EGO, DT, cfg)
    np.testing.assert_allclose(gap[0, 2], 20.0 + 5.0 * t - 2.0 - EGO.length / 2, atol=1e-4)
    np.testing.assert_allclose(gap[0, 0], 10.0 + 5.0 * t - 2.0 - EGO.length / 2, atol=1e-4)
    assert np.isinf(gap[0, 1]).all()
    beside = with_vehicles(base, [(25.0, 3.5, 0.0, 0.0, 4.0, 2.0, True)])
    gap = object_gap(beside, xy, yaw, EGO, DT, cfg)
    assert np.isinf(gap[0, [0, 2]]).all()
    np.testing.assert_allclose(gap[0, 1], 25.0 - 10.0 - 2.0 - EGO.length / 2, atol=1e-4)
    far = with_vehicles(
        base, [(60.0, 0.0, 0.0, 0.0, 4.0, 2.0, False), (-9.0, 0.0, 0.0, 0.0, 4.0, 2.0, False)]
    )
    assert np.isinf(object_gap(far, xy, yaw, EGO, DT, cfg)).all()
    masked = dataclasses.replace(away, objects_mask=np.zeros((1, 1), dtype=bool))
    assert np.isinf(object_gap(masked, xy, yaw, EGO, DT, cfg)).all()
    crossing = with_vehicles(base, [(8.0, 0.0, math.pi / 2, 0.0, 4.0, 2.0, False)])  # across the lane
    gap = object_gap(crossing, xy, yaw, EGO, DT, cfg)  # its extent along the ego: half its width
    np.testing.assert_allclose(gap[0, 2], 8.0 - 1.0 - EGO.length / 2, atol=1e-4)
    assert np.isinf(gap[0, 0]).all()  # behind the centre of the box 10 m on
    futures = Futures(**{name: np.zeros((1, 3, H), np.float32) for name in STEP_FIELDS},
                      xy=xy.astype(np.float32))  # fmt: skip
    futures = dataclasses.replace(futures, yaw=yaw.astype(np.float32))
    read = apply(futures, away, EGO, DT, GeometryConfig(gap_ahead="objects"))
    np.testing.assert_allclose(read.gap_ahead, object_gap(away, xy, yaw, EGO, DT, cfg), atol=1e-5)
    assert (apply(futures, away, EGO, DT, GeometryConfig()).gap_ahead == 0.0).all()  # the model's


def test_the_planner_config_refuses_an_unknown_source():
    from drive.checks import ConfigProblem, load
    from planning.world_model_planner import WorldModelPlanner

    cfg = load("eval", ["agent=planner_tuned", "sim.bev.resolution=0.25"])
    assert cfg.agent.geometry.resolution == 0.25  # the agent reads the simulator's BEV layout
    for command, preset in (
        ("eval", "agent=planner"),
        ("eval", "agent=planner_tuned"),
        ("collect", "driver=planner"),
    ):
        node = load(command, [preset])[preset.split("=")[0]].geometry
        assert (node.off_road, node.statics, node.pedestrians, node.vehicles) == (
            "bev",
            "bev",
            "objects",
            "objects",
        )
    assert PlannerConfig().geometry.off_road == "model"
    with pytest.raises(ConfigProblem, match=r"geometry\.statics=lidar: must be one of"):
        load("eval", ["agent=planner", "agent.geometry.statics=lidar"])
    with pytest.raises(ConfigProblem, match=r"geometry\.vehicles=lidar: must be one of"):
        load("eval", ["agent=planner", "agent.geometry.vehicles=lidar"])
    with pytest.raises(ValueError, match=r"geometry\.off_road"):
        WorldModelPlanner(PlannerConfig(geometry=GeometryConfig(off_road="lidar")), model=kinematic_model())


def test_skipping_actors_out_of_reach_changes_no_risk(monkeypatch):
    """The forecasts skip actors that cannot come near any imagined box (``_reachable``): on random
    scenes (a full object list within 16 m, random drives) the risks equal those of forecasting every
    actor, and some are not 0."""
    import planning.bev_geometry as g
    from drive.pipelines.bench_plan import synthetic_observation
    from planning.bev_geometry import object_pedestrian_collision, object_vehicle_collision

    rng = np.random.default_rng(0)
    cfg = GeometryConfig(vehicles="objects", pedestrians="objects")
    for _ in range(5):
        obs = synthetic_observation(3, (10, 32, 32), rng)
        obs.objects[..., :2] *= 0.4
        xy = np.cumsum(rng.normal(0.8, 0.5, (3, 16, 20, 2)), axis=2)
        yaw = rng.normal(0.0, 0.3, (3, 16, 20))
        skipped = [
            f(obs, xy, yaw, EGO, DT, cfg) for f in (object_vehicle_collision, object_pedestrian_collision)
        ]
        with monkeypatch.context() as m:
            m.setattr(g, "_reachable", lambda cx, *args: np.ones(cx.shape[:2], dtype=bool))
            every = [
                f(obs, xy, yaw, EGO, DT, cfg) for f in (object_vehicle_collision, object_pedestrian_collision)
            ]
        for a, b in zip(skipped, every, strict=True):
            np.testing.assert_array_equal(a, b)
        assert skipped[0].max() > 0
