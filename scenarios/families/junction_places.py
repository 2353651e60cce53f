"""Junctions seen from their approaches: which lanes enter, what controls them, where each
movement leads — what the junction families need to place the ego and the other actors.

An *approach* is a driving lane outside junctions whose successors all lie in one junction; its
*movements* are those successors (connecting lanes) with their :class:`RouteCommand` turn and the
lane each one exits to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim_bridge.maps.road_map import RoadMap, SignalKind
from sim_bridge.sensors.layout import RouteCommand

LEFT, RIGHT, STRAIGHT = int(RouteCommand.LEFT), int(RouteCommand.RIGHT), int(RouteCommand.STRAIGHT)


@dataclass(frozen=True)
class Approach:
    """A lane entering a junction."""

    lane: int
    lane_id: int
    """OpenDRIVE lane id (±1 innermost)."""
    junction: int
    heading: float
    """Driving direction at the lane's end [rad]."""
    end: tuple[float, float]
    """Where the lane meets the junction [m]."""
    stop: int
    """Index of its stop line (``RoadMap.stop_*``), -1 if uncontrolled."""
    signal: int
    """Index of the signal owning that stop line, -1 if none."""
    signals: tuple[int, ...]
    """Every signal with a stop line across the lane (real maps often put two heads on one
    approach, e.g. one for the left turn): lights frozen for the approach must freeze them all."""
    control: str
    """``"light"``, ``"stop"`` or ``"none"``."""
    movements: tuple[tuple[int, int, int], ...]
    """``(connecting lane, turn command, exit lane)`` of each movement."""

    def movement(self, turn: int) -> tuple[int, int] | None:
        """``(connecting lane, exit lane)`` of the movement with ``turn``, ``None`` if absent."""
        for conn, cmd, out in self.movements:
            if cmd == turn:
                return conn, out
        return None

    def bearing_to(self, other: Approach) -> float:
        """Heading of ``other`` relative to ours, wrapped to (-pi, pi] [rad]: ~pi for the opposite
        approach, +pi/2 for traffic coming from our right, -pi/2 from our left."""
        d = other.heading - self.heading
        return math.atan2(math.sin(d), math.cos(d))


def approaches(road_map: RoadMap) -> dict[int, list[Approach]]:
    """Every junction's approaches (cached on the map), keyed by junction id."""
    cached = road_map.cache.get("families_approaches")
    if cached is not None:
        return cached
    stop_of = {int(lane): k for k, lane in enumerate(road_map.stop_lane)}
    signals_of: dict[int, list[int]] = {}
    for lane, sig in zip(road_map.stop_lane.tolist(), road_map.stop_signal.tolist(), strict=True):
        signals_of.setdefault(int(lane), []).append(int(sig))
    out: dict[int, list[Approach]] = {}
    for lane in road_map.driving_lanes.tolist():
        succ = road_map.lane_successors[lane]
        if road_map.lane_junction[lane] >= 0 or not succ:
            continue
        junctions = {int(road_map.lane_junction[k]) for k in succ}
        if len(junctions) != 1 or -1 in junctions:
            continue
        movements = []
        for conn in succ:
            exits = road_map.lane_successors[conn]
            if exits:
                movements.append((int(conn), int(road_map.lane_turn[conn]), int(exits[0])))
        last = road_map.lane_start[lane + 1] - 1
        k = stop_of.get(lane, -1)
        signal = int(road_map.stop_signal[k]) if k >= 0 else -1
        if signal < 0:
            control = "none"
        elif road_map.signal_kind[signal] == SignalKind.TRAFFIC_LIGHT:
            control = "light"
        else:
            control = "stop"
        approach = Approach(
            lane=lane, lane_id=int(road_map.lane_keys[lane][2]), junction=junctions.pop(), heading=float(road_map.headings[last]),
            end=(float(road_map.points[last, 0]), float(road_map.points[last, 1])), stop=k, signal=signal,
            signals=tuple(sorted(set(signals_of.get(lane, [])))),
            control=control, movements=tuple(movements),
        )  # fmt: skip
        out.setdefault(approach.junction, []).append(approach)
    road_map.cache["families_approaches"] = out
    return out


def opposite(approach: Approach, others: list[Approach]) -> Approach | None:
    """The approach coming towards ``approach`` (heading within 30 deg of opposite), innermost lane."""
    found = [o for o in others if abs(approach.bearing_to(o)) > math.radians(150)]
    return _innermost(found)


def crossing(approach: Approach, others: list[Approach], side: int) -> Approach | None:
    """The approach crossing ours from the right (``side`` = -1: its traffic heads to our left, it
    comes from our right) or from the left (``side`` = +1), innermost lane."""
    want = math.pi / 2 if side < 0 else -math.pi / 2
    found = [o for o in others if abs(approach.bearing_to(o) - want) < math.radians(30)]
    return _innermost(found)


def _innermost(found: list[Approach]) -> Approach | None:
    if not found:
        return None
    return min(found, key=lambda a: (abs(a.lane_id), a.lane))


def signal_lights(road_map: RoadMap, junction: int) -> list[int]:
    """Signal indices of the traffic lights guarding ``junction``."""
    kinds = np.asarray(road_map.signal_kind)
    js = np.asarray(road_map.signal_junction)
    return [int(k) for k in np.flatnonzero((js == junction) & (kinds == SignalKind.TRAFFIC_LIGHT))]
