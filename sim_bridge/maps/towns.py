"""Procedural towns written as OpenDRIVE text with ``scenariogeneration``: the registry and the towns.

Every generator takes a ``seed`` and returns OpenDRIVE 1.5 text (``str``): the same seed gives
byte-identical text, other seeds give other valid maps. :data:`TOWNS` names them; :func:`make_town`
looks one up. Every map loads with the ``carla`` client parser (``carla.Map(name, text)``).

This module holds the grid town and the unit maps (``straight``, ``cross``, ``tee``); the highway is
in :mod:`sim_bridge.maps.highway`, and the builders every town shares, with the conventions they
follow (marks, junctions, signals, ids), in :mod:`sim_bridge.maps.town_parts`.

Sizes are in metres, speeds in km/h (as written in the ``<speed>`` records).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sim_bridge.maps.highway import highway
from sim_bridge.maps.road_map import MapError
from sim_bridge.maps.town_parts import (
    BUILD_LOCK,
    Arm,
    Profile,
    Signals,
    control,
    junction,
    link_and_place,
    opendrive,
    seeded_rng,
    serialise,
    street,
)

__all__ = [
    "TOWNS",
    "cross",
    "grid_town",
    "make_town",
    "straight",
    "tee",
]

_JUNCTION_MARGIN = 3.5  # clearance between the crossing road's outer edge and an approach's end [m]
_GRID_NODES = 4  # junctions per side of the grid town: 3 x 3 blocks
_GRID_BLOCK = (80.0, 120.0)  # junction spacing of the grid town [m]
_GRID_JUNCTIONS = 501  # first junction id of the grid town (streets are 1..24)
_GRID_CONNECTORS = 1000  # first connecting-road id of the grid town, 100 per junction
_STAR_JUNCTION = 10  # junction id of the unit maps (arms are roads 1..4, connecting roads 100..)

_STREET = Profile(lanes=1, lane_width=3.25, sidewalk=2.5, speed=50.0)
_AVENUE = Profile(lanes=2, lane_width=3.5, sidewalk=3.0, speed=60.0)
_BOULEVARD = Profile(lanes=2, lane_width=3.5, sidewalk=2.5, speed=50.0)


# ----------------------------------------------------------------------------------------- grid


def grid_town(seed: int = 0) -> str:
    """A 3 x 3-block grid town: 4 x 4 = 16 junctions, every street connected at both ends.

    Seeded: block sizes (junction spacing 80-120 m), which rows and columns are 4-lane avenues
    (one or two of each, 60 km/h, 2 lanes each way) rather than 2-lane streets (50 km/h), and which
    junctions are signalised (3 to 7 of the 12 T and 4-way junctions; the others are
    stop-controlled, the 4 corner bends are uncontrolled). Every street has sidewalks on both
    sides. Streets run east (+x) along rows and north (+y) along columns; the south-west junction
    is at the origin.
    """
    n = _GRID_NODES
    rng = seeded_rng(seed)
    xs = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*_GRID_BLOCK, n - 1), 1))])
    ys = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*_GRID_BLOCK, n - 1), 1))])
    avenue_rows = set(rng.choice(n, int(rng.integers(1, 3)), replace=False).tolist())
    avenue_cols = set(rng.choice(n, int(rng.integers(1, 3)), replace=False).tolist())
    row = [_AVENUE if j in avenue_rows else _STREET for j in range(n)]  # streets along y = ys[j]
    col = [_AVENUE if i in avenue_cols else _STREET for i in range(n)]  # streets along x = xs[i]

    def reach_x(i: int) -> float:  # centre of a junction in column i to the ends of its row streets
        return col[i].half_width + _JUNCTION_MARGIN

    def reach_y(j: int) -> float:  # centre of a junction in row j to the ends of its column streets
        return row[j].half_width + _JUNCTION_MARGIN

    def jid(i: int, j: int) -> int:
        return _GRID_JUNCTIONS + i + n * j

    with BUILD_LOCK:
        odr = opendrive(f"grid_town seed {seed}")
        arms: dict[int, list[Arm]] = {jid(i, j): [] for i in range(n) for j in range(n)}
        rid = 1
        for j in range(n):  # row streets, west to east
            for i in range(n - 1):
                x0, x1 = xs[i] + reach_x(i), xs[i + 1] - reach_x(i + 1)
                road = street(rid, float(x0), float(ys[j]), 0.0, float(x1 - x0), row[j])
                odr.add_road(road)
                arms[jid(i, j)].append(Arm(road, row[j], "predecessor", 0.0, reach_x(i), x1 - x0))
                arms[jid(i + 1, j)].append(Arm(road, row[j], "successor", math.pi, reach_x(i + 1), x1 - x0))
                rid += 1
        for i in range(n):  # column streets, south to north
            for j in range(n - 1):
                y0, y1 = ys[j] + reach_y(j), ys[j + 1] - reach_y(j + 1)
                road = street(rid, float(xs[i]), float(y0), 0.5 * math.pi, float(y1 - y0), col[i])
                odr.add_road(road)
                arms[jid(i, j)].append(Arm(road, col[i], "predecessor", 0.5 * math.pi, reach_y(j), y1 - y0))
                arms[jid(i, j + 1)].append(
                    Arm(road, col[i], "successor", -0.5 * math.pi, reach_y(j + 1), y1 - y0)
                )
                rid += 1

        controlled = [k for k in sorted(arms) if len(arms[k]) >= 3]
        lit = set(rng.choice(controlled, int(rng.integers(3, 8)), replace=False).tolist())
        signals = Signals()
        creators = []
        for k in sorted(arms):
            kind = "none" if k not in controlled else ("signal" if k in lit else "stop")
            control(arms[k], k, kind, signals)
            creator = junction(k, arms[k], startnum=_GRID_CONNECTORS + 100 * (k - _GRID_JUNCTIONS))
            odr.add_junction_creator(creator)
            creators.append(creator)
        link_and_place(odr, creators)
        return serialise(odr, signals)


# ------------------------------------------------------------------------------------ unit maps


def _star(name: str, bearings: list[float], profile: Profile, kind: str, approach: float = 100.0) -> str:
    """One junction at the origin with an arm of ``approach`` m along each bearing [rad].

    Arms pointing west or south run towards the junction (it is their successor), the others away
    from it, so both signal orientations occur. ``kind`` controls the junction (see
    :func:`~sim_bridge.maps.town_parts.control`).
    """
    reach = profile.half_width + _JUNCTION_MARGIN
    with BUILD_LOCK:
        odr = opendrive(name)
        arms = []
        for rid, bearing in enumerate(bearings, start=1):
            ux, uy = math.cos(bearing), math.sin(bearing)
            towards = ux < -0.5 or uy < -0.5
            if towards:
                start, heading = reach + approach, bearing + math.pi
            else:
                start, heading = reach, bearing
            heading = math.atan2(math.sin(heading), math.cos(heading))
            road = street(rid, start * ux, start * uy, heading, approach, profile)
            odr.add_road(road)
            arms.append(
                Arm(road, profile, "successor" if towards else "predecessor", bearing, reach, approach)
            )
        signals = Signals()
        control(arms, _STAR_JUNCTION, kind, signals)
        creator = junction(_STAR_JUNCTION, arms, startnum=100)
        odr.add_junction_creator(creator)
        link_and_place(odr, [creator])
        return serialise(odr, signals)


def straight(seed: int = 0) -> str:
    """One straight 300 m road along +x from the origin: 2 lanes each way (3.5 m), 2.5 m sidewalks,
    50 km/h. ``seed`` is ignored (the map is fixed)."""
    del seed
    with BUILD_LOCK:
        odr = opendrive("straight")
        odr.add_road(street(1, 0.0, 0.0, 0.0, 300.0, _BOULEVARD))
        odr.adjust_startpoints()
        return serialise(odr)


def cross(seed: int = 0) -> str:
    """One signalised 4-way junction at the origin of 2-lane streets (1 lane each way, sidewalks),
    approaches 100 m long. ``seed`` is ignored (the map is fixed)."""
    del seed
    return _star("cross", [0.0, 0.5 * math.pi, math.pi, -0.5 * math.pi], _STREET, "signal")


def tee(seed: int = 0) -> str:
    """One stop-controlled T junction at the origin: a through street east-west and a stem to the
    south that stops, approaches 100 m long. ``seed`` is ignored (the map is fixed)."""
    del seed
    return _star("tee", [0.0, math.pi, -0.5 * math.pi], _STREET, "stop")


# ------------------------------------------------------------------------------------- registry

TOWNS: dict[str, Callable[[int], str]] = {
    "grid": grid_town,
    "highway": highway,
    "straight": straight,
    "cross": cross,
    "tee": tee,
}
"""Procedural maps by name; each maps a seed to OpenDRIVE text."""


def make_town(name: str, seed: int) -> str:
    """OpenDRIVE text of town ``name`` with ``seed``; :class:`MapError` for an unknown name."""
    try:
        generator = TOWNS[name]
    except KeyError:
        raise MapError(f"unknown town {name!r}; procedural towns are: {', '.join(sorted(TOWNS))}") from None
    return generator(seed)
