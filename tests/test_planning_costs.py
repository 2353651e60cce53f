"""Futures, costs and proposals on hand-made inputs: every cost term points the right way; the
two task costs (stop_at, pedestrian_margin); motion integration and window conversion in closed
form; ``futures_from_model`` on a model whose heads are set by hand; proposals follow straight
and curved route targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from planning.costs import (
    CostContext,
    Costs,
    CostsConfig,
    PedestrianMarginConfig,
    StopAtConfig,
    TermConfig,
    polyline_distance,
)
from planning.futures import Futures, integrate_motion, window_to_step
from planning.proposals import ProposalConfig, route_proposals
from sim_bridge.api import EGO_DIM, NUM_ROUTE_TARGETS, ROUTE_TARGET_SPACING, EgoFeature, EgoVehicle

H = 10
DT = 0.1


def futures(N: int = 2, **fields: np.ndarray) -> Futures:
    """One world, ``N`` sequences driving straight along +x at 10 m/s on the route, nothing around;
    ``fields`` override (given ``[N, H]`` or ``[N, H, 2]``, a world axis is added)."""
    steps = np.arange(1, H + 1, dtype=np.float32)
    base = {
        "collision": np.zeros((N, H)),
        "off_road": np.zeros((N, H)),
        "red_light": np.zeros((N, H)),
        "stop_sign": np.zeros((N, H)),
        "xy": np.stack([np.broadcast_to(steps, (N, H)), np.zeros((N, H))], axis=-1),
        "yaw": np.zeros((N, H)),
        "speed": np.full((N, H), 10.0),
        "progress": np.full((N, H), 1.0),
        "nearest": np.full((N, H), np.inf),
        "gap_ahead": np.full((N, H), 30.0),
    }
    base.update(fields)
    return Futures(
        **{k: None if v is None else np.asarray(v, dtype=np.float32)[None] for k, v in base.items()}
    )


def context(route_remaining: float = 200.0, speed_limit: float = 12.0, prev=(0.0, 0.0)) -> CostContext:
    route = np.array([[[5.0 * (k + 1), 0.0] for k in range(NUM_ROUTE_TARGETS)]], dtype=np.float32)
    return CostContext(route=route, speed_limit=np.array([speed_limit], np.float32), speed=np.array([10.0], np.float32),
                       prev_action=np.array([prev], np.float32), route_remaining=np.array([route_remaining], np.float32))  # fmt: skip


def only(term: str, **settings) -> Costs:
    """Costs with every term off but ``term`` (weight 1 unless given)."""
    cfg = CostsConfig()
    for name in ("collision", "off_road", "red_light", "stop_sign", "progress", "route", "lanes",
                 "speed_limit", "proximity", "comfort", "stop_line", "stop_at", "pedestrian_margin"):  # fmt: skip
        getattr(cfg, name).weight = 0.0
    sub = getattr(cfg, term)
    sub.weight = 1.0
    for key, value in settings.items():
        setattr(sub, key, value)
    return Costs(cfg)


def pair(values_a, values_b):
    return np.stack([np.broadcast_to(values_a, (H,)), np.broadcast_to(values_b, (H,))]).astype(np.float32)


@pytest.mark.parametrize("event", ["collision", "off_road", "red_light", "stop_sign"])
def test_event_terms_cost_the_likelier_event_more(event):
    p = pair(0.0, 0.0)
    p[1, 6] = 0.8  # sequence 1: a likely event at step 6
    cost = only(event)(futures(**{event: p}), np.zeros((1, 2, H, 2)), context())[event]
    assert cost.shape == (1, 2)
    assert cost[0, 0] == 0.0 and cost[0, 1] == pytest.approx(0.8 * 0.97**6, rel=1e-5)


def test_progress_rewards_distance_and_ignores_it_after_a_crash():
    c = only("progress")
    cost = c(futures(progress=pair(1.0, 0.5)), np.zeros((1, 2, H, 2)), context())["progress"]
    assert cost[0, 0] < cost[0, 1] < 0.0
    crash = pair(0.0, 0.0)
    crash[1, 2] = 1.0  # certain collision at step 2: steps 3… gain nothing
    cost = c(futures(collision=crash), np.zeros((1, 2, H, 2)), context())["progress"]
    assert cost[0, 1] / cost[0, 0] == pytest.approx(
        (1 + 0.97 + 0.97**2) / (0.97 ** np.arange(H)).sum(), rel=1e-5
    )
    assert cost[0, 0] < cost[0, 1]


def test_route_deviation_grows_with_the_distance_from_the_route_targets():
    xy = futures().xy[0].copy()
    xy[1, :, 1] = 2.0  # sequence 1 drives 2 m left of the route
    cost = only("route")(futures(xy=xy), np.zeros((1, 2, H, 2)), context())["route"]
    disc = 0.97 ** np.arange(H)
    assert cost[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert cost[0, 1] == pytest.approx(4.0 * disc.sum(), rel=1e-5)


def test_lanes_costs_the_progress_made_beside_the_route_not_within_its_lane():
    """Four sequences along the route at lateral offsets 0, 1.0, 1.5 and 3.5 m, 1 m of progress per
    step: within ``half_width - ramp`` nothing, beyond ``half_width`` every metre, linear between;
    a sequence beside the route that makes no progress (stopped) costs nothing."""
    steps = np.arange(1, H + 1, dtype=np.float32)
    offsets = np.array([0.0, 1.0, 1.5, 3.5], np.float32)
    xy = np.stack([np.broadcast_to(steps, (4, H)), np.broadcast_to(offsets[:, None], (4, H))], axis=-1)
    costs = only("lanes", half_width=1.75, ramp=0.5, weight=1.0)
    cost = costs(futures(N=4, xy=xy), np.zeros((1, 4, H, 2)), context())["lanes"][0]
    disc = (0.97 ** np.arange(H)).sum()
    np.testing.assert_allclose(cost, [0.0, 0.0, 0.5 * disc, disc], rtol=1e-5)
    stopped = futures(N=4, xy=xy, progress=np.zeros((4, H)), speed=np.zeros((4, H)))
    assert np.all(costs(stopped, np.zeros((1, 4, H, 2)), context())["lanes"] == 0.0)


def test_polyline_distance_extends_the_ends_and_handles_corners():
    poly = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]])
    pts = np.array([[[-5.0, 1.0], [5.0, -2.0], [12.0, 5.0], [10.0, 20.0], [11.0, -1.0]]])
    np.testing.assert_allclose(
        polyline_distance(pts, poly)[0], [1.0, 2.0, 2.0, 0.0, math.sqrt(2.0)], atol=1e-6
    )
    # coincident targets (the route's end) act as a point
    end = np.array([[[0.0, 0.0], [3.0, 0.0], [3.0, 0.0]]])
    assert polyline_distance(np.array([[[3.0, 4.0]]]), end)[0, 0] == pytest.approx(4.0)


def test_speed_limit_costs_only_the_excess():
    cost = only("speed_limit")(
        futures(speed=pair(11.0, 14.0)), np.zeros((1, 2, H, 2)), context(speed_limit=12.0)
    )
    disc = 0.97 ** np.arange(H)
    assert cost["speed_limit"][0, 0] == 0.0
    assert cost["speed_limit"][0, 1] == pytest.approx(4.0 * disc.sum(), rel=1e-5)


def test_proximity_costs_a_short_gap_ahead():
    cost = only("proximity")(futures(gap_ahead=pair(30.0, 3.0)), np.zeros((1, 2, H, 2)), context())[
        "proximity"
    ]
    assert cost[0, 0] == 0.0 and cost[0, 1] > 0.5  # desired 3 + 1 s × 10 m/s = 13 m; 3 m is 77 % short


def test_comfort_prefers_smooth_actions_from_the_previous_one():
    actions = np.zeros((1, 2, H, 2), dtype=np.float32)
    actions[0, 0, :, 0] = 0.3  # constant, as the previous action
    actions[0, 1, :, 0] = np.where(np.arange(H) % 2, 0.6, 0.0)  # same mean, jerky
    cost = only("comfort")(futures(), actions, context(prev=(0.3, 0.0)))["comfort"]
    assert cost[0, 0] == pytest.approx(0.0, abs=1e-7) and cost[0, 1] > 1.0
    steer = np.zeros_like(actions)
    steer[0, 1, :, 1] = np.where(np.arange(H) % 2, 0.2, -0.2)
    cost = only("comfort")(futures(), steer, context())["comfort"]
    assert cost[0, 1] > cost[0, 0] == 0.0
    # at a standstill the brake does nothing: releasing it to drive off costs what starting from 0 does
    standing = context(prev=(-0.8, 0.0))
    standing = CostContext(standing.route, standing.speed_limit, np.zeros(1, np.float32), standing.prev_action,
                           standing.route_remaining)  # fmt: skip
    go = np.zeros((1, 2, H, 2), dtype=np.float32)
    go[0, 0, :, 0] = 0.5
    go[0, 1, :, 0] = -0.8  # keep braking
    still = futures(speed=np.stack([np.linspace(0.15, 1.5, H), np.zeros(H)]))
    from_brake = only("comfort")(still, go, standing)["comfort"]
    from_zero = only("comfort")(still, go, context(prev=(0.0, 0.0)))["comfort"]
    assert from_brake[0, 0] == pytest.approx(from_zero[0, 0]) == pytest.approx(0.25)
    assert from_brake[0, 1] == 0.0


def test_stop_at_costs_passing_the_point_not_stopping_before_it():
    # the stop point is 30 m before the route's end, 40 m left: 10 m ahead of the ego
    costs = only("stop_at", before_end=30.0, weight=20.0)
    stop = np.minimum(np.cumsum(np.full(H, 1.5)), 9.5)  # reaches 9.5 m and stays
    run = np.cumsum(np.full(H, 1.5))  # 15 m: runs 5 m past the point
    prog = np.stack([np.diff(stop, prepend=0.0), np.diff(run, prepend=0.0)])
    cost = costs(futures(progress=prog), np.zeros((1, 2, H, 2)), context(route_remaining=40.0))["stop_at"]
    assert cost[0, 0] == 0.0 and cost[0, 1] > 20.0
    # with progress also rewarded, stopping at the point beats both stopping short and running it
    cfg = CostsConfig()
    for name in ("collision", "off_road", "red_light", "stop_sign", "route", "speed_limit", "proximity", "comfort",
                 "pedestrian_margin"):  # fmt: skip
        getattr(cfg, name).weight = 0.0
    cfg.stop_at = StopAtConfig(weight=20.0, before_end=30.0)
    short = np.minimum(np.cumsum(np.full(H, 1.5)), 4.0)
    prog3 = np.stack([np.diff(short, prepend=0.0), prog[0], prog[1]])
    total = sum(
        Costs(cfg)(
            futures(N=3, progress=prog3), np.zeros((1, 3, H, 2)), context(route_remaining=40.0)
        ).values()
    )
    assert np.argmin(total[0]) == 1
    # no point set: the term is zero
    off = only("stop_at", before_end=None)(futures(progress=prog), np.zeros((1, 2, H, 2)), context())[
        "stop_at"
    ]
    assert (off == 0.0).all()


def test_pedestrian_margin_keeps_three_metres_and_falls_back_to_the_nearest_actor():
    costs = only("pedestrian_margin")
    ped = pair(5.0, 1.5)
    cost = costs(futures(pedestrian=ped), np.zeros((1, 2, H, 2)), context())["pedestrian_margin"]
    assert cost[0, 0] == 0.0 and cost[0, 1] == pytest.approx(0.25 * (0.97 ** np.arange(H)).sum(), rel=1e-5)
    unknown = pair(np.nan, np.inf)
    assert (
        costs(futures(pedestrian=unknown), np.zeros((1, 2, H, 2)), context())["pedestrian_margin"] == 0
    ).all()
    near = costs(futures(nearest=pair(10.0, 2.0)), np.zeros((1, 2, H, 2)), context())["pedestrian_margin"]
    assert near[0, 0] == 0.0 < near[0, 1]
    assert PedestrianMarginConfig().margin == 3.0


def test_weights_scale_terms_and_zero_switches_them_off():
    cfg = CostsConfig()
    default = Costs(cfg)(futures(), np.zeros((1, 2, H, 2)), context())
    assert "stop_at" not in default and "pedestrian_margin" not in default and "collision" in default
    cfg.progress = TermConfig(weight=3.0 * cfg.progress.weight)
    tripled = Costs(cfg)(futures(), np.zeros((1, 2, H, 2)), context())
    np.testing.assert_allclose(tripled["progress"], 3.0 * default["progress"], rtol=1e-6)
    assert all(v.shape == (1, 2) for v in default.values())


def test_context_reads_the_ego_vector():
    ego = np.zeros((1, EGO_DIM), dtype=np.float32)
    ego[0, EgoFeature.SPEED_LIMIT] = 13.9
    ego[0, EgoFeature.ROUTE_X0 + 2] = 10.0
    ego[0, EgoFeature.PREV_STEER] = -0.4
    ctx = CostContext.from_ego(ego)
    assert ctx.route.shape == (1, NUM_ROUTE_TARGETS, 2) and ctx.route[0, 1, 0] == 10.0
    assert ctx.speed_limit[0] == pytest.approx(13.9) and ctx.prev_action[0, 1] == pytest.approx(-0.4)


def test_futures_check_shapes_and_report_nan_worlds():
    with pytest.raises(ValueError, match="gap_ahead"):
        Futures(**{**futures().__dict__, "gap_ahead": np.zeros((1, 2, H + 1))})
    f = futures()
    assert f.shape == (1, 2, H) and f.nonfinite_worlds() == []
    bad = f.xy.copy()
    bad[0, 1, 3, 0] = np.nan
    assert Futures(**{**f.__dict__, "xy": bad}).nonfinite_worlds() == [0]
    assert f.take(np.array([1])).shape == (1, 1, H)


def test_motion_integrates_in_the_frame_of_each_step_start():
    # 1 m forward then a quarter turn, four times: a unit square back to the start
    motion = np.tile(np.array([1.0, 0.0, math.pi / 2]), (4, 1))
    xy, yaw = integrate_motion(motion)
    np.testing.assert_allclose(xy, [[1, 0], [1, 1], [0, 1], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(yaw, [math.pi / 2 * k for k in range(1, 5)], atol=1e-6)
    # a sideways step after a left turn moves along -x
    xy, _ = integrate_motion(np.array([[0.0, 0.0, math.pi / 2], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(xy[1], [-1.0, 0.0], atol=1e-6)


def test_window_probability_becomes_a_per_step_hazard():
    q = np.array([0.0, 0.01, 0.2], dtype=np.float32)
    p_window = 1.0 - (1.0 - q) ** 10
    np.testing.assert_allclose(window_to_step(p_window, 10), q, atol=1e-6)
    np.testing.assert_array_equal(window_to_step(p_window, 1), p_window)


def test_futures_from_model_with_heads_set_by_hand(one_torch_thread):
    import torch

    from planning.futures import ModelFutures, futures_from_model
    from world_model.config import ModelConfig
    from world_model.model import EVENT_HEADS, WorldModel

    torch.manual_seed(0)
    cfg = ModelConfig(
        latent=8, channels=[4, 8], ego_hidden=8, fuse_hidden=16, predictor_hidden=16, head_hidden=8
    )
    model = WorldModel(cfg, (10, 32, 32), EGO_DIM).eval()
    K = len(cfg.event_within)  # windows 1, 5, 10
    with torch.no_grad():
        model.head_out.weight.zero_()
        bias = torch.zeros_like(model.head_out.bias)
        logit = math.log(0.4 / 0.6)  # P = 0.4 in every window
        n_ev = len(EVENT_HEADS) * K
        bias[:n_ev] = logit
        bias[n_ev - K : n_ev] = -30.0  # the stop-sign head (the last event head): never
        bias[n_ev : n_ev + 5] = torch.tensor([2.0, 0.0, 0.1, 8.0, 1.9])  # dx, dy, dyaw, speed, progress
        bias[n_ev + 5 :] = torch.tensor([0.5, 0.25])  # × scales (16, 30) → 8 m, 7.5 m
        model.head_out.bias.copy_(bias)
    B, N = 2, 3
    rng = np.random.default_rng(0)

    class Obs:
        bev = (rng.integers(0, 2, (B, 10, 32, 32)) * 255).astype(np.uint8)
        ego = rng.standard_normal((B, EGO_DIM)).astype(np.float32)

    actions = rng.uniform(-1, 1, (B, N, H, 2)).astype(np.float32)
    f = futures_from_model(model, Obs, actions)
    assert f.shape == (B, N, H) and f.xy.shape == (B, N, H, 2) and f.pedestrian is None
    np.testing.assert_allclose(f.collision, 1.0 - 0.6 ** (1 / 10), rtol=1e-4)  # the 1 s window, per step
    assert (f.stop_sign < 1e-9).all() and f.stop_sign.shape == (B, N, H)
    np.testing.assert_allclose(f.speed, 8.0, rtol=1e-5)
    np.testing.assert_allclose(f.progress, 1.9, rtol=1e-5)
    np.testing.assert_allclose(f.nearest, 8.0, rtol=1e-5)
    np.testing.assert_allclose(f.gap_ahead, 7.5, rtol=1e-5)
    expect_xy, expect_yaw = integrate_motion(np.tile(np.array([2.0, 0.0, 0.1]), (H, 1)))
    np.testing.assert_allclose(f.xy[1, 2], expect_xy, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.yaw[0, 0], expect_yaw, rtol=1e-5)
    # the per-step window reads P directly; an unknown window is refused
    assert np.allclose(futures_from_model(model, Obs, actions, event_window=1).collision, 0.4, rtol=1e-4)
    with pytest.raises(ValueError, match="event_window"):
        ModelFutures(model, event_window=3)
    # one rollout call for all B × N sequences
    source = ModelFutures(model)
    calls = []
    inner = source._rollout

    def counting(z0, a):
        calls.append(tuple(a.shape))
        return inner(z0, a)

    source._rollout = counting  # type: ignore[assignment]
    source.futures(source.encode(Obs.bev, Obs.ego), actions)
    assert calls == [(B * N, H, 2)]


# ------------------------------------------------------------------------------------ proposals


def ego_vector(route_xy: np.ndarray, speed: float = 6.0, limit: float = 10.0) -> np.ndarray:
    ego = np.zeros((1, EGO_DIM), dtype=np.float32)
    ego[0, EgoFeature.SPEED] = speed
    ego[0, EgoFeature.SPEED_LIMIT] = limit
    ego[0, EgoFeature.ROUTE_REMAINING] = 500.0
    for k, (x, y) in enumerate(route_xy):
        ego[0, EgoFeature.ROUTE_X0 + 2 * k] = x
        ego[0, EgoFeature.ROUTE_X0 + 2 * k + 1] = y
    return ego


def roll_bicycle(actions: np.ndarray, speed: float, vehicle: EgoVehicle) -> np.ndarray:
    """Positions ``[P, H, 2]`` of the proposals' own bicycle from the start pose."""
    from planning.kinematics import bicycle_step

    P = actions.shape[0]
    x, y, yaw, v = (np.zeros(P) for _ in range(4))
    v = v + speed
    out = []
    for h in range(actions.shape[1]):
        x, y, yaw, v = bicycle_step(x, y, yaw, v, actions[:, h, 0], actions[:, h, 1], vehicle, DT)
        out.append(np.stack([x, y], -1))
    return np.stack(out, 1)


def test_proposals_follow_a_straight_route_at_their_offsets_and_speeds():
    vehicle, cfg = EgoVehicle(), ProposalConfig()
    route = [(ROUTE_TARGET_SPACING * (k + 1), 0.0) for k in range(NUM_ROUTE_TARGETS)]
    props = route_proposals(ego_vector(np.array(route)), vehicle, DT, 30, cfg)
    assert props.shape == (1, cfg.count, 30, 2) and props.dtype == np.float32
    assert np.abs(props).max() <= 1.0
    xy = roll_bicycle(props[0], 6.0, vehicle)
    O = len(cfg.lateral_offsets) + 1  # and the ego's own offset (0 here), last
    for i, frac in enumerate(cfg.speed_fractions):
        for j, off in enumerate([*cfg.lateral_offsets, 0.0]):
            path = xy[i * O + j]
            if frac >= 0.6:  # moving: it settles on its lateral offset
                assert path[-1, 1] == pytest.approx(off, abs=0.3), (frac, off, path[-1])
    # faster fractions go farther; the stop proposal and the full brake stop
    ends = xy[[i * O + 1 for i in range(len(cfg.speed_fractions))], -1, 0]
    assert (np.diff(ends) > 0).all()
    assert (props[0, -1, :, 0] == -1).all() and (props[0, -1, :, 1] == 0).all()
    assert xy[1, -1, 0] < 6.0 * 1.5  # fraction 0, offset 0: brakes


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_the_hold_offset_proposals_keep_the_lane_the_ego_is_in(side):
    """The ego 3.5 m to one side of a straight route (passing in the next lane): the route
    proposals steer back towards the route and its offsets, the hold-offset ones keep to the
    ego's own lane."""
    from planning.proposals import lateral_offset

    vehicle = EgoVehicle()
    route = np.array([(ROUTE_TARGET_SPACING * (k + 1), -3.5 * side) for k in range(NUM_ROUTE_TARGETS)])
    assert lateral_offset(route[None]) == pytest.approx([3.5 * side])
    cfg = ProposalConfig(speed_fractions=[0.8], lateral_offsets=[0.0], full_brake=False)
    props = route_proposals(ego_vector(route), vehicle, DT, 30, cfg)
    assert props.shape == (1, 2, 30, 2)
    xy = roll_bicycle(props[0], 6.0, vehicle)
    assert xy[0, -1, 1] * side < -2.5  # most of the way back onto the route
    assert np.abs(xy[1, :, 1]).max() < 0.25  # straight on in its own lane
    off = route_proposals(ego_vector(route), vehicle, DT, 30, ProposalConfig(hold_offset=False))
    assert off.shape[1] == ProposalConfig(hold_offset=False).count == ProposalConfig().count - 5


def test_proposals_follow_a_curved_route():
    vehicle, radius = EgoVehicle(), 25.0
    arcs = ROUTE_TARGET_SPACING * (np.arange(NUM_ROUTE_TARGETS) + 1)
    route = np.stack(
        [radius * np.sin(arcs / radius), radius * (1 - np.cos(arcs / radius))], -1
    )  # a left curve
    cfg = ProposalConfig(speed_fractions=[0.8], lateral_offsets=[0.0], full_brake=False)
    props = route_proposals(ego_vector(route, speed=7.0, limit=10.0), vehicle, DT, 25, cfg)
    xy = roll_bicycle(props[0], 7.0, vehicle)[0]
    off_circle = np.abs(np.hypot(xy[:, 0], xy[:, 1] - radius) - radius)
    assert off_circle.max() < 0.6, off_circle.max()
    assert xy[-1, 1] > 2.0  # it did turn left
    assert (props[0, 0, 5:, 1] > 0).all()  # steering left throughout the curve


# ------------------------------------------------------------------------------------ kinematics


def test_bicycle_rollout_closed_forms():
    from planning.kinematics import bicycle_rollout

    vehicle = EgoVehicle()
    actions = np.zeros((2, 2, 10, 2), dtype=np.float32)
    actions[0, 1, :, 0] = -1.0  # full brake: 8 m/s² stops 4 m/s in 0.5 s
    actions[1, 0, :, 1] = 0.5  # a constant left turn
    xy, yaw, speed = bicycle_rollout(actions, np.array([10.0, 5.0]), vehicle, DT)
    assert xy.shape == (2, 2, 10, 2) and yaw.shape == speed.shape == (2, 2, 10)
    np.testing.assert_allclose(xy[0, 0, -1], [10.0, 0.0], atol=1e-5)  # 10 m/s for 1 s: 10 m further
    np.testing.assert_allclose(speed[0, 1, -1], 2.0, atol=1e-5)  # 10 - 8 × 1
    np.testing.assert_allclose(xy[0, 1, -1, 0], (10.0 + 2.0) / 2 * 1.0, atol=1e-5)
    rate = 5.0 * math.tan(0.5 * vehicle.max_steer) / vehicle.wheelbase
    np.testing.assert_allclose(yaw[1, 0, -1], rate * 1.0, rtol=1e-5)  # yaw rate v·tan(δ)/L
    radius = 5.0 / rate
    assert np.hypot(xy[1, 0, :, 0], xy[1, 0, :, 1] - radius) == pytest.approx(radius, rel=2e-3)


def test_polyline_projection_gives_the_arc_length_along_the_route():
    from planning.costs import polyline_projection

    poly = np.array([[[5.0, 0.0], [10.0, 0.0], [10.0, 10.0]]])
    pts = np.array([[[0.0, 1.0], [7.0, -2.0], [11.0, 4.0], [10.0, 20.0]]])
    dist, arc = polyline_projection(pts, poly)
    np.testing.assert_allclose(dist[0], [1.0, 2.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(arc[0], [-5.0, 2.0, 9.0, 25.0], atol=1e-5)  # behind the first target: negative


def test_progress_as_a_share_of_the_reachable_distance():
    from planning.costs import reachable_distance

    # from a standstill, 3 m/s² for 1 s (no discount): Σ 0.3 k · 0.1 = 1.65 m; cruising: 10 m
    ones = np.ones(H, dtype=np.float32)
    ref = reachable_distance(np.array([0.0, 10.0]), np.array([10.0, 10.0]), 3.0, DT, ones)
    np.testing.assert_allclose(ref, [1.65, 10.0], rtol=1e-5)
    cfg = CostsConfig(discount=1.0)
    for name in (
        "collision",
        "off_road",
        "red_light",
        "stop_sign",
        "route",
        "speed_limit",
        "proximity",
        "comfort",
    ):
        getattr(cfg, name).weight = 0.0
    cfg.progress.weight = 1.0
    ctx = context()  # 10 m/s at a 12 m/s limit: 10.45 m reachable in 1 s
    reach = reachable_distance(ctx.speed, ctx.speed_limit, ctx.max_accel, ctx.dt, ones)[0]
    cost = Costs(cfg)(futures(progress=pair(1.0, 0.5)), np.zeros((1, 2, H, 2)), ctx)["progress"]
    np.testing.assert_allclose(cost[0], [-10.0 / reach, -5.0 / reach], rtol=1e-5)
    # a standing car's 1.65 m is a full share, as a cruising car's 10.45 m
    standing = CostContext(
        ctx.route, ctx.speed_limit, np.zeros(1, np.float32), ctx.prev_action, ctx.route_remaining
    )
    cost = Costs(cfg)(futures(progress=pair(0.165, 0.0)), np.zeros((1, 2, H, 2)), standing)["progress"]
    np.testing.assert_allclose(cost[0], [-1.0, 0.0], rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    vertices=st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=2, max_size=8),
    points=st.lists(st.tuples(st.floats(-80, 80), st.floats(-80, 80)), min_size=1, max_size=6),
)
def test_polyline_projection_matches_shapely_on_random_polylines(vertices, points):
    """The compiled projection against shapely's distance to the same polyline with its first and
    last segments extended far (the projection extends them without end)."""
    from shapely.geometry import LineString, Point

    from planning.route_geometry import polyline_projection

    poly = np.array(vertices, dtype=np.float32)
    lengths = np.hypot(*np.diff(poly, axis=0).T)
    assume(lengths[0] > 0.1 and lengths[-1] > 0.1)
    head = poly[0] - (poly[1] - poly[0]) / lengths[0] * 1e4
    tail = poly[-1] + (poly[-1] - poly[-2]) / lengths[-1] * 1e4
    line = LineString(np.vstack([head, poly, tail]).astype(np.float64))
    pts = np.array(points, dtype=np.float32)
    dist, arc = polyline_projection(pts[None], poly[None])
    for k, (x, y) in enumerate(pts):
        assert dist[0, k] == pytest.approx(line.distance(Point(float(x), float(y))), abs=2e-3)
        # the arc length names a point of the (extended) polyline at that distance
        assert line.interpolate(float(arc[0, k]) + 1e4).distance(Point(float(x), float(y))) == pytest.approx(
            float(dist[0, k]), abs=5e-3
        )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), speed=st.floats(0.0, 20.0))
def test_compiled_bicycle_rollout_is_the_bicycle_step_iterated(seed, speed):
    from planning.kinematics import bicycle_rollout, bicycle_step

    vehicle = EgoVehicle()
    actions = np.random.default_rng(seed).uniform(-1, 1, (2, 3, 12, 2)).astype(np.float32)
    xy, yaw, v = bicycle_rollout(actions, np.array([speed, 0.5 * speed], np.float32), vehicle, DT)
    x, y, psi = np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3))
    vel = np.broadcast_to(np.array([speed, 0.5 * speed])[:, None], (2, 3)).copy()
    for h in range(12):
        x, y, psi, vel = bicycle_step(x, y, psi, vel, actions[:, :, h, 0], actions[:, :, h, 1], vehicle, DT)
        np.testing.assert_allclose(xy[:, :, h, 0], x, atol=1e-3)
        np.testing.assert_allclose(xy[:, :, h, 1], y, atol=1e-3)
        np.testing.assert_allclose(yaw[:, :, h], psi, atol=1e-4)
        np.testing.assert_allclose(v[:, :, h], vel, atol=1e-4)


def test_stop_line_memory_holds_red_lights_and_a_stop_sign_until_served():
    from planning.stop_lines import StopLineMemory

    def ego(d, red=0.0, sign=0.0, speed=5.0):
        e = np.zeros((1, EGO_DIM), dtype=np.float32)
        e[0, EgoFeature.STOP_DISTANCE], e[0, EgoFeature.SPEED] = d, speed
        e[0, EgoFeature.STOP_IS_RED], e[0, EgoFeature.STOP_IS_SIGN] = red, sign
        return e

    mem = StopLineMemory(1, front=2.3)
    assert mem.update(ego(50.0))[0] == np.inf  # nothing ahead (the cap)
    assert mem.update(ego(20.0, red=1.0))[0] == 20.0  # a red light: held
    assert mem.update(ego(18.0))[0] == np.inf  # green: free
    assert mem.update(ego(15.0, sign=1.0))[0] == 15.0  # a stop sign: held …
    assert mem.update(ego(8.0, sign=1.0, speed=0.0))[0] == 8.0  # … stopped, but 5.7 m away: still held
    assert mem.update(ego(6.0, sign=1.0, speed=0.05))[0] == np.inf  # stopped 3.7 m before it: served
    assert mem.update(ego(4.0, sign=1.0))[0] == np.inf  # and stays served while driving on
    assert mem.update(ego(30.0, sign=1.0))[0] == 30.0  # the next stop sign: held again
    mem.reset(1, [0])
    assert mem.update(ego(6.0, sign=1.0, speed=0.0))[0] == np.inf  # served at once after a reset


def test_patience_raises_the_worth_of_progress_with_the_time_stood():
    """The standstill clock counts the seconds of an ongoing standstill per world and restarts on
    moving or a reset; with ``patience`` 10 s the progress term is worth ``1 + waited / 10`` times
    as much, up to ``max_gain``; ``patience`` 0 (the default) leaves it alone."""
    import dataclasses

    from planning.stop_lines import StandstillClock

    def ego(*speeds):
        e = np.zeros((len(speeds), EGO_DIM), dtype=np.float32)
        e[:, EgoFeature.SPEED] = speeds
        return e

    clock = StandstillClock(2)
    for _ in range(50):
        waited = clock.update(ego(0.0, 0.0), DT)
    np.testing.assert_allclose(waited, [5.0, 5.0], rtol=1e-5)
    np.testing.assert_allclose(clock.update(ego(0.1, 2.0), DT), [5.1, 0.0], rtol=1e-5)  # 0.1 m/s: still
    clock.reset(2, [0])
    np.testing.assert_allclose(clock.update(ego(0.0, 0.0), DT), [0.1, 0.1], rtol=1e-5)

    f, actions = futures(progress=pair(1.0, 0.5)), np.zeros((1, 2, H, 2))
    base = only("progress")(f, actions, context())["progress"]
    for waited, gain in ((0.0, 1.0), (5.0, 1.5), (15.0, 2.5), (60.0, 3.0)):
        ctx = dataclasses.replace(context(), waited=np.array([waited], np.float32))
        cost = only("progress", patience=10.0)(f, actions, ctx)["progress"]
        np.testing.assert_allclose(cost, gain * base, rtol=1e-5)
        np.testing.assert_allclose(only("progress")(f, actions, ctx)["progress"], base, rtol=1e-6)


def test_stop_line_costs_travel_past_the_held_line_only():
    """Two sequences at 1 m per step for 10 steps: one held line 8 m ahead (the front 2.3 m and a
    1 m margin leave 4.7 m to travel) costs the steps beyond 4.7 m; a stopped sequence costs
    nothing; no held line costs nothing."""
    costs = only("stop_line", margin=1.0, weight=1.0)
    prog = np.stack([np.ones(H), np.zeros(H)]).astype(np.float32)
    ctx = context()
    held = CostContext(**{**ctx.__dict__, "stop_line": np.array([8.0], np.float32), "front": 2.3})
    cost = costs(futures(progress=prog), np.zeros((1, 2, H, 2)), held)["stop_line"][0]
    over = np.maximum(np.arange(1, H + 1) - 4.7, 0.0)
    np.testing.assert_allclose(cost[0], ((over + over**2) * 0.97 ** np.arange(H)).sum(), rtol=1e-5)
    assert cost[1] == 0.0
    free = CostContext(**{**ctx.__dict__, "stop_line": np.array([np.inf], np.float32)})
    assert np.all(costs(futures(progress=prog), np.zeros((1, 2, H, 2)), free)["stop_line"] == 0.0)
