"""Suite reports a person wants to read: a per-family table, ``summary.json``, ``report.md``, a
self-contained ``report.html`` (plots and GIFs embedded) and TensorBoard scalars.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from scenarios.metrics import LEADERBOARD_VERSION, PENALTY_FACTORS_2_0
from scenarios.records import EpisodeResult, InfractionKind, Status
from scenarios.results import write_json_atomic

log = logging.getLogger(__name__)

#: columns of the per-family table: (header, summary key, format)
_COLUMNS = (
    ("family", None, "{}"),
    ("n", "episodes", "{}"),
    ("DS", "driving_score", "{mean:5.1f} ± {std:4.1f}"),
    ("RC %", "route_completion", "{mean:5.1f}"),
    ("penalty", "infraction_penalty", "{mean:5.3f}"),
    ("success", "success_rate", "{:5.0%}"),
    ("coll/km", "collisions_per_km", "{:6.2f}"),
    ("red lights", "red_lights", "{}"),
)


_PENALTY_NAMES = {
    InfractionKind.COLLISION_PEDESTRIAN: "pedestrian hit",
    InfractionKind.COLLISION_VEHICLE: "vehicle hit",
    InfractionKind.COLLISION_STATIC: "static object hit",
    InfractionKind.RED_LIGHT: "red light",
    InfractionKind.STOP_SIGN: "stop sign",
    InfractionKind.SCENARIO_TIMEOUT: "scenario time-out",
}


def column_notes() -> list[str]:
    """One line per column of the table: what it measures and where the definition comes from."""
    factors = ", ".join(f"{_PENALTY_NAMES.get(k, k.value)} {v:.2f}" for k, v in PENALTY_FACTORS_2_0.items())
    return [
        "n: episodes scored (crashed ones are left out until a re-run finishes them).",
        f"DS: driving score of an episode = RC × penalty, 0–100, mean ± std over episodes (CARLA Leaderboard "
        f"{LEADERBOARD_VERSION}).",
        f"RC %: route completion, the share of the route driven before the episode ended (Leaderboard {LEADERBOARD_VERSION}).",
        f"penalty: infraction penalty, 1 without infractions, multiplied per infraction by {factors} "
        f"(Leaderboard {LEADERBOARD_VERSION}; minimum-speed and outside-lanes factors in scenarios/metrics.py).",
        "success: share of episodes that completed their route without infractions (Bench2Drive).",
        "coll/km: collisions with vehicles, pedestrians and static objects per km driven (the infractions-per-km "
        "rate of the Leaderboard; nuPlan's closed-loop score, in summary.json, counts at-fault ones).",
        "red lights: red lights run, counted (Leaderboard infraction).",
    ]


def run_lines(run: dict[str, Any]) -> list[str]:
    """The run's totals in words (``summary["run"]`` of ``drive eval``)."""
    earlier = run["episodes"] - run["episodes_this_invocation"]
    rtf = f", {run['realtime_factor']}× real time" if run.get("realtime_factor") else ""
    lines = [
        f"Run: {run['episodes']} episodes ({run['crashed']} crashed, {run['agent_errors']} agent errors), "
        f"{run['sim_seconds']:.0f} s simulated in {run['episode_wall_seconds']:.0f} s of episode wall time{rtf}.",
        f"This invocation ran {run['episodes_this_invocation']} of them in {run['wall_seconds_this_invocation']:.0f} s"
        + (f"; {earlier} come from earlier invocations (resumed)." if earlier else "."),
    ]
    if run["crashed"]:
        lines.append(
            f"{run['crashed']} crashed episodes are left out of the scores (a crash is the infrastructure's failure, "
            "never the agent's result): re-run the same command to run them again."
        )
    return lines


def _row(name: str, stats: dict[str, Any]) -> list[str]:
    per_km = stats.get("infractions_per_km", {})
    collisions = sum(per_km.get(k.value, 0.0) for k in
                     (InfractionKind.COLLISION_VEHICLE, InfractionKind.COLLISION_PEDESTRIAN, InfractionKind.COLLISION_STATIC))  # fmt: skip
    values = {
        "episodes": stats["episodes"],
        "success_rate": stats["success_rate"],
        "collisions_per_km": collisions,
        "red_lights": stats["infractions"].get(InfractionKind.RED_LIGHT.value, 0),
    }
    out = [name]
    for _, key, fmt in _COLUMNS[1:]:
        value = values.get(key, stats.get(key))
        out.append(fmt.format(**value) if isinstance(value, dict) else fmt.format(value))
    return out


def _aligned(header: list[str], groups: list[list[list[str]]]) -> str:
    """Plain-text table: ``header``, then each group of rows after a rule, columns aligned."""
    rows = [header] + [r for g in groups for r in g]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))

    lines = [line(header)]
    for group in groups:
        lines.append("  ".join("-" * w for w in widths))
        lines += [line(r) for r in group]
    return "\n".join(lines)


def family_table(summary: dict[str, Any]) -> str:
    """The per-family table (plain text, aligned), overall last."""
    families = [_row(name, stats) for name, stats in summary["families"].items()]
    return _aligned([h for h, _, _ in _COLUMNS], [families, [_row("ALL", summary["overall"])]])


def agents_table(summaries: dict[str, dict[str, Any]], families: bool = True) -> str:
    """Several agents on one suite (``{agent: suite summary}``), the columns of
    :func:`family_table`: one block per agent, its overall row (``ALL``) first, then (with
    ``families``) one row per family."""
    groups = []
    for agent, summary in summaries.items():
        rows = [[agent, *_row("ALL", summary["overall"])]]
        if families:
            rows += [["", *_row(name, stats)] for name, stats in summary["families"].items()]
        groups.append(rows)
    return _aligned(["agent", *(h for h, _, _ in _COLUMNS)], groups)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(summary: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: per-family driving score and completion bars; infraction breakdown."""
    fams = list(summary["families"])
    out = {}
    if fams:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(fams) + 2), 3.6))
        ds = [summary["families"][f]["driving_score"]["mean"] for f in fams]
        err = [summary["families"][f]["driving_score"]["std"] for f in fams]
        rc = [summary["families"][f]["route_completion"]["mean"] for f in fams]
        x = range(len(fams))
        ax.bar([i - 0.2 for i in x], ds, 0.4, yerr=err, label="driving score", color="#3a7bd5", capsize=2)
        ax.bar([i + 0.2 for i in x], rc, 0.4, label="route completion %", color="#9bc53d")
        ax.set_xticks(list(x), fams, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.legend(
            fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0
        )  # beside the bars
        ax.set_title("per family (mean ± std)")
        out["families"] = _png(fig)
    counts = summary["overall"]["infractions"]
    kinds = [k for k, v in counts.items() if v]
    if kinds:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.barh(kinds, [counts[k] for k in kinds], color="#e4572e")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts
        ax.set_title("infractions (count)")
        out["infractions"] = _png(fig)
    return out


def _worst(results: list[EpisodeResult], n: int) -> list[EpisodeResult]:
    ranked = sorted(results, key=lambda r: (r.scores.get("driving_score", 0.0), r.name))
    return [r for r in ranked if r.replay and Path(r.replay).exists()][:n]


def _gif(result: EpisodeResult, folder: Path) -> Path | None:
    from sim_bridge.replay import Replay, ReplayError
    from sim_bridge.replay_video import replay_frames, write_video

    try:
        rep = Replay.load(result.replay)
        # the whole episode in at most ~150 frames (a stuck ending alone would be one still picture)
        every = max(2, -(-rep.num_steps // 150))
        frames = replay_frames(rep, every=every, start=0, map_window=60.0, px_per_m=3.0)
        return write_video(frames, folder / f"{result.name}.gif", fps=10)
    except (ReplayError, OSError, ValueError) as exc:
        log.warning("no GIF for %s: %s", result.name, exc)
        return None


def _tensorboard(out: Path, summary: dict[str, Any]) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for key in ("driving_score", "route_completion", "infraction_penalty"):
            writer.add_scalar(f"eval/{key}", summary["overall"][key]["mean"], 0)
        writer.add_scalar("eval/success_rate", summary["overall"]["success_rate"], 0)
        for fam, stats in summary["families"].items():
            writer.add_scalar(f"eval_family/{fam}/driving_score", stats["driving_score"]["mean"], 0)


def write_reports(
    out: Path, suite: str, agent: str, results: list[EpisodeResult], summary: dict[str, Any],
    worst_gifs: int = 3, tensorboard: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Write ``summary.json``, ``report.md``, ``report.html`` (and TensorBoard scalars) into
    ``out``; returns their paths and the text table under ``table``."""
    out.mkdir(parents=True, exist_ok=True)
    table = family_table(summary)
    write_json_atomic(out / "summary.json", summary)
    worst = _worst(results, worst_gifs)
    gifs = [(r, _gif(r, out / "gifs")) for r in worst]
    overall = summary["overall"]
    crashed = sum(r.status in (Status.CRASHED, Status.STARTED) for r in results)
    head = (
        f"suite **{suite}**, agent **{agent}**: driving score {overall['driving_score']['mean']:.1f} ± "
        f"{overall['driving_score']['std']:.1f}, success {overall['success_rate']:.0%}, "
        f"{overall['episodes']} episodes scored ({crashed} crashed, {overall['agent_errors']} agent errors). "
        f"Metrics: CARLA Leaderboard {LEADERBOARD_VERSION} driving score (2.1 variant in summary.json), "
        "Bench2Drive success rate."
    )
    failures = [r for r in results if r.status in (Status.CRASHED, Status.AGENT_ERROR)]
    md = [f"# {suite} — {agent}", "", head, "", "```", table, "```", ""]
    md += ["Columns:", ""] + [f"- {line}" for line in column_notes()] + [""]
    if "run" in summary:
        md += [" ".join(run_lines(summary["run"])), ""]
    if failures:
        md += (
            ["## Failed episodes", ""]
            + [
                f"- `{r.name}`: {r.status.value} {r.error.splitlines()[-1] if r.error else ''}"
                for r in failures
            ]
            + [""]
        )
    md += ["## Worst episodes", ""]
    for r, gif in gifs:
        md.append(f"- `{r.name}`: DS {r.scores.get('driving_score', 0):.1f}, {r.termination}, "
                  f"{', '.join(i.kind.value for i in r.infractions) or 'no infractions'}"
                  + (f" — ![]({gif.relative_to(out)})" if gif else ""))  # fmt: skip
    (out / "report.md").write_text("\n".join(md) + "\n")

    plots = _plots(summary)
    body = [f"<h1>{html.escape(suite)} — {html.escape(agent)}</h1>", f"<p>{html.escape(head).replace('**', '')}</p>",
            f"<pre>{html.escape(table)}</pre>"]  # fmt: skip
    body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in column_notes()) + "</ul>")
    if "run" in summary:
        body.append(f"<p>{html.escape(' '.join(run_lines(summary['run'])))}</p>")
    body += [f'<img alt="{k}" src="data:image/png;base64,{v}">' for k, v in plots.items()]
    body.append("<h2>Worst episodes</h2>")
    for r, gif in gifs:
        caption = html.escape(f"{r.name}: DS {r.scores.get('driving_score', 0):.1f}, {r.termination}")
        img = (f'<img alt="{html.escape(r.name)}" src="data:image/gif;base64,'
               f'{base64.b64encode(gif.read_bytes()).decode()}">' if gif else "")  # fmt: skip
        body.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(suite) +
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}pre{background:#f4f4f4;"
            "padding:8px}img{max-width:100%}</style></head><body>" + "\n".join(body) + "</body></html>")  # fmt: skip
    (out / "report.html").write_text(page)
    if tensorboard:
        _tensorboard(out, summary)
    return {
        "table": table,
        "md": out / "report.md",
        "html": out / "report.html",
        "summary": out / "summary.json",
    }
