"""Scenario families: parametric generators ``family(params, seed) -> ScenarioSpec`` from the NHTSA
pre-crash / CARLA Leaderboard 2.0 typology. Each module holds a few related families and registers
them in :data:`FAMILIES`; :func:`make_scenario` builds one scenario by name.
"""

from __future__ import annotations

# importing the modules registers their families
from scenarios.families import (  # noqa: F401  (registration side effect)
    cut_in,
    following,
    junctions,
    merging,
    obstacles,
    oncoming,
    pedestrians,
    urban,
)
from scenarios.families.base import FAMILIES, Family, make_scenario, register

__all__ = ["FAMILIES", "Family", "make_scenario", "register"]
