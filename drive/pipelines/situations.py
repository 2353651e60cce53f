"""Scenario-family situations in collection: hazards placed on the route of some episodes.

Plain collection drives random routes through background traffic; the hazards a planner must
handle (a crossing pedestrian, a braking lead, a parked car, a cut-in, a red-light runner …) come
up there rarely. ``situations.share`` of the episodes are instead built by a scenario family
(``scenarios.families``, the builders the suites use) on the job's town, and driven by the
collection driver like any other episode (never by the expert unless ``driver=expert``): the
learner still learns from its own experience only.

**Which episodes.** Episode ``seed`` is a situation when a uniform draw from ``(TAG, seed)`` falls
below ``share`` and the seed is not one a held-out suite uses; the situation is a function of the
seed, the town and the families alone, so an episode is replayable from its seed.

**Family and parameters.** The families of ``situations.families`` that can be placed on the
job's town (:func:`placeable`) are tried in an order drawn from the seed. For a family, every parameter of its ``nhtsa`` grid (``Family.grid``) is drawn:
a number uniformly in the grid's span widened by ``spread`` × the span on each side, clipped to the
family's allowed range (``scenarios.families.params``; integers rounded), a string among the
allowed choices; the other parameters keep the family's defaults. A draw that falls on a held-out
suite's parameter point, or that the map cannot place, is drawn again (up to
:data:`ATTEMPTS` times), then the next family is tried; a seed no family fits stays plain.

**Held out.** The suites of ``situations.held_out`` (default the exam) are read as a
:class:`scenarios.suites.Footprint`: collection refuses to run situations on their towns, never uses
their seeds as situation seeds, and never draws their parameter points. ``tests/test_situations.py``
checks this against the exam as expanded for ``drive eval``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drive.checks import CONF_DIR
from scenarios.families import FAMILIES, make_scenario
from scenarios.families.base import FamilyError
from scenarios.families.params import PARAMS
from scenarios.spec import ScenarioSpec
from scenarios.suites import Footprint, suite_footprint
from sim_bridge.api import MapRef

#: mixed into the seed of the situation draws (whether, which family, which parameters)
TAG = 0x517A
#: parameter draws tried per family before the next family is tried
ATTEMPTS = 4
#: seeds of the situations tried when probing whether a town can place a family (a family that
#: fits a town only with some parameters, as ``lead_vehicle_brake`` in a grid town, fits one of them)
PROBE_SEEDS = tuple(range(8))
#: families whose episodes are worth mixing in by default: all but ``urban_route`` (a long route
#: through traffic: what plain collection already drives)
USEFUL_FAMILIES = tuple(sorted(f for f in FAMILIES if f != "urban_route"))


@dataclass
class SituationsConfig:
    """Scenario-family situations mixed into collection (``situations.*``; see
    :mod:`drive.pipelines.situations`)."""

    share: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Share of the episodes that are scenario-family situations (0: none; ``recipe=hazards``: 0.5)."""
    families: list[str] = field(default_factory=lambda: list(USEFUL_FAMILIES),
                                metadata={"choices": tuple(sorted(FAMILIES))})  # fmt: skip
    """Families to draw from (each job uses those its town can place; every town of ``towns``
    must place at least one)."""
    spread: float = field(default=0.5, metadata={"min": 0})
    """Parameters are drawn in the family's grid span widened by this × the span on each side
    (clipped to the family's allowed range)."""
    held_out: list[str] = field(default_factory=lambda: ["exam"])
    """Suites (``drive/conf/suite/<name>.yaml``) whose towns, seeds and parameter points situations
    never use."""


class SituationError(ValueError):
    """Situations cannot be mixed in as configured (the message says what to change)."""


def held_out(names: list[str]) -> Footprint:
    """The union of the footprints of the suites ``names`` (``drive/conf/suite/<name>.yaml``)."""
    out = Footprint(frozenset(), frozenset(), {})
    for name in names:
        path = CONF_DIR / "suite" / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (CONF_DIR / "suite").glob("*.yaml"))
            raise SituationError(
                f"situations.held_out names suite {name!r}; known suites: {', '.join(known)}"
            )
        out = out | suite_footprint(path)
    return out


def check_towns(towns: list[str], refs: list[MapRef], footprint: Footprint) -> None:
    """Refuse towns a held-out suite drives on (situations there would train on the exam's maps)."""
    clash = [t for t, ref in zip(towns, refs, strict=True) if ref.key() in footprint.towns]
    if clash:
        raise SituationError(
            f"towns {clash} are held out (a suite of situations.held_out drives them: "
            f"{', '.join(sorted(footprint.towns))}); collect situations on other towns, or set situations.share=0"
        )


def is_situation(seed: int, share: float, footprint: Footprint) -> bool:
    """Whether episode ``seed`` is a situation (see module doc)."""
    if share <= 0.0 or seed in footprint.seeds:
        return False
    return bool(np.random.default_rng([TAG, 0, seed]).random() < share)


def placeable(families: list[str], town: MapRef, spread: float) -> list[str]:
    """The ``families`` a town can place: a situation of the family alone is built for one of
    :data:`PROBE_SEEDS` (a few milliseconds each; remembered per process), in the given order."""
    return [f for f in families if _places(f, town, spread)]


@functools.cache
def _places(family: str, town: MapRef, spread: float) -> bool:
    empty = Footprint(frozenset(), frozenset(), {})
    return any(situation(s, town, [family], spread, empty) is not None for s in PROBE_SEEDS)


def draw_params(family: str, spread: float, rng: np.random.Generator) -> dict[str, Any]:
    """Values for the parameters of ``family``'s grid (see module doc); the others are left to the
    family's defaults."""
    out: dict[str, Any] = {}
    allowed = PARAMS.get(family, {})
    for name, values in FAMILIES[family].grid.items():
        param = allowed.get(name)
        if param is not None and param.kind is str:
            out[name] = str(rng.choice(list(param.choices)))
            continue
        if any(isinstance(v, str) for v in values):
            out[name] = str(rng.choice([str(v) for v in values]))
            continue
        lo, hi = float(min(values)), float(max(values))
        widen = spread * (hi - lo)
        lo, hi = lo - widen, hi + widen
        if param is not None:
            lo = max(lo, param.lo if param.lo is not None else -math.inf)
            hi = min(hi, param.hi if param.hi is not None else math.inf)
        if (param is not None and param.kind is int) or all(isinstance(v, int) for v in values):
            out[name] = int(rng.integers(math.ceil(lo), math.floor(hi) + 1))
        else:
            out[name] = round(float(rng.uniform(lo, hi)), 3)
    return out


def situation(
    seed: int, town: MapRef, families: list[str], spread: float, footprint: Footprint
) -> ScenarioSpec | None:
    """The scenario of situation episode ``seed`` on ``town`` from ``families`` (those the town can
    place, :func:`placeable`), off the held-out ``footprint``; ``None`` when none can be placed."""
    rng = np.random.default_rng([TAG, 1, seed])
    for index in rng.permutation(len(families)).tolist():
        family = families[index]
        for _ in range(ATTEMPTS):
            params = draw_params(family, spread, rng)
            if footprint.holds_point(family, params):
                continue
            try:
                spec = make_scenario(family, params, seed=seed, town=town)
            except FamilyError:
                continue
            if spec.world.map.key() == town.key():
                return spec
    return None
