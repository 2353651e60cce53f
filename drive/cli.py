"""``drive <command> [key=value ...]``: compose the command's Hydra config and run its pipeline.

Configs live in ``drive/conf`` (one primary YAML per command, groups mirroring the packages:
``sim/``, ``world/``, ``agent/``) and are checked against the schemas of ``drive.schemas``.
``drive <command> --cfg`` prints the composed config without running.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parent / "conf"

#: command words → (primary config name, "module:function" of the pipeline, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("demo",): (
        "demo",
        "drive.pipelines.render:run_demo",
        "run the main job on the embedded simulator and write a GIF",
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
}


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose primary config ``name`` with Hydra ``overrides`` (schemas registered first)."""
    from drive.schemas import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _usage() -> str:
    lines = ["usage: drive <command> [key=value ...] [--cfg]", "", "commands:"]
    for words, (_, _, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<14} {text}")
    lines.append("")
    lines.append("Any config field can be overridden, e.g. `drive render world.town=highway steps=100`.")
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
    show = "--cfg" in rest or "--help" in rest
    overrides = [a for a in rest if a not in ("--cfg", "--help")]
    name, target, _ = COMMANDS[words]
    try:
        cfg = compose_config(name, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"drive {' '.join(words)}: bad configuration: {exc}", file=sys.stderr)
        return 2
    if show:
        print(OmegaConf.to_yaml(cfg))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module, func = target.split(":")
    run: Callable[[DictConfig], int | None] = getattr(importlib.import_module(module), func)
    return int(run(cfg) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
