"""``drive bench eval``: closed-loop evaluation throughput — episodes per minute and simulated
seconds per wall second of an agent on a suite with N workers (one JSON line).

It runs the suite through the same runner and executors as ``drive eval`` (fresh run folder, no
report), so the figure includes everything an evaluation pays for: simulator, agent, criteria.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from drive.pipelines.eval import _make_agent, _make_sim, check_simulator, resolve_suite
from scenarios.executors import make_executor
from scenarios.records import EpisodeResult, Status
from scenarios.runner import EpisodeJob, longest_first, run_episode
from sim_bridge.api import SimulatorUnavailable
from sim_bridge.backends import BackendError


def run(cfg: DictConfig) -> int:
    suite = resolve_suite(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    scenarios = longest_first(suite.scenarios[: cfg.limit] if cfg.limit else suite.scenarios)
    try:  # a server backend serves one worker per server; it must answer before the clock starts
        workers = check_simulator(config["sim"], cfg.workers)
    except (BackendError, SimulatorUnavailable) as exc:
        print(f"drive bench eval: {exc}", file=sys.stderr)
        return 1
    jobs = [
        EpisodeJob(
            spec=spec,
            agent_factory=functools.partial(_make_agent, config["agent"]),
            sim_factory=functools.partial(_make_sim, config["sim"]),
            sim_key=repr(sorted(config["sim"].items())),
            agent_name=cfg.agent.name,
            save_replays="none",
        )
        for spec in scenarios
    ]
    results: list[Any] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(), make_executor(cfg.executor, workers) as executor:
        executor.map(run_episode, jobs, lambda job, outcome: results.append(outcome))
    wall = time.perf_counter() - start
    done = [r for r in results if isinstance(r, EpisodeResult) and r.status != Status.CRASHED]
    sim_seconds = sum(r.sim_time for r in done)
    print(json.dumps({
        "suite": suite.name,
        "agent": cfg.agent.name,
        "executor": cfg.executor,
        "workers": workers,
        "episodes": len(jobs),
        "failed": len(jobs) - len(done),
        "wall_s": round(wall, 1),
        "episodes_per_min": round(60.0 * len(jobs) / wall, 1),
        "sim_s_per_wall_s": round(sim_seconds / wall, 1),
        "mean_driving_score": round(sum(r.scores.get("driving_score", 0.0) for r in done) / max(len(done), 1), 1),
    }), flush=True)  # fmt: skip
    return 0
