"""``drive <command> [key=value ...]``: compose the command's Hydra config and run its pipeline.

Configs live in ``drive/conf`` (one primary YAML per command, groups mirroring the packages:
``sim/``, ``world/``, ``agent/``) and are checked against the schemas of ``drive.schemas``.
``drive <command> --cfg`` prints the composed config without running; ``drive <command> --help``
(or ``-h``) lists every key with its type, default, allowed values and description.

A mistake is one line on stderr, ``drive <command>: <what to change>``, and exit status 2: a bad
configuration (``drive.checks``: unknown keys, wrong types, values out of range) before anything
runs, and the project's own errors at run time (a bad suite, map, shard, checkpoint…).
``--debug`` (or ``DRIVE_DEBUG=1``) shows the traceback instead, for developers.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from drive.checks import CONF_DIR, ConfigProblem, compose_raw, group_choices, load
from drive.fields import describe_rules, schema_fields

__all__ = ["COMMANDS", "CONF_DIR", "StageFailed", "command_config", "compose_config", "main", "run_command"]

#: command-line switches (everything else is a ``key=value`` override)
HELP, CFG, DEBUG = ("-h", "--help"), "--cfg", "--debug"

#: command words → (primary config name, "module:function" of the pipeline, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("demo",): (
        "demo",
        "drive.pipelines.demo:run",
        "the main job in minutes: collect, train, drive the planner on a suite beside the expert and "
        "the lane follower; table, report, GIF (resumable)",
    ),
    ("render",): (
        "render",
        "drive.pipelines.render:run",
        "render an episode (live or from a replay) to GIF/MP4",
    ),
    ("bench", "sim"): (
        "bench_sim",
        "drive.pipelines.bench_sim:run",
        "simulator throughput, one JSON line per configuration",
    ),
    ("bench", "eval"): (
        "bench_eval",
        "drive.pipelines.bench_eval:run",
        "closed-loop throughput of an agent on a suite (episodes/min, real-time factor)",
    ),
    ("eval",): (
        "eval",
        "drive.pipelines.eval:run",
        "run a scenario suite in closed loop (resumable) and report",
    ),
    ("collect",): (
        "collect",
        "drive.pipelines.collect:run",
        "collect simulated hours of experience into NPZ shards (resumable, parallel)",
    ),
    ("train",): (
        "train",
        "drive.pipelines.train:run",
        "train the JEPA world model on a budget prefix of a collection (resumable)",
    ),
    ("learn",): (
        "learn",
        "drive.pipelines.learn:run",
        "the world model from the planner's own experience: explore, train, then planner-driven rounds "
        "of collection and fine-tuning within one budget of hours (resumable)",
    ),
    ("train-bc",): (
        "train_bc",
        "drive.pipelines.train_bc:run",
        "train the behaviour-cloning baseline on expert demonstrations (resumable)",
    ),
    ("curve",): (
        "curve",
        "drive.pipelines.curve:run",
        "hours to competence: collect, train and examine each learner on growing budgets (resumable)",
    ),
    ("wm-eval",): (
        "wm_eval",
        "drive.pipelines.wm_eval:run",
        "world-model diagnostics on held-out episodes (prediction error, AUROC, probes, rank)",
    ),
    ("bench", "wm"): (
        "bench_wm",
        "drive.pipelines.bench_wm:run",
        "world-model training throughput and 512×15 rollout latency, one JSON line each",
    ),
    ("bench", "plan"): (
        "bench_plan",
        "drive.pipelines.bench_plan:run",
        "world-model planner decision latency (p50/p99 at B=1) and decisions/s (B=8, 32), JSON lines",
    ),
    ("bench", "carla"): (
        "bench_carla",
        "drive.pipelines.bench_carla:run",
        "ticks/s through CARLA's wire (1 ego + 30 NPCs) vs the embedded simulator, suite real-time factor",
    ),
    ("serve-carla",): (
        "serve_carla",
        "drive.pipelines.serve_carla:run",
        "serve the embedded simulator over CARLA 0.9.16's protocol (carla.Client connects)",
    ),
}


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose primary config ``name`` with Hydra ``overrides`` (schemas registered first), as
    Hydra does; :func:`drive.checks.load` adds the checks the command line runs."""
    return compose_raw(name, overrides)


class StageFailed(RuntimeError):
    """A command run as a stage of another (:func:`run_command`) refused or failed; the message
    names the command and says why."""


def _label(name: str) -> tuple[str, str]:
    """``("drive <words>", "module:function")`` of the command of primary config ``name``."""
    words, target = next((w, t) for w, (conf, t, _) in COMMANDS.items() if conf == name)
    return f"drive {' '.join(words)}", target


def command_config(name: str, overrides: list[str]) -> DictConfig:
    """The config of the command of primary config ``name`` with ``overrides``, checked as on the
    command line (:func:`drive.checks.load`); a bad one raises :class:`StageFailed`."""
    label, _ = _label(name)
    try:
        return load(name, overrides)
    except ConfigProblem as exc:
        raise StageFailed(f"{label}: bad configuration: {exc}") from None


def run_command(name: str, overrides: list[str]) -> None:
    """Run the command of primary config ``name`` (``collect``, ``train``, ``eval``…) in this
    process, as ``drive <command> <overrides>`` would: its config composed and checked
    (:func:`command_config`), then its pipeline called. How the pipelines made of other
    commands (``drive curve``, ``drive demo``) run their stages. A bad configuration, a
    pipeline's refusal (``SystemExit``) or a non-zero status raises :class:`StageFailed`; the
    project's own errors (:func:`user_errors`) pass through unchanged."""
    label, target = _label(name)
    cfg = command_config(name, overrides)
    module, func = target.split(":")
    try:
        rc = getattr(importlib.import_module(module), func)(cfg)
    except SystemExit as exc:  # a pipeline's refusal (mismatched resume, missing data…)
        if isinstance(exc.code, str):
            raise StageFailed(f"{label}: {exc.code.removeprefix(f'{label}: ')}") from None
        rc = exc.code
    if rc:
        raise StageFailed(f"{label} {' '.join(overrides)} exited with status {rc}")


def user_errors() -> tuple[type[BaseException], ...]:
    """The project's own error types: their message says what to do, a traceback adds nothing."""
    from drive.pipelines.collect import CollectError
    from planning.base import AgentError
    from planning.registry import UnknownAgent
    from scenarios.families.base import FamilyError
    from scenarios.results import ManifestMismatch, RunBusy
    from scenarios.schema import ScenarioError
    from scenarios.suites import SuiteError
    from sim_bridge.backends import BackendError
    from sim_bridge.carla.connection import CarlaConnectionError
    from sim_bridge.maps.road_map import MapError
    from sim_bridge.replay import ReplayError
    from sim_bridge.runfolder import RunFolderBusy
    from world_model.dataset import DatasetError
    from world_model.shards import ManifestError, ShardError
    from world_model.train import CheckpointError, CheckpointMismatchError, DeviceError

    return (CollectError, AgentError, FamilyError, ManifestMismatch, RunBusy, ScenarioError, SuiteError, MapError,
            ReplayError, ManifestError, ShardError, CheckpointError, CheckpointMismatchError, DatasetError,
            DeviceError, UnknownAgent, BackendError, CarlaConnectionError, StageFailed, RunFolderBusy)  # fmt: skip


def _usage() -> str:
    lines = ["usage: drive <command> [key=value ...] [--cfg] [--help] [--debug]", "", "commands:"]
    for words, (_, _, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<14} {text}")
    lines.append("")
    lines.append("Any config field can be overridden, e.g. `drive render world.town=highway steps=100`;")
    lines.append("`drive <command> --help` lists them. --debug (or DRIVE_DEBUG=1) shows tracebacks.")
    return "\n".join(lines)


def command_help(words: tuple[str, ...], cfg: DictConfig) -> str:
    """Every key of the command: type, value in this composition, allowed values, description;
    before them, the paragraphs of the schema's docstring after its first (if any)."""
    name = " ".join(words)
    lines = [f"drive {name}: {COMMANDS[words][2]}", "",
             f"usage: drive {name} [key=value ...] [--cfg] [--help] [--debug]", ""]  # fmt: skip
    about = (inspect.getdoc(OmegaConf.get_type(cfg)) or "").replace("``", "").split("\n\n")[1:]
    for paragraph in about:
        lines += [*paragraph.splitlines(), ""]
    groups = {g: c for g, c in group_choices().items() if g in cfg}
    if groups:
        lines.append("groups (pick a file of drive/conf/<group>/, e.g. `agent=expert`):")
        lines += [f"  {g}={'|'.join(c)}" for g, c in groups.items()]
        lines.append("")
    lines.append("keys (key: type = value [allowed]):")
    for f in schema_fields(OmegaConf.get_type(cfg)):  # type: ignore[arg-type]
        parent, _, leaf = f.path.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if OmegaConf.is_missing(node, leaf):
            value: object = "??? (required)"
        else:
            value = node._get_node(leaf)._value()  # type: ignore[union-attr]  # as written, unresolved
            if isinstance(value, DictConfig | ListConfig):
                value = OmegaConf.to_container(value)
        text = str(value) if len(str(value)) <= 70 else str(value)[:69] + "…"
        rules = describe_rules(f.rules)
        lines.append(f"  {f.path}: {f.type} = {text}" + (f"  [{rules}]" if rules else ""))
        if f.doc:
            lines.append(f"      {f.doc}")
    return "\n".join(lines)


def _find(argv: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    for words in sorted(COMMANDS, key=len, reverse=True):
        if tuple(argv[: len(words)]) == words:
            return words, argv[len(words) :]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    found = _find(argv)
    if found is None:
        print(f"drive: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, rest = found
    label = f"drive {' '.join(words)}"
    debug = DEBUG in rest or os.environ.get("DRIVE_DEBUG", "") not in ("", "0")
    overrides = [a for a in rest if a not in (*HELP, CFG, DEBUG)]
    name, target, _ = COMMANDS[words]
    try:
        cfg = load(name, overrides)
    except ConfigProblem as exc:
        if debug:
            raise
        print(f"{label}: bad configuration: {exc}", file=sys.stderr)
        return 2
    if any(a in HELP for a in rest):
        print(command_help(words, cfg))
        return 0
    if CFG in rest:
        print(OmegaConf.to_yaml(cfg))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module, func = target.split(":")
    run: Callable[[DictConfig], int | None] = getattr(importlib.import_module(module), func)
    try:
        return int(run(cfg) or 0)
    except user_errors() as exc:
        if debug:
            raise
        print(f"{label}: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a pipeline's own refusal, already worded for the user
        if debug or not isinstance(exc.code, str):
            raise
        text = exc.code.removeprefix(f"{label}: ")
        print(f"{label}: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
