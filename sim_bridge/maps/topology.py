"""How sampled lanes connect: successors and predecessors, junction conflicts, the routing graph.

Lane links come from the XML (:mod:`sim_bridge.maps.xodr`: lane links between sections, road links,
junction connections) and from CARLA's ``Waypoint.next``; links whose ends do not meet are dropped.
Lanes are indices into the list of :class:`~sim_bridge.maps.sampling.Lane`.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import shapely

from sim_bridge.maps.sampling import SECTION_EPS, Lane
from sim_bridge.maps.xodr import XMap

#: a lane link whose end and start are farther apart than this is dropped as inconsistent [m]
MAX_LINK_GAP = 1.0
#: junction lanes crossing within this distance of both their starts do not conflict (a fork) [m]
FORK_TOLERANCE = 1.0
#: lane changes are edges of the routing graph only on lanes at least this long [m]
MIN_CHANGE_LANE_LENGTH = 20.0
#: routing penalty of a lane change, added to half the lane's length [m]
CHANGE_PENALTY = 10.0


def _lane_links(
    xmap: XMap, lanes: list[Lane], index: dict[tuple[int, int, int], int]
) -> set[tuple[int, int]]:
    """Directed ``(from, to)`` lane pairs where ``to`` continues ``from`` at its end.

    Gathered from the XML (lane links between sections, road links, junction connections) and from
    CARLA's ``Waypoint.next`` at each lane's end; a pair counts only if ``from`` leaves its contact
    point and ``to`` enters at its own, and both lanes have the same folded type.
    """
    # A contact is ((road, section, lane), road-s end touching) on both sides; "s1" = the section's
    # end in road s, "s0" its start. A forward lane (id < 0) enters at s0 and leaves at s1.
    contacts: list[tuple[tuple[int, int, int], str, tuple[int, int, int], str]] = []
    for road in xmap.roads.values():
        last = len(road.sections) - 1
        for k, sec in enumerate(road.sections):
            for lane in sec.lanes.values():
                if k < last:
                    for m in lane.succs:
                        contacts.append(((road.id, k, lane.id), "s1", (road.id, k + 1, m), "s0"))
                if k > 0:
                    for m in lane.preds:
                        contacts.append(((road.id, k, lane.id), "s0", (road.id, k - 1, m), "s1"))
        for link, k, end, lane_ids in (
            (road.succ, last, "s1", "succs"),
            (road.pred, 0, "s0", "preds"),
        ):
            if link is None or link.element_type != "road" or link.element_id not in xmap.roads or last < 0:
                continue
            other = xmap.roads[link.element_id]
            ok = 0 if link.contact == "start" else len(other.sections) - 1
            oend = "s0" if link.contact == "start" else "s1"
            for lane in road.sections[k].lanes.values():
                for m in getattr(lane, lane_ids):
                    contacts.append(((road.id, k, lane.id), end, (other.id, ok, m), oend))
    for jid, conns in xmap.junctions.items():
        for c in conns:
            inc, con = xmap.roads.get(c.incoming), xmap.roads.get(c.connecting)
            if inc is None or con is None or not inc.sections or not con.sections:
                continue
            ends = []
            if inc.succ is not None and inc.succ.element_type == "junction" and inc.succ.element_id == jid:
                ends.append((len(inc.sections) - 1, "s1"))
            if inc.pred is not None and inc.pred.element_type == "junction" and inc.pred.element_id == jid:
                ends.append((0, "s0"))
            if not ends:  # the incoming road may link straight to the connecting road instead
                if inc.succ is not None and inc.succ.element_type == "road" and inc.succ.element_id == con.id:
                    ends.append((len(inc.sections) - 1, "s1"))
                if inc.pred is not None and inc.pred.element_type == "road" and inc.pred.element_id == con.id:
                    ends.append((0, "s0"))
            ck = 0 if c.contact == "start" else len(con.sections) - 1
            cend = "s0" if c.contact == "start" else "s1"
            for k, end in ends:
                for a, b in c.lane_links:
                    contacts.append(((inc.id, k, a), end, (con.id, ck, b), cend))

    def leaves(key: tuple[int, int, int], end: str) -> bool:
        return (key[2] < 0) == (end == "s1")

    pairs: set[tuple[int, int]] = set()
    for ka, ea, kb, eb in contacts:
        ia, ib = index.get(ka), index.get(kb)
        if ia is None or ib is None or ia == ib:
            continue
        if leaves(ka, ea) and not leaves(kb, eb):
            pairs.add((ia, ib))
        elif leaves(kb, eb) and not leaves(ka, ea):
            pairs.add((ib, ia))
    # CARLA's own successors (covers link styles the XML reading above does not)
    for i, sampled in enumerate(lanes):
        try:
            nxt = sampled.end.next(4 * SECTION_EPS)
        except RuntimeError:
            continue
        for n in nxt:
            j = index.get((n.road_id, n.section_id, n.lane_id))
            if j is not None and j != i:
                pairs.add((i, j))
    return {(a, b) for a, b in pairs if lanes[a].type == lanes[b].type}


def topology(
    xmap: XMap, lanes: list[Lane], index: dict[tuple[int, int, int], int]
) -> tuple[list[list[int]], list[list[int]], list[tuple[int, int]]]:
    """Successors and predecessors of each lane, and the links dropped because their ends do not meet."""
    links = _lane_links(xmap, lanes, index)
    dropped = sorted(
        (a, b) for a, b in links if np.hypot(*(lanes[a].points[-1] - lanes[b].points[0])) > MAX_LINK_GAP
    )
    succ: list[list[int]] = [[] for _ in lanes]
    pred: list[list[int]] = [[] for _ in lanes]
    for a, b in sorted(links - set(dropped)):
        succ[a].append(b)
        pred[b].append(a)
    return succ, pred, dropped


def conflicts(
    lanes: list[Lane],
    junction: np.ndarray,
    driving: np.ndarray,
    succ: list[list[int]],
    pred: list[list[int]],
) -> list[list[int]]:
    """For each junction driving lane, the lanes of its junction it crosses or merges with (symmetric).

    Two lanes conflict when they end in the same lane (merge) or their centrelines cross, except
    lanes leaving the same lane whose only common points lie within ``FORK_TOLERANCE`` of both starts.
    """
    out: list[set[int]] = [set() for _ in lanes]
    for jid in np.unique(junction[junction >= 0]).tolist():
        members = np.flatnonzero((junction == jid) & driving).tolist()
        lines = np.array([shapely.LineString(lanes[i].points) for i in members], dtype=object)
        for pa, a in enumerate(members):
            crossing = shapely.intersects(lines[pa], lines)
            for pb in range(pa + 1, len(members)):
                b = members[pb]
                if set(succ[a]) & set(succ[b]):
                    out[a].add(b)
                    out[b].add(a)
                    continue
                if not crossing[pb]:
                    continue
                if set(pred[a]) & set(pred[b]):
                    common = shapely.get_coordinates(shapely.intersection(lines[pa], lines[pb]))
                    near_a = np.hypot(*(common - lanes[a].points[0]).T) <= FORK_TOLERANCE
                    near_b = np.hypot(*(common - lanes[b].points[0]).T) <= FORK_TOLERANCE
                    if np.all(near_a & near_b):
                        continue
                out[a].add(b)
                out[b].add(a)
    return [sorted(c) for c in out]


def graph(
    driving: np.ndarray,
    length: np.ndarray,
    succ: list[list[int]],
    left: np.ndarray,
    right: np.ndarray,
    change_left: np.ndarray,
    change_right: np.ndarray,
) -> nx.DiGraph:
    """Driving lanes; ``follow`` edges to successors (weight = lane length), lane changes where the
    marks allow on lanes of at least ``MIN_CHANGE_LANE_LENGTH`` (weight = half length + penalty)."""
    g = nx.DiGraph()
    g.add_nodes_from(int(i) for i in np.flatnonzero(driving))
    for i in np.flatnonzero(driving).tolist():
        for j in succ[i]:
            if driving[j]:
                g.add_edge(i, j, kind="follow", weight=float(length[i]))
        if length[i] >= MIN_CHANGE_LANE_LENGTH:
            change_w = 0.5 * float(length[i]) + CHANGE_PENALTY
            if left[i] >= 0 and change_left[i]:
                g.add_edge(i, int(left[i]), kind="change_left", weight=change_w)
            if right[i] >= 0 and change_right[i]:
                g.add_edge(i, int(right[i]), kind="change_right", weight=change_w)
    return g
