"""Counterfactual evaluation of a world model (part of ``drive wm-eval``): from held-out states, fork
the embedded simulator into ``K`` action sequences, run each for real, and compare the model's
predicted risks and motion on each branch with what happened (``world_model.counterfactual``).

States: each family of ``counterfactual.families`` (scenario-family hazards: a braking lead, a
crossing pedestrian, a parked car, a cut-in, urban traffic) is built with seeds and towns that
neither collection nor the exam uses (``towns`` replaces a family's procedural town of the same
name; the unit maps straight/cross/tee are never collected on), driven by ``driver`` and
snapshotted at the decision steps ``at_steps`` (an episode whose driver collides gives no later
states). The default driver, the lane follower, does not brake for hazards, so its states close
in on them at speed, where the choice of action decides the outcome; from the expert's states
almost every action is safe. From each state the same ``K`` sequences of ``horizon`` steps are
tried: keep (the last action held), brake, accelerate, swerve left, swerve right (the last
acceleration held, ``±swerve`` steering) and ``random_sequences`` smooth random ones. The truth of
a branch is read exactly as training data is recorded (``world_model.recorder.step_events``).

The simulator is built from the collection's own settings (``data``'s manifest), so observations
have the shapes the model was trained on; branches run in a second simulator of ``K`` worlds
without BEV rendering (forked from the first, ``EmbeddedSimulator.fork``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from drive import build
from drive.pipelines.branches import branch_actions
from drive.pipelines.collect import map_ref
from drive.schemas import CounterfactualConfig
from planning.base import Agent, AgentInfo
from planning.expert import Expert
from planning.lane_follower import LaneFollower
from scenarios.families import FAMILIES, make_scenario
from sim_bridge.api import Observation
from sim_bridge.embedded.simulator import EmbeddedSimulator
from world_model.batch import EVENT
from world_model.counterfactual import Branches, counterfactual_metrics, mean_branches, predict_branches
from world_model.model import WorldModel
from world_model.recorder import step_events

log = logging.getLogger("drive.counterfactual")

#: names of the fixed action sequences, in branch order (then ``random_<i>``)
FIXED_SEQUENCES = ("keep", "brake", "accelerate", "swerve_left", "swerve_right")
#: hazard kind reported for each family (families not listed report under their own name)
HAZARD_KIND = {
    "lead_vehicle_brake": "braking_lead",
    "pedestrian_crossing": "crossing_pedestrian",
    "occluded_pedestrian": "crossing_pedestrian",
    "parked_obstacle": "stopped_car",
    "vehicle_opens_door": "stopped_car",
    "cut_in_urban": "cut_in",
    "cut_in_highway": "cut_in",
    "urban_route": "urban_traffic",
}


@dataclass(frozen=True)
class State:
    """One held-out state: where it comes from and the observation the model encodes."""

    family: str
    seed: int
    step: int
    obs: Observation
    """The 1-world observation at the state."""


def source_driver(name: str) -> Agent:
    """The driver that takes the episodes to their states."""
    if name == "lane_follower":
        return LaneFollower()
    if name == "expert":
        return Expert()
    raise SystemExit(f"drive wm-eval: counterfactual.driver={name!r}; choose lane_follower or expert")


def action_sequences(last: np.ndarray, cfg: CounterfactualConfig, rng: np.random.Generator) -> np.ndarray:
    """``float32 [K, H, 2]`` the branches tried from a state whose last action was ``last [2]``
    (the sequences collection's branches follow: ``drive.pipelines.branches.branch_actions``)."""
    return branch_actions(sequence_names(cfg), last, int(cfg.horizon), float(cfg.swerve), rng)


def sequence_names(cfg: CounterfactualConfig) -> list[str]:
    return [*FIXED_SEQUENCES, *(f"random_{i}" for i in range(int(cfg.random_sequences)))]


def _forkable(sim: Any) -> EmbeddedSimulator:
    """Branching needs a simulator that can snapshot and restore its worlds: the embedded one."""
    if not isinstance(sim, EmbeddedSimulator):
        sim.close()
        raise ValueError(
            f"counterfactual branches need the embedded backend (snapshot/restore); got {type(sim).__name__}"
        )
    return sim


def run_branches(branch_sim: EmbeddedSimulator, snapshot: Any, actions: np.ndarray) -> Branches:
    """Fork world 0 of ``snapshot`` into the ``K`` worlds of ``branch_sim``, step each with its
    sequence ``actions [K, H, 2]`` and read what happened (one state's true :class:`Branches`)."""
    K, H, _ = actions.shape
    branch_sim.fork(snapshot, int(snapshot.worlds[0]))
    obs = branch_sim.observe()
    start = obs.pose.copy()  # [K, 3]
    ev = np.zeros((K, H, len(EVENT)), dtype=np.float32)
    pose = np.zeros((K, H, 3))
    hit = np.zeros(K, dtype=bool)  # a collision happened before this step
    valid = np.zeros((K, H), dtype=bool)
    for h in range(H):
        nxt, events = branch_sim.step(actions[:, h])
        ev[:, h] = step_events(obs, nxt, events, np.zeros(K, dtype=bool))
        pose[:, h] = nxt.pose
        valid[:, h] = ~hit
        hit |= events.collision
        obs = nxt
    c, s = np.cos(start[:, 2])[:, None], np.sin(start[:, 2])[:, None]
    dx, dy = pose[..., 0] - start[:, None, 0], pose[..., 1] - start[:, None, 1]
    xy = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)
    return Branches(
        collision=ev[..., EVENT["collision"]][None],
        off_road=ev[..., EVENT["off_road"]][None],
        red_light=ev[..., EVENT["red_light"]][None],
        xy=xy[None],
        speed=ev[..., EVENT["speed"]][None].astype(np.float64),
        valid=valid[None],
    )


def collect_states(
    sim_node: dict[str, Any], cfg: CounterfactualConfig
) -> tuple[list[State], np.ndarray, Branches]:
    """Drive every (family, seed) with the expert, fork at each of ``at_steps`` and run the
    branches: the states, their action sequences ``[S, K, H, 2]`` and the true branches."""
    unknown = [f for f in cfg.families if f not in FAMILIES]
    if unknown:
        raise SystemExit(
            f"drive wm-eval: unknown counterfactual families {unknown}; known: {', '.join(sorted(FAMILIES))}"
        )
    K = len(FIXED_SEQUENCES) + int(cfg.random_sequences)
    source = _forkable(build.simulator(sim_node, num_worlds=1, threads=1))
    branch_sim = _forkable(build.simulator(sim_node, num_worlds=K, threads=1, render_bev=False))
    held_out = {ref.town: ref for ref in (map_ref(t) for t in cfg.towns)}
    states: list[State] = []
    actions: list[np.ndarray] = []
    truths: list[Branches] = []
    at_steps = sorted(int(t) for t in cfg.at_steps)
    try:
        for family in cfg.families:
            town = held_out.get(FAMILIES[family].town.town)  # None: the family's own (unit) map
            for seed in cfg.seeds:
                spec = make_scenario(family, seed=int(seed), town=town)
                obs = source.reset(spec.world, spec.seed)
                driver = source_driver(cfg.driver)
                driver.reset(AgentInfo(1, source.dt, source.ego_vehicle, source.road_map, (source.route(0),)))
                last = np.zeros(2, dtype=np.float32)
                for step in range(at_steps[-1] + 1):
                    if step in at_steps:
                        rng = np.random.default_rng([int(cfg.seed), int(seed), step, len(states)])
                        seqs = action_sequences(last, cfg, rng)
                        snap = source.snapshot()
                        states.append(State(family, int(seed), step, obs))
                        actions.append(seqs)
                        truths.append(run_branches(branch_sim, snap, seqs))
                    if step == at_steps[-1]:
                        break
                    act = driver.act(obs)
                    obs, events = source.step(act)
                    last = act[0]
                    if events.collision[0]:  # later states would start inside a crash: skip them
                        log.info("%s seed %s: the %s collided at step %d", family, seed, cfg.driver, step + 1)
                        break
    finally:
        source.close()
        branch_sim.close()
    true = Branches(
        *(np.concatenate([getattr(t, name) for t in truths]) for name in Branches.__dataclass_fields__)
    )
    return states, np.stack(actions), true


def _take(b: Branches, rows: np.ndarray) -> Branches:
    return Branches(*(getattr(b, name)[rows] for name in Branches.__dataclass_fields__))


@torch.no_grad()
def evaluate_counterfactual(
    model: WorldModel | list[WorldModel],
    sim_node: dict[str, Any],
    cfg: CounterfactualConfig,
    device: torch.device,
) -> dict[str, Any]:
    """The counterfactual report: figures over all states and per hazard kind (JSON-ready). A list
    of models is an ensemble: its prediction is the members' mean (``mean_branches``)."""
    states, actions, true = collect_states(sim_node, cfg)
    bev = torch.from_numpy(np.stack([s.obs.bev[0] for s in states])).to(device)
    ego = torch.from_numpy(np.stack([s.obs.ego[0] for s in states])).to(device)
    members = model if isinstance(model, list) else [model]
    pred = mean_branches([predict_branches(m, m.encode(bev, ego), actions) for m in members])
    kinds = np.array([HAZARD_KIND.get(s.family, s.family) for s in states])
    report: dict[str, Any] = {
        "horizon": int(cfg.horizon),
        "sequences": sequence_names(cfg),
        "families": list(cfg.families),
        "seeds": [int(s) for s in cfg.seeds],
        "at_steps": [int(t) for t in cfg.at_steps],
        "towns": list(cfg.towns),
        "all": counterfactual_metrics(pred, true),
        "by_kind": {
            kind: counterfactual_metrics(_take(pred, rows), _take(true, rows))
            for kind in dict.fromkeys(kinds.tolist())
            for rows in [np.flatnonzero(kinds == kind)]
        },
    }
    # which sequences end in a collision, per kind (what the states test)
    report["collision_rate_by_sequence"] = {
        name: float(true.risk("collision")[:, k].mean()) for k, name in enumerate(report["sequences"])
    }
    return report


def table(report: dict[str, Any]) -> str:
    """The counterfactual figures as a text table (one row per hazard kind, then ``all``)."""
    steps = [h for h in (1, 5, 10, 15) if h <= report["horizon"]]
    head = (
        f"{'kind':<20} {'states':>6} {'coll AUROC':>10} {'(states)':>8} {'offrd AUROC':>11} {'(states)':>8} "
        f"{'rho risk':>8} {'choice':>6} " + " ".join(f"{'pos@' + str(h):>7}" for h in steps)
    )
    lines = [
        f"counterfactual: {len(report['sequences'])} sequences × {report['horizon']} steps from each state",
        head,
    ]
    rows = [*report["by_kind"].items(), ("all", report["all"])]
    for kind, m in rows:
        motion = {r["step"]: r for r in m["motion"]}
        lines.append(
            f"{kind:<20} {m['states']:>6} {m['collision']['paired_auroc']:>10.3f} {m['collision']['states_with_both']:>8} "
            f"{m['off_road']['paired_auroc']:>11.3f} {m['off_road']['states_with_both']:>8} "
            f"{m['total_risk']['spearman']:>8.3f} {m['choice']['accuracy']:>6.2f} "
            + " ".join(f"{motion[h]['position_error']:>7.2f}" for h in steps)
        )
    rates = ", ".join(f"{k} {v:.2f}" for k, v in report["collision_rate_by_sequence"].items())
    lines.append(f"collision rate by sequence: {rates}")
    return "\n".join(lines)
