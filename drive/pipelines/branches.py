"""Counterfactual branches in collection: at hazard moments, fork a world into ``K`` action sequences.

A world model trained on one driver's experience sees one action per state; a planner compares many.
At a hazard moment of a collection episode (``drive.pipelines.hazards``), the world's state is
forked (``EmbeddedSimulator.snapshot`` / ``fork``, bit for bit) into the ``K`` worlds of a second
simulator, each driven for ``steps`` decisions by one action sequence of :data:`SEQUENCES`:

- ``keep``: the last action (the ego vector's previous action) held;
- ``brake``: full braking, the last steering held;
- ``accelerate``: full throttle, the last steering held;
- ``swerve_left`` / ``swerve_right``: the last acceleration held, steering ``±swerve``; from a
  standstill (slower than ``hazards.standstill_speed``) at least ``pull_away`` of throttle, since
  the last action there is a brake and a swerve that never moves shows nothing: what moving off
  sideways does, past a parked car or into one, is what a model trained without it cannot rank;
- ``random``: a smooth random walk from the last action (each one drawn afresh).

Each branch is recorded exactly as collection records episodes (``world_model.recorder``) and
stored as an episode of its own (``EpisodeKind.BRANCH``, with its parent's id, the parent's step it
starts from and its sequence's name), so ``drive train`` reads it unchanged. Its first observation
is the parent's observation at that step. A branch ends at a collision or its route's end (done),
when the ego strays ``max_route_deviation`` from its route, or after ``steps`` decisions
(``EndReason.HORIZON``). Its recorded steps count in the collection's budget like any other.

The same sequences serve ``drive wm-eval``'s counterfactual figures (:func:`branch_actions`).

Letters: ``K`` branches, ``H`` steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drive.pipelines.hazards import TRIGGERS, HazardConfig
from sim_bridge.api import EgoFeature, Observation
from world_model.recorder import EpisodeRecorder
from world_model.shards import EndReason, Episode, EpisodeKind, EpisodeMeta

#: the action sequences a branch can follow (see module doc)
SEQUENCES = ("keep", "brake", "accelerate", "swerve_left", "swerve_right", "random")
#: std of the per-step increments of a random sequence: accel, steer [normalised]
RANDOM_STEP_STD = (0.3, 0.08)
#: mixed into the seed of a branch point's random sequences
_TAG = 0xB4A7


@dataclass
class BranchesConfig:
    """Counterfactual branches at hazard moments (``branches.*``; see :mod:`drive.pipelines.branches`)."""

    enabled: bool = False
    """Record branches (``recipe=hazards`` turns them on; they need ``sim=embedded``)."""
    k: int = field(default=6, metadata={"min": 1})
    """Branches per branch point: the first ``k`` of ``sequences``, then ``random`` ones."""
    sequences: list[str] = field(default_factory=lambda: list(SEQUENCES), metadata={"choices": SEQUENCES})
    """Action sequences of the branches, in order."""
    steps: int = field(default=16, metadata={"min": 1})
    """Decisions per branch (10 Hz). 16 = the world model's training window (``loss.horizon`` 15
    + its first frame): the window starting at the fork holds one whole branch."""
    every: float = field(default=3.0, metadata={"min": 0})
    """Least simulated time between two branch points of one episode, and from its start [s]."""
    max_share: float = field(default=0.35, metadata={"min": 0, "max": 1})
    """Branch only while branches stay within this share of the steps a job recorded so far
    (the rest: the episodes they branch from); hazard moments are common (~1 step in 5 of
    exploration), so this share sets how much of the budget goes to branches."""
    swerve: float = field(default=0.5, metadata={"gt": 0, "max": 1})
    """Steering of the swerve sequences [normalised]."""
    pull_away: float = field(default=0.5, metadata={"min": 0, "max": 1})
    """Least throttle of the swerve sequences from a standstill [normalised] (0: the last
    acceleration, a brake there, held as when moving)."""
    triggers: list[str] = field(default_factory=lambda: list(TRIGGERS), metadata={"choices": TRIGGERS})
    """Hazard moments that start a branch point (``drive.pipelines.hazards``)."""
    hazards: HazardConfig = field(default_factory=HazardConfig)
    """Thresholds of the hazard moments."""


def sequence_names(sequences: Sequence[str], k: int) -> list[str]:
    """The names of ``k`` branches: the first ``k`` of ``sequences``, then ``random`` ones; the
    random ones numbered (``random_0`` …) in order."""
    names = list(sequences[:k]) + ["random"] * max(k - len(sequences), 0)
    out, r = [], 0
    for name in names:
        if name == "random":
            name, r = f"random_{r}", r + 1
        out.append(name)
    return out


def branch_actions(
    names: Sequence[str], last: np.ndarray, horizon: int, swerve: float, rng: np.random.Generator,
    standing: bool = False, pull_away: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """``float32 [K, H, 2]``: the sequences ``names`` (of :func:`sequence_names`) from a state whose
    last action was ``last [2]`` (accel, steer); the random ones drawn from ``rng`` in order. When
    the ego is ``standing``, the swerves use at least ``pull_away`` of throttle."""
    accel, steer = float(last[0]), float(last[1])
    swerve_accel = max(accel, float(pull_away)) if standing else accel
    fixed = {
        "keep": (accel, steer),
        "brake": (-1.0, steer),
        "accelerate": (1.0, steer),
        "swerve_left": (swerve_accel, swerve),
        "swerve_right": (swerve_accel, -swerve),
    }
    seqs = []
    for name in names:
        if name in fixed:
            seqs.append(np.tile(np.array(fixed[name], dtype=np.float64), (horizon, 1)))
        elif name.startswith("random"):  # smooth: a random walk from the last action
            steps = rng.normal(0.0, RANDOM_STEP_STD, size=(horizon, 2))
            seqs.append(np.clip(np.array([accel, steer]) + np.cumsum(steps, axis=0), -1.0, 1.0))
        else:
            raise ValueError(f"unknown action sequence {name!r}; choose among {', '.join(SEQUENCES)}")
    return np.stack(seqs).astype(np.float32)


class Brancher:
    """Forks worlds of a collection simulator into branches and records them (see module doc).

    ``sim``: the collection's simulator (it must offer ``snapshot`` and ``forks``: the embedded
    one); the branches run in one simulator of ``K`` worlds made from it.
    """

    def __init__(
        self, sim: Any, cfg: BranchesConfig, route_end_distance: float, max_route_deviation: float
    ) -> None:
        if not all(hasattr(sim, m) for m in ("snapshot", "forks")):
            raise ValueError(
                f"branches need a simulator that can fork its worlds (sim=embedded); got {type(sim).__name__}"
            )
        self.cfg = cfg
        self.names = sequence_names(cfg.sequences, cfg.k)
        self.sim = sim.forks(len(self.names), render_bev=True, threads=1)
        self.every = max(round(cfg.every / sim.dt), 1)
        """Least decisions between two branch points of one episode."""
        self.route_end_distance = route_end_distance
        self.max_route_deviation = max_route_deviation

    @property
    def k(self) -> int:
        return len(self.names)

    def close(self) -> None:
        self.sim.close()

    def run(
        self, source: Any, world: int, obs: Observation, parent: int, fork_step: int, family: str,
        ids: Sequence[int], town: str,
    ) -> list[Episode]:  # fmt: skip
        """Fork ``world`` of the simulator ``source`` (whose observation now is ``obs``, all worlds)
        into the branches, run them and return them as episodes ``ids`` (one per branch) of
        ``parent``, starting at its step ``fork_step``, on map ``town``."""
        K, H = self.k, int(self.cfg.steps)
        last = obs.ego[world, [EgoFeature.PREV_ACCEL, EgoFeature.PREV_STEER]].astype(np.float64)
        rng = np.random.default_rng([_TAG, int(parent), int(fork_step)])
        standing = bool(obs.ego[world, EgoFeature.SPEED] < self.cfg.hazards.standstill_speed)
        actions = branch_actions(
            self.names, last, H, float(self.cfg.swerve), rng, standing, float(self.cfg.pull_away)
        )
        sim = self.sim
        sim.fork(source.snapshot([world]), world)
        now = sim.observe()
        recorder = EpisodeRecorder(K)
        metas = [
            EpisodeMeta(EpisodeKind.BRANCH, family=family, parent=int(parent), fork_step=int(fork_step), sequence=n)
            for n in self.names
        ]  # fmt: skip
        recorder.begin(range(K), ids, town, metas)
        episodes: list[Episode] = []
        alive = np.ones(K, dtype=bool)  # branches still recorded
        for h in range(H):
            nxt, events = sim.step(actions[:, h])
            route_end = events.route_length - events.route_progress <= self.route_end_distance
            reason = np.full(K, -1, dtype=np.int64)
            if h == H - 1:
                reason[:] = EndReason.HORIZON
            reason[events.route_deviation > self.max_route_deviation] = EndReason.OFF_ROUTE
            reason[route_end] = EndReason.ROUTE_END
            reason[events.collision] = EndReason.COLLISION
            recorder.record(now, actions[:, h], nxt, events, done=events.collision | route_end)
            ended = np.flatnonzero((reason >= 0) & alive).tolist()
            episodes += recorder.end(ended, [EndReason(int(reason[b])) for b in ended])
            alive[ended] = False
            if not alive.any():
                break
            now = nxt
        return episodes
