"""Traffic lights and stop signs of an OpenDRIVE map, the driving lanes they control, their stop lines.

Signals are CARLA's landmarks of the two types below; the lanes each one controls come from its
``<validity>`` records (:mod:`sim_bridge.maps.xodr`), else from its orientation. A signal inside a
junction stops traffic where the junction's entry lanes end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import carla
import numpy as np

from sim_bridge.frames import carla_to_map
from sim_bridge.maps.road_map import LaneType, SignalKind
from sim_bridge.maps.sampling import Lane
from sim_bridge.maps.xodr import XMap

#: CARLA landmark type of a traffic light
TRAFFIC_LIGHT_TYPE = "1000001"
#: CARLA landmark type of a stop sign
STOP_SIGN_TYPE = "206"


@dataclass
class Signals:
    """Signals (``kind`` … ``junction``, one entry each) and stop lines (``stop_*``, one each) found."""

    kind: list[int] = field(default_factory=list)
    xodr_id: list[str] = field(default_factory=list)
    position: list[tuple[float, float]] = field(default_factory=list)
    junction: list[int] = field(default_factory=list)
    stop_lane: list[int] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    stop_signal: list[int] = field(default_factory=list)


def _lane_s_at_road_s(lane: Lane, lane_s: np.ndarray, road_s: float) -> float:
    rs = lane.road_s if lane.forward else lane.road_s[::-1]
    ls = lane_s if lane.forward else lane_s[::-1]
    return float(np.interp(road_s, rs, ls))


def signals(
    cmap: carla.Map,
    xmap: XMap,
    lanes: list[Lane],
    index: dict[tuple[int, int, int], int],
    lane_s: list[np.ndarray],
    junction: np.ndarray,
    succ: list[list[int]],
    pred: list[list[int]],
) -> Signals:
    """Traffic lights and stop signs, the driving lanes they control and a stop line on each."""
    out = Signals()
    by_id: dict[str, int] = {}
    for lm in cmap.get_all_landmarks():
        kind = {TRAFFIC_LIGHT_TYPE: SignalKind.TRAFFIC_LIGHT, STOP_SIGN_TYPE: SignalKind.STOP_SIGN}.get(
            str(lm.type)
        )
        road = xmap.roads.get(int(lm.road_id))
        if kind is None or road is None or not road.sections:
            continue
        sid = str(lm.id)
        if sid not in by_id:
            by_id[sid] = len(out.kind)
            loc = lm.transform.location
            if kind == SignalKind.TRAFFIC_LIGHT:  # CARLA moves lights 0.25 m forward of their (s, t) spot
                loc = loc - 0.25 * lm.transform.get_forward_vector()
            x, y, _ = carla_to_map(loc.x, loc.y, 0.0)
            out.kind.append(int(kind))
            out.xodr_id.append(sid)
            out.position.append((float(x), float(y)))
            out.junction.append(-1)
        sig = by_id[sid]
        # which lanes: explicit <validity> ranges, else every lane of the signal's direction
        s = float(np.clip(lm.s, 0.0, road.length))
        k = road.section_at(s)
        explicit = road.signals.get(sid, [])
        orientation = lm.orientation
        if orientation == carla.LandmarkOrientation.Positive:
            lane_ids = [i for i in road.sections[k].lanes if i < 0]
        elif orientation == carla.LandmarkOrientation.Negative:
            lane_ids = [i for i in road.sections[k].lanes if i > 0]
        else:
            lane_ids = list(road.sections[k].lanes)
        if explicit:
            lane_ids = [i for i in lane_ids if any(min(a, b) <= i <= max(a, b) for a, b in explicit)]
        for lid in lane_ids:
            li = index.get((road.id, k, lid))
            if li is None or lanes[li].type != LaneType.DRIVING:
                continue
            if junction[li] >= 0:  # a lane inside the junction: stop where its entries end
                out.junction[sig] = int(junction[li])
                for p in pred[li] or []:
                    out.stop_lane.append(p)
                    out.stop_s.append(float(lane_s[p][-1]))
                    out.stop_signal.append(sig)
            else:
                out.stop_lane.append(li)
                out.stop_s.append(_lane_s_at_road_s(lanes[li], lane_s[li], s))
                out.stop_signal.append(sig)
                entered = [junction[j] for j in succ[li] if junction[j] >= 0]
                if entered and out.junction[sig] < 0:
                    out.junction[sig] = int(entered[0])
    # one line per (signal, lane)
    seen: dict[tuple[int, int], float] = {}
    keep = []
    for n, (sig, lane, s) in enumerate(zip(out.stop_signal, out.stop_lane, out.stop_s)):
        if (sig, lane) in seen and abs(seen[(sig, lane)] - s) < 0.1:
            continue
        seen[(sig, lane)] = s
        keep.append(n)
    out.stop_lane = [out.stop_lane[n] for n in keep]
    out.stop_s = [out.stop_s[n] for n in keep]
    out.stop_signal = [out.stop_signal[n] for n in keep]
    return out


def stop_segments(
    stop_lane: np.ndarray,
    stop_s: np.ndarray,
    lane_start: np.ndarray,
    s: np.ndarray,
    points: np.ndarray,
    headings: np.ndarray,
    widths: np.ndarray,
) -> np.ndarray:
    """``float [K, 2, 2]``: each stop line from the lane's left edge to its right edge [m]."""
    out = np.zeros((len(stop_lane), 2, 2), dtype=np.float64)
    for n, (li, ss) in enumerate(zip(stop_lane.tolist(), stop_s.tolist())):
        lo, hi = lane_start[li], lane_start[li + 1]
        centre = np.array(
            [np.interp(ss, s[lo:hi], points[lo:hi, 0]), np.interp(ss, s[lo:hi], points[lo:hi, 1])]
        )
        j = min(int(np.searchsorted(s[lo:hi], ss)), hi - lo - 1)
        h, w = headings[lo + j], np.interp(ss, s[lo:hi], widths[lo:hi])
        normal = np.array([-math.sin(h), math.cos(h)])
        out[n] = [centre + 0.5 * w * normal, centre - 0.5 * w * normal]
    return out
