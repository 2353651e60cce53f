"""Named cost terms on imagined futures and the route geometry, each weighted from config.

Every term reads a :class:`planning.futures.Futures` ``[B, N, H]``, the candidate actions
``[B, N, H, 2]`` and a :class:`CostContext` (what the ego vector says about the present: route
targets, speed limit, previous action, distance left on the route; nothing privileged) and returns
an unweighted ``[B, N]`` cost. :class:`Costs` multiplies by each term's ``weight`` (``agent.costs.
<name>.weight``), skips terms of weight 0 and returns ``{name: [B, N]}``: the optimisers sum them,
the planner exposes them for logging. Per-step quantities are summed over the horizon with the
discount ``γ^h``.

A new task is a new term, no retraining: :data:`TERMS` maps names to functions; ``stop_at`` and
``pedestrian_margin`` are two such tasks the world model was never trained for (off by default).

Terms (lower is better):

- ``collision``, ``off_road``, ``red_light``, ``stop_sign``: the discounted expected number of
  steps with the event, ``Σ γ^h p_h``;
- ``progress``: minus the discounted route progress, each step's progress counted only while the
  ego has not yet collided (``Π_{j<h}(1 - p_collision_j)``: a crash ends the episode, so distance
  "gained" after it is worth nothing), as a share of the discounted distance the ego could cover
  within its limits (:func:`reachable_distance` from the context's speed, limit, ``max_accel`` and
  ``dt``; every rollout source gets the same unit), times ``1 + waited / patience`` (up to
  ``max_gain``) after a standstill of ``waited`` seconds where ``patience`` is set. The share makes a standing car's first metres worth as much as a
  cruising car's last: in metres, 2 m gained from a standstill in 1.5 s weighed less than the
  comfort and route costs of setting off, and the planner stayed stopped behind a gone obstacle;
- ``route``: squared distance of the predicted position to the polyline of the route targets
  (extended behind the first and beyond the last target) [m²];
- ``lanes``: route progress made outside the route's lanes [m], what the Leaderboard's
  OutsideRouteLanesTest takes off the Driving Score: each step's progress counts by how far the
  predicted centre lies beyond ``half_width`` of the route polyline (a linear ramp ``ramp`` wide
  ending there, so the optimiser feels it coming). It lets the planner tell a needed pass (blocked
  in its lane: little progress otherwise) from an unneeded lane change (a few metres gained at the
  price of every metre driven beside the route), which the squared ``route`` term cannot: light, it
  lets the planner wander; heavy, it never passes a parked car;
- ``speed_limit``: squared excess of the predicted speed over the limit [(m/s)²];
- ``proximity``: shortfall of the free gap ahead below ``min_gap + headway · speed``, as a share of
  that desired gap;
- ``comfort``: squared change of the normalised accel (jerk) plus ``steer_rate_scale`` × squared
  change of the steer, from the previous action on (braking at a standstill counts as 0);
- ``stop_line``: overshoot (linear + squared) of the predicted front bumper, plus ``margin``, past
  the stop line the context holds (a red or yellow light; a stop sign until the ego has stopped
  at it: :class:`planning.stop_lines.StopLineMemory`), read from the ego vector; with the
  ``red_light`` and ``stop_sign`` heads, what keeps the planner behind a line it may not cross [m];
- ``stop_at``: overshoot past a stop point ``before_end`` metres before the route's end (linear +
  squared) [m];
- ``pedestrian_margin``: squared shortfall of the pedestrian distance below ``margin``, as a share
  of the margin (``Futures.pedestrian``, else the nearest actor of any kind);
- ``disagreement``: the discounted sum of the ensemble's spread of the per-step collision
  probability, ``Σ γ^h σ_h`` (``Futures.collision_spread``; zero for a single model): the price of a
  plan whose risk the members cannot agree on (``planning.ensemble``).

Letters: ``B`` worlds, ``N`` sequences, ``H`` horizon, ``R`` route targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planning.futures import Futures
from planning.route_geometry import polyline_distance, polyline_projection
from sim_bridge.api import NUM_ROUTE_TARGETS, EgoFeature, EgoVehicle

ROUTE_X = [int(EgoFeature.ROUTE_X0) + 2 * k for k in range(NUM_ROUTE_TARGETS)]
ROUTE_Y = [x + 1 for x in ROUTE_X]
#: below this speed the ego counts as standing [m/s]
STANDSTILL = 0.1


@dataclass(frozen=True)
class CostContext:
    """The present, per world, as the ego vector tells it (``from_ego``)."""

    route: np.ndarray
    """``[B, R, 2]`` route targets in the ego frame [m] (x forward, y left)."""
    speed_limit: np.ndarray
    """``[B]`` [m/s]."""
    speed: np.ndarray
    """``[B]`` the ego's speed now [m/s]."""
    prev_action: np.ndarray
    """``[B, 2]`` the action executed last (normalised accel, steer)."""
    route_remaining: np.ndarray
    """``[B]`` distance left along the route [m]."""
    dt: float = 0.1
    """Decision period [s] (for the progress term's reachable distance)."""
    max_accel: float = EgoVehicle.max_accel
    """The ego's acceleration at full throttle [m/s²] (``EgoVehicle.max_accel``)."""
    stop_line: np.ndarray | None = None
    """``[B]`` centre-to-line distance of the stop line to hold [m] (``inf`` or ``None``: none)."""
    front: float = EgoVehicle.length / 2
    """The ego's centre-to-front-bumper distance [m]."""
    waited: np.ndarray | None = None
    """``[B]`` seconds the ego has stood so far (``StandstillClock.update``; ``None``: 0)."""

    @classmethod
    def from_ego(
        cls,
        ego: np.ndarray,
        dt: float = 0.1,
        max_accel: float = EgoVehicle.max_accel,
        stop_line: np.ndarray | None = None,
        front: float = EgoVehicle.length / 2,
        waited: np.ndarray | None = None,
    ) -> CostContext:
        """From ``Observation.ego [B, E]`` (:class:`EgoFeature` columns), the decision period
        ``dt`` [s], the ego's ``max_accel`` [m/s²] and half length ``front`` [m] (``AgentInfo.dt``,
        ``AgentInfo.ego``), the stop line to hold (``StopLineMemory.update``) and the seconds stood
        (``StandstillClock.update``)."""
        ego = np.asarray(ego, dtype=np.float32)
        return cls(
            stop_line=stop_line,
            waited=waited,
            front=float(front),
            route=np.stack([ego[:, ROUTE_X], ego[:, ROUTE_Y]], axis=-1),
            speed_limit=ego[:, EgoFeature.SPEED_LIMIT],
            speed=ego[:, EgoFeature.SPEED],
            prev_action=ego[:, [EgoFeature.PREV_ACCEL, EgoFeature.PREV_STEER]],
            route_remaining=ego[:, EgoFeature.ROUTE_REMAINING],
            dt=float(dt),
            max_accel=float(max_accel),
        )


def reachable_distance(
    speed: np.ndarray, speed_limit: np.ndarray, max_accel: float, dt: float, disc: np.ndarray
) -> np.ndarray:
    """``[B]`` the discounted distance ``Σ γ^h v_h dt`` of accelerating at ``max_accel`` [m/s²] from
    ``speed [B]`` up to the limit (or holding the speed when above it) over the ``H`` steps of the
    discounts ``disc [H]``, each ``dt`` [s], floored at 1 m: the unit of the progress term."""
    t = dt * np.arange(1, len(disc) + 1)
    v = np.minimum(speed[:, None] + max_accel * t, np.maximum(speed_limit, speed)[:, None])
    return np.maximum((v * dt) @ disc, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------ settings


@dataclass
class TermConfig:
    """A term with a weight only."""

    weight: float = 1.0
    """Multiplies the term (0 switches it off)."""


@dataclass
class ProgressConfig:
    """``progress``: route progress, worth more the longer the ego has stood (``patience``)."""

    weight: float = 12.0
    """Per share of the reachable distance (cruising at 10 m/s that is ~12.5 discounted metres,
    so 12 weighs a metre about as 1 per metre would); 0 switches it off."""
    patience: float = 0.0
    """Seconds of standstill after which the weight has doubled, growing linearly up to
    ``max_gain`` times (0: off). A stopped ego that a 1 h model's faint risks hold back (an
    oncoming car waiting for it to clear the junction, a parked car it stands beside mid-pass)
    waits for a time-out otherwise: standing has no predicted cost at all, and a metre gained
    from a standstill is a small share of what moving could gain. Certain risks (a forecast walker
    or vehicle in the way, a held stop line) outweigh any gain."""
    max_gain: float = 3.0
    """The most the weight is multiplied by after a long standstill."""


@dataclass
class ProximityConfig:
    """``proximity``: keep a speed-dependent gap to the actor ahead."""

    weight: float = 5.0
    """Multiplies the term (0 switches it off)."""
    min_gap: float = 3.0
    """Desired free gap at standstill [m]."""
    headway: float = 1.0
    """Desired time gap: the desired gap grows by ``headway · speed`` [s]."""


@dataclass
class ComfortConfig:
    """``comfort``: smooth accel and steer."""

    weight: float = 1.0
    """Multiplies the term (0 switches it off)."""
    steer_rate_scale: float = 4.0
    """Weight of the squared steer change relative to the squared accel change."""


@dataclass
class LanesConfig:
    """``lanes``: progress made outside the route's lanes, as the Leaderboard scores it."""

    weight: float = 1.0
    """Multiplies the term (0 switches it off); per metre of progress outside the route lanes
    (the ``progress`` term at its default pays ~1 per metre gained while cruising, so passing
    pays only where staying in lane gains less than the metres driven beside it)."""
    half_width: float = 1.75
    """Distance of the centre from the route polyline at which the ego leaves its lane: half a
    3.5 m lane [m]."""
    ramp: float = 0.5
    """Width of the ramp from 0 to 1 that ends at ``half_width`` [m]."""


@dataclass
class StopLineConfig:
    """``stop_line``: stay behind a red light's or an unserved stop sign's line."""

    weight: float = 20.0
    """Multiplies the term (0 switches it off)."""
    margin: float = 1.0
    """Where the front bumper should stop, before the line [m]."""


@dataclass
class StopAtConfig:
    """``stop_at`` (a task): come to rest at a point along the route."""

    weight: float = 0.0
    """Multiplies the term (0: off; 20 stops within a few decimetres of the point)."""
    before_end: float | None = None
    """The stop point, as the distance before the route's end [m] (``None``: off)."""


@dataclass
class PedestrianMarginConfig:
    """``pedestrian_margin`` (a task): keep clear of pedestrians."""

    weight: float = 0.0
    """Multiplies the term (0: off)."""
    margin: float = 3.0
    """Distance to keep from every pedestrian [m]."""


@dataclass
class CostsConfig:
    """Weights and settings of every cost term (``agent.costs.<term>.weight`` …)."""

    discount: float = 0.97
    """Per-step discount ``γ`` of the horizon sums (later predictions are less certain)."""
    collision: TermConfig = field(default_factory=lambda: TermConfig(100.0))
    off_road: TermConfig = field(default_factory=lambda: TermConfig(40.0))
    red_light: TermConfig = field(default_factory=lambda: TermConfig(40.0))
    stop_sign: TermConfig = field(default_factory=lambda: TermConfig(20.0))
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    route: TermConfig = field(default_factory=lambda: TermConfig(0.3))
    lanes: LanesConfig = field(default_factory=LanesConfig)
    speed_limit: TermConfig = field(default_factory=lambda: TermConfig(1.0))
    proximity: ProximityConfig = field(default_factory=ProximityConfig)
    comfort: ComfortConfig = field(default_factory=ComfortConfig)
    stop_line: StopLineConfig = field(default_factory=StopLineConfig)
    stop_at: StopAtConfig = field(default_factory=StopAtConfig)
    pedestrian_margin: PedestrianMarginConfig = field(default_factory=PedestrianMarginConfig)
    disagreement: TermConfig = field(default_factory=lambda: TermConfig(0.0))
    """Per discounted step of one standard deviation of the ensemble's collision probability
    (0: off; only an ensemble, ``agent.ensemble``, has a spread)."""


# ------------------------------------------------------------------------------------ terms

Term = Callable[[Futures, np.ndarray, CostContext, object, np.ndarray], np.ndarray]
"""``(futures, actions [B, N, H, 2], context, term config, discount [H]) -> [B, N]`` unweighted."""


def _event(name: str) -> Term:
    def term(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
        return getattr(f, name) @ disc

    term.__doc__ = f"Discounted expected number of steps with a {name} event."
    return term


def progress(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Minus the discounted progress gained before a (predicted) collision, as a share of the
    reachable distance."""
    survive = np.cumprod(1.0 - f.collision, axis=-1)
    survive_before = np.concatenate([np.ones_like(survive[..., :1]), survive[..., :-1]], axis=-1)
    reach = reachable_distance(ctx.speed, ctx.speed_limit, ctx.max_accel, ctx.dt, disc)
    if isinstance(cfg, ProgressConfig) and cfg.patience > 0 and ctx.waited is not None:
        gain = np.minimum(1.0 + ctx.waited / cfg.patience, max(cfg.max_gain, 1.0)).astype(np.float32)
        reach = reach / gain
    return -((f.progress * survive_before) @ disc) / reach[:, None]


def route_deviation(
    f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray
) -> np.ndarray:
    """Discounted squared distance of the predicted positions to the route-target polyline [m²]."""
    return (polyline_distance(f.xy, ctx.route) ** 2) @ disc


def lanes(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Discounted route progress made outside the route's lanes [m]: each step's progress times
    the share of the ramp ``[half_width - ramp, half_width]`` the predicted centre has crossed."""
    assert isinstance(cfg, LanesConfig)
    d = polyline_distance(f.xy, ctx.route)  # [B, N, H]
    ramp = max(float(cfg.ramp), 1e-3)
    outside = np.clip((d - (float(cfg.half_width) - ramp)) / ramp, 0.0, 1.0)
    return (np.maximum(f.progress, 0.0) * outside) @ disc


def speed_limit(
    f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray
) -> np.ndarray:
    """Discounted squared excess speed over the limit [(m/s)²]."""
    excess = np.maximum(f.speed - ctx.speed_limit[:, None, None], 0.0)
    return (excess**2) @ disc


def proximity(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Discounted relative shortfall of the gap ahead below ``min_gap + headway · speed``."""
    assert isinstance(cfg, ProximityConfig)
    desired = cfg.min_gap + cfg.headway * np.maximum(f.speed, 0.0)
    gap = np.nan_to_num(f.gap_ahead, nan=np.inf, posinf=np.inf)
    return (np.maximum(desired - gap, 0.0) / desired) @ disc


def comfort(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Discounted squared change of accel plus scaled squared change of steer (normalised units).
    Braking at a standstill does nothing, so it counts as an accel of 0 (else a car that stopped
    braking would pay for releasing the brake, and stay stopped)."""
    assert isinstance(cfg, ComfortConfig)
    B, N = actions.shape[:2]
    start_speed = np.concatenate(
        [np.broadcast_to(ctx.speed[:, None, None], (B, N, 1)), f.speed[..., :-1]], axis=-1
    )
    accel = np.where((start_speed < STANDSTILL) & (actions[..., 0] < 0.0), 0.0, actions[..., 0])
    prev = ctx.prev_action.astype(np.float32).copy()
    prev[(ctx.speed < STANDSTILL) & (prev[:, 0] < 0.0), 0] = 0.0
    d_accel = np.diff(
        np.concatenate([np.broadcast_to(prev[:, None, None, 0], (B, N, 1)), accel], axis=-1), axis=-1
    )
    d_steer = np.diff(
        np.concatenate([np.broadcast_to(prev[:, None, None, 1], (B, N, 1)), actions[..., 1]], axis=-1),
        axis=-1,
    )
    return (d_accel**2 + cfg.steer_rate_scale * d_steer**2) @ disc


def stop_line(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Discounted overshoot (linear + squared) of the predicted travel past the point where the
    front bumper is ``margin`` before the held stop line [m]; zero where no line is held."""
    assert isinstance(cfg, StopLineConfig)
    if ctx.stop_line is None:
        return np.zeros(f.shape[:2], dtype=np.float32)
    limit = np.nan_to_num(ctx.stop_line - ctx.front - float(cfg.margin), posinf=1e6)  # [B]
    travelled = np.cumsum(np.maximum(f.progress, 0.0), axis=-1)
    over = np.maximum(travelled - limit[:, None, None], 0.0)
    return (over + over**2) @ disc


def stop_at(f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray) -> np.ndarray:
    """Discounted overshoot (linear + squared) past the stop point ``before_end`` m before the
    route's end [m]; zero when no point is set."""
    assert isinstance(cfg, StopAtConfig)
    if cfg.before_end is None:
        return np.zeros(f.shape[:2], dtype=np.float32)
    distance = ctx.route_remaining - float(cfg.before_end)  # [B] to the stop point now
    travelled = np.cumsum(np.maximum(f.progress, 0.0), axis=-1)
    over = np.maximum(travelled - distance[:, None, None], 0.0)
    return (over + over**2) @ disc


def pedestrian_margin(
    f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray
) -> np.ndarray:
    """Discounted squared relative shortfall of the pedestrian distance below ``margin``."""
    assert isinstance(cfg, PedestrianMarginConfig)
    distance = f.pedestrian if f.pedestrian is not None else f.nearest
    distance = np.nan_to_num(distance, nan=np.inf, posinf=np.inf)
    short = np.maximum(cfg.margin - distance, 0.0) / cfg.margin
    return (short**2) @ disc


def disagreement(
    f: Futures, actions: np.ndarray, ctx: CostContext, cfg: object, disc: np.ndarray
) -> np.ndarray:
    """Discounted spread of the ensemble members' per-step collision probability (0 without one)."""
    if f.collision_spread is None:
        return np.zeros(f.shape[:2], dtype=np.float32)
    return f.collision_spread @ disc


#: term names → functions (the order of the returned dict)
TERMS: dict[str, Term] = {
    "collision": _event("collision"),
    "off_road": _event("off_road"),
    "red_light": _event("red_light"),
    "stop_sign": _event("stop_sign"),
    "progress": progress,
    "route": route_deviation,
    "lanes": lanes,
    "speed_limit": speed_limit,
    "proximity": proximity,
    "comfort": comfort,
    "stop_line": stop_line,
    "stop_at": stop_at,
    "pedestrian_margin": pedestrian_margin,
    "disagreement": disagreement,
}


class Costs:
    """The weighted terms of a :class:`CostsConfig`: ``costs(futures, actions, context) ->
    {name: [B, N]}``; :meth:`bind` makes the ``cost_fn(rollout, actions)`` an optimiser takes."""

    def __init__(self, config: CostsConfig | None = None) -> None:
        self.config = config or CostsConfig()
        if not 0.0 < self.config.discount <= 1.0:
            raise ValueError(f"costs.discount={self.config.discount} must be in (0, 1]")
        self.active = [name for name in TERMS if float(getattr(self.config, name).weight) != 0.0]

    def __call__(self, futures: Futures, actions: np.ndarray, context: CostContext) -> dict[str, np.ndarray]:
        H = futures.shape[2]
        disc = (self.config.discount ** np.arange(H)).astype(np.float32)
        out = {}
        for name in self.active:
            cfg = getattr(self.config, name)
            out[name] = (float(cfg.weight) * TERMS[name](futures, actions, context, cfg, disc)).astype(
                np.float32
            )
        return out

    def bind(self, context: CostContext) -> Callable[[Futures, np.ndarray], dict[str, np.ndarray]]:
        """``cost_fn(futures, actions)`` for the present ``context``."""
        return lambda futures, actions: self(futures, actions, context)


__all__ = [
    "TERMS",
    "ComfortConfig",
    "CostContext",
    "Costs",
    "CostsConfig",
    "LanesConfig",
    "PedestrianMarginConfig",
    "ProximityConfig",
    "StopAtConfig",
    "StopLineConfig",
    "TermConfig",
    "polyline_distance",
    "polyline_projection",
    "reachable_distance",
]
