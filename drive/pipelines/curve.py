"""``drive curve``: hours to competence, for the world-model planner and for behaviour cloning.

**What runs.** For every learner × budget × seed (``curve=default``: budgets 0.25, 1, 4 h, 3 seeds):

1. *collect* — one collection per seed and data kind, of the largest budget
   (``out/data/<driver>-s<seed>``, or ``<driver>-<recipe>-s<seed>`` for a recipe other than
   ``explore``; ``drive collect``); every budget trains on its nested prefix
   (``world_model.dataset.select_prefix``: the first whole episodes reaching that many simulated
   hours), so the 0.5 h data are the first half of the 1 h data;
2. *train* — ``drive train`` (planner learners) or ``drive train-bc`` (bc) on that prefix
   (``out/runs/<learner>/h<budget>-s<seed>/train``);
3. *examine* — ``drive eval`` of the trained agent on the exam suite (``…/exam``).

Learners (:data:`LEARNERS`): ``planner`` — the world-model planner on a model trained on its own
exploration with hazards (``drive collect driver=explore recipe=hazards``: scenario-family
situations and counterfactual branches mixed in, all within the same hours); ``planner_explore`` —
the same planner and training on plain exploration (``recipe=explore``), the ablation of that
data recipe; ``bc`` — behaviour cloning of the expert's demonstrations of the same hours
(``drive collect driver=expert``). References (lane follower, expert) are examined once and drawn
as horizontal lines; so is ``planner_untrained`` (:data:`UNTRAINED`): the same planner with its
world model at initialisation (``drive train optim.steps=0`` on the ``planner`` learner's first
seed, its normalisation buffers fitted to the smallest budget's data), i.e. 0 h of experience:
what the hand-written costs and the geometry read from the observation achieve without anything
learned, the line a learner's hours must beat.

**The bar** is ``scenarios.competence.BAR`` (mean DS ≥ 80, success ≥ 70 %, no at-fault
pedestrian collision), printed in every output; a learner's hours to competence is the smallest budget all
of whose seeds pass ("not reached" is a valid answer).

**Run folder** (``out``): ``run.json`` (settings manifest; a resume must match it but for
:data:`RESUMABLE`), ``curve.jsonl`` (one record per finished job, appended atomically),
``invocations.jsonl`` (when each ``drive curve`` started and ended: the run's wall time, summed
over resumes), ``curve.png`` / ``curve.svg``, ``curve.md``, ``report.html``, ``tensorboard/``, and the data,
train and exam folders above. Each learner × budget × seed is one job on the executor
(``executor=local|inline|ray``). A ``kill -9`` at any instant loses nothing finished: a re-run
skips the jobs in ``curve.jsonl`` and resumes the others where they stopped (collection shards,
``last.pt``, exam ``results.jsonl``: each stage resumes through ``sim_bridge.runfolder``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from scenarios.competence import BAR, describe_bar, exam_metrics, failures, hours_to_competence
from scenarios.executors import error_text, make_executor
from sim_bridge import runfolder

log = logging.getLogger("drive.curve")

RECORDS_FILE = "curve.jsonl"
INVOCATIONS_FILE = "invocations.jsonl"
"""One line when each ``drive curve`` in the folder starts and one when it ends (its wall time)."""
LOCK_FILE = "curve.lock"
#: settings that may change when a curve resumes (how it runs, and which points it measures)
RESUMABLE = ("executor", "workers", "out", "tensorboard", "curve.budgets", "curve.seeds", "curve.learners",
             "curve.references", "curve.name")  # fmt: skip


class CurveError(RuntimeError):
    """A curve cannot start or a stage failed (the message says why and what to do)."""


# ------------------------------------------------------------------------------------ config


@dataclass
class CurvePlan:
    """What the curve measures (``curve=default|quick``: ``drive/conf/curve/<name>.yaml``)."""

    name: str = "default"
    """Name of the plan (names the default run folder)."""
    learners: list[str] = field(default_factory=lambda: ["planner", "planner_explore", "bc"])
    """Learners (:data:`LEARNERS`)."""
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0, 2.0, 4.0])
    """Simulated hours of experience (or demonstrations) per point [h]."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds per budget (each its own collection, training and exam)."""
    references: list[str] = field(default_factory=lambda: ["lane_follower", "expert", "planner_untrained"])
    """Agents examined once, drawn as horizontal lines (``planner_untrained``: :data:`UNTRAINED`)."""
    collect: list[str] = field(default_factory=list)
    """Overrides of every ``drive collect`` (e.g. ``worlds=4``, ``towns=[grid:0]``)."""
    train: list[str] = field(default_factory=list)
    """Overrides of every ``drive train`` (planner learners)."""
    train_bc: list[str] = field(default_factory=list)
    """Overrides of every ``drive train-bc``."""
    learn: list[str] = field(default_factory=list)
    """Overrides of every ``drive learn`` (learners with planner-driven rounds; ``train`` is passed
    on as its ``train`` list)."""
    eval: list[str] = field(default_factory=list)
    """Overrides of every exam ``drive eval`` (e.g. ``worst_gifs=0``)."""
    agents: dict[str, list[str]] = field(default_factory=dict)
    """Overrides of the exams of one agent (``{planner: [agent.optim.samples=128]}``)."""


@dataclass
class CurveConfig:
    """``drive curve``: hours to competence of each learner on growing budgets (resumable)."""

    suite: Any = MISSING
    """The exam (``suite=exam``; ``curve=quick`` picks ``smoke``)."""
    curve: CurvePlan = field(default_factory=CurvePlan)
    executor: str = "local"
    """Executor of the jobs and collections: ``local`` (process pool), ``inline`` or ``ray``."""
    workers: int | None = None
    """Worker processes (default one per core)."""
    out: str = "outputs/curve/${curve.name}"
    """Run folder; re-running the same command resumes it."""
    tensorboard: bool = True
    """Write the curve's scalars to ``out/tensorboard``."""


@dataclass(frozen=True)
class Learner:
    """A learner's recipe: who drives its data, which command trains it, which agent it is."""

    driver: str
    """``drive collect driver=…`` of its data."""
    trainer: str
    """``train`` (world model) or ``train_bc``."""
    agent: str
    """``agent=…`` of its exam."""
    doc: str
    recipe: str = "explore"
    """``drive collect recipe=…`` of its data (``drive/conf/recipe/``)."""


LEARNERS: dict[str, Learner] = {
    "planner": Learner(
        "explore",
        "train",
        "planner",
        "world-model planner, model trained on its own exploration with situations and branches",
        recipe="hazards",
    ),
    "planner_explore": Learner(
        "explore", "train", "planner", "world-model planner, model trained on plain exploration (ablation)"
    ),
    "planner_rounds": Learner(
        "explore",
        "learn",
        "planner",
        "world-model planner, half the hours explored with hazards, half driven by the planner itself in two "
        "rounds of collection and fine-tuning (drive learn)",
        recipe="hazards",
    ),
    "bc": Learner("expert", "train_bc", "bc", "behaviour cloning of the expert's demonstrations"),
}


#: references that are a learner's agent with its model at initialisation (0 h of experience),
#: by the learner whose first seed's collection fits the model's normalisation buffers
UNTRAINED: dict[str, str] = {"planner_untrained": "planner"}


# -------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class CurveJob:
    """One point of the curve (or a reference): train (unless a reference) and examine (picklable)."""

    key: str
    """``<learner>/h<budget>/s<seed>`` or ``reference/<agent>``."""
    learner: str
    agent: str
    budget: float | None
    seed: int | None
    data: str | None
    """Collection folder (None for a reference)."""
    trainer: str | None
    train_out: str | None
    train_overrides: tuple[str, ...]
    exam_out: str
    eval_overrides: tuple[str, ...]


def learner_of(job: CurveJob) -> Learner:
    """The learner whose data and training ``job`` uses (a trained reference's is its learner's)."""
    return LEARNERS[UNTRAINED.get(job.learner, job.learner)]


def job_key(learner: str, budget: float, seed: int) -> str:
    return f"{learner}/h{budget:g}/s{seed}"


def _command(name: str, overrides: list[str]) -> None:
    """Run ``drive <name>`` with ``overrides`` in this process (:func:`drive.cli.run_command`)."""
    from drive.cli import StageFailed, run_command

    try:
        run_command(name, overrides)
    except StageFailed as e:  # a bad stage config, the pipelines' refusals (mismatched resume, missing data)
        raise CurveError(str(e)) from None


def prefix_hours(data: str | Path, hours: float) -> float:
    """Simulated hours in the budget prefix of ``hours`` of a collection (whole episodes)."""
    from world_model.dataset import select_prefix
    from world_model.shards import read_manifest

    manifest = read_manifest(Path(data))
    steps = sum(manifest.shards[k].lengths[e] for k, eps in select_prefix(manifest, hours) for e in eps)
    return float(steps * manifest.dt / 3600.0)


def run_job(job: CurveJob) -> dict[str, Any]:
    """Train (unless a reference) and examine one point; returns its ``curve.jsonl`` record."""
    start = time.perf_counter()
    checkpoint = None
    record: dict[str, Any] = {"key": job.key, "learner": job.learner, "agent": job.agent, "budget_hours": job.budget,
                              "seed": job.seed, "data": job.data, "train": job.train_out, "exam": job.exam_out}  # fmt: skip
    if job.trainer is not None:
        assert job.train_out is not None and job.data is not None
        _command(job.trainer, list(job.train_overrides))
        if job.trainer == "learn":  # rounds: the last round's model; every hour of every kind counted
            learned = json.loads((Path(job.train_out) / "learn.json").read_text())
            checkpoint, train_out = learned["checkpoint"], Path(learned["checkpoint"]).parent
            record["data_hours"] = learned["hours"]["total"]
            record["hours_by_kind"] = {"base": learned["hours"]["base"], "rounds": learned["hours"]["rounds"]}
        else:
            train_out = Path(job.train_out)
            best = train_out / "best.pt"
            checkpoint = str(best if best.exists() else train_out / "last.pt")
            if job.budget is not None:
                record["data_hours"] = round(prefix_hours(job.data, job.budget), 6)
        with contextlib.suppress(OSError, ValueError):
            record["train_summary"] = {k: v for k, v in json.loads((train_out / "summary.json").read_text()).items()
                                       if k in ("steps", "best_step", "wall_seconds", "stopped_by")}  # fmt: skip
    overrides = [f"agent={job.agent}", *job.eval_overrides]  # the agent's own overrides come last
    if checkpoint is not None:
        overrides.append(f"agent.checkpoint={checkpoint}")
    _command("eval", [*overrides, f"out={job.exam_out}"])
    summary = json.loads((Path(job.exam_out) / "summary.json").read_text())
    metrics = exam_metrics(summary)
    record.update(metrics)
    record["checkpoint"] = checkpoint
    record["results"] = str(Path(job.exam_out) / "results.jsonl")
    record["failures"] = failures(metrics)
    record["passed"] = not record["failures"]
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    return record


# ----------------------------------------------------------------------------------- planning


class Curve:
    """The parent's view of a curve run folder: its jobs, collections and records."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.plan: CurvePlan = CurvePlan(**OmegaConf.to_container(cfg.curve, resolve=True))  # type: ignore[arg-type]
        self.out = Path(cfg.out)
        unknown = [name for name in self.plan.learners if name not in LEARNERS]
        if unknown:
            raise CurveError(f"unknown learner(s) {unknown}; choose among {', '.join(LEARNERS)}")
        for ref in self.plan.references:
            if ref in UNTRAINED and LEARNERS[UNTRAINED[ref]].trainer != "train":
                raise CurveError(
                    f"reference {ref}: learner {UNTRAINED[ref]} does not train with `drive train`"
                )
        if not self.plan.budgets or any(not b > 0 for b in self.plan.budgets):
            raise CurveError(f"curve.budgets={self.plan.budgets}: give positive hours")
        if not self.plan.seeds:
            raise CurveError("curve.seeds is empty: give at least one seed")
        self.suite = str(cfg.suite.name)
        self.records_path = self.out / RECORDS_FILE

    def collection(self, learner: Learner, seed: int) -> Path:
        """The collection ``learner`` trains on for ``seed`` (shared by learners of one data kind)."""
        kind = learner.driver if learner.recipe == "explore" else f"{learner.driver}-{learner.recipe}"
        return self.out / "data" / f"{kind}-s{seed}"

    def jobs(self) -> list[CurveJob]:
        """Every point of the plan (budgets ascending), then the references."""
        p, jobs = self.plan, []
        exam = [f"suite={self.suite}", "executor=inline", *p.eval]
        for budget in sorted(set(float(b) for b in p.budgets)):
            for seed in p.seeds:
                for name in p.learners:
                    learner = LEARNERS[name]
                    base = self.out / "runs" / name / f"h{budget:g}-s{seed}"
                    data = self.collection(learner, seed)
                    if (
                        learner.trainer == "learn"
                    ):  # base: a prefix of the shared collection; rounds in the job
                        train = [f"base={data}", f"hours={budget}", f"seed={seed}", f"out={base / 'train'}",
                                 "executor=inline", *_as_list("train", p.train),
                                 *p.learn]  # fmt: skip
                    else:
                        extra = p.train if learner.trainer == "train" else p.train_bc
                        train = [f"data={data}", f"hours={budget}", f"out={base / 'train'}", *extra]
                    jobs.append(CurveJob(key=job_key(name, budget, seed), learner=name, agent=learner.agent,
                                         budget=budget, seed=seed, data=str(data), trainer=learner.trainer,
                                         train_out=str(base / "train"), train_overrides=tuple(train),
                                         exam_out=str(base / "exam"),
                                         eval_overrides=(*exam, *p.agents.get(learner.agent, []))))  # fmt: skip
        for ref in p.references:
            base = self.out / "references" / ref
            if ref in UNTRAINED:  # the learner's agent on its model at initialisation
                learner = LEARNERS[UNTRAINED[ref]]
                data = self.collection(learner, p.seeds[0])
                train = [f"data={data}", f"hours={min(p.budgets)}", f"out={base / 'train'}", *p.train,
                         "optim.steps=0"]  # fmt: skip
                jobs.append(CurveJob(key=f"reference/{ref}", learner=ref, agent=learner.agent, budget=None,
                                     seed=p.seeds[0], data=str(data), trainer="train", train_out=str(base / "train"),
                                     train_overrides=tuple(train), exam_out=str(base / "exam"),
                                     eval_overrides=(*exam, *p.agents.get(learner.agent, []))))  # fmt: skip
                continue
            jobs.append(CurveJob(key=f"reference/{ref}", learner=ref, agent=ref, budget=None, seed=None, data=None,
                                 trainer=None, train_out=None, train_overrides=(), exam_out=str(base / "exam"),
                                 eval_overrides=(*exam, *p.agents.get(ref, []))))  # fmt: skip
        return jobs

    def records(self) -> dict[str, dict[str, Any]]:
        """The finished jobs' records by key (the last line of a key wins)."""
        return {r["key"]: r for r in runfolder.read_lines(self.records_path) if "key" in r}

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=False, default=_no_nan) + "\n").encode()
        with runfolder.locked(self.out / (RECORDS_FILE + ".lock")):
            runfolder.append_line(self.records_path, line)

    def log_invocation(self, event: str, **fields: Any) -> None:
        """Append ``{"event": event, "at": <unix time>, **fields}`` to :data:`INVOCATIONS_FILE`."""
        line = json.dumps({"event": event, "at": round(time.time(), 3), **fields}, sort_keys=True) + "\n"
        runfolder.append_line(self.out / INVOCATIONS_FILE, line.encode())

    def collect(self, jobs: list[CurveJob]) -> None:
        """Collect (or resume, or extend) every collection the pending ``jobs`` train on."""
        hours = max(float(b) for b in self.plan.budgets)
        needed = {self.collection(learner_of(j), int(j.seed)): (learner_of(j), int(j.seed))
                  for j in jobs if j.seed is not None}  # fmt: skip
        for out, (learner, seed) in sorted(needed.items()):
            driver, recipe = learner.driver, learner.recipe
            log.info("collection %s: %g h of driver %s, recipe %s, seed %d", out, hours, driver, recipe, seed)
            overrides = [f"driver={driver}", f"recipe={recipe}", f"hours={hours}", f"seed={seed}", f"out={out}",
                         f"executor={self.cfg.executor}", *self.plan.collect]  # fmt: skip
            if self.cfg.workers is not None:
                overrides.append(f"workers={self.cfg.workers}")
            _command("collect", overrides)


def _as_list(key: str, values: list[str]) -> list[str]:
    """``['key=["a=1","b=2"]']``: a list of overrides handed on as one list-valued override."""
    return [f"{key}=[" + ",".join(json.dumps(str(v)) for v in values) + "]"] if values else []


def _no_nan(obj: Any) -> Any:
    raise TypeError(f"not JSON: {obj!r}")


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """NaN → None (JSON has none; a suite of crashed episodes can have NaN figures)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


# ------------------------------------------------------------------------------------ the run


def run(cfg: DictConfig) -> int:
    try:
        curve = Curve(cfg)
        curve.out.mkdir(parents=True, exist_ok=True)
        with runfolder.locked(curve.out / LOCK_FILE, busy=f"another `drive curve` is running in {curve.out} "
                              f"(it holds {LOCK_FILE})"):  # fmt: skip
            return _run(curve)
    except (CurveError, runfolder.SettingsMismatch, runfolder.RunFolderBusy) as e:
        print(f"drive curve: {e}", file=sys.stderr)
        return 2


def _run(curve: Curve) -> int:
    cfg = curve.cfg
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    runfolder.open_manifest(curve.out, settings, kind="curve", resumable=RESUMABLE)
    runfolder.remove_stale_tmp(curve.out)
    print(describe_bar(), flush=True)
    jobs = curve.jobs()
    done = curve.records()
    pending = [j for j in jobs if j.key not in done]
    log.info("curve %s: %d point(s), %d finished, %d to run; %s", curve.out, len(jobs), len(jobs) - len(pending),
             len(pending), describe_bar())  # fmt: skip
    failed: list[str] = []
    start = time.perf_counter()
    if pending:
        curve.log_invocation("start", pending=len(pending), code_version=runfolder.code_version())
        curve.collect(pending)

        def on_result(job: CurveJob, outcome: Any) -> None:
            if isinstance(outcome, dict):
                curve.append(_clean({**outcome, "finished_at": round(time.time(), 3)}))
                log.info("%s: DS %.1f, success %.0f%%, %s", job.key, outcome["driving_score"],
                         100 * outcome["success_rate"], "passes" if outcome["passed"] else "below the bar")  # fmt: skip
            else:
                failed.append(job.key)
                log.error("%s failed (re-run to resume it):\n%s", job.key, error_text(outcome))

        with make_executor(str(cfg.executor), cfg.workers) as executor:
            executor.map(run_job, pending, on_result)
        curve.log_invocation("end", wall_seconds=round(time.perf_counter() - start, 1), failed=len(failed))
    records = curve.records()
    ordered = [records[j.key] for j in jobs if j.key in records]
    from drive.pipelines.curve_report import write_outputs

    invocations = runfolder.read_lines(curve.out / INVOCATIONS_FILE)
    paths = write_outputs(curve.out, ordered, curve.plan, curve.suite, tensorboard=bool(cfg.tensorboard),
                          invocations=invocations, timed=list(records.values()))  # fmt: skip
    print(paths["table"])
    print(f"curve: {paths['png']}  {paths['md']}  {paths['html']}")
    if failed:
        print(
            f"drive curve: {len(failed)} job(s) failed ({', '.join(failed)}); re-run to finish",
            file=sys.stderr,
        )
        return 1
    return 0


def summary_by_learner(records: list[dict[str, Any]], plan: CurvePlan) -> dict[str, dict[str, Any]]:
    """Per learner: hours to competence (``None``: not reached) and the passes per budget."""
    out: dict[str, dict[str, Any]] = {}
    for name in plan.learners:
        mine = [r for r in records if r["learner"] == name and r.get("budget_hours") is not None]
        hours = hours_to_competence(((r["budget_hours"], r["seed"], r["passed"]) for r in mine), plan.seeds)
        per_budget = {}
        for b in sorted({float(r["budget_hours"]) for r in mine}):
            rs = [r for r in mine if float(r["budget_hours"]) == b]
            per_budget[b] = {"seeds": len(rs), "passed": sum(bool(r["passed"]) for r in rs)}
        out[name] = {"hours_to_competence": hours, "per_budget": per_budget}
    return out


__all__ = ["BAR", "LEARNERS", "CurveConfig", "CurveJob", "CurvePlan", "run", "run_job", "summary_by_learner"]
