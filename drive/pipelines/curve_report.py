"""The outputs of ``drive curve`` from its records: the table, ``curve.png`` / ``curve.svg``,
``curve.md``, ``report.html`` and TensorBoard scalars. Every one states the competence bar
(``scenarios.competence``) and what passed and what did not."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.competence import BAR, describe_bar
from sim_bridge import runfolder

COLOURS = {"planner": "tab:blue", "planner_explore": "tab:purple", "bc": "tab:orange"}
REFERENCE_STYLES = {
    "lane_follower": ("tab:gray", ":"),
    "expert": ("tab:green", "--"),
    "planner_untrained": ("tab:blue", "-."),
}


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def table(records: list[dict[str, Any]]) -> str:
    """One line per record: learner, budget, seed, exam figures (``ped``: pedestrian collisions,
    ``at-f``: those at the ego's fault, which the bar counts), pass or what failed."""
    head = f"{'learner':<16} {'hours':>6} {'seed':>4} {'data h':>7} {'DS':>6} {'success':>7} {'coll/km':>8} {'ped':>4} {'at-f':>4}  verdict"
    lines = [describe_bar(), head, "-" * len(head)]
    for r in records:
        verdict = "PASS" if r["passed"] else "below: " + "; ".join(r.get("failures", []))
        lines.append(
            f"{r['learner']:<16} {_fmt(r.get('budget_hours'), 'g'):>6} {_fmt(r.get('seed'), 'd'):>4} "
            f"{_fmt(r.get('data_hours'), '.3f'):>7} {_fmt(r['driving_score'], '.1f'):>6} "
            f"{_fmt(r['success_rate'], '.0%'):>7} {_fmt(r['collisions_per_km'], '.2f'):>8} "
            f"{r['pedestrian_collisions']:>4} {r.get('pedestrian_collisions_at_fault', r['pedestrian_collisions']):>4}  "
            f"{verdict}"
        )
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], learners: list[str], png: Path, svg: Path) -> dict[str, Any]:
    """Driving score and collisions per km against hours (log axis): seeds as points, the mean per
    budget as a line, the bar and the references as horizontal lines. Returns what was drawn,
    read back from the figure's artists: ``{learner: {"points": [[h, ds, coll], …], "mean": …}}``
    and ``{"references": {agent: [ds, coll]}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_ds, ax_col) = plt.subplots(1, 2, figsize=(12, 4.8))
    drawn: dict[str, Any] = {"learners": {}, "references": {}}
    for name in learners:
        mine = [r for r in records if r["learner"] == name and r.get("budget_hours") is not None]
        if not mine:
            continue
        colour = COLOURS.get(name)
        h = np.array([r["budget_hours"] for r in mine], dtype=float)
        ds = np.array([r["driving_score"] for r in mine], dtype=float)
        col = np.array([r["collisions_per_km"] for r in mine], dtype=float)
        p_ds = ax_ds.scatter(h, ds, color=colour, alpha=0.5, s=18)
        p_col = ax_col.scatter(h, col, color=colour, alpha=0.5, s=18)
        budgets = np.unique(h)
        (m_ds,) = ax_ds.plot(budgets, [ds[h == b].mean() for b in budgets], "-o", color=colour, label=name)
        (m_col,) = ax_col.plot(budgets, [col[h == b].mean() for b in budgets], "-o", color=colour, label=name)
        drawn["learners"][name] = {
            "points_ds": p_ds.get_offsets().tolist(),
            "points_collisions": p_col.get_offsets().tolist(),
            "mean_ds": m_ds.get_xydata().tolist(),
            "mean_collisions": m_col.get_xydata().tolist(),
        }
    for r in records:
        if r.get("budget_hours") is None:
            colour, style = REFERENCE_STYLES.get(r["learner"], ("black", "-."))
            l_ds = ax_ds.axhline(
                r["driving_score"], color=colour, ls=style, label=f"{r['learner']} (reference)"
            )
            l_col = ax_col.axhline(
                r["collisions_per_km"], color=colour, ls=style, label=f"{r['learner']} (reference)"
            )
            drawn["references"][r["learner"]] = [float(l_ds.get_ydata()[0]), float(l_col.get_ydata()[0])]
    ax_ds.axhline(BAR.min_driving_score, color="red", lw=1.5, label=f"bar: DS {BAR.min_driving_score:g}")
    budgets_drawn = sorted({float(r["budget_hours"]) for r in records if r.get("budget_hours") is not None})
    for ax, label in ((ax_ds, "exam driving score (mean)"), (ax_col, "collisions per km")):
        ax.set_xscale("log")
        if budgets_drawn:  # ticks at the budgets, in plain hours
            ax.set_xticks(budgets_drawn, [f"{b:g}" for b in budgets_drawn])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("simulated hours of experience [h]")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_ds.set_ylim(0, 100)
    ax_ds.legend(fontsize=8, loc="lower right")
    fig.suptitle(describe_bar(), fontsize=9)
    fig.tight_layout()
    for path in (png, svg):
        tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
        fig.savefig(tmp)
        tmp.replace(path)
    plt.close(fig)
    return drawn


def markdown(
    records: list[dict[str, Any]],
    summary: dict[str, dict[str, Any]],
    suite: str,
    timing: dict[str, Any] | None = None,
) -> str:
    """``curve.md``: plainly, what passed and what did not (and the run's wall time)."""
    lines = ["# Hours to competence", "", f"Exam suite: **{suite}**. {describe_bar()}.", ""]
    for name, s in summary.items():
        hours = s["hours_to_competence"]
        budgets = s["per_budget"]
        if hours is not None:
            lines.append(f"- **{name}** reached competence at **{hours:g} h** (every seed passed).")
        elif budgets:
            lines.append(f"- **{name}** did **not** reach competence within {max(budgets):g} h.")
        else:
            lines.append(f"- **{name}**: no finished run yet.")
        for b, c in budgets.items():
            lines.append(f"  - {b:g} h: {c['passed']} of {c['seeds']} seed(s) passed")
    refs = [r for r in records if r.get("budget_hours") is None]
    if refs:
        lines += ["", "References (examined once):"]
        for r in refs:
            verdict = "passes the bar" if r["passed"] else "below the bar (" + "; ".join(r["failures"]) + ")"
            lines.append(f"- {r['learner']}: DS {_fmt(r['driving_score'], '.1f')}, success "
                         f"{_fmt(r['success_rate'], '.0%')}, {_fmt(r['collisions_per_km'], '.2f')} collisions/km: {verdict}")  # fmt: skip
    cut = cut_short(records)
    if cut:
        lines += ["", f"**Not step-budgeted:** {len(cut)} training(s) stopped at their wall-time cap "
                  "(`max_minutes`) before their step budget, so those points depend on how busy the "
                  "machine was: " + ", ".join(f"{k} ({n} steps)" for k, n in cut) + "."]  # fmt: skip
    if timing is not None:
        lines += ["", describe_wall_time(timing)]
    lines += ["", "Every run:", "", "```", table(records), "```", "", "![curve](curve.svg)", ""]
    return "\n".join(lines)


def wall_time(invocations: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's wall time summed over the ``drive curve`` invocations that ran jobs in its folder
    (``invocations.jsonl``: a ``start`` line, then an ``end`` line with its ``wall_seconds``). An
    invocation without an end (killed) counts from its start to the last job it finished
    (``finished_at`` of the records); records without ``finished_at`` (written before the run kept
    time) are counted in ``untimed``. Returns ``{"seconds", "invocations", "interrupted", "untimed"}``."""
    total, interrupted, starts = 0.0, 0, 0
    for k, event in enumerate(invocations):
        if event.get("event") != "start":
            continue
        starts += 1
        following = invocations[k + 1] if k + 1 < len(invocations) else None
        if following is not None and following.get("event") == "end":
            total += float(following.get("wall_seconds", 0.0))
            continue
        interrupted += 1
        until = float(following["at"]) if following is not None else math.inf
        done = [
            float(r["finished_at"])
            for r in records
            if float(event["at"]) <= float(r.get("finished_at", -1)) < until
        ]
        total += max(done) - float(event["at"]) if done else 0.0
    untimed = sum("finished_at" not in r for r in records)
    return {"seconds": total, "invocations": starts, "interrupted": interrupted, "untimed": untimed}


def describe_wall_time(timing: dict[str, Any]) -> str:
    """One sentence on :func:`wall_time`."""
    if not timing["invocations"]:
        return "Wall time: not recorded (no invocation of this folder kept time)."
    text = (f"Wall time: {timing['seconds'] / 3600:.2f} h over {timing['invocations']} `drive curve` "
            f"invocation(s)")  # fmt: skip
    if timing["interrupted"]:
        text += f", {timing['interrupted']} interrupted (counted to the last job it finished)"
    if timing["untimed"]:
        text += f"; {timing['untimed']} record(s) from before the run kept time are not counted"
    return text + "."


def cut_short(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(key, steps)`` of the records whose training stopped at its wall-time cap rather than at its
    step budget (``train_summary.stopped_by``): a curve is deterministic only without them."""
    out = []
    for r in records:
        summary = r.get("train_summary") or {}
        if summary.get("stopped_by", "steps") != "steps":
            out.append((str(r["key"]), int(summary.get("steps", 0))))
    return out


def write_outputs(
    out: Path,
    records: list[dict[str, Any]],
    plan: Any,
    suite: str,
    tensorboard: bool = True,
    invocations: list[dict[str, Any]] | None = None,
    timed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write every output of the curve into ``out``; returns their paths and the text table.
    For the wall time: ``invocations``, the lines of ``invocations.jsonl``, and ``timed``, every
    record of the folder (default ``records``), those of points since dropped from the plan
    included: an interrupted invocation is counted to the last job it finished, whichever."""
    from drive.pipelines.curve import summary_by_learner

    summary = summary_by_learner(records, plan)
    text = table(records)
    for name, s in summary.items():
        hours = s["hours_to_competence"]
        text += f"\n{name}: hours to competence " + (f"{hours:g} h" if hours is not None else "not reached")
    timing = wall_time(invocations or [], records if timed is None else timed)
    text += "\n" + describe_wall_time(timing)
    drawn = plot(records, list(plan.learners), out / "curve.png", out / "curve.svg")
    md = markdown(records, summary, suite, timing)
    runfolder.write_bytes_atomic(out / "curve.md", md.encode())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hours to competence</title></head><body>"
        f"<h1>Hours to competence</h1><p>{html.escape(describe_bar())}</p>"
        "<img src='curve.svg' alt='curve' style='max-width:100%'>"
        + "".join(
            f"<p><b>{html.escape(n)}</b>: "
            + (
                f"competent at {s['hours_to_competence']:g} h"
                if s["hours_to_competence"] is not None
                else "not reached"
            )
            + "</p>"
            for n, s in summary.items()
        )
        + f"<pre>{html.escape(table(records))}</pre></body></html>\n"
    )
    runfolder.write_bytes_atomic(out / "report.html", page.encode())
    if tensorboard:
        _tensorboard(out / "tensorboard", records)
    return {"table": text, "png": out / "curve.png", "svg": out / "curve.svg", "md": out / "curve.md",
            "html": out / "report.html", "drawn": drawn, "summary": summary, "timing": timing}  # fmt: skip


def _tensorboard(folder: Path, records: list[dict[str, Any]]) -> None:
    """``curve/<learner>/<figure>`` per budget, the step being the budget in hundredths of an hour
    (TensorBoard steps are integers); ``reference/<agent>/<figure>`` at step 0."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for r in records:
            if r.get("budget_hours") is None:
                for key in ("driving_score", "success_rate", "collisions_per_km"):
                    if r[key] is not None:
                        writer.add_scalar(f"reference/{r['learner']}/{key}", r[key], 0)
            else:
                groups.setdefault((r["learner"], float(r["budget_hours"])), []).append(r)
        for (name, budget), rs in sorted(groups.items()):
            step = round(budget * 100)
            for key in ("driving_score", "success_rate", "collisions_per_km"):
                vals = [r[key] for r in rs if r[key] is not None]
                if vals:
                    writer.add_scalar(f"curve/{name}/{key}", float(np.mean(vals)), step)
            writer.add_scalar(f"curve/{name}/seeds_passed", sum(bool(r["passed"]) for r in rs), step)
