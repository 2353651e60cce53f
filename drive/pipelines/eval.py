"""``drive eval suite=smoke agent=expert``: run a suite in closed loop, resumably, and report.

Every episode gets a ``started`` record before it runs and a final one after (``results.jsonl`` in
the run folder); re-running the same command skips finished episodes and re-runs the rest. An
agent error or a crashed worker is recorded and the suite goes on. A simulator server is checked
before anything runs (absent or of another version: one error, nothing run); an episode that a
server fault interrupts is recorded ``crashed``, then run again after reconnecting (``retries``),
the server restarted by ``sim.restart_command`` when set. At the end: a per-family table on
stdout, ``summary.json``, ``report.md`` / ``report.html`` and TensorBoard scalars, over every
episode of the run folder (earlier invocations included). Crashed episodes are left out of the
scores, counted and named; the command then exits 1 and re-running it runs only them.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from drive import build
from scenarios.executors import WorkerCrashed, error_text, make_executor
from scenarios.metrics import summarise
from scenarios.records import EpisodeResult, Status
from scenarios.report import write_reports
from scenarios.results import ResultStore, RunManifest
from scenarios.runner import EpisodeJob, describe, longest_first, run_episode
from scenarios.suites import Suite, load_suite, suite_from_dict
from sim_bridge import backends
from sim_bridge.api import SimulatorUnavailable
from sim_bridge.backends import BackendError

log = logging.getLogger("drive.eval")


def resolve_suite(cfg: DictConfig) -> Suite:
    """The composed ``suite`` group, or the file ``suite_file`` when given."""
    if cfg.suite_file:
        return load_suite(cfg.suite_file)
    data = OmegaConf.to_container(cfg.suite, resolve=True)
    return suite_from_dict(data, source=f"suite {cfg.suite.name}")


def _make_agent(agent_node: dict[str, Any]):
    return build.agent(agent_node)


def _make_sim(sim_node: dict[str, Any]):
    return build.simulator(sim_node, num_worlds=1, threads=1)


def check_simulator(sim_node: dict[str, Any], workers: int | None) -> int | None:
    """Before anything runs: the backend serves this many workers (returned, see
    :func:`sim_bridge.backends.workers_for`) and its server answers (:func:`backends.preflight`);
    raises ``BackendError`` or ``SimulatorUnavailable`` saying what to do."""
    sim_cfg = build.sim_config(sim_node)
    workers = backends.workers_for(sim_cfg, workers)
    backends.preflight(sim_cfg)
    return workers


def _reconnect(sim_node: dict[str, Any]) -> bool:
    """After a server fault: the server answers again (restarted by ``sim.restart_command`` when
    set)? Logs what to do when not."""
    try:
        backends.preflight(build.sim_config(sim_node))
        return True
    except SimulatorUnavailable as exc:
        log.error("%s; the interrupted episodes stay crashed: re-run the same command to resume", exc)
        return False


def run(cfg: DictConfig) -> int:
    try:  # built once here, so that a bad agent config stops the run before any episode
        _make_agent(OmegaConf.to_container(cfg.agent, resolve=True))  # type: ignore[arg-type]
    except ValueError as exc:
        raise SystemExit(f"drive eval: agent: {exc}") from exc
    suite = resolve_suite(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    try:  # before anything is written or run
        workers = check_simulator(config["sim"], cfg.workers)
    except (BackendError, SimulatorUnavailable) as exc:
        print(f"drive eval: {exc}", file=sys.stderr)
        return 1
    out = Path(cfg.out)
    store = ResultStore(out)
    with store.owned("`drive eval`"):  # a second eval into the same folder is refused, naming the first
        return _run(cfg, suite, out, store, {str(k): v for k, v in config.items()}, workers)


def _run(
    cfg: DictConfig, suite: Suite, out: Path, store: ResultStore, config: dict[str, Any], workers: int | None
) -> int:
    store.open_run(
        # where the server is (host, port, time-outs) is no setting of the results: a re-run
        # against a server restarted elsewhere resumes
        RunManifest.create(
            suite.name,
            cfg.agent.name,
            {"agent": config["agent"], "sim": backends.results_settings(config["sim"])},
        ),
        force=cfg.force,
    )
    names = [s.name for s in suite.scenarios]
    pending = set(store.pending(names))
    todo = longest_first([s for s in suite.scenarios if s.name in pending])
    log.info("suite %s: %d scenarios, %d to run, results in %s", suite.name, len(names), len(todo), out)

    agent_node = config["agent"]
    sim_node = config["sim"]
    jobs = [
        EpisodeJob(
            spec=spec,
            agent_factory=functools.partial(_make_agent, agent_node),
            sim_factory=functools.partial(_make_sim, sim_node),
            sim_key=repr(sorted(sim_node.items())),
            agent_name=cfg.agent.name,
            replay_dir=str(out / "replays"),
            save_replays=cfg.save_replays,
        )
        for spec in todo
    ]
    for job in jobs:
        store.mark_started(EpisodeResult(name=job.spec.name, family=job.spec.family, params=dict(job.spec.params),
                                         seed=job.spec.seed, agent=cfg.agent.name))  # fmt: skip
    start = time.perf_counter()
    done = 0
    server = backends.get(build.sim_config(sim_node).backend).server
    interrupted: list[EpisodeJob] = []  # by a simulator server fault: run again after reconnecting

    def on_result(job: EpisodeJob, outcome: Any) -> None:
        nonlocal done
        done += 1
        if isinstance(outcome, EpisodeResult):
            result = outcome
        else:  # the worker raised or died: recorded as crashed, never scored silently
            spec = job.spec
            if server and isinstance(outcome, WorkerCrashed):
                outcome.args = (
                    f"{outcome} (with sim={sim_node.get('backend')} at {sim_node.get('host')}:{sim_node.get('port')}: "
                    "the client process aborts when its server is lost or stops answering)",
                )
            result = EpisodeResult(name=spec.name, family=spec.family, params=dict(spec.params), seed=spec.seed,
                                   agent=cfg.agent.name, status=Status.CRASHED, termination="crashed",
                                   error=error_text(outcome))  # fmt: skip
            log.warning("%s crashed: %s", spec.name, f"{type(outcome).__name__}: {outcome}")
            if server and isinstance(outcome, (SimulatorUnavailable, WorkerCrashed)):
                if not interrupted:  # the first fault: restart a lost server now (when configured)
                    _reconnect(sim_node)
                interrupted.append(job)
        store.record(result)
        log.info("[%d/%d] %s", done, len(jobs), describe(result))

    with make_executor(cfg.executor, workers) as executor:
        executor.map(run_episode, jobs, on_result)
    for attempt in range(int(cfg.retries)):
        if not interrupted:
            break
        again, interrupted[:] = list(interrupted), []
        log.warning("%d episode(s) interrupted by the simulator server: running them again (retry %d of %d)",
                    len(again), attempt + 1, cfg.retries)  # fmt: skip
        if not _reconnect(sim_node):
            break
        done -= len(again)
        # fresh workers: a client process that lost its server may hold broken threads
        with make_executor(cfg.executor, workers) as executor:
            executor.map(run_episode, again, on_result)
    wall = time.perf_counter() - start
    store.compact()

    loaded = store.load()
    results = [loaded[n] for n in names if n in loaded]
    # a crash is the infrastructure's failure, never the agent's result: left out of the scores
    unfinished = [r for r in results if r.status in (Status.CRASHED, Status.STARTED)]
    scored = [r for r in results if r.status not in (Status.CRASHED, Status.STARTED)]
    summary = summarise(scored)
    summary["run"] = run_totals(results, len(jobs), wall)
    summary["left_out"] = {
        "crashed": [r.name for r in unfinished],
        "note": "crashed (or unfinished) episodes are not in the scores above; re-running the command runs them",
    }
    paths = write_reports(out, suite.name, cfg.agent.name, results, summary, worst_gifs=int(cfg.worst_gifs),
                          tensorboard=bool(cfg.tensorboard))  # fmt: skip
    print(paths["table"])
    print(f"report: {paths['md']}  {paths['html']}")
    if unfinished:
        shown = ", ".join(r.name for r in unfinished[:3]) + (", …" if len(unfinished) > 3 else "")
        print(
            f"drive eval: {len(unfinished)} of {len(results)} episodes crashed ({shown}) and are left out of the "
            "scores above; re-run the same command to run them again",
            file=sys.stderr,
        )
        return 1
    return 0


def run_totals(results: list[EpisodeResult], ran_now: int, wall: float) -> dict[str, Any]:
    """The whole run's totals (every invocation that wrote ``results``), and this invocation's share."""
    sim_seconds = sum(r.sim_time for r in results)
    episode_wall = sum(r.wall_time for r in results)
    return {
        "episodes": len(results),
        "crashed": sum(r.status in (Status.CRASHED, Status.STARTED) for r in results),
        "agent_errors": sum(r.status == Status.AGENT_ERROR for r in results),
        "sim_seconds": round(sim_seconds, 1),
        "episode_wall_seconds": round(episode_wall, 1),
        "realtime_factor": round(sim_seconds / episode_wall, 1) if episode_wall > 0 else None,
        "episodes_this_invocation": ran_now,
        "wall_seconds_this_invocation": round(wall, 1),
    }
