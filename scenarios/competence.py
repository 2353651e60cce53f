"""The competence bar of the exam, defined once, and "hours to competence".

A learner *passes* the exam at one budget and seed when its exam run reaches every threshold of
:data:`BAR` (mean Driving Score, success rate, no at-fault collision with a pedestrian). Its *hours to
competence* is the smallest budget at which every seed passes; ``None`` ("not reached") when no
budget does. :func:`describe_bar` is the sentence every report prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COLLISION_KINDS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout")
"""Leaderboard names of the collision infractions (``scenarios.records.InfractionKind``)."""


@dataclass(frozen=True)
class CompetenceBar:
    """Thresholds an exam run must reach, all of them."""

    min_driving_score: float = 80.0
    """Mean Driving Score over the exam's episodes (0-100)."""
    min_success_rate: float = 0.70
    """Share of episodes completed without a failure (0-1)."""
    max_pedestrian_collisions: int = 0
    """At-fault collisions with pedestrians over the whole exam (nuPlan's rule, ``scenarios.criteria``:
    the ego's front into the walker, or the ego moving into a stopped one). A walker stepping into
    the side or rear of the ego does not count: the privileged expert has one such collision on the
    exam (``urban_route``, a pedestrian into its rear), and a bar its ceiling cannot pass would
    measure the crowd, not the driver. The total is reported beside it."""


BAR = CompetenceBar()
"""The bar of the project's question (mean DS ≥ 80, success ≥ 70 %, no at-fault pedestrian collision)."""


def describe_bar(bar: CompetenceBar = BAR) -> str:
    """The bar in words, as every curve output prints it."""
    return (
        f"competence bar: mean driving score >= {bar.min_driving_score:g}, success rate >= "
        f"{bar.min_success_rate:.0%}, at-fault pedestrian collisions <= {bar.max_pedestrian_collisions} "
        "(every seed of a budget must pass)"
    )


def exam_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The figures the bar and the curve read, from a suite summary (``scenarios.metrics.summarise``)."""
    overall = summary["overall"]
    per_km = overall["infractions_per_km"]
    pedestrians = int(overall["infractions"]["collisions_pedestrian"])
    at_fault = overall.get("at_fault_collisions")  # absent in summaries written before it existed
    return {
        "driving_score": float(overall["driving_score"]["mean"]),
        "success_rate": float(overall["success_rate"]),
        "pedestrian_collisions": pedestrians,
        "pedestrian_collisions_at_fault": int(at_fault["collisions_pedestrian"]) if at_fault else pedestrians,
        "collisions_per_km": float(sum(per_km[k] for k in COLLISION_KINDS)),
        "km_driven": float(overall["km_driven"]),
        "episodes": int(overall["episodes"]),
        "crashed": int(overall["crashed"]),
        "agent_errors": int(overall["agent_errors"]),
    }


def failures(metrics: Mapping[str, Any], bar: CompetenceBar = BAR) -> list[str]:
    """What keeps an exam run below the bar (empty: it passes)."""
    out = []
    if not metrics["driving_score"] >= bar.min_driving_score:
        out.append(f"driving score {metrics['driving_score']:.1f} < {bar.min_driving_score:g}")
    if not metrics["success_rate"] >= bar.min_success_rate:
        out.append(f"success {metrics['success_rate']:.0%} < {bar.min_success_rate:.0%}")
    # records written before the at-fault count existed hold only the total: read it (stricter)
    pedestrians = metrics.get("pedestrian_collisions_at_fault", metrics["pedestrian_collisions"])
    if not pedestrians <= bar.max_pedestrian_collisions:
        out.append(f"{pedestrians} at-fault pedestrian collision(s)")
    if metrics.get("crashed"):
        out.append(f"{metrics['crashed']} crashed episode(s)")
    return out


def passes(metrics: Mapping[str, Any], bar: CompetenceBar = BAR) -> bool:
    """Whether an exam run reaches the bar."""
    return not failures(metrics, bar)


def hours_to_competence(
    runs: Iterable[tuple[float, int, bool]], seeds: Iterable[int] | None = None
) -> float | None:
    """The smallest budget [h] at which every seed passed, from ``(budget, seed, passed)`` triples
    of one learner; ``None`` when no budget qualifies. With ``seeds``, a budget counts only when
    all of them have a result (a budget still running is not yet a pass)."""
    by_budget: dict[float, dict[int, bool]] = {}
    for budget, seed, ok in runs:
        by_budget.setdefault(float(budget), {})[int(seed)] = bool(ok)
    wanted = None if seeds is None else set(seeds)
    for budget in sorted(by_budget):
        results = by_budget[budget]
        if wanted is not None and not wanted <= set(results):
            continue
        if results and all(results.values()):
            return budget
    return None


__all__ = [
    "BAR",
    "COLLISION_KINDS",
    "CompetenceBar",
    "describe_bar",
    "exam_metrics",
    "failures",
    "hours_to_competence",
    "passes",
]
