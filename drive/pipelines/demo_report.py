"""The outputs of ``drive demo`` from its stages' run folders: the text on stdout, ``demo.md``,
``report.html`` and ``demo.json``. The table is ``scenarios.report.agents_table`` over the
suite summaries the ``drive eval`` stages wrote; each agent's own report sits in its folder."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from drive.pipelines.train import json_safe
from scenarios.competence import describe_bar, exam_metrics
from scenarios.report import agents_table, column_notes
from scenarios.suites import Suite
from sim_bridge import runfolder

if TYPE_CHECKING:
    from drive.pipelines.demo import Stage

#: per-family rows in the table for suites of 2 to this many families (one is the overall row)
MAX_FAMILY_ROWS = 6

GIF_CAPTION = (
    "The planner drives a route through town traffic. Left: the map around the ego; right: its "
    "bird's-eye view (the model's input). At each decision it samples action sequences, imagines "
    "their futures with the world model and scores them: its sampled paths are drawn coloured by "
    "total cost (green cheap, red costly), the chosen plan in white. Below: the chosen plan's "
    "predicted probability of a collision within the horizon, and its cost terms, over the episode."
)


def _collection(folder: Path) -> dict[str, Any]:
    from world_model.shards import read_manifest

    manifest = read_manifest(folder)
    towns: dict[str, float] = {}
    for shard in manifest.shards:
        for town, seconds in shard.towns.items():
            towns[town] = towns.get(town, 0.0) + seconds
    return {
        "hours": round(sum(s.sim_seconds for s in manifest.shards) / 3600.0, 4),
        "episodes": sum(s.episodes for s in manifest.shards),
        "towns": sorted(towns),
    }


def _training(folder: Path) -> dict[str, Any]:
    summary = json.loads((folder / "summary.json").read_text())
    last = summary.get("eval", {})
    keep = (
        "pred/err_h15",
        "pred/copy_last_err_h15",
        "heads/auroc_collision_10",
        "collapse/val_effective_rank",
    )
    return {
        "steps": summary["steps"],
        "stopped_by": summary["stopped_by"],
        "best_step": summary.get("best_step"),
        "checkpoint": summary.get("best_checkpoint") or summary["checkpoint"],
        "wall_seconds": summary.get("wall_seconds"),
        "validation": {k: last[k] for k in keep if isinstance(last.get(k), float) and math.isfinite(last[k])},
    }


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) and math.isfinite(value) else "-"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _what_ran(
    out: Path, cfg: DictConfig, suite: Suite, agents: list[str], data: dict, model: dict
) -> list[str]:
    """One markdown line per stage: what it did, with its figures, and where its outputs are."""
    val = model["validation"]
    quality = (
        f"Last validation: latent prediction error at 1.5 s {_fmt(val.get('pred/err_h15'), '.3f')} (copying "
        f"the start latent: {_fmt(val.get('pred/copy_last_err_h15'), '.3f')}), collision AUROC within 1 s "
        f"{_fmt(val.get('heads/auroc_collision_10'), '.2f')}, effective rank "
        f"{_fmt(val.get('collapse/val_effective_rank'), '.1f')}."
        if val
        else "No validation metrics (no validation split)."
    )
    return [
        f"**collect**: {data['hours']:.3f} simulated hours of exploration, "
        f"{_plural(data['episodes'], 'episode')} on {', '.join(data['towns'])} → `collect/`",
        f"**train**: the JEPA world model, {model['steps']} steps (stopped by "
        f"{model['stopped_by'].replace('_', ' ')}; budget {cfg.train_minutes:g} min or {cfg.train_steps} steps); "
        f"the planner drives `{_rel(Path(model['checkpoint']), out)}` (step {model['best_step']}). {quality} "
        "→ `train/`",
        f"**eval**: {', '.join(agents)} on suite **{suite.name}** ({_plural(len(suite.scenarios), 'episode')} "
        "each) → " + ", ".join(f"`eval/{a}/report.html`" for a in agents),
        "**render**: `planner.gif` (its middle frame `planner.png`, the episode `planner.npz`)",
    ]


def write_outputs(
    out: Path,
    cfg: DictConfig,
    suite: Suite,
    plan: list[Stage],
    times: dict[str, dict[str, Any]],
    wall_seconds: float,
) -> dict[str, Any]:
    """Write ``demo.md``, ``report.html`` and ``demo.json`` into ``out``; returns their paths and
    the text for stdout (``text``)."""
    agents = [s.key.removeprefix("eval/") for s in plan if s.command == "eval"]
    summaries = {a: json.loads((out / "eval" / a / "summary.json").read_text()) for a in agents}
    families = {f for s in summaries.values() for f in s["families"]}
    table = agents_table(summaries, families=2 <= len(families) <= MAX_FAMILY_ROWS)
    data = _collection(out / "collect")
    model = _training(out / "train")
    ran = _what_ran(out, cfg, suite, agents, data, model)
    bar = f"For scale, the bar of `drive curve` (on the held-out exam, not on this suite): {describe_bar()}."
    stage_rows = [(key, t["wall_seconds"], _fmt(t.get("cpu_seconds"), ".1f"),
                   "earlier run, reused" if t["reused"] else "this run") for key, t in times.items()]  # fmt: skip
    stages_total = sum(w for _, w, _, _ in stage_rows)
    timing = (f"Stages together: {stages_total:.1f} s of wall time; this run of `drive demo`: {wall_seconds:.1f} s. "
              "CPU time counts this process and its worker processes; far below twice the wall time on a "
              "2-core machine, the stage shared the machine with other work.")  # fmt: skip

    head = (f"drive demo: suite {suite.name} ({_plural(len(suite.scenarios), 'episode')} per agent); the planner "
            f"drives a world model trained {model['steps']} steps on {data['hours']:.3f} simulated hours of its "
            "own exploration")  # fmt: skip
    walls = ", ".join(
        f"{k} {w:.1f} ({c})" + (" reused" if r != "this run" else "") for k, w, c, r in stage_rows
    )
    text = "\n".join([
        head, table, f"stages, wall time (CPU time) [s]: {walls}; this run {wall_seconds:.1f} s",
        f"report: {out / 'demo.md'}  {out / 'report.html'}  GIF: {out / 'planner.gif'}",
    ])  # fmt: skip

    md = ["# hours2drive demo", "", "`drive demo` ran the whole stack on the embedded simulator:", ""]
    md += [f"{i}. {line}" for i, line in enumerate(ran, start=1)]
    md += ["", "## Results", "", "```", table, "```", "", "Columns:", ""]
    md += [f"- {line}" for line in column_notes()]
    md += ["", bar, "", "## Stages", "", "| stage | wall time [s] | CPU time [s] | |", "|---|---:|---:|---|"]
    md += [f"| {k} | {w:.1f} | {c} | {r} |" for k, w, c, r in stage_rows]
    md += ["", timing, "", "## The planner", "", GIF_CAPTION, "",
           "![the planner and what it imagined](planner.gif)", ""]  # fmt: skip
    runfolder.write_bytes_atomic(out / "demo.md", "\n".join(md).encode())

    links = "".join(f"<li><a href='eval/{a}/report.html'>{html.escape(a)}</a></li>" for a in agents)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{w:.1f}</td><td>{c}</td><td>{html.escape(r)}</td></tr>"
                   for k, w, c, r in stage_rows)  # fmt: skip
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hours2drive demo</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}pre{background:#f4f4f4;padding:8px}"
        "img{max-width:100%}td{padding:2px 12px}</style></head><body><h1>hours2drive demo</h1>"
        "<ol>" + "".join(f"<li>{_inline(line)}</li>" for line in ran) + "</ol>"
        f"<h2>Results</h2><pre>{html.escape(table)}</pre>"
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in column_notes()) + "</ul>"
        f"<p>{_inline(bar)}</p><p>Each agent's own report (per-family plots, its worst episode):</p><ul>{links}</ul>"
        f"<h2>Stages</h2><table><tr><th>stage</th><th>wall time [s]</th><th>CPU time [s]</th><th></th></tr>{rows}</table>"
        f"<p>{_inline(timing)}</p><h2>The planner</h2><p>{html.escape(GIF_CAPTION)}</p>"
        "<img src='planner.gif' alt='the planner and what it imagined'></body></html>\n"
    )
    runfolder.write_bytes_atomic(out / "report.html", page.encode())

    record = {
        "suite": suite.name,
        "episodes": len(suite.scenarios),
        "agents": {a: exam_metrics(s) for a, s in summaries.items()},
        "collection": data,
        "train": model,
        "stages": times,
        "wall_seconds_this_run": round(wall_seconds, 1),
    }
    runfolder.write_json_atomic(out / "demo.json", json_safe(record))
    return {"text": text, "table": table, "md": out / "demo.md", "html": out / "report.html",
            "json": out / "demo.json"}  # fmt: skip


def _rel(path: Path, out: Path) -> str:
    try:
        return str(path.relative_to(out))
    except ValueError:
        return str(path)


def _inline(text: str) -> str:
    """Markdown's ``**bold**`` and ```code``` in one line → HTML (the rest escaped)."""
    parts = html.escape(text).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
