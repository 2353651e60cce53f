"""The family registry and the placement helpers every family uses.

A family builds a :class:`~scenarios.spec.ScenarioSpec` from parameters (merged over its
defaults), a seed and a town. Placement is lane-relative: pick a lane of the right kind, then put
the ego and the actors at arc lengths and lateral offsets along it, so a family works on any town
that has such a lane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios.spec import ScenarioSpec
from sim_bridge.api import MapRef, Pose
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import RoadMap


class FamilyError(ValueError):
    """A family cannot be built as asked (unknown name or parameter, no suitable place on the map)."""


Builder = Callable[[RoadMap, MapRef, dict[str, Any], np.random.Generator, int], ScenarioSpec]


@dataclass(frozen=True)
class Family:
    """A registered family: its builder, default parameters and town, and what it tests."""

    name: str
    build: Builder
    defaults: dict[str, Any]
    town: MapRef
    description: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Parameter grid of the ``nhtsa`` suite (values per parameter)."""


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    FAMILIES[family.name] = family
    return family


def make_scenario(
    name: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    town: MapRef | None = None,
    scenario: str | None = None,
) -> ScenarioSpec:
    """Build family ``name`` with ``params`` over its defaults, ``seed`` and ``town`` (default the
    family's). ``scenario`` names the result (default ``<family>_s<seed>``)."""
    family = FAMILIES.get(name)
    if family is None:
        raise FamilyError(f"unknown scenario family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    merged = dict(family.defaults)
    for key, value in (params or {}).items():
        if key not in family.defaults:
            raise FamilyError(
                f"family {name!r} has no parameter {key!r}; its parameters: {', '.join(sorted(family.defaults))}"
            )
        merged[key] = value
    ref = town or family.town
    road_map = load_map(ref)
    spec = family.build(road_map, ref, merged, np.random.default_rng(seed), seed)
    return spec.replace(
        name=scenario or f"{name}_s{seed}",
        family=name,
        params={k: _plain(v) for k, v in merged.items()},
        seed=seed,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------------------- placement


def pose_on(road_map: RoadMap, lane: int, s: float, lateral: float = 0.0) -> Pose:
    """The pose at arc length ``s`` [m] of ``lane``, ``lateral`` [m] to its left."""
    xy, yaw = road_map.pose_at(np.array([lane]), np.array([float(s)]), np.array([float(lateral)]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def straight_lanes(road_map: RoadMap, min_length: float, junction: bool = False) -> np.ndarray:
    """Driving lanes at least ``min_length`` [m] long, outside junctions, nearly straight."""
    out = []
    for lane in road_map.driving_lanes.tolist():
        if road_map.lane_length[lane] < min_length or (road_map.lane_junction[lane] >= 0) != junction:
            continue
        a, b = road_map.lane_start[lane], road_map.lane_start[lane + 1]
        h = np.unwrap(road_map.headings[a:b])
        if np.ptp(h) < 0.1:
            out.append(lane)
    return np.asarray(out, dtype=np.int64)


def pick(lanes: np.ndarray, rng: np.random.Generator, what: str, town: MapRef) -> int:
    """A random lane of ``lanes`` (seeded), or :class:`FamilyError` naming what was looked for."""
    if len(lanes) == 0:
        raise FamilyError(f"town {town.key()} has no {what}")
    return int(lanes[rng.integers(len(lanes))])
