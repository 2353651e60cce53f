"""Pipelines made of commands: a :class:`Stage` is one ``drive <command>`` run in this process
(:func:`drive.cli.run_command`), recorded in the run folder's ``stages.jsonl`` when it finishes.

:func:`run_stage` reuses a recorded stage whose output file is still there and runs the others;
each command resumes by itself from what a killed run left (collection shards, ``last.pt``, suite
``results.jsonl``), so a pipeline of stages resumes as a whole. Used by ``drive demo`` and
``drive learn``."""

from __future__ import annotations

import datetime
import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drive.cli import run_command
from sim_bridge import runfolder

STAGES_FILE = "stages.jsonl"


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: a command, its overrides and the file a finished run of it leaves."""

    key: str
    """Unique within the pipeline (``collect``, ``train``, ``eval/<agent>`` …)."""
    command: str
    """Primary config of the command (``drive/conf/<command>.yaml``)."""
    overrides: tuple[str, ...]
    output: Path
    """Written last by the command: a recorded stage is reused only while it exists."""
    doc: str
    """What the stage does, in words (logged)."""


def checkpoint_of(train_out: Path) -> Path:
    """The checkpoint a planner drives with: the training's ``best.pt`` (lowest validation loss)
    when it wrote one, else ``last.pt``; before training, where ``best.pt`` will be."""
    try:
        summary = json.loads((train_out / "summary.json").read_text())
    except (OSError, ValueError):
        return train_out / "best.pt"
    return Path(summary.get("best_checkpoint") or summary["checkpoint"])


def cpu_seconds() -> float:
    """CPU time [s] of this process and of its finished child processes (a stage's worker pool
    has ended when the stage returns), user and system: against the wall time, how much of the
    machine a stage had."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def recorded(out: Path) -> dict[str, dict[str, Any]]:
    """The finished stages of the run folder ``out`` by key (``stages.jsonl``)."""
    return {r["stage"]: r for r in runfolder.read_lines(out / STAGES_FILE) if "stage" in r}


def run_stage(out: Path, stage: Stage, done: dict[str, dict[str, Any]], label: str,
              log: logging.Logger) -> dict[str, Any]:  # fmt: skip
    """Run ``stage`` (or reuse it when ``done`` records it and its output exists); returns its
    times ``{wall_seconds, cpu_seconds, reused}`` and records a finished run in ``stages.jsonl``."""
    record = done.get(stage.key)
    if record is not None and stage.output.exists():
        log.info("%s: finished in an earlier run (%.1f s), reused", label, record["wall_seconds"])
        return {
            "wall_seconds": record["wall_seconds"],
            "cpu_seconds": record.get("cpu_seconds"),
            "reused": True,
        }
    log.info("%s: %s: drive %s %s", label, stage.doc, stage.command, " ".join(stage.overrides))
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    run_command(stage.command, list(stage.overrides))
    wall, cpu = round(time.perf_counter() - t0, 1), round(cpu_seconds() - cpu0, 1)
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    line = {"stage": stage.key, "command": [stage.command, *stage.overrides], "wall_seconds": wall,
            "cpu_seconds": cpu, "finished": finished}  # fmt: skip
    runfolder.append_line(out / STAGES_FILE, (json.dumps(line) + "\n").encode())
    log.info("%s: done in %.1f s (CPU %.1f s, worker processes included)", label, wall, cpu)
    return {"wall_seconds": wall, "cpu_seconds": cpu, "reused": False}


def run_locked(out: Path, command: str, lock_file: str, body: Callable[[Path], int]) -> int:
    """Create the run folder ``out``, hold its ``lock_file`` (a second ``drive <command>`` into the
    same folder is refused, naming the holder) and return ``body(out)``."""
    out.mkdir(parents=True, exist_ok=True)
    with runfolder.locked(
        out / lock_file, busy=f"another `drive {command}` is running in {out} (it holds {lock_file})"
    ):
        return body(out)


__all__ = ["STAGES_FILE", "Stage", "checkpoint_of", "cpu_seconds", "recorded", "run_locked", "run_stage"]
