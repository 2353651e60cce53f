"""``drive learn hours=1``: a world model from its planner's own experience, in rounds.

A model trained only on an exploration driver's data is planned against by an optimiser that
looks for the actions the model rates best, and so finds the model's mistakes: states the
explorer never reached and that the planner then drives into (creeping into a parked car it
rates safe, a swerve it rates free). Model-based RL answers with on-policy data; here, within a
fixed budget of simulated hours:

1. ``collect/base`` — ``base_share × hours`` of the explore driver with ``base_recipe`` (default
   ``hazards``: scenario situations and counterfactual branches) → ``out/data/base`` (or the
   prefix of an existing collection given as ``base``, the curve's nested budgets);
2. ``train/0`` — the world model on it (``drive train``, ``train`` overrides);
3. for each round ``r`` of ``rounds``: ``collect/r`` — ``(1 - base_share) × hours / rounds`` driven
   by the planner on the last model (``drive collect driver=planner``, ``round_recipe``: its
   hazard moments are branched too) → ``out/data/round<r>``; ``train/r`` — the model fine-tuned
   from the last one on the base and every round so far (``init``, ``extra_data``; ``finetune``
   overrides).

Every simulated second of every kind (base, rounds, their branches) counts in ``hours``;
``learn.json`` lists them with the final checkpoint (``best.pt`` of the last round).

**Resume.** Each stage is recorded in ``out/stages.jsonl`` when it finishes and reused while its
output is there (:mod:`drive.pipelines.stages`); a killed stage resumes from what it left.
``out/run.json`` holds the settings: a resume must match them (but for :data:`RESUMABLE`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from drive.pipelines.stages import Stage, checkpoint_of, recorded, run_locked, run_stage
from scenarios.executors import EXECUTORS
from sim_bridge import runfolder

log = logging.getLogger("drive.learn")

SUMMARY_FILE = "learn.json"
LOCK_FILE = "learn.lock"
#: settings that may change when a learn run resumes (where and how it runs)
RESUMABLE = ("out", "workers", "executor")
#: keeps the rounds' collection seeds apart from every base seed
ROUND_SEED_OFFSET = 100_000


@dataclass
class LearnConfig:
    """``drive learn``: base collection, training, then planner-driven rounds of collection and
    fine-tuning, within ``hours`` of simulated experience (resumable)."""

    hours: float = field(default=1.0, metadata={"gt": 0})
    """The whole budget of simulated experience: base, rounds and their branches [h]."""
    base_share: float = field(default=0.5, metadata={"gt": 0, "max": 1})
    """Share of ``hours`` collected by the explore driver before the first model (1: no rounds)."""
    rounds: int = field(default=2, metadata={"min": 0})
    """Planner-driven rounds sharing the rest of the budget equally (0: none)."""
    seed: int = field(default=0, metadata={"min": 0})
    """Seed of the base collection; round ``r`` collects with ``100000 + 10·seed + r``."""
    base: str | None = None
    """An existing collection whose first ``base_share × hours`` are the base (``drive curve``
    shares one per seed so the budgets are nested); null: collect it into ``out/data/base``."""
    base_recipe: str = "hazards"
    """``drive collect recipe=…`` of the base."""
    round_recipe: str = "hazards"
    """``drive collect recipe=…`` of the rounds."""
    collect: list[str] = field(default_factory=list)
    """Overrides of every ``drive collect``."""
    train: list[str] = field(default_factory=list)
    """Overrides of every ``drive train`` (e.g. ``threads=1``)."""
    planner: list[str] = field(default_factory=list)
    """Overrides of the rounds' collections only, e.g. of their planner (``driver.optim.samples=32``)."""
    finetune: list[str] = field(default_factory=lambda: ["optim.steps=1500"])
    """Overrides of the rounds' trainings, after ``train``."""
    executor: str = field(default="local", metadata={"choices": EXECUTORS})
    """Executor of the collections."""
    workers: int | None = field(default=None, metadata={"min": 0})
    """Worker processes of the collections (default one per core)."""
    out: str = "outputs/learn/h${hours}-s${seed}"
    """Run folder; re-running the same command resumes it."""


def budget(cfg: DictConfig) -> tuple[float, list[float]]:
    """``(base hours, [hours of each round])``; they add up to ``cfg.hours``."""
    total, rounds = float(cfg.hours), int(cfg.rounds)
    base = total if rounds == 0 else round(total * float(cfg.base_share), 9)
    return base, [round((total - base) / rounds, 9)] * rounds if rounds else []


def round_seed(seed: int, r: int) -> int:
    """The collection seed of round ``r`` (1-based) of a run of ``seed``."""
    return ROUND_SEED_OFFSET + 10 * seed + r


def stages(cfg: DictConfig) -> list[Stage]:
    """Every stage of the run in ``cfg.out``, in order (a round's driver is the checkpoint the
    training before it writes: :func:`drive.pipelines.stages.checkpoint_of`)."""
    out = Path(cfg.out)
    base_hours, round_hours = budget(cfg)
    ex = [f"executor={cfg.executor}"] + ([f"workers={cfg.workers}"] if cfg.workers is not None else [])
    base = Path(cfg.base) if cfg.base else out / "data" / "base"
    plan: list[Stage] = []
    if not cfg.base:
        plan.append(Stage("collect/base", "collect",
                          ("driver=explore", f"recipe={cfg.base_recipe}", f"hours={base_hours}", f"seed={cfg.seed}",
                           f"out={base}", *ex, *cfg.collect),
                          base / "manifest.json", f"{base_hours:g} h of exploration, recipe {cfg.base_recipe}"))  # fmt: skip
    train0 = out / "train" / "0"
    plan.append(Stage("train/0", "train", (f"data={base}", f"hours={base_hours}", f"out={train0}", *cfg.train),
                      train0 / "summary.json", "the world model on the base"))  # fmt: skip
    rounds: list[Path] = []
    for r, hours in enumerate(round_hours, start=1):
        last = out / "train" / str(r - 1)
        data, train = out / "data" / f"round{r}", out / "train" / str(r)
        rounds.append(data)
        plan.append(Stage(f"collect/{r}", "collect",
                          ("driver=planner", f"driver.checkpoint={checkpoint_of(last)}", f"recipe={cfg.round_recipe}",
                           f"hours={hours}", f"seed={round_seed(int(cfg.seed), r)}", f"out={data}", *ex, *cfg.collect,
                           *cfg.planner),
                          data / "manifest.json", f"round {r}: {hours:g} h driven by the planner on model {r - 1}"))  # fmt: skip
        extra = "[" + ",".join(str(p) for p in rounds) + "]"
        plan.append(Stage(f"train/{r}", "train",
                          (f"data={base}", f"hours={base_hours}", f"extra_data={extra}",
                           f"init={checkpoint_of(last)}", f"out={train}", *cfg.train, *cfg.finetune),
                          train / "summary.json", f"round {r}: model {r - 1} fine-tuned on the base and rounds 1-{r}"))  # fmt: skip
    return plan


def run(cfg: DictConfig) -> int:
    return run_locked(Path(cfg.out), "learn", LOCK_FILE, lambda out: _run(cfg, out))


def _run(cfg: DictConfig, out: Path) -> int:
    started = time.perf_counter()
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    try:
        runfolder.open_manifest(out, settings, kind="learn", resumable=RESUMABLE,
                                advice="Give the stored settings (run.json) to resume, or a new out= folder.")  # fmt: skip
    except runfolder.SettingsMismatch as exc:
        raise SystemExit(f"drive learn: {exc}") from None
    runfolder.remove_stale_tmp(out)
    done = recorded(out)
    times: dict[str, dict[str, Any]] = {}
    n = len(stages(cfg))
    for i in range(n):
        stage = stages(cfg)[i]  # re-planned: a round drives the checkpoint its previous stage wrote
        times[stage.key] = run_stage(out, stage, done, f"[{i + 1}/{n}] {stage.key}", log)
    summary = summarise(cfg, times, time.perf_counter() - started)
    runfolder.write_json_atomic(out / SUMMARY_FILE, summary)
    print(
        f"drive learn: {summary['hours']['total']:.3f} simulated hours (base {summary['hours']['base']:.3f}, "
        f"rounds {', '.join(f'{h:.3f}' for h in summary['hours']['rounds']) or 'none'}); "
        f"checkpoint {summary['checkpoint']}",
        flush=True,
    )
    return 0


def summarise(cfg: DictConfig, times: dict[str, dict[str, Any]], wall: float) -> dict[str, Any]:
    """``learn.json``: the hours of each kind as stored, the checkpoints, the stages' times."""
    from drive.pipelines.curve import prefix_hours
    from world_model.shards import read_manifest

    out = Path(cfg.out)
    base_hours, round_hours = budget(cfg)
    base = Path(cfg.base) if cfg.base else out / "data" / "base"
    rounds = [out / "data" / f"round{r}" for r in range(1, len(round_hours) + 1)]
    stored = [sum(s.sim_seconds for s in read_manifest(p).shards) / 3600.0 for p in rounds]
    base_stored = prefix_hours(base, base_hours)
    final = out / "train" / str(len(round_hours))
    return {
        "hours": {
            "budget": float(cfg.hours),
            "base": round(base_stored, 6),
            "rounds": [round(h, 6) for h in stored],
            "total": round(base_stored + sum(stored), 6),
        },
        "data": {"base": str(base), "rounds": [str(p) for p in rounds]},
        "checkpoints": [str(checkpoint_of(out / "train" / str(r))) for r in range(len(round_hours) + 1)],
        "checkpoint": str(checkpoint_of(final)),
        "stages": times,
        "wall_seconds": round(wall, 1),
    }


__all__ = ["RESUMABLE", "LearnConfig", "budget", "round_seed", "run", "stages", "summarise"]
