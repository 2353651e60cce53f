"""The oracle planner: the world-model planner's optimiser and cost terms, with the simulator itself
as the model. The gap between it and the learned planner is the model's error; the gap between it
and the expert is the planner's (optimiser and costs).

Each decision, for all ``B`` worlds: *snapshot* the live simulator, *plan* with the configured
optimiser (CEM or MPPI, ``planning.optim``) whose ``rollout_fn`` forks each world's state into
``N`` rollout worlds, steps every candidate sequence ``[B, N, H, 2]`` for real and reads the true
events and geometry into the same :class:`planning.futures.Futures` the model fills (collision,
off-road, red-light and stop-sign runs as 0/1 per step; ego poses in the ego frame of the planning
time, speed, route progress per step; nearest actor, free gap ahead and nearest pedestrian from
each step's object list), whose ``cost_fn`` is the weighted terms of ``planning.costs`` on those
futures and the ego vector's route, and whose first-iteration candidates include the same route
proposals (``planning.proposals``); *execute* the first action of the best plan.

It is privileged: it needs the live simulator, which the closed-loop runner hands every agent as
``AgentInfo.simulator`` (an ``EmbeddedSimulator``; the oracle uses only its fork interface:
``snapshot``, ``fork``, ``forks``, ``step``, see :class:`Forkable`). Rollouts are deterministic,
so the first step of the chosen plan happens exactly as it was rolled out.

Letters: ``B`` worlds, ``N`` sequences per world, ``H`` horizon, ``M`` listed objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from planning.base import Agent
from planning.costs import CostContext, Costs, CostsConfig
from planning.decision import Decision, decision_of
from planning.futures import Futures
from planning.optim.base import Plan, SamplerConfig
from planning.proposals import ProposalConfig, route_proposals
from planning.stop_lines import StopLineMemory
from sim_bridge.api import ObjectFeature, Observation, StepEvents


class Forkable(Protocol):
    """What the oracle needs of a simulator (``sim_bridge.embedded.EmbeddedSimulator`` has it)."""

    num_worlds: int

    def snapshot(self, worlds: Any = None) -> Any: ...

    def fork(self, snapshot: Any, world: int, worlds: Any = None) -> None: ...

    def forks(self, num_worlds: int, render_bev: bool = False, threads: int = 1) -> Any: ...

    def step(self, actions: Any) -> tuple[Observation, StepEvents]: ...


@dataclass
class OracleConfig:
    """Settings of :class:`OraclePlanner` (``drive/conf/agent/oracle_planner.yaml``): the planner's
    optimiser, costs and proposals, without a model."""

    optimizer: str = "cem"
    """``cem`` or ``mppi`` (``planning.optim``)."""
    optim: SamplerConfig = field(default_factory=lambda: SamplerConfig(samples=64, iterations=2))
    """Samples, iterations, horizon, noise of the optimiser. Fewer samples than the learned planner
    by default: each rollout is ``iterations × horizon`` simulator steps of ``B × samples`` worlds
    (64 × 2 × 15 ≈ 0.2 s a decision on one core, against 128 × 3 for the model's cheap rollouts)."""
    costs: CostsConfig = field(default_factory=CostsConfig)
    """Weights and settings of the cost terms (``agent.costs.<term>.weight=…``), as the planner's."""
    proposals: ProposalConfig = field(default_factory=lambda: ProposalConfig(hold_offset=False))
    """Route-following prior sequences scored in the first iteration. Without the planner's
    hold-offset proposals by default: the oracle's figures were measured before them (it never
    stops mid-pass, which is where they help the learned planner), and with them its
    ``pedestrian_margin`` task passes 2.9 m from the walker instead of ≥ 3 m."""
    use_proposals: bool = True
    """Mix the proposals with the samples (off: samples and warm start only)."""
    threads: int = 1
    """Threads of the rollout simulator (one is fastest on a shared CPU)."""
    seed: int = 0
    """Mixed with the factory's seed into the optimiser's generators."""


class OraclePlanner(Agent):
    """Plan → first action through forked simulator worlds (see the module doc)."""

    name = "oracle_planner"

    def __init__(self, config: OracleConfig | None = None, seed: int = 0) -> None:
        from planning.optim import make_optimizer

        self.config = cfg = config or OracleConfig()
        if cfg.use_proposals and cfg.proposals.count > cfg.optim.samples - 1:
            raise ValueError(
                f"{cfg.proposals.count} proposals need agent.optim.samples >= {cfg.proposals.count + 1} "
                f"(got {cfg.optim.samples}); raise it, trim agent.proposals, or set agent.use_proposals=false"
            )
        self.optimizer = make_optimizer(cfg.optimizer, cfg.optim, seed=int(cfg.seed) * 1_000_003 + int(seed))
        self.stop_lines = StopLineMemory()
        """Which stop line each world holds (a red light; a stop sign until served)."""
        self.costs = Costs(cfg.costs)
        self.last_costs: dict[str, np.ndarray] = {}
        """Per-term costs ``{term: [B]}`` of the plans chosen at the last decision."""
        self.last_plan: Plan | None = None
        self._rollout_sim: Any = None
        self._pending_seeds: dict[int, int] = {}

    # ------------------------------------------------------------------ episodes

    def seed(self, worlds: Any, seeds: Any) -> None:
        """Seed the optimiser's generators of ``worlds`` at their next reset."""
        super().seed(worlds, seeds)
        for w, s in zip(worlds, seeds, strict=True):
            self._pending_seeds[int(w)] = int(s)

    def _reset(self, worlds: list[int]) -> None:
        sim = self.info.simulator
        if sim is None or not all(hasattr(sim, m) for m in ("snapshot", "fork", "forks")):
            raise ValueError(
                "the oracle planner is privileged: it needs AgentInfo.simulator, a simulator it can fork "
                "(the embedded one; `drive eval` passes it). Other pipelines cannot run it."
            )
        B = self.info.num_worlds
        self.optimizer.reset(B, worlds)
        self.stop_lines.front = self.info.ego.length / 2
        self.stop_lines.reset(B, worlds)
        seeded = [w for w in worlds if w in self._pending_seeds]
        if seeded:
            self.optimizer.seed(seeded, [self._pending_seeds.pop(w) for w in seeded])
        need = B * self.config.optim.samples
        if self._rollout_sim is None or self._rollout_sim.num_worlds != need:
            if self._rollout_sim is not None:
                self._rollout_sim.close()
            self._rollout_sim = sim.forks(need, render_bev=False, threads=self.config.threads)

    def close(self) -> None:
        """Release the rollout simulator."""
        if self._rollout_sim is not None:
            self._rollout_sim.close()
            self._rollout_sim = None

    # ------------------------------------------------------------------ decisions

    @property
    def last_decision(self) -> Decision | None:
        """What the last decision imagined (:class:`planning.decision.Decision`: the last round's
        candidates with their imagined ego positions and per-term costs, the chosen plan's future);
        built from :attr:`last_plan` on request, ``None`` before the first decision."""
        return None if self.last_plan is None else decision_of(self.last_plan)

    def _act(self, obs: Observation) -> np.ndarray:
        sim: Forkable = self.info.simulator
        B = obs.num_worlds
        snapshot = sim.snapshot()
        start_pose = np.asarray(obs.pose, dtype=np.float64)  # [B, 3]
        start_progress = np.asarray(snapshot.progress, dtype=np.float64)  # [B]

        def rollout_fn(actions: np.ndarray) -> Futures:
            return self.rollout(snapshot, start_pose, start_progress, actions)

        vehicle = self.info.ego
        context = CostContext.from_ego(obs.ego, self.info.dt, vehicle.max_accel,
                                       self.stop_lines.update(obs.ego), vehicle.length / 2)  # fmt: skip
        proposals = None
        if self.config.use_proposals and self.config.proposals.count > 0:
            proposals = route_proposals(
                obs.ego, self.info.ego, self.info.dt, self.config.optim.horizon, self.config.proposals
            )
        plan = self.optimizer.plan(rollout_fn, self.costs.bind(context), B, proposals)
        self.last_plan = plan
        self.last_costs = plan.costs
        return plan.actions[:, 0].copy()

    def rollout(
        self, snapshot: Any, start_pose: np.ndarray, start_progress: np.ndarray, actions: np.ndarray
    ) -> Futures:
        """The true :class:`Futures` of ``actions [B, N, H, 2]`` from ``snapshot`` (world ``b``'s
        sequences run in rollout worlds ``b·N … b·N + N − 1``); ``start_pose [B, 3]`` (x, y, yaw in
        the map frame) and ``start_progress [B]`` [m] are the planning time's."""
        B, N, H, _ = actions.shape
        roll = self._rollout_sim
        if roll.num_worlds != B * N:
            raise ValueError(
                f"the rollout simulator has {roll.num_worlds} worlds; {B} × {N} sequences need {B * N}"
            )
        for b in range(B):
            roll.fork(snapshot, int(snapshot.worlds[b]), np.arange(b * N, (b + 1) * N))
        flat = np.ascontiguousarray(actions, dtype=np.float64).reshape(B * N, H, 2)
        x0 = np.repeat(start_pose[:, 0], N)
        y0 = np.repeat(start_pose[:, 1], N)
        yaw0 = np.repeat(start_pose[:, 2], N)
        previous = np.repeat(start_progress, N)
        out = {name: np.zeros((B * N, H)) for name in ("collision", "off_road", "red_light", "stop_sign", "yaw",
                                                        "speed", "progress", "nearest", "gap_ahead", "pedestrian")}  # fmt: skip
        xy = np.zeros((B * N, H, 2))
        c, s = np.cos(yaw0), np.sin(yaw0)
        for h in range(H):
            o, ev = roll.step(flat[:, h])
            out["collision"][:, h] = ev.collision
            out["off_road"][:, h] = ev.off_road
            out["red_light"][:, h] = ev.red_light >= 0
            out["stop_sign"][:, h] = ev.stop_sign >= 0
            dx, dy = ev.ego_x - x0, ev.ego_y - y0
            xy[:, h, 0] = c * dx + s * dy
            xy[:, h, 1] = -s * dx + c * dy
            out["yaw"][:, h] = (ev.ego_yaw - yaw0 + np.pi) % (2.0 * np.pi) - np.pi
            out["speed"][:, h] = ev.ego_speed
            out["progress"][:, h] = np.maximum(ev.route_progress - previous, 0.0)
            previous = ev.route_progress
            out["nearest"][:, h], out["pedestrian"][:, h] = nearest_actors(o)
            out["gap_ahead"][:, h] = _gap_ahead(o)
        shaped = {name: value.reshape(B, N, H) for name, value in out.items()}
        return Futures(xy=xy.reshape(B, N, H, 2), **shaped)


def nearest_actors(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """``[B]`` distance from the ego's centre to the nearest listed actor's centre and to the nearest
    listed pedestrian [m] (``inf`` where none is listed)."""
    objects, mask = obs.objects, obs.objects_mask
    dist = np.hypot(objects[..., ObjectFeature.X], objects[..., ObjectFeature.Y])
    dist = np.where(mask, dist, np.inf)
    walker = objects[..., ObjectFeature.IS_PEDESTRIAN] > 0.5
    return dist.min(axis=1, initial=np.inf), np.where(walker, dist, np.inf).min(axis=1, initial=np.inf)


def _gap_ahead(obs: Observation) -> np.ndarray:
    from world_model.proximity import gap_ahead  # the world model's training target, read the same way

    return gap_ahead(obs.objects, obs.objects_mask)


__all__ = ["Forkable", "OracleConfig", "OraclePlanner", "nearest_actors"]
