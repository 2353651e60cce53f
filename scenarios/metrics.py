"""Scores of judged episodes: CARLA Leaderboard driving score (2.0 and 2.1), Bench2Drive success,
infractions per km, the nuPlan closed-loop score, and suite summaries.

Leaderboard (``leaderboard/utils/statistics_manager.py``): driving score = route completion [%] ×
infraction penalty. Version 2.0 multiplies a factor per infraction (pedestrian 0.50, vehicle 0.60,
static 0.65, red light 0.70, stop sign 0.80, scenario time-out 0.70), ``1 − 0.3·(1 − r/100)`` per
minimum-speed checkpoint with ratio ``r`` < 100 %, and ``1 − p/100`` for ``p`` % of the route
outside its lanes. Version 2.1 sums weights instead (1.0, 0.7, 0.6, 0.4, 0.25, 0.4; min speed
``0.4·(1 − r/100)`` per checkpoint) into ``1 / (1 + Σ w)``; the outside-lanes share stays a factor
``1 − p/100`` (the reference names no 2.1 weight for it). Route deviation, agent blocked and route
time-out end the route and carry no factor. A route that did not run to its end (``CRASHED`` or
still ``STARTED``) scores 0, as a missing route does in a Leaderboard suite; an ``AGENT_ERROR``
route is scored on what it completed (the Leaderboard's "Agent crashed").

The penalty reads the minimum-speed ratios from ``EpisodeResult.min_speed_ratios`` and the outside-
lanes share from ``EpisodeResult.outside_route_lanes``; the ``MIN_SPEED`` and
``OUTSIDE_ROUTE_LANES`` entries of ``infractions`` are for counting only, so nothing is counted
twice.

Bench2Drive: success = route completed (100 %) with no infraction other than minimum speed (and the
informational off-road / wrong-way stretches, which the Leaderboard does not record); its driving
score (``driving_score_b2d``) is the 2.0 formula without the minimum-speed factor.

nuPlan closed-loop score = Π multipliers × (5·progress + 5·TTC + 4·speed limit + 2·comfort) / 16,
multipliers: no at-fault collisions (``Π max(0, 1 − n/(thr + 1))`` with thresholds 0 for
pedestrians, 0 for vehicles, 1 for static objects: one at-fault object hit gives 0.5), drivable-area
compliance, making progress, driving-direction compliance — from the ``nuplan_*`` figures that
:meth:`scenarios.criteria.EpisodeJudge.finish` writes.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from scenarios.records import EpisodeResult, InfractionKind, Status

__all__ = [
    "LEADERBOARD_VERSION",
    "PENALTY_FACTORS_2_0",
    "PENALTY_WEIGHTS_2_1",
    "driving_score",
    "infraction_penalty",
    "infractions_per_km",
    "km_driven",
    "nuplan_score",
    "scenario_key",
    "score_episode",
    "success",
    "summarise",
]

#: the Leaderboard version of the headline figures (``driving_score``, ``infraction_penalty``)
LEADERBOARD_VERSION = "2.0"
VERSIONS = ("2.0", "2.1")

PENALTY_FACTORS_2_0: dict[InfractionKind, float] = {
    InfractionKind.COLLISION_PEDESTRIAN: 0.50,
    InfractionKind.COLLISION_VEHICLE: 0.60,
    InfractionKind.COLLISION_STATIC: 0.65,
    InfractionKind.RED_LIGHT: 0.70,
    InfractionKind.STOP_SIGN: 0.80,
    InfractionKind.SCENARIO_TIMEOUT: 0.70,
}
PENALTY_WEIGHTS_2_1: dict[InfractionKind, float] = {
    InfractionKind.COLLISION_PEDESTRIAN: 1.0,
    InfractionKind.COLLISION_VEHICLE: 0.7,
    InfractionKind.COLLISION_STATIC: 0.6,
    InfractionKind.RED_LIGHT: 0.4,
    InfractionKind.STOP_SIGN: 0.25,
    InfractionKind.SCENARIO_TIMEOUT: 0.4,
}
#: minimum-speed coefficient per checkpoint: 2.0 factor ``1 − c·(1 − r/100)``, 2.1 weight ``c·(1 − r/100)``
MIN_SPEED_COEFFICIENT = {"2.0": 0.3, "2.1": 0.4}

#: kinds that do not prevent a Bench2Drive success
SUCCESS_ALLOWED = frozenset({InfractionKind.MIN_SPEED, InfractionKind.OFF_ROAD, InfractionKind.WRONG_WAY})

#: nuPlan weighted metrics (score key, weight) and at-fault collision thresholds
NUPLAN_WEIGHTS = {"nuplan_progress": 5.0, "nuplan_ttc": 5.0, "nuplan_speed_limit": 4.0, "nuplan_comfort": 2.0}
NUPLAN_MULTIPLIERS = ("nuplan_drivable_area", "nuplan_making_progress", "nuplan_driving_direction")
NUPLAN_COLLISION_THRESHOLDS = {
    InfractionKind.COLLISION_PEDESTRIAN: 0,
    InfractionKind.COLLISION_VEHICLE: 0,
    InfractionKind.COLLISION_STATIC: 1,
}

_UNFINISHED = (Status.CRASHED, Status.STARTED)


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unknown Leaderboard version {version!r}; use one of {VERSIONS}")


def infraction_penalty(result: EpisodeResult, version: str = "2.0", min_speed: bool = True) -> float:
    """Leaderboard infraction penalty in (0, 1] (0 only when the whole route was outside its lanes).

    ``min_speed=False`` drops the minimum-speed term (Bench2Drive).
    """
    _check_version(version)
    counts = Counter(i.kind for i in result.infractions)
    ratios = (
        [min(max(float(r), 0.0), 100.0) for r in result.min_speed_ratios if r < 100.0] if min_speed else []
    )
    coef = MIN_SPEED_COEFFICIENT[version]
    if version == "2.0":
        penalty = 1.0
        for kind, factor in PENALTY_FACTORS_2_0.items():
            penalty *= factor ** counts[kind]
        for r in ratios:
            penalty *= 1.0 - coef * (1.0 - r / 100.0)
    else:
        weight = sum(w * counts[kind] for kind, w in PENALTY_WEIGHTS_2_1.items())
        weight += sum(coef * (1.0 - r / 100.0) for r in ratios)
        penalty = 1.0 / (1.0 + weight)
    outside = min(max(float(result.outside_route_lanes), 0.0), 100.0)
    return penalty * (1.0 - outside / 100.0)


def driving_score(result: EpisodeResult, version: str = "2.0", min_speed: bool = True) -> float:
    """Route completion [%] × infraction penalty, 0..100; 0 for a route that did not run to its end."""
    _check_version(version)
    if result.status in _UNFINISHED:
        return 0.0
    return float(result.route_completion) * infraction_penalty(result, version, min_speed)


def success(result: EpisodeResult) -> bool:
    """Bench2Drive success: judged to its end (``DONE``), route completed, no infraction but minimum
    speed (and the informational off-road / wrong-way stretches)."""
    if result.status != Status.DONE or result.route_completion < 100.0:
        return False
    if result.outside_route_lanes > 0.0:
        return False
    return all(i.kind in SUCCESS_ALLOWED for i in result.infractions)


def km_driven(results: Iterable[EpisodeResult]) -> float:
    """Leaderboard kilometres: Σ route length × completion [km], at least 0.001."""
    km = sum(r.route_length / 1000.0 * r.route_completion / 100.0 for r in results)
    return max(km, 0.001)


def infractions_per_km(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Count of every infraction kind (keyed by its Leaderboard name) per :func:`km_driven`."""
    km = km_driven(results)
    counts = Counter(i.kind for r in results for i in r.infractions)
    return {kind.value: counts[kind] / km for kind in InfractionKind}


def _no_at_fault_collisions(result: EpisodeResult) -> float:
    counts = Counter(
        i.kind for i in result.infractions if i.at_fault and i.kind in NUPLAN_COLLISION_THRESHOLDS
    )
    score = 1.0
    for kind, thr in NUPLAN_COLLISION_THRESHOLDS.items():
        score *= max(0.0, 1.0 - counts[kind] / (thr + 1))
    return score


def _nuplan_parts(result: EpisodeResult) -> dict[str, float]:
    needed = [*NUPLAN_WEIGHTS, *NUPLAN_MULTIPLIERS]
    missing = [k for k in needed if k not in result.scores]
    if missing:
        raise ValueError(
            f"episode {result.name!r} lacks the nuPlan figures {missing} in result.scores; "
            "judge the episode with scenarios.criteria.EpisodeJudge and call its finish(result) first"
        )
    no_fault = _no_at_fault_collisions(result)
    multiplier = no_fault
    for key in NUPLAN_MULTIPLIERS:
        multiplier *= float(result.scores[key])
    weighted = sum(w * float(result.scores[k]) for k, w in NUPLAN_WEIGHTS.items()) / sum(
        NUPLAN_WEIGHTS.values()
    )
    return {
        "nuplan_no_at_fault_collisions": no_fault,
        "nuplan_multiplier": multiplier,
        "nuplan_weighted": weighted,
        "nuplan_score": multiplier * weighted,
    }


def _nuplan_zero(result: EpisodeResult) -> bool:
    """Scores 0 without figures: did not run to its end, or an agent error before the judge finished."""
    return result.status in _UNFINISHED or (
        result.status != Status.DONE and "nuplan_progress" not in result.scores
    )


def nuplan_score(result: EpisodeResult) -> float:
    """nuPlan closed-loop score in [0, 1]; 0 for a route that did not run to its end (and for an agent
    error the judge did not finish)."""
    if _nuplan_zero(result):
        return 0.0
    return _nuplan_parts(result)["nuplan_score"]


def score_episode(result: EpisodeResult) -> EpisodeResult:
    """Fill ``result.scores`` with every figure (keeps the judge's ``nuplan_*`` entries) and return it.

    Keys: ``driving_score``, ``infraction_penalty`` (Leaderboard 2.0), ``driving_score_2.1``,
    ``infraction_penalty_2.1``, ``driving_score_b2d``, ``infraction_penalty_b2d``,
    ``route_completion``, ``success`` (0/1), ``min_speed_factor``, ``outside_lanes_factor``,
    ``nuplan_score``, ``nuplan_no_at_fault_collisions``, ``nuplan_multiplier``, ``nuplan_weighted``.
    """
    s = result.scores
    for version in VERSIONS:
        suffix = "" if version == LEADERBOARD_VERSION else f"_{version}"
        s[f"infraction_penalty{suffix}"] = infraction_penalty(result, version)
        s[f"driving_score{suffix}"] = driving_score(result, version)
    s["infraction_penalty_b2d"] = infraction_penalty(result, "2.0", min_speed=False)
    s["driving_score_b2d"] = driving_score(result, "2.0", min_speed=False)
    s["route_completion"] = float(result.route_completion)
    s["success"] = float(success(result))
    s["min_speed_factor"] = math.prod(
        1.0 - MIN_SPEED_COEFFICIENT["2.0"] * (1.0 - min(max(r, 0.0), 100.0) / 100.0)
        for r in result.min_speed_ratios
        if r < 100.0
    )
    s["outside_lanes_factor"] = 1.0 - min(max(result.outside_route_lanes, 0.0), 100.0) / 100.0
    if "nuplan_progress" in s or not _nuplan_zero(result):
        s.update(_nuplan_parts(result))
    s["nuplan_score"] = nuplan_score(result)
    return result


# ------------------------------------------------------------------------------------- summaries

#: per-episode figures summarised as mean ± std
SUMMARY_FIGURES = (
    "driving_score",
    "driving_score_2.1",
    "driving_score_b2d",
    "route_completion",
    "infraction_penalty",
    "infraction_penalty_2.1",
    "nuplan_score",
)


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (n − 1; 0 for a single value, as the Leaderboard) and n."""
    n = len(values)
    if n == 0:
        return {"mean": 0.0, "std": 0.0, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def _figures(result: EpisodeResult) -> dict[str, float]:
    """The summary figures of one episode, computed here (nothing is trusted from stale scores); a
    route that did not run to its end counts 0 in every one, as a missing Leaderboard route."""
    unfinished = result.status in _UNFINISHED
    out = {
        "driving_score": driving_score(result, "2.0"),
        "driving_score_2.1": driving_score(result, "2.1"),
        "driving_score_b2d": driving_score(result, "2.0", min_speed=False),
        "route_completion": 0.0 if unfinished else float(result.route_completion),
        "infraction_penalty": 0.0 if unfinished else infraction_penalty(result, "2.0"),
        "infraction_penalty_2.1": 0.0 if unfinished else infraction_penalty(result, "2.1"),
        "success": float(success(result)),
    }
    if _nuplan_zero(result) or "nuplan_progress" in result.scores:
        out["nuplan_score"] = nuplan_score(result)
    return out


def _group_stats(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    figs = [_figures(r) for r in results]
    out: dict[str, Any] = {
        "episodes": len(results),
        "crashed": sum(r.status == Status.CRASHED for r in results),
        "unfinished": sum(r.status == Status.STARTED for r in results),
        "agent_errors": sum(r.status == Status.AGENT_ERROR for r in results),
    }
    for key in SUMMARY_FIGURES:
        out[key] = _mean_std([f[key] for f in figs if key in f])
    out["success_rate"] = sum(f["success"] for f in figs) / len(figs) if figs else 0.0
    counts = Counter(i.kind for r in results for i in r.infractions)
    out["infractions"] = {kind.value: counts[kind] for kind in InfractionKind}
    at_fault = Counter(i.kind for r in results for i in r.infractions if i.at_fault)
    out["at_fault_collisions"] = {
        kind.value: at_fault[kind] for kind in InfractionKind if kind.value.startswith("collisions_")
    }
    out["infractions_per_km"] = infractions_per_km(results)
    out["km_driven"] = km_driven(results)
    out["km_outside_route_lanes"] = (
        sum(r.route_length * r.route_completion / 100.0 * r.outside_route_lanes / 100.0 for r in results)
        / 1000.0
    )
    return out


def scenario_key(result: EpisodeResult) -> str:
    """The episode's name without its seed: a trailing ``_<seed>``, ``-<seed>``, ``_seed<seed>`` or
    ``_s<seed>`` (any of ``_-.`` as separator) matching ``result.seed`` is removed; otherwise the name
    is kept whole (the episode is then its own group)."""
    pattern = rf"[_\-.](?:seed|s)?0*{int(result.seed)}$" if result.seed >= 0 else r"(?!)"
    return re.sub(pattern, "", result.name) or result.name


def _over_seeds(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Spread over seeds: per scenario (family and :func:`scenario_key`) with ≥ 2 seeds, the std of
    its driving score over its seeds, averaged over those scenarios; and the suite mean per seed
    value, then mean ± std over seed values."""
    by_scenario: dict[str, list[float]] = defaultdict(list)
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in results:
        ds = driving_score(r, "2.0")
        by_scenario[f"{r.family}/{scenario_key(r)}"].append(ds)
        by_seed[r.seed].append(ds)
    repeated = [v for v in by_scenario.values() if len(v) > 1]
    seed_means = [sum(v) / len(v) for v in by_seed.values()]
    return {
        "scenarios_with_several_seeds": len(repeated),
        "driving_score_std_within_scenario": (
            sum(_mean_std(v)["std"] for v in repeated) / len(repeated) if repeated else 0.0
        ),
        "seeds": len(by_seed),
        "driving_score_over_seed_means": _mean_std(seed_means),
    }


def summarise(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Suite summary: overall and per family (``result.family``).

    Every figure is recomputed from the records. Driving scores are Leaderboard suite means: a route
    that did not run to its end (crashed) counts 0, and so does its success; standard deviations are
    sample ones (n − 1) over episodes. ``over_seeds`` reports the spread over seeds (see
    :func:`scenario_key` for how episodes are grouped by scenario). JSON-able.
    """
    families: dict[str, list[EpisodeResult]] = defaultdict(list)
    for r in results:
        families[r.family].append(r)
    return {
        "leaderboard_version": LEADERBOARD_VERSION,
        "note": (
            f"driving_score / infraction_penalty: CARLA Leaderboard {LEADERBOARD_VERSION} (multiplicative factors); "
            "*_2.1: Leaderboard 2.1 (1 / (1 + sum of weights)); driving_score_b2d: Bench2Drive (2.0 without the "
            "minimum-speed factor); success_rate: Bench2Drive; crashed routes count 0"
        ),
        "overall": _group_stats(results),
        "families": {name: _group_stats(group) for name, group in sorted(families.items())},
        "over_seeds": _over_seeds(results),
    }
