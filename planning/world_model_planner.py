"""The world-model planner: model-predictive control through the learned model's imagined futures.

Each decision, for all ``B`` worlds at once: *encode* the observations to latents ``z0 [B, D]``;
*plan* with the configured optimiser (CEM or MPPI, ``planning.optim``) whose ``rollout_fn`` rolls
``[B, N, H, 2]`` action sequences out in the model in one batched call and reads its heads
(:class:`planning.futures.ModelFutures`; with ``ensemble`` checkpoints, the members' mean future
and their spread, :class:`planning.ensemble.EnsembleFutures`), whose ``cost_fn`` is the weighted named terms of
``planning.costs`` on those futures and the ego vector's route, and whose first-iteration
candidates include route-following proposals (``planning.proposals``); *execute* the first action
of the best plan. The plan, shifted by one step, warm-starts the next decision of the same world
(a reset clears the restarted worlds). With ``geometry`` set (the ``drive`` presets), what the
observation shows for certain replaces or joins the model's guesses before the costs read the
futures: the road's edge and static obstacles from the BEV, walkers and vehicles from the
object list at their observed velocity (``planning.bev_geometry``). The planner keeps two small
memories per world: the stop line it holds (``planning.stop_lines.StopLineMemory``) and how long
the ego has stood (``StandstillClock``, for the progress term's ``patience``).

Errors are never actions: a NaN or an infinity anywhere in the model's output (latents, heads) is
an :class:`planning.base.AgentError` naming the worlds.

The optional safety shield (``shield.enabled``, off by default) brakes fully when the object list
shows an actor in the ego's corridor closer than the stopping distance plus a margin; it counts
its overrides (:attr:`WorldModelPlanner.shield_overrides`).

Logging stays outside: the last decision's per-term costs are :attr:`WorldModelPlanner.last_costs`
(``{term: [B]}``) and go to :attr:`WorldModelPlanner.on_decision` when a callback is set; what it
imagined (every candidate's future ego positions and costs) is :attr:`WorldModelPlanner.last_decision`.

Letters: ``B`` worlds, ``N`` sequences, ``P`` proposals, ``H`` horizon, ``D`` latent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planning import bev_geometry
from planning.base import Agent, AgentError
from planning.bev_geometry import GeometryConfig
from planning.costs import CostContext, Costs, CostsConfig, polyline_projection
from planning.decision import Decision, decision_of
from planning.ensemble import REDUCTIONS
from planning.futures import Futures, NonFiniteModelOutput
from planning.kinematics import bicycle_rollout
from planning.optim.base import Plan, SamplerConfig
from planning.proposals import ProposalConfig, route_proposals
from planning.stop_lines import StandstillClock, StopLineMemory
from sim_bridge.api import EgoFeature, Observation


@dataclass
class ShieldConfig:
    """The safety shield: brake on an imminent collision read from the object list."""

    enabled: bool = False
    """Override the planner with a full brake when the free gap ahead is below the stopping
    distance ``v² / (2 · decel) + margin`` (off by default: the planner is measured alone)."""
    decel: float = 6.0
    """Deceleration assumed for the stopping distance [m/s²] (the ego brakes at up to 8)."""
    margin: float = 2.0
    """Gap kept on top of the stopping distance [m]."""


@dataclass
class PlannerConfig:
    """Settings of :class:`WorldModelPlanner` (``drive/conf/agent/planner.yaml``)."""

    checkpoint: str | None = None
    """World-model checkpoint written by ``drive train`` (``best.pt`` or ``last.pt``); required."""
    ensemble: list[str] = field(default_factory=list)
    """More checkpoints planned with together with ``checkpoint`` as one ensemble (each trained
    on the same sensor setup, typically the same data from another ``optim.seed``): costs read the
    members' mean future, and ``costs.disagreement`` prices their spread (``planning.ensemble``).
    Empty: ``checkpoint`` alone. Measured on the exam with three seeds of one 1 h hazards collection
    (``planner_tuned``): DS 70.0 against the members' 78.4 / 60.0 / 69.3, at-fault pedestrian
    collisions 4 against 0 / 22 / 15 (README, "Ensembles")."""
    ensemble_reduce: str = field(default="mean", metadata={"choices": REDUCTIONS})
    """How the members' futures combine: ``mean`` or element-wise ``median`` (robust to one
    member far off the others)."""
    device: str = "cpu"
    """Torch device of the model."""
    threads: int = 1
    """Intra-op torch threads (0: torch's default). One thread is fastest for planning-sized
    batches on a shared CPU (``world_model.fast_rollout``)."""
    optimizer: str = "cem"
    """``cem`` or ``mppi`` (``planning.optim``)."""
    optim: SamplerConfig = field(default_factory=lambda: SamplerConfig(samples=64, iterations=2))
    """Samples, iterations, horizon, noise of the optimiser. 64 × 2 (16 of them proposals then, 21
    with ``proposals.hold_offset``) scored as well as 128 × 3 on the exam (seed 100: DS 61.7
    against 58.8 with a 1 h model) at half the latency, which keeps the exam ≥ 20× real time on
    2 cores (``drive bench plan``, ``drive eval``)."""
    costs: CostsConfig = field(default_factory=CostsConfig)
    """Weights and settings of the cost terms (``agent.costs.<term>.weight=…``)."""
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    """Route-following prior sequences scored in the first iteration."""
    use_proposals: bool = True
    """Mix the proposals with the samples (off: samples and warm start only)."""
    ego_motion: str = "kinematic"
    """Where the ego's own future poses, speeds and route progress come from: ``kinematic`` (the
    ego's bicycle from the actions, progress along the route targets; the model still gives the
    events and proximities) or ``model`` (its motion and progress heads). Measured on the 1 h
    exploration model (2000 steps): holding steer +1 for 1.5 s from 8 m/s, the motion head
    predicts a heading change of 0.30 rad against the bicycle's 2.93 (the explorer rarely steers
    hard, so the model learned what that driver did more than what steering does); on the smoke
    suite ``model`` left the road in 2 of 4 episodes (DS 44.6), ``kinematic`` never (DS 57.5)."""
    event_window: int | None = None
    """Event-head window read along the rollout [steps] (``None``: the model's longest;
    ``planning.futures`` explains why)."""
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    """What is read from the observation instead of, or beside, the model: the road's edge
    (``geometry.off_road=bev``) and static obstacles (``geometry.statics=bev``) from the BEV,
    walkers and vehicles (``geometry.pedestrians=objects``, ``geometry.vehicles=objects``) from the
    object list, at the imagined ego box (``planning.bev_geometry``)."""
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    seed: int = 0
    """Mixed with the factory's seed into the optimiser's generators."""


class WorldModelPlanner(Agent):
    """Encode → plan → first action, for ``B`` worlds (see the module doc).

    ``model``: a :class:`world_model.model.WorldModel` to plan with instead of loading
    ``config.checkpoint`` (tests, benchmarks), or a list of them: an ensemble
    (:class:`planning.ensemble.EnsembleFutures`; ``config.ensemble`` adds loaded members).
    """

    name = "planner"

    def __init__(self, config: PlannerConfig | None = None, seed: int = 0, model: Any = None) -> None:
        import torch

        from planning.ensemble import EnsembleFutures
        from planning.futures import ModelFutures
        from planning.optim import make_optimizer

        self.config = cfg = config or PlannerConfig()
        if cfg.use_proposals and cfg.proposals.count > cfg.optim.samples - 1:
            raise ValueError(
                f"{cfg.proposals.count} proposals need agent.optim.samples >= {cfg.proposals.count + 1} "
                f"(got {cfg.optim.samples}); raise it, trim agent.proposals, or set agent.use_proposals=false"
            )
        if cfg.ego_motion not in ("model", "kinematic"):
            raise ValueError(f"ego_motion={cfg.ego_motion!r}; allowed: model, kinematic")
        cfg.geometry.check()
        if cfg.threads > 0:
            torch.set_num_threads(int(cfg.threads))
        if model is None:
            if not cfg.checkpoint:
                raise ValueError(
                    "the planner needs a world model: pass agent.checkpoint=<best.pt of `drive train`> "
                    "(train one with `drive collect` then `drive train data=…`)"
                )
            from world_model.train import load_model

            model = load_model(cfg.checkpoint, cfg.device)
        members = list(model) if isinstance(model, list | tuple) else [model]
        if cfg.ensemble:
            from world_model.train import load_model

            members += [load_model(path, cfg.device) for path in cfg.ensemble]
        self.model = members[0].eval()
        """The (first) world model: its BEV shape and ego size are what the planner expects."""
        self.source: ModelFutures | EnsembleFutures = ModelFutures(self.model, cfg.event_window)
        if len(members) > 1:
            self.source = EnsembleFutures([m.eval() for m in members], cfg.event_window, cfg.ensemble_reduce)
        self.optimizer = make_optimizer(cfg.optimizer, cfg.optim, seed=int(cfg.seed) * 1_000_003 + int(seed))
        self.stop_lines = StopLineMemory()
        """Which stop line each world holds (a red light; a stop sign until served)."""
        self.standstill = StandstillClock()
        """How long each world's ego has stood (the progress term's ``patience``)."""
        self.costs = Costs(cfg.costs)
        self.last_costs: dict[str, np.ndarray] = {}
        """Per-term costs ``{term: [B]}`` of the plans chosen at the last decision."""
        self.last_plan: Plan | None = None
        """The last decision's :class:`planning.optim.base.Plan` (actions ``[B, H, 2]``)."""
        self.on_decision: Callable[[dict[str, np.ndarray]], None] | None = None
        """Called with :attr:`last_costs` after every decision (the pipeline logs them)."""
        self.shield_overrides = 0
        """Decisions (summed over worlds) where the shield replaced the plan with a brake."""
        self.shield_active = np.zeros(0, dtype=bool)
        """``[B]`` whether the shield overrode each world at the last decision."""
        self._pending_seeds: dict[int, int] = {}
        self._cost_sums: dict[str, np.ndarray] = {}  # per term [B], summed over decisions
        self._decisions = np.zeros(0, dtype=np.int64)  # [B] decisions this episode
        self._overrides = np.zeros(0, dtype=np.int64)  # [B] shield overrides this episode

    # ------------------------------------------------------------------ episodes

    def seed(self, worlds: Sequence[int], seeds: Sequence[int]) -> None:
        """Seed the optimiser's generators of ``worlds`` at their next reset."""
        super().seed(worlds, seeds)
        for w, s in zip(worlds, seeds, strict=True):
            self._pending_seeds[int(w)] = int(s)

    def _reset(self, worlds: list[int]) -> None:
        B = self.info.num_worlds
        self.optimizer.reset(B, worlds)
        self.stop_lines.front = self.info.ego.length / 2
        self.stop_lines.reset(B, worlds)
        self.standstill.reset(B, worlds)
        seeded = [w for w in worlds if w in self._pending_seeds]
        if seeded:
            self.optimizer.seed(seeded, [self._pending_seeds.pop(w) for w in seeded])
        if len(self.shield_active) != B:
            self.shield_active = np.zeros(B, dtype=bool)
            self._decisions = np.zeros(B, dtype=np.int64)
            self._overrides = np.zeros(B, dtype=np.int64)
            self._cost_sums = {}
        self.shield_active[worlds] = False
        self._decisions[worlds] = 0
        self._overrides[worlds] = 0
        for sums in self._cost_sums.values():
            sums[worlds] = 0.0

    def episode_stats(self, world: int) -> dict[str, float]:
        """``plan/cost_<term>``: the term's mean over the episode's decisions (cost of the chosen
        plan); ``plan/decisions``; ``plan/shield_overrides``."""
        n = int(self._decisions[world]) if world < len(self._decisions) else 0
        stats = {f"plan/cost_{k}": float(v[world]) / max(n, 1) for k, v in self._cost_sums.items()}
        stats["plan/decisions"] = float(n)
        stats["plan/shield_overrides"] = float(self._overrides[world]) if n else 0.0
        return stats

    @property
    def last_decision(self) -> Decision | None:
        """What the last decision imagined (:class:`planning.decision.Decision`: the last round's
        candidates with their imagined ego positions and per-term costs, the chosen plan's future);
        built from :attr:`last_plan` on request, ``None`` before the first decision."""
        return None if self.last_plan is None else decision_of(self.last_plan)

    # ------------------------------------------------------------------ decisions

    def _act(self, obs: Observation) -> np.ndarray:
        import torch

        B = obs.num_worlds
        shape = tuple(obs.bev.shape[1:])
        if shape != self.model.bev_shape or obs.ego.shape[1] != self.model.ego_dim:
            raise AgentError(
                f"the world model expects BEV {self.model.bev_shape} and ego [{self.model.ego_dim}], the "
                f"simulator gives {shape} and [{obs.ego.shape[1]}]: use a checkpoint trained on this sensor setup"
            )
        # --- encode
        try:
            z0 = self.source.encode(bev_geometry.model_input(obs, self.config.geometry), obs.ego)
        except ValueError as e:  # a non-finite ego vector
            raise AgentError(f"planner: cannot encode the observation: {e}") from e
        latents = z0 if isinstance(z0, list) else [z0]  # an ensemble encodes once per member
        finite = torch.stack([torch.isfinite(z).all(dim=1) for z in latents]).all(dim=0)
        bad = np.flatnonzero(~finite.numpy()).tolist()
        if bad:
            raise AgentError(f"planner: the world model's latent is NaN/inf for world(s) {bad}")

        vehicle = self.info.ego
        context = CostContext.from_ego(obs.ego, self.info.dt, vehicle.max_accel,
                                       self.stop_lines.update(obs.ego), vehicle.length / 2,
                                       self.standstill.update(obs.ego, self.info.dt))  # fmt: skip

        def rollout_fn(actions: np.ndarray) -> Futures:
            try:
                futures = self.source.futures(z0, actions)
            except NonFiniteModelOutput as e:
                raise AgentError(f"planner: {e}") from e
            if self.config.ego_motion == "kinematic":
                futures = self._kinematic(futures, actions, obs, context)
            futures = bev_geometry.apply(futures, obs, self.info.ego, self.info.dt, self.config.geometry)
            worlds = futures.nonfinite_worlds()
            if worlds:
                raise AgentError(f"planner: the world model predicted NaN/inf for world(s) {worlds}")
            return futures

        # --- plan
        proposals = None
        if self.config.use_proposals and self.config.proposals.count > 0:
            proposals = route_proposals(
                obs.ego, self.info.ego, self.info.dt, self.config.optim.horizon, self.config.proposals
            )
        try:
            plan = self.optimizer.plan(rollout_fn, self.costs.bind(context), B, proposals)
        except FloatingPointError as e:
            raise AgentError(f"planner: {e}") from e
        action = plan.actions[:, 0].copy()
        # --- shield
        if self.config.shield.enabled:
            action = self._shield(obs, action)
        self.last_plan = plan
        self.last_costs = plan.costs
        self._decisions += 1
        for term, value in plan.costs.items():
            sums = self._cost_sums.setdefault(term, np.zeros(B))
            sums += value
        if self.on_decision is not None:
            self.on_decision(plan.costs)
        return action

    def _kinematic(
        self, futures: Futures, actions: np.ndarray, obs: Observation, context: CostContext
    ) -> Futures:
        """``futures`` with the ego's poses and speeds from its bicycle and the progress from the
        arc length of those poses along the route targets."""
        B = actions.shape[0]
        xy, yaw, speed = bicycle_rollout(actions, obs.ego[:, EgoFeature.SPEED], self.info.ego, self.info.dt)
        _, arc = polyline_projection(xy, context.route)  # [B, N, H]
        _, arc0 = polyline_projection(np.zeros((B, 1, 2), dtype=np.float32), context.route)  # [B, 1]
        progress = np.diff(arc, axis=-1, prepend=np.broadcast_to(arc0[:, :, None], (*arc.shape[:2], 1)))
        return dataclasses.replace(futures, xy=xy, yaw=yaw, speed=speed, progress=progress)

    def _shield(self, obs: Observation, action: np.ndarray) -> np.ndarray:
        from world_model.proximity import gap_ahead

        cfg = self.config.shield
        gap = gap_ahead(obs.objects, obs.objects_mask)  # [B] from the front bumper [m]
        speed = np.maximum(obs.ego[:, EgoFeature.SPEED], 0.0)
        stopping = speed**2 / (2.0 * cfg.decel) + cfg.margin
        active = (gap < stopping) & (action[:, 0] > -1.0)  # a plan braking fully needs no override
        self.shield_active = active
        self.shield_overrides += int(active.sum())
        self._overrides += active
        action[active] = (-1.0, 0.0)
        return action


__all__ = ["PlannerConfig", "ShieldConfig", "WorldModelPlanner"]
