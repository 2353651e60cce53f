"""Typed config schemas, registered in Hydra's ConfigStore. Each YAML under ``drive/conf`` names
its schema in its defaults list, so a misspelt key or a wrong type fails at compose time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from drive.pipelines.branches import BranchesConfig
from drive.pipelines.situations import SituationsConfig
from drive.world import WorldConfig
from planning import registry
from planning.bc import BCNetConfig
from planning.bc_train import BCOptimConfig
from scenarios.executors import EXECUTORS
from scenarios.runner import SAVE_REPLAYS
from sim_bridge import backends
from world_model.config import LossConfig, ModelConfig, OptimConfig


@dataclass
class RenderConfig:
    """``drive render``: an episode to a GIF/MP4 (map view beside the BEV)."""

    sim: Any = MISSING
    """The simulator backend (``sim=embedded``; each backend's schema in ``sim_bridge.backends``)."""
    world: WorldConfig = field(default_factory=WorldConfig)
    agent: Any = None
    """The agent (``agent=<name>``: ``drive/conf/agent/<name>.yaml``, ``planning.registry``)."""
    seed: int = field(default=0, metadata={"min": 0})
    """Episode seed."""
    steps: int = field(default=200, metadata={"min": 1})
    """Decision steps to run (live mode)."""
    replay: str | None = None
    """Render this saved replay (.npz) instead of a live run."""
    out: str = "outputs/render/episode.gif"
    """Output path; the extension picks the format (.gif or .mp4)."""
    fps: int = field(default=10, metadata={"min": 1})
    """Frames per second of the output."""
    map_window: float = field(default=80.0, metadata={"min": 0})
    """Side of the map view around the ego [m] (0 = the whole map)."""
    px_per_m: float = field(default=3.0, metadata={"gt": 0})
    """Map view scale [px/m]."""
    every: int = field(default=1, metadata={"min": 1})
    """Keep every n-th step as a frame."""
    panel: int = 480
    """Side of the map view and of the BEV [px] when the agent plans (``planner``,
    ``oracle_planner``: drawn with its imagined paths and a strip chart; the map view then spans
    ``map_window`` m at ``panel / map_window`` px/m instead of ``px_per_m``)."""


@dataclass
class BenchSimConfig:
    """``drive bench sim``: simulator throughput per configuration, one JSON line each."""

    world: WorldConfig = field(default_factory=WorldConfig)
    sim: Any = MISSING
    """The simulator backend (``sim=embedded``; each backend's schema in ``sim_bridge.backends``)."""
    configs: list[Any] = field(
        default_factory=lambda: [
            [1, 50, False],
            [1, 50, True],
            [16, 20, True],
            [64, 20, True],
            [64, 20, False],
        ]
    )
    """``[worlds, vehicles, bev]`` triples to measure."""
    steps: int = field(default=200, metadata={"min": 1})
    """Timed decision steps per chunk (after warm-up)."""
    repeats: int = field(default=3, metadata={"min": 1})
    """Timed chunks per configuration; the median is reported."""
    warmup: int = field(default=50, metadata={"min": 0})
    """Untimed steps first (compilation, caches)."""
    seed: int = field(default=0, metadata={"min": 0})


@dataclass
class SuiteConfig:
    """A scenario suite (``drive/conf/suite/<name>.yaml``; format in ``scenarios/suites.py``)."""

    name: str = "suite"
    entries: list[Any] = field(default_factory=list)
    """Families with parameter grids and seeds, or scenario files."""


@dataclass
class EvalConfig:
    """``drive eval``: a suite in closed loop, resumable, with a report."""

    sim: Any = MISSING
    """The simulator backend (``sim=embedded``; each backend's schema in ``sim_bridge.backends``)."""
    agent: Any = None
    """The agent (``agent=<name>``: ``drive/conf/agent/<name>.yaml``, ``planning.registry``)."""
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    """The suite (``suite=<name>`` picks ``drive/conf/suite/<name>.yaml``)."""
    suite_file: str | None = None
    """Run the suite in this YAML file instead."""
    executor: str = field(default="local", metadata={"choices": EXECUTORS})
    """``local`` (process pool), ``inline`` (this process) or ``ray``."""
    workers: int | None = field(default=None, metadata={"min": 0})
    """Worker processes (default one per core; a server backend such as ``sim=carla``: one per
    server, the default)."""
    retries: int = field(default=2, metadata={"min": 0})
    """Times an episode interrupted by a simulator server fault (time-out, lost server) is run
    again in this command, after reconnecting (and restarting the server with
    ``sim.restart_command`` when set); each interruption is recorded ``crashed`` first."""
    out: str = "outputs/eval/${suite.name}-${agent.name}"
    """Run folder: results.jsonl, replays, report; re-running the same command resumes it."""
    save_replays: str = field(default="failed", metadata={"choices": SAVE_REPLAYS})
    """Replays kept: none, failed (unsuccessful or with infractions) or all."""
    force: bool = False
    """Resume even if the stored run's configuration differs."""
    worst_gifs: int = field(default=3, metadata={"min": 0})
    """GIFs of the worst episodes in the report."""
    tensorboard: bool = True
    """Write TensorBoard scalars next to the report."""


@dataclass
class DemoConfig:
    """``drive demo``: the main job on the embedded default, in minutes (``drive/pipelines/demo.py``).

    Stages, each an existing command run in this process, in the run folder ``out``:
      1. collect: ``hours`` of exploration (``drive collect driver=explore``) → out/collect
      2. train: the world model on all of it, ``train_minutes`` or ``train_steps`` (``drive train``) → out/train
      3. eval/<agent>: the planner on that model, then each of ``references``, on ``suite``
         (``drive eval``) → out/eval/<agent>
      4. render: the planner with the trajectories it imagined (``drive render agent=planner``)
         → out/planner.gif
    Then the table on stdout, out/demo.md, out/report.html, out/demo.json.

    Re-running the same command reuses the finished stages (out/stages.jsonl) and resumes the
    others; other settings (but ``out``, ``workers``, ``executor``) are refused, naming the fields."""

    suite: SuiteConfig = field(default_factory=SuiteConfig)
    """The suite every agent drives (``suite=smoke``; ``suite=<name>`` picks ``drive/conf/suite/<name>.yaml``)."""
    hours: float = field(default=0.2, metadata={"gt": 0})
    """Simulated hours of exploration to collect (``drive collect driver=explore``), all of them
    trained on [h]."""
    train_minutes: float = field(default=3.0, metadata={"gt": 0})
    """Wall-time budget of the world model's training (``drive train max_minutes``) [min]."""
    train_steps: int = field(default=4000, metadata={"min": 1})
    """Step budget of the training (``optim.steps``); it stops at whichever budget ends first."""
    references: list[str] = field(default_factory=lambda: ["expert", "lane_follower"])
    """Agents that drive the suite beside the planner (``agent=<name>`` of ``drive eval``; agents
    that need no training: expert, lane_follower, oracle_planner, …)."""
    gif_steps: int = field(default=150, metadata={"min": 1})
    """Decision steps of the planner's GIF episode (``drive render agent=planner``)."""
    seed: int = field(default=0, metadata={"min": 0})
    """Seed of the collection and of the GIF's episode."""
    executor: str = field(default="local", metadata={"choices": EXECUTORS})
    """Executor of the collection and of the suites: ``local`` (process pool), ``inline`` or ``ray``."""
    workers: int | None = field(default=None, metadata={"min": 0})
    """Worker processes of the suites (default one per core); the collection's are among
    ``collect`` (one in ``demo.yaml``)."""
    collect: list[str] = field(default_factory=list)
    """Further overrides of the ``drive collect`` stage (e.g. ``[worlds=8, workers=2]``)."""
    train: list[str] = field(default_factory=list)
    """Further overrides of the ``drive train`` stage (e.g. ``[model.latent=32]``)."""
    eval: list[str] = field(default_factory=list)
    """Further overrides of every ``drive eval`` stage (e.g. ``[worst_gifs=0]``)."""
    render: list[str] = field(default_factory=list)
    """Further overrides of the ``drive render`` stage (e.g. ``[every=1, fps=10]``)."""
    agents: dict[str, list[str]] = field(default_factory=dict)
    """Overrides of one agent's suite run, e.g. ``{planner: [agent.optim.samples=64]}``; the
    planner's apply to its GIF too."""
    out: str = "outputs/demo"
    """Run folder (``run.json``, ``stages.jsonl``, ``collect/``, ``train/``, ``eval/<agent>/``,
    ``planner.gif``, ``demo.md``, ``report.html``); re-running the same command resumes it."""


@dataclass
class BenchEvalConfig:
    """``drive bench eval``: closed-loop throughput of an agent on a suite."""

    sim: Any = MISSING
    """The simulator backend (``sim=embedded``; each backend's schema in ``sim_bridge.backends``)."""
    agent: Any = None
    """The agent (``agent=<name>``, ``planning.registry``)."""
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    suite_file: str | None = None
    """Run the suite in this YAML file instead."""
    executor: str = field(default="local", metadata={"choices": EXECUTORS})
    """``local``, ``inline`` or ``ray``."""
    workers: int | None = field(default=2, metadata={"min": 0})
    """Worker processes."""
    limit: int = field(default=0, metadata={"min": 0})
    """Run only the first N scenarios (0 = all)."""


@dataclass
class CollectConfig:
    """``drive collect``: simulated hours of experience into NPZ shards (resumable, parallel)."""

    sim: Any = MISSING
    """The simulator backend (``sim=embedded``; each backend's schema in ``sim_bridge.backends``)."""
    driver: Any = None
    """The driver (``driver=explore|expert|…``: any agent of ``planning.registry``, settings in
    ``drive/conf/driver/<name>.yaml``)."""
    hours: float = field(default=1.0, metadata={"gt": 0})
    """Budget of simulated experience, summed over worlds (steps × dt) [h]; raise it to extend."""
    worlds: int = field(default=4, metadata={"min": 1})
    """Worlds per batched simulator (one simulator per worker)."""
    workers: int | None = field(default=None, metadata={"min": 0})
    """Worker processes (default one per core)."""
    executor: str = field(default="local", metadata={"choices": EXECUTORS})
    """``local`` (process pool), ``inline`` (this process) or ``ray``."""
    towns: list[str] = field(default_factory=lambda: ["grid:0", "grid:1", "grid:2", "grid:3", "highway:0"])
    """Maps to drive in, as ``town:seed`` of a procedural town or ``xodr:<path>``; jobs take them in turn."""
    vehicles: list[int] = field(default_factory=lambda: [10, 30], metadata={"min": 0})
    """Background vehicles per episode: drawn uniformly in ``[lo, hi]`` (one value: fixed)."""
    pedestrians: list[int] = field(default_factory=lambda: [0, 20], metadata={"min": 0})
    """Background pedestrians per episode, ``[lo, hi]`` (none spawn on maps without sidewalks)."""
    route_length: list[float] = field(default_factory=lambda: [200.0, 600.0], metadata={"gt": 0})
    """Length of each episode's random route, ``[lo, hi]`` [m]."""
    traffic_radius: float = field(default=120.0, metadata={"gt": 0})
    """Background actors live within this distance of the ego [m]."""
    max_episode_seconds: float = field(default=120.0, metadata={"gt": 0})
    """An episode is cut after this much simulated time [s]."""
    route_end_distance: float = field(default=5.0, metadata={"min": 0})
    """An episode ends (done) when this close to its route's end [m]."""
    max_route_deviation: float = field(default=30.0, metadata={"gt": 0})
    """An episode is cut when the ego is this far from its route [m]."""
    job_hours: float = field(default=0.1, metadata={"gt": 0})
    """Simulated hours per job (the executor's unit of work; each job drives one town) [h]."""
    shard_steps: int = field(default=500, metadata={"min": 1})
    """A job writes a shard once this many steps of finished episodes are buffered."""
    seed: int = field(default=0, metadata={"min": 0})
    """Seed of the collection (every episode's seed derives from it, the job and the run)."""
    recipe: str = "explore"
    """Name of the data recipe (``recipe=explore|hazards``: ``drive/conf/recipe/<name>.yaml`` sets
    ``situations`` and ``branches``): ``explore``, random routes only; ``hazards``, with
    scenario-family situations and counterfactual branches."""
    situations: SituationsConfig = field(default_factory=SituationsConfig)
    """Scenario-family situations mixed into the episodes (``drive/pipelines/situations.py``)."""
    branches: BranchesConfig = field(default_factory=BranchesConfig)
    """Counterfactual branches at hazard moments (``drive/pipelines/branches.py``)."""
    out: str = "outputs/collect/${driver.name}"
    """Collection folder (manifest.json + shards); re-running the same command resumes it."""


@dataclass
class TrainConfig:
    """``drive train``: the JEPA world model on a budget prefix of a collection (resumable)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The architecture (``model=jepa`` picks ``drive/conf/model/jepa.yaml``)."""
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: str = MISSING
    """Collection folder written by ``drive collect`` (manifest.json + shards)."""
    hours: float | None = field(default=0.5, metadata={"gt": 0})
    """Budget: the first this many simulated hours of the collection (null: all) [h]."""
    extra_data: list[str] = field(default_factory=list)
    """Further collections trained on whole, beside the prefix of ``data`` (e.g. the planner's own
    rounds, ``drive learn``); split by the same hash, sampled uniformly over all windows."""
    init: str | None = None
    """Start from this checkpoint's weights (same architecture and data shapes) instead of a
    fresh initialisation; the normalisation is refitted on this run's data (fine-tuning)."""
    window: int = field(default=0, metadata={"min": 0})
    """Steps per training window (0: ``loss.horizon + 1``)."""
    val_fraction: float = field(default=0.1, metadata={"min": 0, "max": 0.9})
    """Share of the prefix's episodes held out for validation (chosen by a hash of the episode id)."""
    split_seed: int = 0
    """Seed of the train/validation hash."""
    cache_dir: str | None = None
    """Memory-map the packed BEV from uncompressed files here instead of holding it in RAM."""
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:1`` … or ``auto`` (CUDA when present)."""
    threads: int = field(default=1, metadata={"min": 0})
    """Intra-op threads of torch on the CPU (0: torch's default)."""
    max_minutes: float = field(default=14.0, metadata={"min": 0})
    """Wall-time budget [min] (0: none); training stops with a checkpoint when it runs out."""
    tensorboard: bool = True
    """Write TensorBoard scalars and retrieval images to ``out/tensorboard``."""
    out: str = "outputs/train/h${hours}"
    """Run folder (last.pt, run.json, summary.json, tensorboard/); re-running resumes it."""


@dataclass
class TrainBCConfig:
    """``drive train-bc``: behaviour cloning of the expert on a budget prefix of its demonstrations."""

    net: BCNetConfig = field(default_factory=BCNetConfig)
    """The policy (the world model's encoder architecture and an action-chunk head)."""
    optim: BCOptimConfig = field(default_factory=BCOptimConfig)
    data: str = MISSING
    """Collection of demonstrations (``drive collect driver=expert``)."""
    hours: float | None = 0.5
    """Budget: the first this many simulated hours of the collection (null: all) [h]."""
    val_fraction: float = 0.1
    """Share of the prefix's episodes held out for validation (chosen by a hash of the episode id)."""
    split_seed: int = 0
    """Seed of the train/validation hash."""
    device: str = "cpu"
    """``cpu``, ``cuda`` … or ``auto`` (CUDA when present)."""
    threads: int = 1
    """Intra-op threads of torch on the CPU (0: torch's default)."""
    max_minutes: float = 14.0
    """Wall-time budget [min] (0: none); training stops with a checkpoint when it runs out."""
    tensorboard: bool = True
    """Write TensorBoard scalars to ``out/tensorboard``."""
    out: str = "outputs/train_bc/h${hours}"
    """Run folder (last.pt, best.pt, run.json, summary.json); re-running resumes it."""


@dataclass
class CounterfactualConfig:
    """``drive wm-eval``'s counterfactual part (``drive/pipelines/counterfactual.py``): fork held-out
    scenario states into action sequences, run them for real, compare with the model."""

    enabled: bool = True
    """Run it (it builds simulators from the collection's ``sim`` settings)."""
    families: list[str] = field(
        default_factory=lambda: [
            "lead_vehicle_brake", "pedestrian_crossing", "parked_obstacle", "cut_in_urban", "urban_route",
        ]
    )  # fmt: skip
    """Scenario families whose states are forked (hazard kinds: braking lead, crossing pedestrian,
    stopped car, cut-in, urban traffic)."""
    towns: list[str] = field(default_factory=lambda: ["grid:5", "highway:5"])
    """Held-out towns (``name:seed``) replacing a family's procedural town of the same name
    (collection drives grid:0..3 and highway:0, the exam grid:7 and highway:7)."""
    seeds: list[int] = field(default_factory=lambda: [200, 201])
    """Scenario seeds (the nhtsa suite uses 0..2, the exam 100..102)."""
    driver: str = "lane_follower"
    """Who drives each episode to its states: ``lane_follower`` (blind to hazards, so its states
    close in on them at speed, where the action decides the outcome) or ``expert``. Measured with
    the default families and seeds: from the expert's states 6 of 30 have branches with and without
    a collision (none for the braking lead or the crossing pedestrian); from the lane follower's
    14 of 32."""
    at_steps: list[int] = field(default_factory=lambda: [15, 25, 35, 50, 65])
    """Decision steps at which each episode is forked (none after its driver collides)."""
    horizon: int = 15
    """Steps per action sequence (10 Hz: 1.5 s)."""
    swerve: float = 0.5
    """Normalised steering of the swerve sequences."""
    random_sequences: int = 3
    """Smooth random sequences besides keep, brake, accelerate, swerve left and right."""
    seed: int = 0
    """Seed of the random sequences."""


@dataclass
class ProbeConfig:
    """``drive wm-eval probe.enabled=true``: a coarse-BEV probe on the model's frozen latents
    (``world_model.probe``, ``drive/pipelines/wm_probe.py``)."""

    enabled: bool = False
    """Train the probe and write ``probe.gif`` beside the report."""
    size: int = 24
    """Side of the coarse BEV [blocks]; divides the BEV's side (96 px → 4 × 4 px blocks of 2 m)."""
    steps: int = 300
    """Adam steps of the probe (a diagnostic: small by default)."""
    batch_size: int = 256
    lr: float = 3e-3
    stride: int = 4
    """Rollouts for the training rows start at every ``stride``-th step of the train split."""
    windows: int = 4
    """Held-out windows shown in the GIF (rows)."""
    fps: int = 3
    """Frames (horizon steps) per second of the GIF."""
    seed: int = 0


@dataclass
class WmEvalConfig:
    """``drive wm-eval``: diagnostics of a trained world model on held-out episodes."""

    checkpoint: str = MISSING
    """A ``last.pt`` written by ``drive train``."""
    ensemble: list[str] = field(default_factory=list)
    """More checkpoints that join ``checkpoint`` as one ensemble in the counterfactual part (its
    predictions are the members' mean, as the planner's ``agent.ensemble``); the other figures are
    ``checkpoint``'s alone."""
    data: str = MISSING
    """Collection folder with the held-out episodes (e.g. a collection with another seed)."""
    hours: float | None = field(default=None, metadata={"gt": 0})
    """Use the first this many simulated hours of ``data`` (null: all) [h]."""
    after_hours: float = field(default=0.0, metadata={"min": 0})
    """Skip the first this many hours (e.g. the training prefix of the same collection) [h]."""
    split: str = field(default="all", metadata={"choices": ("all", "train", "val")})
    """Episodes of the prefix to use: ``all``, or ``train`` / ``val`` of the hash split."""
    val_fraction: float = field(default=0.1, metadata={"min": 0, "max": 0.9})
    """The hash split's validation share (as in training), for ``split=train|val``."""
    split_seed: int = 0
    horizon: int = field(default=15, metadata={"min": 1})
    """Rollout steps evaluated (10 Hz: 15 = 1.5 s)."""
    ridge: float = field(default=1e-3, metadata={"min": 0})
    """Ridge penalty of the linear probes, relative to the mean feature variance."""
    batch_size: int = field(default=256, metadata={"min": 1})
    """Frames encoded (and windows rolled out) per batch."""
    device: str = "cpu"
    threads: int = field(default=1, metadata={"min": 0})
    """Intra-op threads of torch on the CPU (0: torch's default)."""
    out: str = ""
    """JSON report path (empty: ``wm_eval.json`` beside the checkpoint)."""
    counterfactual: CounterfactualConfig = field(default_factory=CounterfactualConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """The coarse-BEV probe and its GIF of predicted futures (off by default)."""


@dataclass
class BenchWmConfig:
    """``drive bench wm``: training throughput and planning-rollout latency, one JSON line each."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: str | None = None
    """Measure this trained model instead of a fresh one built from ``model``."""
    data: str | None = None
    """Time training on windows of this collection (default: synthetic windows of the same shapes)."""
    bev_size: int = field(default=96, metadata={"min": 1})
    """BEV side of synthetic windows [px]."""
    bev_channels: int = field(default=10, metadata={"min": 1})
    ego_dim: int = field(default=27, metadata={"min": 1})
    samples: int = field(default=512, metadata={"min": 1})
    """Action sequences per rollout."""
    horizon: int = field(default=15, metadata={"min": 1})
    """Steps per rollout."""
    repeats: int = field(default=50, metadata={"min": 1})
    """Timed rollouts (the median is reported)."""
    warmup: int = field(default=10, metadata={"min": 0})
    train_steps: int = field(default=8, metadata={"min": 1})
    """Timed training steps (after two untimed ones)."""
    threads: list[int] = field(default_factory=lambda: [1, 2], metadata={"min": 1})
    """Intra-op thread counts to measure."""
    reference_hidden: int = field(default=256, metadata={"min": 1})
    """Hidden width of the eager reference predictor (latent 64, two hidden layers)."""
    seed: int = 0


@dataclass
class BenchPlanConfig:
    """``drive bench plan``: decision latency of the world-model planner, one JSON line per ``B``."""

    agent: Any = None
    """The planner (``agent=planner``; ``agent.checkpoint`` optional, see ``model``)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Size of the randomly initialised model planned with when ``agent.checkpoint`` is null."""
    bev_size: int = 96
    """BEV side of that model and of the synthetic observations [px]."""
    bev_channels: int = 10
    worlds: list[int] = field(default_factory=lambda: [1, 8, 32])
    """Batch sizes ``B`` measured: latency at 1, throughput at the others."""
    decisions: int = 100
    """Timed decisions per batch size."""
    warmup: int = 5
    """Untimed decisions first."""
    seed: int = 0


def register() -> None:
    """Put every schema in the ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="render_schema", node=RenderConfig)
    cs.store(name="demo_schema", node=DemoConfig)
    cs.store(name="bench_sim_schema", node=BenchSimConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(group="suite", name="suite_schema", node=SuiteConfig)
    cs.store(name="bench_eval_schema", node=BenchEvalConfig)
    for name in backends.names():  # sim=<backend>: each backend's YAML names <backend>_schema
        cs.store(group="sim", name=f"{name}_schema", node=backends.get(name).config)
    cs.store(group="world", name="world_schema", node=WorldConfig)
    for name in registry.names():  # one schema per agent, in both groups that pick an agent
        cs.store(group="agent", name=f"{name}_schema", node=registry.schema(name))
        cs.store(group="driver", name=f"{name}_schema", node=registry.schema(name))
    cs.store(name="collect_schema", node=CollectConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(name="train_bc_schema", node=TrainBCConfig)
    cs.store(name="wm_eval_schema", node=WmEvalConfig)
    cs.store(name="bench_wm_schema", node=BenchWmConfig)
    cs.store(name="bench_plan_schema", node=BenchPlanConfig)

    from drive.pipelines.bench_carla import BenchCarlaConfig
    from drive.pipelines.curve import CurveConfig
    from drive.pipelines.learn import LearnConfig
    from drive.pipelines.serve_carla import ServeCarlaConfig

    cs.store(name="curve_schema", node=CurveConfig)
    cs.store(name="learn_schema", node=LearnConfig)

    cs.store(name="serve_carla_schema", node=ServeCarlaConfig)
    cs.store(name="bench_carla_schema", node=BenchCarlaConfig)
