"""``drive collect hours=1 driver=explore``: simulated hours of experience into NPZ shards.

**Budget.** ``hours`` of *simulated* experience, summed over worlds (steps × dt). It is cut into
jobs of ``job_hours`` (the last one shorter); job ``k`` drives town ``towns[k % len(towns)]`` with
one batched simulator of ``worlds`` worlds, until its share is reached. Jobs run on the executor's
workers; each writes its own shards (``job<k>-<seq>.npz``, whole episodes, atomically) and the
parent adds them to ``manifest.json`` (atomically) as jobs finish.

**Episodes.** Every world drives episodes of a random route with traffic, pedestrians and signals
(densities and route length drawn per episode from the configured ranges). An episode ends on a
collision or at the route's end (``done``), or is cut after ``max_episode_seconds``, when the ego
strays ``max_route_deviation`` from its route, or when the job's budget runs out; the world then
restarts alone (a partial reset) with a fresh seed.

**Recipes.** ``recipe=explore`` (the default) drives only such episodes. ``recipe=hazards`` mixes
in *situations*: ``situations.share`` of the episodes are built by a scenario family on the job's
town, off the held-out exam (``drive.pipelines.situations``); and records *counterfactual
branches*: at hazard moments (``drive.pipelines.hazards``) a world is forked into
``branches.k`` action sequences of ``branches.steps`` decisions, each stored as an episode of its
own (``drive.pipelines.branches``). Every kind of step counts in the budget: a job stops when its
recorded steps (its worlds' and its branches') reach its share. A world branches at most every
``branches.every`` seconds (and not in an episode's first ``every``), and only while the branches
stay within ``branches.max_share`` of the job's steps recorded so far, so branch points spread over
the whole job. The manifest counts simulated time per kind (``plain``,
``situation``, ``branch``) and per scenario family.

**Seeds.** Episode ``i`` of job ``k`` in run ``r`` (the ``r``-th start of this collection) has seed
and id ``((seed · 10⁴ + k) · 10³ + r) · 10⁵ + i``: unique within a collection, never repeated by a
resume, and enough to replay the episode (simulator, exploration driver and situation are seeded
with it). Branches take ids from the same sequence (a branch is replayed from its parent's id and
step, ``EpisodeMeta``).

**Resume.** Re-running the same command continues: shards already written are kept and count
towards the budget (including those a killed run wrote but had not yet entered in the manifest:
they are checked and adopted), and each job runs only what is missing from its share. This also
repairs a collection: a listed shard that is missing or damaged (its checksum differs) is dropped
from the manifest (a damaged file is kept as ``*.corrupt``) and its share collected again. The
collection's settings must match the stored ones (``hours``, ``workers``, ``executor`` and ``out``
may change; a larger ``hours`` extends the collection); otherwise the run is refused, naming the
differing fields (a collection written before recipes existed resumes as ``recipe=explore``). A
lock file keeps two collections from writing one folder at once.

**Order.** The manifest lists shards in rounds of one job per town, round-robin within a round
(every job's first shard, then every job's second, …; ``world_model.shards.collection_order``), so
a budget prefix (``world_model.dataset``) draws on every town early, and extending a collection
leaves the prefixes of its whole rounds unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from drive import build
from drive.pipelines.branches import Brancher, BranchesConfig
from drive.pipelines.hazards import at_hazard
from drive.pipelines.situations import (
    SituationError,
    SituationsConfig,
    check_towns,
    held_out,
    is_situation,
    placeable,
    situation,
)
from planning import registry
from planning.base import Agent, AgentInfo
from scenarios.executors import error_text, make_executor
from scenarios.suites import Footprint
from sim_bridge import runfolder
from sim_bridge.api import MapRef, Simulator, WorldSpec
from sim_bridge.maps.towns import TOWNS
from world_model.recorder import EpisodeRecorder
from world_model.shards import (
    EndReason,
    Episode,
    EpisodeKind,
    EpisodeMeta,
    Manifest,
    ManifestError,
    ShardError,
    ShardInfo,
    parse_shard_name,
    read_manifest,
    read_shard,
    sha256_bytes,
    write_manifest,
    write_shard,
)

log = logging.getLogger("drive.collect")

#: config keys that may change when a collection is resumed (everything else must match)
RESUMABLE = ("hours", "workers", "executor", "out")
#: config keys added with the recipes: a stored collection without them is a plain-exploration one
RECIPE_KEYS = ("recipe", "situations", "branches")
#: bounds of the episode seed scheme (see module doc)
MAX_JOBS, MAX_RUNS, MAX_EPISODES = 10_000, 1_000, 100_000
LOCK_FILE = "collect.lock"
#: held shared by every running job, exclusively (briefly) by a starting collection: a job left
#: running by a killed parent must finish before a resume may write the same job's shards
WORKERS_LOCK_FILE = "workers.lock"
#: mixed into the seed of the per-episode world settings (densities, route length)
_SPEC_TAG = 0x5BEC


class CollectError(RuntimeError):
    """The collection cannot start or continue (the message says why and what to do)."""


# ---------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class EpisodeSettings:
    """What every episode of a job draws its world from."""

    town: str
    """Map key: ``town:seed`` or ``xodr:<path>``."""
    vehicles: tuple[int, int]
    pedestrians: tuple[int, int]
    route_length: tuple[float, float]
    """[m]"""
    traffic_radius: float
    """[m]"""
    max_episode_seconds: float
    """[s]"""
    route_end_distance: float
    """[m]"""
    max_route_deviation: float
    """[m]"""


@dataclass(frozen=True)
class CollectJob:
    """One unit of work: drive ``seconds`` of simulated experience in one town (picklable)."""

    job: int
    run: int
    seconds: float
    """Simulated time still to collect [s]."""
    first_seq: int
    """Sequence number of the job's first new shard."""
    out: str
    seed: int
    settings: EpisodeSettings
    sim: dict[str, Any]
    """The ``sim`` config (plain), ``num_worlds`` included."""
    driver: dict[str, Any]
    """The ``driver`` config (plain)."""
    shard_steps: int
    situations: dict[str, Any]
    """The ``situations`` config (plain)."""
    branches: dict[str, Any]
    """The ``branches`` config (plain)."""
    held_out: Footprint | None
    """What situations must stay off (None when there are none)."""


def episode_seed(seed: int, job: int, run: int, index: int) -> int:
    """Seed (and id) of episode ``index`` of ``job`` in ``run`` (see module doc)."""
    if not (0 <= job < MAX_JOBS and 0 <= run < MAX_RUNS and 0 <= index < MAX_EPISODES and seed >= 0):
        raise CollectError(
            f"episode seed out of range: seed={seed} (>= 0), job={job} (< {MAX_JOBS}), run={run} "
            f"(< {MAX_RUNS}), episode={index} (< {MAX_EPISODES} per job and run); raise job_hours "
            "(fewer jobs) or lower it (fewer episodes per job), or start a new collection"
        )
    return ((seed * MAX_JOBS + job) * MAX_RUNS + run) * MAX_EPISODES + index


def map_ref(key: str) -> MapRef:
    """``grid:0`` → the procedural grid town of seed 0; ``xodr:<path>`` → an OpenDRIVE file."""
    kind, _, rest = key.partition(":")
    if kind == "xodr" and rest:
        return MapRef(xodr=rest)
    if not kind or (rest and not rest.lstrip("-").isdigit()):
        raise CollectError(
            f"town {key!r}: write a procedural town as 'name:seed' (e.g. grid:0) or 'xodr:<path>'"
        )
    if kind not in TOWNS:
        raise CollectError(
            f"town {key!r}: unknown town {kind!r}; procedural towns are: {', '.join(sorted(TOWNS))}"
        )
    return MapRef(town=kind, seed=int(rest or 0))


def world_spec(settings: EpisodeSettings, seed: int) -> WorldSpec:
    """The world of the episode of ``seed``: densities and route length drawn from its seed."""
    rng = np.random.default_rng([_SPEC_TAG, seed])
    return WorldSpec(
        map=map_ref(settings.town),
        vehicles=int(rng.integers(settings.vehicles[0], settings.vehicles[1] + 1)),
        pedestrians=int(rng.integers(settings.pedestrians[0], settings.pedestrians[1] + 1)),
        route_length=float(rng.uniform(*settings.route_length)),
        traffic_radius=settings.traffic_radius,
    )


_SIMULATORS: dict[str, Simulator] = {}
"""One simulator per worker process and sim config (its map switches with the town)."""


def _simulator(sim: dict[str, Any]) -> Simulator:
    key = json.dumps(sim, sort_keys=True)
    if key not in _SIMULATORS:
        _SIMULATORS[key] = build.simulator(sim)
    return _SIMULATORS[key]


def make_driver(node: dict[str, Any], seed: int) -> Agent:
    """The collection driver a ``driver`` config names (any agent of ``planning.registry``)."""
    return build.agent(node, seed=seed)


def run_job(job: CollectJob) -> dict[str, Any]:
    """Drive ``job.seconds`` of simulated experience and write it as shards (worker side).

    Returns ``{"job", "shards": [ShardInfo dicts], "steps", "branch_steps", "branch_points",
    "wall_seconds"}`` (steps recorded, branches included; of them in branches; branch points).
    """
    with _lock(Path(job.out) / WORKERS_LOCK_FILE, fcntl.LOCK_SH):
        return _run_job(job)


def _run_job(job: CollectJob) -> dict[str, Any]:
    start = time.perf_counter()
    st = job.settings
    sim = _simulator(job.sim)
    agent = make_driver(job.driver, seed=episode_seed(job.seed, job.job, job.run, 0))
    B, dt = sim.num_worlds, sim.dt
    budget = max(math.ceil(job.seconds / dt - 1e-9), 1)  # steps to record, worlds and branches together
    max_steps = max(round(st.max_episode_seconds / dt), 1)
    counter = iter(range(MAX_EPISODES + 1))
    situ = build.from_dict(SituationsConfig, job.situations)
    town = map_ref(st.town)
    families = placeable(list(situ.families), town, situ.spread) if situ.share > 0.0 else []
    footprint = job.held_out or Footprint(frozenset(), frozenset(), {})
    bcfg = build.from_dict(BranchesConfig, job.branches)
    brancher = Brancher(sim, bcfg, st.route_end_distance, st.max_route_deviation) if bcfg.enabled else None
    episode = np.full(B, -1, dtype=np.int64)  # id of each world's open episode
    metas = [EpisodeMeta()] * B
    last_fork = np.zeros(B, dtype=np.int64)  # step of each world's last branch point (or start)

    def next_seed() -> int:
        return episode_seed(job.seed, job.job, job.run, next(counter))

    def restart(worlds: list[int], full: bool) -> Any:
        seeds = [next_seed() for _ in worlds]
        specs = []
        for w, s in zip(worlds, seeds, strict=True):
            chosen = bool(families) and is_situation(s, situ.share, footprint)
            spec = situation(s, town, families, situ.spread, footprint) if chosen else None
            specs.append(world_spec(st, s) if spec is None else spec.world)
            metas[w] = (
                EpisodeMeta() if spec is None else EpisodeMeta(EpisodeKind.SITUATION, family=spec.family)
            )
        obs = sim.reset(specs, seeds, worlds=None if full else worlds)
        agent.seed(worlds, seeds)
        routes = tuple(sim.route(b) for b in range(B))
        info = AgentInfo(num_worlds=B, dt=dt, ego=sim.ego_vehicle, road_map=sim.road_map, routes=routes)
        agent.reset(info, worlds=None if full else worlds)
        recorder.begin(worlds, seeds, st.town, [metas[w] for w in worlds])
        episode[worlds] = seeds
        last_fork[worlds] = 0  # no branch point in an episode's first `every` (its start is a standstill)
        return obs

    recorder = EpisodeRecorder(B)
    obs = restart(list(range(B)), full=True)
    finished: list[Episode] = []
    shards: list[ShardInfo] = []
    used = branch_steps = branch_points = 0  # steps recorded; of them in branches; branch points

    def flush(at_least: int) -> None:
        if finished and sum(e.steps for e in finished) >= at_least:
            shards.append(write_shard(job.out, finished, dt, job.job, job.first_seq + len(shards)))
            finished.clear()

    while True:
        # --- branch points: worlds at a hazard moment, not too soon after their last (or their
        # start), while branches stay within their share of what is recorded so far (so branch
        # points spread over the whole job) and the job's budget leaves room for one more step
        if brancher is not None:
            cost = brancher.k * int(bcfg.steps)
            lengths = recorder.lengths()
            due = at_hazard(obs, bcfg.hazards, bcfg.triggers) & (lengths - last_fork >= brancher.every)
            for b in np.flatnonzero(due).tolist():
                if branch_steps + cost > bcfg.max_share * (used + cost) or used + cost + B > budget:
                    break
                ids = [next_seed() for _ in range(brancher.k)]
                branches = brancher.run(
                    sim, b, obs, int(episode[b]), int(lengths[b]), metas[b].family, ids, st.town
                )
                steps = sum(e.steps for e in branches)
                used, branch_steps, branch_points = used + steps, branch_steps + steps, branch_points + 1
                last_fork[b] = lengths[b]
                finished += branches
        last = used + B >= budget
        action = agent.act(obs)
        nxt, events = sim.step(action)
        # --- why episodes end (later rules win): truncations, then the terminal ones; the budget last
        route_end = events.route_length - events.route_progress <= st.route_end_distance
        reason = np.full(B, -1, dtype=np.int64)
        reason[recorder.lengths() + 1 >= max_steps] = EndReason.MAX_LENGTH
        reason[events.route_deviation > st.max_route_deviation] = EndReason.OFF_ROUTE
        reason[route_end] = EndReason.ROUTE_END
        reason[events.collision] = EndReason.COLLISION
        if last:
            reason[reason < 0] = EndReason.BUDGET
        recorder.record(obs, action, nxt, events, done=events.collision | route_end)
        used += B
        ended = np.flatnonzero(reason >= 0).tolist()
        if ended:
            finished += recorder.end(ended, [EndReason(int(reason[b])) for b in ended])
            if not last:
                nxt = restart(ended, full=False)
        obs = nxt
        flush(job.shard_steps)
        if last:
            break
    flush(1)
    if brancher is not None:
        brancher.close()
    return {
        "job": job.job,
        "shards": [s.to_dict() for s in shards],
        "steps": used,
        "branch_steps": branch_steps,
        "branch_points": branch_points,
        "wall_seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------- the parent


@contextlib.contextmanager
def _lock(path: Path, mode: int, busy: str = "") -> Iterator[None]:
    """An advisory ``flock`` on ``path`` (released by the kernel if the process dies). With
    ``busy``, fail at once with that message instead of waiting."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise CollectError(busy) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """The collection folder for this process alone: no other collection, no job of a killed one."""
    with _lock(
        out / LOCK_FILE, fcntl.LOCK_EX, f"another `drive collect` is writing {out} (it holds {LOCK_FILE})"
    ):
        with _lock(out / WORKERS_LOCK_FILE, fcntl.LOCK_EX,
                   f"jobs of an earlier `drive collect` on {out} are still running (on another machine, or "
                   "workers left by a parent that was killed); wait for them to exit, or end them, then re-run"):  # fmt: skip
            pass
        yield


def _range(name: str, values: list[Any], cast: type) -> tuple[Any, Any]:
    vals = [cast(v) for v in values]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1] or vals[0] < 0:
        raise CollectError(f"{name}={values}: give [lo, hi] with 0 <= lo <= hi (or one value)")
    return vals[0], vals[1]


class Collection:
    """The parent's view of a collection folder: the manifest, job budgets, what is missing."""

    def __init__(self, cfg: DictConfig) -> None:
        config = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(config, dict)
        self.config: dict[str, Any] = json.loads(json.dumps(config))
        self.out = Path(cfg.out)
        self.hours = float(cfg.hours)
        self.job_seconds = float(cfg.job_hours) * 3600.0
        if not self.hours > 0.0 or not self.job_seconds > 0.0:
            raise CollectError(f"hours={cfg.hours} and job_hours={cfg.job_hours} must be positive")
        if int(cfg.worlds) < 1 or int(cfg.shard_steps) < 1:
            raise CollectError(f"worlds={cfg.worlds} and shard_steps={cfg.shard_steps} must be >= 1")
        if cfg.driver.name not in registry.names():
            raise CollectError(
                f"unknown driver {cfg.driver.name!r}; choose one of {', '.join(registry.names())}"
            )
        if not cfg.towns:
            raise CollectError("towns is empty: name at least one map (e.g. towns=[grid:0])")
        for town in cfg.towns:
            ref = map_ref(str(town))
            if ref.xodr and not Path(ref.xodr).is_file():
                raise CollectError(f"town {town!r}: no OpenDRIVE file at {ref.xodr}")
        self.cfg = cfg
        self.manifest: Manifest | None = None
        self.held_out = self._check_recipe()

    def _check_recipe(self) -> Footprint | None:
        """Refuse situations and branches that cannot run as configured; the held-out footprint
        situations stay off (None without situations)."""
        cfg = self.cfg
        branches = cfg.branches
        if branches.enabled:
            backend = cfg.sim.get("backend") or "embedded"
            if backend != "embedded":
                raise CollectError(
                    f"branches need a simulator that can fork its worlds (sim=embedded), not sim={backend}; "
                    "set branches.enabled=false (or recipe=explore)"
                )
            if not branches.sequences or not branches.triggers:
                raise CollectError(
                    "branches.sequences and branches.triggers must each name at least one entry "
                    "(or set branches.enabled=false)"
                )
        if not float(cfg.situations.share) > 0.0:
            return None
        towns = [str(t) for t in cfg.towns]
        refs = [map_ref(t) for t in towns]
        try:
            footprint = held_out([str(n) for n in cfg.situations.held_out])
            check_towns(towns, refs, footprint)
        except SituationError as e:
            raise CollectError(str(e)) from None
        families = [str(f) for f in cfg.situations.families]
        for town, ref in zip(towns, refs, strict=True):
            if not placeable(families, ref, float(cfg.situations.spread)):
                raise CollectError(
                    f"town {town} can place none of situations.families ({', '.join(families)}); "
                    "add families that fit it (e.g. cut_in_highway, lead_vehicle_brake on highway towns) or drop it"
                )
        return footprint

    # -- manifest -------------------------------------------------------------------------

    def open(self, dt: float) -> Manifest:
        """Create or resume the manifest (settings checked), tidy the folder, adopt orphan shards."""
        fixed = {k: v for k, v in self.config.items() if k not in RESUMABLE}
        if (self.out / "manifest.json").exists():
            manifest = read_manifest(self.out)
            stored = {k: v for k, v in manifest.config.items() if k not in RESUMABLE}
            if self.held_out is None and not self.cfg.branches.enabled:
                for key in RECIPE_KEYS:  # written before recipes: plain exploration, as this one
                    stored.setdefault(key, fixed[key])
            diff = [d.path for d in runfolder.differences(stored, fixed)]
            if diff:
                raise CollectError(
                    f"{self.out} holds a collection with other settings: {', '.join(diff)} differ "
                    f"(only {', '.join(RESUMABLE)} may change on resume). Use the stored settings "
                    "(see its manifest.json) or a new out folder."
                )
            self._repair(manifest)
        else:
            manifest = Manifest.create(self.config, str(self.cfg.driver.name), dt, runfolder.code_version())
        manifest.config = self.config
        runfolder.remove_stale_tmp(self.out)  # left by a kill during an atomic write
        self.manifest = manifest
        self.adopt()
        manifest.runs += 1
        if manifest.runs > MAX_RUNS:
            raise CollectError(f"{self.out} was started {MAX_RUNS} times; start a new collection")
        write_manifest(self.out, manifest)
        return manifest

    def _repair(self, manifest: Manifest) -> None:
        """Every listed shard must exist with its checksum (hashing is cheap; decoding is not
        needed). One that is missing or damaged is dropped from the manifest (a damaged file is
        renamed ``*.corrupt``) with a warning, and its job's share is collected again by this run:
        re-running the collection is the one way to repair it."""
        kept = []
        for s in manifest.shards:
            path = self.out / s.file
            try:
                data = path.read_bytes()
            except OSError as e:
                log.warning("%s is listed in the manifest but cannot be read (%s); its share (%.1f s of job %d) "
                            "will be collected again", path, e.strerror, s.sim_seconds, s.job)  # fmt: skip
                continue
            if sha256_bytes(data) != s.sha256:
                path.rename(path.with_name(path.name + ".corrupt"))
                log.warning("%s was damaged after it was written (sha256 differs from the manifest's); renamed to "
                            "%s.corrupt, its share (%.1f s of job %d) will be collected again",
                            path, path.name, s.sim_seconds, s.job)  # fmt: skip
                continue
            kept.append(s)
        if len(kept) < len(manifest.shards):
            manifest.shards = kept
            manifest.complete = False

    def adopt(self, job: int | None = None) -> list[ShardInfo]:
        """Add complete shard files not yet in the manifest (of ``job``, or all): written by a job
        that then died or was killed. A damaged one is renamed ``*.corrupt`` with a warning."""
        assert self.manifest is not None
        known = {s.file for s in self.manifest.shards}
        seeds = {i for s in self.manifest.shards for i in s.seeds}
        adopted = []
        for path in sorted(self.out.glob("job*-*.npz")):
            parsed = parse_shard_name(path.name)
            if path.name in known or parsed is None or (job is not None and parsed[0] != job):
                continue
            try:
                info = read_shard(path).info(*parsed)
            except ShardError as e:
                log.warning("%s; renamed to %s.corrupt and its share will be collected again", e, path.name)
                path.rename(path.with_name(path.name + ".corrupt"))
                continue
            self._register(info, seeds)
            adopted.append(info)
        if adopted:
            log.info("adopted %d shard(s) written before the manifest saw them", len(adopted))
        return adopted

    def _register(self, info: ShardInfo, seeds: set[int]) -> None:
        assert self.manifest is not None
        repeated = seeds.intersection(info.seeds)
        if repeated:
            raise CollectError(
                f"shard {info.file} repeats episode seeds {sorted(repeated)[:5]} already in the collection "
                "(a bug: seeds must never repeat); the manifest was left unchanged"
            )
        seeds.update(info.seeds)
        self.manifest.shards.append(info)

    # -- jobs -----------------------------------------------------------------------------

    def budgets(self) -> list[float]:
        """Simulated seconds of each job's share [s]."""
        total = self.hours * 3600.0
        count = max(math.ceil(total / self.job_seconds - 1e-9), 1)
        if count > MAX_JOBS:
            raise CollectError(f"{count} jobs exceed {MAX_JOBS}; raise job_hours")
        return [min(self.job_seconds, total - k * self.job_seconds) for k in range(count)]

    def stored(self) -> dict[int, tuple[float, int]]:
        """Per job: simulated seconds stored and the number of shards."""
        assert self.manifest is not None
        out: dict[int, tuple[float, int]] = {}
        for s in self.manifest.shards:
            seconds, count = out.get(s.job, (0.0, 0))
            out[s.job] = (seconds + s.sim_seconds, max(count, s.seq + 1))
        return out

    def pending(self) -> list[CollectJob]:
        """Jobs whose share is not yet stored, with what is missing."""
        assert self.manifest is not None
        cfg, stored = self.cfg, self.stored()
        sim = self.config["sim"]
        towns = [str(t) for t in cfg.towns]
        jobs = []
        for k, budget in enumerate(self.budgets()):
            seconds, shards = stored.get(k, (0.0, 0))
            if seconds >= budget - 1e-6:
                continue
            settings = EpisodeSettings(
                town=towns[k % len(towns)],
                vehicles=_range("vehicles", list(cfg.vehicles), int),
                pedestrians=_range("pedestrians", list(cfg.pedestrians), int),
                route_length=_range("route_length", list(cfg.route_length), float),
                traffic_radius=float(cfg.traffic_radius),
                max_episode_seconds=float(cfg.max_episode_seconds),
                route_end_distance=float(cfg.route_end_distance),
                max_route_deviation=float(cfg.max_route_deviation),
            )
            jobs.append(CollectJob(job=k, run=self.manifest.runs - 1, seconds=budget - seconds, first_seq=shards,
                                   out=str(self.out), seed=int(cfg.seed), settings=settings, sim=sim,
                                   driver=self.config["driver"], shard_steps=int(cfg.shard_steps),
                                   situations=self.config["situations"], branches=self.config["branches"],
                                   held_out=self.held_out))  # fmt: skip
        return jobs

    def finish_job(self, job: CollectJob, outcome: Any) -> tuple[bool, list[ShardInfo]]:
        """Register a finished job's shards (and any it wrote before failing); write the manifest."""
        assert self.manifest is not None
        ok = isinstance(outcome, dict)
        if ok:
            seeds = {i for s in self.manifest.shards for i in s.seeds}
            known = {s.file for s in self.manifest.shards}
            for data in outcome["shards"]:
                info = ShardInfo.from_dict(data)
                if info.file not in known:
                    self._register(info, seeds)
        added = [] if ok else self.adopt(job.job)
        write_manifest(self.out, self.manifest)
        return ok, added


def _summary(manifest: Manifest, before: float, wall: float) -> dict[str, Any]:
    totals = manifest.totals()
    run_hours = (totals["sim_seconds"] - before) / 3600.0
    return {
        "out": None,
        "driver": manifest.driver,
        "complete": manifest.complete,
        "hours": totals["hours"],
        "hours_this_run": round(run_hours, 6),
        "wall_seconds": round(wall, 2),
        "sim_hours_per_wall_hour": round(run_hours * 3600.0 / wall, 1) if wall > 0 else None,
        "shards": totals["shards"],
        "episodes": totals["episodes"],
        "steps": totals["steps"],
        "megabytes": round(totals["bytes"] / 1e6, 3),
        "megabytes_per_sim_hour": round(totals["bytes"] / 1e6 / totals["hours"], 2)
        if totals["hours"]
        else None,
        "ends": totals["ends"],
        "town_hours": {k: round(v / 3600.0, 4) for k, v in totals["town_seconds"].items()},
        "kind_hours": {k: round(v / 3600.0, 4) for k, v in sorted(totals["kind_seconds"].items())},
        "family_hours": {k: round(v / 3600.0, 4) for k, v in sorted(totals["family_seconds"].items())},
    }


def run(cfg: DictConfig) -> int:
    try:
        collection = Collection(cfg)
        out = collection.out
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out):
            return _collect(collection)
    except (CollectError, ManifestError, ShardError) as e:
        print(f"drive collect: {e}", file=sys.stderr)
        return 2


def _collect(collection: Collection) -> int:
    cfg = collection.cfg
    manifest = collection.open(dt=float(cfg.sim.decision_dt))
    before = manifest.totals()["sim_seconds"]
    jobs = collection.pending()
    log.info("collection %s: %.3f of %.3f simulated hours stored; %d job(s) to run (driver %s, recipe %s, %d worlds each)",
             collection.out, before / 3600.0, collection.hours, len(jobs), cfg.driver.name, cfg.recipe,
             int(cfg.worlds))  # fmt: skip
    start = time.perf_counter()
    failed: list[str] = []

    def on_result(job: CollectJob, outcome: Any) -> None:
        ok, _ = collection.finish_job(job, outcome)
        hours = manifest.totals()["hours"]
        if ok:
            n = len(outcome["shards"])
            log.info("job %d (%s): %.1f s simulated (%.1f s in %d branch points) in %.1f s, %d shard(s); %.3f / %.3f h",
                     job.job, job.settings.town, outcome["steps"] * manifest.dt, outcome["branch_steps"] * manifest.dt,
                     outcome["branch_points"], outcome["wall_seconds"], n, hours, collection.hours)  # fmt: skip
        else:
            failed.append(f"job {job.job}: {error_text(outcome)}")
            log.error("job %d (%s) failed; its shards so far are kept, re-run to finish it:\n%s",
                      job.job, job.settings.town, error_text(outcome))  # fmt: skip

    with make_executor(str(cfg.executor), cfg.workers) as executor:
        executor.map(run_job, jobs, on_result)
    wall = time.perf_counter() - start
    manifest.complete = not collection.pending()
    manifest.wall_seconds += wall
    write_manifest(collection.out, manifest)
    summary = _summary(manifest, before, wall)
    summary["out"] = str(collection.out)
    print(json.dumps(summary))
    if failed:
        print(
            f"drive collect: {len(failed)} job(s) failed; re-run the same command to finish", file=sys.stderr
        )
        return 1
    return 0
