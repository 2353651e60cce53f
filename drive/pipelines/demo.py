"""``drive demo``: the main job on the embedded default, end to end in minutes on a laptop.

**What runs.** Each stage is an existing command run in this process (:func:`drive.cli.run_command`)
with its own config from ``drive/conf`` and the overrides of ``drive/conf/demo.yaml``:

1. ``collect`` — ``hours`` simulated hours of exploration (``drive collect driver=explore``)
   → ``out/collect``;
2. ``train`` — the JEPA world model on all of it, for ``train_minutes`` of wall time or
   ``train_steps`` steps, whichever ends first (``drive train``) → ``out/train``;
3. ``eval/<agent>`` — the world-model planner on that model (``best.pt``, else ``last.pt``), then
   each of ``references``, on ``suite`` (``drive eval``) → ``out/eval/<agent>`` (results and the
   agent's own report);
4. ``render`` — one episode of the planner in town traffic, drawn with what it imagined at each
   decision: its sampled paths coloured by cost and the chosen plan (``drive render
   agent=planner``) → ``out/planner.gif`` (and ``.png``, ``.npz``);

then the table on stdout (per agent: driving score, route completion, penalty, success,
collisions per km, red lights; per family too when the suite has few), ``demo.md``,
``report.html`` and ``demo.json`` (``drive.pipelines.demo_report``).

**Before anything runs** every stage's config is composed and checked, the suite expanded and the
references checked (agents that need a trained checkpoint are refused), so a mistake costs
seconds, not a collection.

**Resume.** ``out/run.json`` holds the settings (``sim_bridge.runfolder``): a re-run into the same
folder resumes only if they match (but for :data:`RESUMABLE`), else it is refused naming every
differing field. ``out/stages.jsonl`` gets one record per finished stage (its command and wall
time); a re-run reuses every recorded stage whose outputs are still there and runs the others,
each of which resumes from what a killed run left (collection shards, ``last.pt``, suite
``results.jsonl``). A training cut short by a kill restarts its wall-time budget from its last
checkpoint. A stage whose output was deleted runs again, and only it (the stages after it keep
their results): to start over, delete the run folder or give another ``out``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from drive.cli import command_config
from drive.pipelines.stages import (
    STAGES_FILE,
    Stage,
    checkpoint_of,
    cpu_seconds,
    recorded,
    run_locked,
    run_stage,
)
from scenarios.suites import Suite, suite_from_dict
from sim_bridge import runfolder

log = logging.getLogger("drive.demo")

SUITE_FILE = "suite.yaml"
LOCK_FILE = "demo.lock"
#: settings that may change when a demo resumes (where and how it runs, not what it computes)
RESUMABLE = ("out", "workers", "executor")
#: the agent that learns; every other agent of the demo is a reference
PLANNER = "planner"


def stages(cfg: DictConfig, checkpoint: Path) -> list[Stage]:
    """Every stage of the demo in ``cfg.out``, in order; the planner's with ``checkpoint``."""
    out = Path(cfg.out)
    workers = [f"workers={cfg.workers}"] if cfg.workers is not None else []
    own: dict[str, list[str]] = {str(k): list(v) for k, v in cfg.agents.items()}
    collect, train = out / "collect", out / "train"
    plan = [
        Stage("collect", "collect",
              ("driver=explore", f"hours={cfg.hours}", f"seed={cfg.seed}", f"out={collect}", f"executor={cfg.executor}",
               *cfg.collect),
              collect / "manifest.json", f"{cfg.hours:g} simulated hours of exploration"),
        Stage("train", "train",
              (f"data={collect}", f"hours={cfg.hours}", f"max_minutes={cfg.train_minutes}",
               f"optim.steps={cfg.train_steps}", f"out={train}", *cfg.train),
              train / "summary.json", f"the world model, {cfg.train_minutes:g} min or {cfg.train_steps} steps"),
    ]  # fmt: skip
    for agent in [PLANNER, *cfg.references]:
        model = [f"agent.checkpoint={checkpoint}"] if agent == PLANNER else []
        plan.append(
            Stage(f"eval/{agent}", "eval",
                  (f"agent={agent}", f"suite_file={out / SUITE_FILE}", f"out={out / 'eval' / agent}",
                   f"executor={cfg.executor}", *workers, *cfg.eval, *model, *own.get(agent, [])),
                  out / "eval" / agent / "summary.json", f"{agent} on suite {cfg.suite.name}")
        )  # fmt: skip
    plan.append(
        Stage("render", "render",
              (f"agent={PLANNER}", f"agent.checkpoint={checkpoint}", f"steps={cfg.gif_steps}", f"seed={cfg.seed}",
               f"out={out / 'planner.gif'}", *cfg.render, *own.get(PLANNER, [])),
              out / "planner.gif", f"a GIF of the planner and what it imagined, {cfg.gif_steps} steps")
    )  # fmt: skip
    return plan


def check(cfg: DictConfig, plan: list[Stage]) -> Suite:
    """Refuse a demo that would fail later: the suite, the references, every stage's config."""
    references = list(cfg.references)
    if PLANNER in references or len(set(references)) != len(references):
        raise SystemExit(f"drive demo: references={references}: name each agent once, not the {PLANNER} "
                         "(it always drives)")  # fmt: skip
    data = OmegaConf.to_container(cfg.suite, resolve=True)
    suite = suite_from_dict(data, source=f"suite {cfg.suite.name}")
    for stage in plan:
        composed = command_config(stage.command, list(stage.overrides))
        agent = composed.get("agent")
        if stage.command == "eval" and agent is not None and "checkpoint" in agent and not agent.checkpoint:
            raise SystemExit(
                f"drive demo: references: {agent.name} drives with a trained checkpoint, which the demo "
                f"trains only for the {PLANNER}; give agents that need no training (expert, lane_follower, "
                "oracle_planner, …)"
            )
    return suite


# ------------------------------------------------------------------------------------ the run


def run(cfg: DictConfig) -> int:
    return run_locked(Path(cfg.out), "demo", LOCK_FILE, lambda out: _run(cfg, out))


def _run(cfg: DictConfig, out: Path) -> int:
    started = time.perf_counter()
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    plan = stages(cfg, checkpoint_of(out / "train"))
    suite = check(cfg, plan)
    try:
        runfolder.open_manifest(out, settings, kind="demo", resumable=RESUMABLE,
                                advice="Give the stored settings (run.json) to resume, or a new out= folder.")  # fmt: skip
    except runfolder.SettingsMismatch as exc:
        raise SystemExit(f"drive demo: {exc}") from None
    runfolder.remove_stale_tmp(out)
    suite_yaml = yaml.safe_dump(settings["suite"], sort_keys=False).encode()
    if not (out / SUITE_FILE).exists() or (out / SUITE_FILE).read_bytes() != suite_yaml:
        runfolder.write_bytes_atomic(out / SUITE_FILE, suite_yaml)

    done = recorded(out)
    times: dict[str, dict[str, Any]] = {}
    for i in range(len(plan)):
        stage = plan[i]
        times[stage.key] = run_stage(out, stage, done, f"[{i + 1}/{len(plan)}] {stage.key}", log)
        if stage.key == "train":  # the planner drives the checkpoint the training wrote
            plan = stages(cfg, checkpoint_of(out / "train"))

    from drive.pipelines.demo_report import write_outputs

    paths = write_outputs(out, cfg, suite, plan, times, wall_seconds=time.perf_counter() - started)
    print(paths["text"], flush=True)
    return 0


__all__ = ["RESUMABLE", "STAGES_FILE", "Stage", "checkpoint_of", "cpu_seconds", "run", "stages"]
