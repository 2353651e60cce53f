"""OpenDRIVE text → :class:`~sim_bridge.maps.road_map.RoadMap`.

Geometry (positions, headings, widths) comes from CARLA's own OpenDRIVE parser (``carla.Map(name,
text)``, no server needed), which evaluates lines, arcs, spirals, paramPoly3 and lane offsets; the
*structure* CARLA does not expose conveniently (lane sections, lane links, junction connections, speed
records, road types, road marks, signal validities) is read from the XML with ``xml.etree``.

Steps, each a function below: parse and check the XML (:func:`_read_xml`), sample every lane of every
lane section at ≤ 1 m in its driving direction (:func:`_sample_lanes`), link lanes end to start
(:func:`_lane_links`), neighbours and marks, speed limits, junction turns and conflicts, signals and
their stop lines, lane surfaces, and the routing graph. Right-hand traffic only (as CARLA).
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import carla
import networkx as nx
import numpy as np
import shapely

from sim_bridge.frames import carla_to_map, wrap_angle
from sim_bridge.maps.road_map import LaneType, MapError, MarkType, RoadMap, SignalKind
from sim_bridge.sensors.layout import RouteCommand

#: spirals whose curvature changes less than this [1/m] × length² [m²] are read as arcs (see _fix_curves)
SPIRAL_AS_ARC = 1e-4
#: arcs whose curvature [1/m] × length² [m²] is below this are read as lines (see _fix_curves)
ARC_AS_LINE = 1e-3
#: largest road-s step between two samples before refinement [m]
SAMPLE_STEP = 0.95
#: samples of a lane are refined until consecutive ones are at most this far apart [m]
MAX_SAMPLE_GAP = 1.0
#: lane samples stay this far inside their lane section [m] (CARLA is ambiguous at the boundary)
SECTION_EPS = 1e-3
#: lanes narrower than this everywhere are dropped [m]
MIN_LANE_WIDTH = 0.05
#: a lane link whose end and start are farther apart than this is dropped as inconsistent [m]
MAX_LINK_GAP = 1.0
#: heading change of a junction lane beyond which it is a turn [rad]
TURN_THRESHOLD = math.radians(30.0)
#: junction lanes crossing within this distance of both their starts do not conflict (a fork) [m]
FORK_TOLERANCE = 1.0
#: lane changes are edges of the routing graph only on lanes at least this long [m]
MIN_CHANGE_LANE_LENGTH = 20.0
#: routing penalty of a lane change, added to half the lane's length [m]
CHANGE_PENALTY = 10.0

TRAFFIC_LIGHT_TYPE = "1000001"
STOP_SIGN_TYPE = "206"

_KMH = 1.0 / 3.6
_SPEED_UNITS = {"m/s": 1.0, "km/h": _KMH, "kmh": _KMH, "mph": 0.44704}
#: default speed limits by OpenDRIVE road type [m/s]
_DEFAULT_SPEED = {"motorway": 120 * _KMH, "rural": 80 * _KMH, "lowspeed": 30 * _KMH}
_UNKNOWN_SPEED = 50 * _KMH

_LANE_TYPES = {
    "driving": LaneType.DRIVING,
    "entry": LaneType.DRIVING,
    "exit": LaneType.DRIVING,
    "onramp": LaneType.DRIVING,
    "offramp": LaneType.DRIVING,
    "bidirectional": LaneType.DRIVING,
    "connectingramp": LaneType.DRIVING,
    "sidewalk": LaneType.SIDEWALK,
    "walking": LaneType.SIDEWALK,
    "shoulder": LaneType.SHOULDER,
    "parking": LaneType.PARKING,
    "biking": LaneType.BIKING,
    "border": LaneType.BORDER,
}

_XML_MARKS = {
    "none": MarkType.NONE,
    "solid": MarkType.SOLID,
    "broken": MarkType.BROKEN,
    "solid solid": MarkType.SOLID_SOLID,
    "solid broken": MarkType.SOLID_BROKEN,
    "broken solid": MarkType.BROKEN_SOLID,
    "broken broken": MarkType.BROKEN_BROKEN,
}
_CARLA_MARKS = {
    carla.LaneMarkingType.NONE: MarkType.NONE,
    carla.LaneMarkingType.Solid: MarkType.SOLID,
    carla.LaneMarkingType.Broken: MarkType.BROKEN,
    carla.LaneMarkingType.SolidSolid: MarkType.SOLID_SOLID,
    carla.LaneMarkingType.SolidBroken: MarkType.SOLID_BROKEN,
    carla.LaneMarkingType.BrokenSolid: MarkType.BROKEN_SOLID,
    carla.LaneMarkingType.BrokenBroken: MarkType.BROKEN_BROKEN,
}
#: marks a vehicle may cross to change lane (the side of a double mark nearer the lane counts)
_CROSSABLE = frozenset({MarkType.NONE, MarkType.BROKEN, MarkType.BROKEN_BROKEN, MarkType.BROKEN_SOLID})


# ------------------------------------------------------------------------------------ XML structure


@dataclass
class _XLane:
    id: int
    type: str
    preds: list[int]
    succs: list[int]
    speeds: list[tuple[float, float]]
    """``(sOffset, max [m/s])`` records."""
    marks: list[tuple[float, str]]
    """``(sOffset, roadMark type)`` records."""


@dataclass
class _XSection:
    s0: float
    s1: float
    lanes: dict[int, _XLane]
    center_marks: list[tuple[float, str]]
    """``(sOffset, roadMark type)`` records of the centre lane (id 0)."""


@dataclass
class _XLink:
    element_type: str  # "road" | "junction"
    element_id: int
    contact: str  # "start" | "end" (roads only)


@dataclass
class _XRoad:
    id: int
    length: float
    junction: int
    types: list[tuple[float, str, float | None]]
    """``(s, road type, speed [m/s] or None)`` records."""
    sections: list[_XSection]
    pred: _XLink | None
    succ: _XLink | None
    signals: dict[str, list[tuple[int, int]]]
    """Signal (or signal reference) id → explicit ``<validity>`` lane ranges (empty: none given)."""

    def section_at(self, s: float) -> int:
        starts = [sec.s0 for sec in self.sections]
        return max(0, int(np.searchsorted(starts, s, side="right")) - 1)


@dataclass
class _XConnection:
    incoming: int
    connecting: int
    contact: str
    lane_links: list[tuple[int, int]]


@dataclass
class _XMap:
    roads: dict[int, _XRoad]
    junctions: dict[int, list[_XConnection]] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(value: str | None, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise MapError(f"{what} {value!r} is not an integer (CARLA's parser needs integer ids)") from None


def _float(value: str | None, default: float = 0.0) -> float:
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        return default


def _speed(max_value: str | None, unit: str | None) -> float | None:
    """An OpenDRIVE ``<speed max unit>`` record in m/s, ``None`` for "no limit" or garbage."""
    try:
        v = float(str(max_value))
    except ValueError:
        return None
    if not math.isfinite(v) or v <= 0:
        return None
    return v * _SPEED_UNITS.get((unit or "m/s").strip().lower(), 1.0)


def _read_link(el: ET.Element | None) -> _XLink | None:
    if el is None or el.get("elementId") is None:
        return None
    return _XLink(
        (el.get("elementType") or "road").lower(),
        _int(el.get("elementId"), "link elementId"),
        (el.get("contactPoint") or "start").lower(),
    )


def _read_marks(lane: ET.Element) -> list[tuple[float, str]]:
    return sorted(
        (_float(m.get("sOffset")), (m.get("type") or "none").lower()) for m in lane.findall("roadMark")
    )


def _read_xml(xodr: str) -> _XMap:
    """Check that ``xodr`` is OpenDRIVE XML and read the structure CARLA does not expose."""
    try:
        root = ET.fromstring(xodr)
    except ET.ParseError as e:
        raise MapError(f"not valid OpenDRIVE XML: {e}") from None
    for el in root.iter():
        el.tag = _local(el.tag)
    if root.tag != "OpenDRIVE":
        raise MapError(
            f"XML but not OpenDRIVE: the root element is <{root.tag}>, expected <OpenDRIVE> "
            "(pass the text of a .xodr file)"
        )
    roads: dict[int, _XRoad] = {}
    for r in root.findall("road"):
        rid = _int(r.get("id"), "road id")
        rule = (r.get("rule") or "RHT").upper()
        if rule == "LHT":
            raise MapError(
                f"road {rid} uses left-hand traffic (rule='LHT'); only right-hand traffic is supported"
            )
        length = _float(r.get("length"))
        types = []
        for t in r.findall("type"):
            sp = t.find("speed")
            types.append(
                (
                    _float(t.get("s")),
                    (t.get("type") or "").lower(),
                    None if sp is None else _speed(sp.get("max"), sp.get("unit")),
                )
            )
        types.sort(key=lambda x: x[0])
        link = r.find("link")
        sections = []
        for sec in r.findall("lanes/laneSection"):
            lanes = {}
            center_marks: list[tuple[float, str]] = []
            for lane in sec.iter("lane"):
                lid = _int(lane.get("id"), f"lane id of road {rid}")
                if lid == 0:
                    center_marks = _read_marks(lane)
                    continue
                ln = lane.find("link")
                lanes[lid] = _XLane(
                    lid,
                    (lane.get("type") or "none").lower(),
                    []
                    if ln is None
                    else [_int(p.get("id"), "lane link id") for p in ln.findall("predecessor")],
                    []
                    if ln is None
                    else [_int(p.get("id"), "lane link id") for p in ln.findall("successor")],
                    sorted(
                        (_float(sp.get("sOffset")), v)
                        for sp in lane.findall("speed")
                        if (v := _speed(sp.get("max"), sp.get("unit"))) is not None
                    ),
                    _read_marks(lane),
                )
            sections.append(_XSection(_float(sec.get("s")), length, lanes, center_marks))
        sections.sort(key=lambda sec: sec.s0)
        for a, b in itertools.pairwise(sections):
            a.s1 = b.s0
        signals: dict[str, list[tuple[int, int]]] = {}
        for tag in ("signal", "signalReference"):
            for sg in r.findall(f"signals/{tag}"):
                signals[str(sg.get("id"))] = [
                    (_int(v.get("fromLane"), "validity fromLane"), _int(v.get("toLane"), "validity toLane"))
                    for v in sg.findall("validity")
                ]
        roads[rid] = _XRoad(
            rid,
            length,
            _int(r.get("junction") or "-1", "road junction"),
            types,
            sections,
            _read_link(None if link is None else link.find("predecessor")),
            _read_link(None if link is None else link.find("successor")),
            signals,
        )
    junctions: dict[int, list[_XConnection]] = {}
    for j in root.findall("junction"):
        conns = []
        for c in j.findall("connection"):
            if c.get("incomingRoad") is None or c.get("connectingRoad") is None:
                continue
            conns.append(
                _XConnection(
                    _int(c.get("incomingRoad"), "junction incomingRoad"),
                    _int(c.get("connectingRoad"), "junction connectingRoad"),
                    (c.get("contactPoint") or "start").lower(),
                    [
                        (_int(ll.get("from"), "laneLink from"), _int(ll.get("to"), "laneLink to"))
                        for ll in c.findall("laneLink")
                    ],
                )
            )
        junctions[_int(j.get("id"), "junction id")] = conns
    return _XMap(roads, junctions)


_GEOMETRY_CURVE = re.compile(r"(<geometry\b[^>]*>)(\s*)<(spiral|arc)\b([^>]*?)(?:/>|>\s*</(?:spiral|arc)>)")


def _attr(tag_text: str, name: str) -> float:
    m = re.search(rf"\b{name}\s*=\s*[\"']([^\"']*)[\"']", tag_text)
    return math.nan if m is None else _float(m.group(1), math.nan)


def _fix_curves(xodr: str) -> tuple[str, int]:
    """Rewrite near-degenerate spirals and arcs that CARLA evaluates wrongly; returns the text and a count.

    CARLA 0.9.16 evaluates a spiral with ``curvStart == curvEnd`` as NaN, one whose curvatures differ
    by ~1e-15 metres off (its clothoid formula divides by the difference), and arcs of curvature
    below ~1e-6 1/m metres off (precision loss); scenariogeneration writes such spirals in junctions.
    A spiral with ``|curvEnd - curvStart| * length² < SPIRAL_AS_ARC`` becomes the arc of its mean
    curvature and an arc with ``|curvature| * length² < ARC_AS_LINE`` a line: both within 0.5 mm of
    the original curve, so nothing else changes.
    """
    count = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal count
        length = _attr(m.group(1), "length")
        if m.group(3) == "spiral":
            k0, k1 = _attr(m.group(4), "curvStart"), _attr(m.group(4), "curvEnd")
            if not all(map(math.isfinite, (length, k0, k1))) or abs(k1 - k0) * length**2 >= SPIRAL_AS_ARC:
                return m.group(0)
            k = 0.5 * (k0 + k1)
        else:
            k = _attr(m.group(4), "curvature")
            if not (math.isfinite(length) and math.isfinite(k)) or abs(k) * length**2 >= ARC_AS_LINE:
                return m.group(0)
        count += 1
        shape = "<line/>" if abs(k) * length**2 < ARC_AS_LINE else f'<arc curvature="{k!r}"/>'
        return f"{m.group(1)}{m.group(2)}{shape}"

    return _GEOMETRY_CURVE.sub(fix, xodr), count


def _carla_map(xodr: str, name: str) -> carla.Map:
    try:
        return carla.Map(name, xodr)
    except RuntimeError as e:
        raise MapError(f"not valid OpenDRIVE XML: CARLA's parser failed ({e})") from None


# ---------------------------------------------------------------------------------------- sampling


@dataclass
class _Lane:
    key: tuple[int, int, int]
    type: LaneType
    points: np.ndarray  # [n, 2] driving order
    headings: np.ndarray  # [n]
    widths: np.ndarray  # [n]
    road_s: np.ndarray  # [n] OpenDRIVE s of each sample
    mid: carla.Waypoint
    end: carla.Waypoint
    """The last sample in driving order."""

    @property
    def forward(self) -> bool:
        """The lane runs along its road's s (right-hand traffic: negative lane ids)."""
        return self.key[2] < 0


def _sample_lane(cmap: carla.Map, rid: int, sec_idx: int, sec: _XSection, lid: int) -> _Lane | None:
    eps = min(SECTION_EPS, (sec.s1 - sec.s0) / 4.0)
    a, b = sec.s0 + eps, sec.s1 - eps
    if b - a <= 1e-6:
        return None
    s_vals = np.linspace(a, b, max(2, math.ceil((b - a) / SAMPLE_STEP) + 1))
    wps: dict[float, carla.Waypoint] = {}
    tried: set[float] = set()

    def evaluate(ss: np.ndarray) -> None:
        for s in ss.tolist():
            if s in tried:
                continue
            tried.add(s)
            w = cmap.get_waypoint_xodr(rid, lid, s)
            if w is not None and w.road_id == rid and w.lane_id == lid and w.section_id == sec_idx:
                wps[s] = w

    evaluate(s_vals)
    for _ in range(8):  # refine until lane-space gaps are small (outer lanes of curves are longer)
        s_vals = np.array(sorted(wps))
        if s_vals.size < 2:
            return None
        loc = np.array([[wps[s].transform.location.x, wps[s].transform.location.y] for s in s_vals.tolist()])
        gaps = np.hypot(*np.diff(loc, axis=0).T)
        bad = np.flatnonzero(gaps > MAX_SAMPLE_GAP)
        if bad.size == 0:
            break
        parts = np.ceil(gaps[bad] / (0.9 * MAX_SAMPLE_GAP)).astype(np.int64)
        extra = parts - 1
        first = np.repeat(np.cumsum(extra) - extra, extra)
        j = np.arange(int(extra.sum())) - first + 1
        ds = np.repeat((s_vals[bad + 1] - s_vals[bad]) / parts, extra)
        evaluate(np.repeat(s_vals[bad], extra) + j * ds)
    s_vals = np.array(sorted(wps))
    w_list = [wps[s] for s in s_vals.tolist()]
    widths = np.array([w.lane_width for w in w_list], dtype=np.float64)
    if widths.max() < MIN_LANE_WIDTH:
        return None
    x = np.array([w.transform.location.x for w in w_list], dtype=np.float64)
    y = np.array([w.transform.location.y for w in w_list], dtype=np.float64)
    yaw = np.array([w.transform.rotation.yaw for w in w_list], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(yaw).all()):
        raise MapError(
            f"CARLA evaluated non-finite positions on road {rid}, lane section {sec_idx}, lane {lid}: "
            "its <planView> geometry cannot be evaluated; check that road's geometry records"
        )
    mx, my, myaw = carla_to_map(x, y, yaw)
    points = np.stack([mx, my], axis=1)
    road_s = s_vals.astype(np.float64)
    if lid > 0:  # against the road's s: store in driving order (CARLA's yaw already points along travel)
        points, myaw, widths, road_s = points[::-1], myaw[::-1], widths[::-1], road_s[::-1]
    return _Lane(
        (rid, sec_idx, lid),
        _LANE_TYPES.get(sec.lanes[lid].type, LaneType.OTHER),
        np.ascontiguousarray(points),
        np.ascontiguousarray(myaw),
        np.ascontiguousarray(widths),
        np.ascontiguousarray(road_s),
        w_list[len(w_list) // 2],
        w_list[-1] if lid < 0 else w_list[0],
    )


def _sample_lanes(cmap: carla.Map, xmap: _XMap) -> list[_Lane]:
    lanes = []
    for rid in sorted(xmap.roads):
        road = xmap.roads[rid]
        for k, sec in enumerate(road.sections):
            for lid in sorted(sec.lanes, key=lambda i: (i > 0, abs(i))):
                lane = _sample_lane(cmap, rid, k, sec, lid)
                if lane is not None:
                    lanes.append(lane)
    return lanes


# ------------------------------------------------------------------------------------------- links


def _lane_links(
    xmap: _XMap, lanes: list[_Lane], index: dict[tuple[int, int, int], int]
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


# ------------------------------------------------------------------------------- lane attributes


def _xml_mark(records: list[tuple[float, str]], rel_s: float) -> MarkType:
    """The roadMark record active at ``rel_s`` [m] from its section's start."""
    if not records:
        return MarkType.NONE
    active = [t for s_off, t in records if s_off <= rel_s + 1e-6] or [records[0][1]]
    return _XML_MARKS.get(active[-1], MarkType.OTHER)


def _marks(lane: _Lane, road: _XRoad) -> tuple[MarkType, MarkType]:
    """Left and right marks of a lane in its driving direction (CARLA's, else the XML roadMark).

    OpenDRIVE puts a lane's roadMark on its outer border, which is on its right in its driving
    direction; its left border is the outer border of the next lane towards the centre.
    """
    _, k, lid = lane.key
    sec = road.sections[k]
    rel_s = float(lane.mid.s) - sec.s0
    inner = lid + 1 if lid < 0 else lid - 1
    inner_marks = sec.center_marks if inner == 0 else (sec.lanes[inner].marks if inner in sec.lanes else [])
    xml = (_xml_mark(inner_marks, rel_s), _xml_mark(sec.lanes[lid].marks, rel_s))
    found = (lane.mid.left_lane_marking, lane.mid.right_lane_marking)
    left, right = (x if c is None else _CARLA_MARKS.get(c.type, MarkType.OTHER) for c, x in zip(found, xml))
    return left, right


def _speed_limit(lane: _Lane, road: _XRoad) -> tuple[float, bool]:
    """``(limit [m/s], explicit)``: the lane's or road's ``<speed>`` record, else by road type."""
    _, k, lid = lane.key
    sec = road.sections[k]
    mid_s = float(lane.road_s[len(lane.road_s) // 2])
    for s_off, lane_v in reversed(sec.lanes[lid].speeds):
        if s_off <= mid_s - sec.s0 + 1e-6:
            return lane_v, True
    if sec.lanes[lid].speeds:
        return sec.lanes[lid].speeds[0][1], True
    active = [t for t in road.types if t[0] <= mid_s + 1e-6] or road.types[:1]
    if active:
        _, rtype, road_v = active[-1]
        if road_v is not None:
            return road_v, True
        return _DEFAULT_SPEED.get(rtype, _UNKNOWN_SPEED), False
    return _UNKNOWN_SPEED, False


def _turn(headings: np.ndarray) -> RouteCommand:
    change = float(np.sum(wrap_angle(np.diff(headings)))) if headings.size > 1 else 0.0
    if change > TURN_THRESHOLD:
        return RouteCommand.LEFT
    if change < -TURN_THRESHOLD:
        return RouteCommand.RIGHT
    return RouteCommand.STRAIGHT


def _conflicts(
    lanes: list[_Lane],
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


# ------------------------------------------------------------------------------------------ signals


@dataclass
class _Signals:
    kind: list[int] = field(default_factory=list)
    xodr_id: list[str] = field(default_factory=list)
    position: list[tuple[float, float]] = field(default_factory=list)
    junction: list[int] = field(default_factory=list)
    stop_lane: list[int] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    stop_signal: list[int] = field(default_factory=list)


def _lane_s_at_road_s(lane: _Lane, lane_s: np.ndarray, road_s: float) -> float:
    rs = lane.road_s if lane.forward else lane.road_s[::-1]
    ls = lane_s if lane.forward else lane_s[::-1]
    return float(np.interp(road_s, rs, ls))


def _signals(
    cmap: carla.Map,
    xmap: _XMap,
    lanes: list[_Lane],
    index: dict[tuple[int, int, int], int],
    lane_s: list[np.ndarray],
    junction: np.ndarray,
    succ: list[list[int]],
    pred: list[list[int]],
) -> _Signals:
    """Traffic lights and stop signs, the driving lanes they control and a stop line on each."""
    out = _Signals()
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


# ---------------------------------------------------------------------------------------- surfaces


def _lane_polygon(points: np.ndarray, headings: np.ndarray, widths: np.ndarray) -> shapely.Geometry:
    """Surface between a lane's edges; its ends pushed out 1 cm so lanes in a row touch."""
    normal = np.stack([-np.sin(headings), np.cos(headings)], axis=1)
    half = (widths / 2.0)[:, None]
    left, right = points + half * normal, points - half * normal
    tangent = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    push = np.zeros_like(points)
    push[0], push[-1] = -0.01 * tangent[0], 0.01 * tangent[-1]
    ring = np.concatenate([left + push, (right + push)[::-1]])
    poly = shapely.Polygon(ring)
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
        parts = [g for g in shapely.get_parts(poly) if g.geom_type in ("Polygon", "MultiPolygon")]
        poly = shapely.union_all(parts) if parts else shapely.Polygon()
    return poly


#: gaps narrower than twice this between adjacent lane polygons are closed [m]
SEAM_TOLERANCE = 0.05
#: enclosed holes smaller than this in a surface are filled (junction centres no lane crosses) [m²]
MAX_FILLED_HOLE = 25.0


def _union(polys: list[shapely.Geometry]) -> shapely.Geometry:
    """The surface of ``polys``: seams between adjacent lanes closed, small enclosed holes filled."""
    if not polys:
        return shapely.Polygon()
    grown = shapely.union_all([shapely.buffer(p, SEAM_TOLERANCE, join_style="mitre") for p in polys])
    area = shapely.buffer(grown, -SEAM_TOLERANCE, join_style="mitre")
    if not area.is_valid:
        area = shapely.make_valid(area)
    parts = []
    for part in shapely.get_parts(area):
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        holes = [ring for ring in part.interiors if shapely.Polygon(ring).area >= MAX_FILLED_HOLE]
        parts.append(shapely.Polygon(part.exterior, holes))
    return shapely.union_all(parts) if parts else shapely.Polygon()


# ------------------------------------------------------------------------------------------- graph


def _graph(
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


# ------------------------------------------------------------------------------------------- steps


def _topology(
    xmap: _XMap, lanes: list[_Lane], index: dict[tuple[int, int, int], int]
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


def _neighbours(
    xmap: _XMap, lanes: list[_Lane], index: dict[tuple[int, int, int], int]
) -> dict[str, np.ndarray]:
    """Left/right neighbours in the driving direction, their marks and whether a change is allowed."""
    num = len(lanes)
    out = {side: np.full(num, -1, dtype=np.int64) for side in ("left", "right")}
    for i, lane in enumerate(lanes):
        rid, k, lid = lane.key
        ids = {"left": lid + 1 if lid < 0 else lid - 1, "right": lid - 1 if lid < 0 else lid + 1}
        for side, nid in ids.items():
            j = index.get((rid, k, nid))
            if nid != 0 and j is not None and lanes[j].type == lane.type:
                out[side][i] = j
    marks = [_marks(lane, xmap.roads[lane.key[0]]) for lane in lanes]
    out["mark_left"] = np.array([m[0] for m in marks], dtype=np.int8)
    out["mark_right"] = np.array([m[1] for m in marks], dtype=np.int8)
    # the mark must be crossable, and CARLA's laneChange record (default "both") must agree
    carla_ok = {
        "left": (carla.LaneChange.Left, carla.LaneChange.Both),
        "right": (carla.LaneChange.Right, carla.LaneChange.Both),
    }
    for side in ("left", "right"):
        out[f"change_{side}"] = np.array(
            [
                out[side][i] >= 0
                and MarkType(out[f"mark_{side}"][i]) in _CROSSABLE
                and lane.mid.lane_change in carla_ok[side]
                for i, lane in enumerate(lanes)
            ],
            dtype=bool,
        )
    return out


def _speed_limits(xmap: _XMap, lanes: list[_Lane], junction: np.ndarray, pred: list[list[int]]) -> np.ndarray:
    """``float [L]`` [m/s]; junction lanes without a record of their own take their entries' limit."""
    speeds = [_speed_limit(lane, xmap.roads[lane.key[0]]) for lane in lanes]
    limit = np.array([v for v, _ in speeds], dtype=np.float64)
    for i in np.flatnonzero(junction >= 0).tolist():
        if not speeds[i][1] and pred[i]:
            limit[i] = min(limit[p] for p in pred[i])
    return limit


def _stop_segments(
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


# ------------------------------------------------------------------------------------------- main


def load_opendrive(xodr: str, name: str) -> RoadMap:
    """Build a :class:`RoadMap` from OpenDRIVE text; :class:`MapError` says what is wrong with bad input.

    ``xodr``: the text of an ``.xodr`` file (not its path); ``name``: a label for logs and CARLA.
    The map keeps the text CARLA parsed, i.e. with degenerate spirals and arcs rewritten (see
    :func:`_fix_curves`), so that a CARLA server given ``road_map.xodr`` builds the same geometry.
    ``road_map.cache`` also holds ``xodr_s`` (OpenDRIVE s of every sample), ``curves_fixed`` and
    ``dropped_links`` (lane links of the XML whose ends do not meet, as key pairs).
    """
    if not isinstance(xodr, str):
        raise MapError(f"expected OpenDRIVE text (str), got {type(xodr).__name__}; read the file first")
    xmap = _read_xml(xodr)
    xodr, n_fixed = _fix_curves(xodr)
    cmap = _carla_map(xodr, name)
    lanes = _sample_lanes(cmap, xmap)
    n_driving = sum(lane.type == LaneType.DRIVING for lane in lanes)
    if n_driving == 0:
        raise MapError(
            f"the map has no drivable lane ({n_driving} driving lanes found in {len(xmap.roads)} roads); "
            "an OpenDRIVE map needs <road> elements with lanes of type 'driving'"
        )
    index = {lane.key: i for i, lane in enumerate(lanes)}

    # --- samples (CSR over lanes)
    counts = np.array([len(lane.points) for lane in lanes], dtype=np.int64)
    lane_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    points = np.concatenate([lane.points for lane in lanes])
    headings = np.concatenate([lane.headings for lane in lanes])
    widths = np.concatenate([lane.widths for lane in lanes])
    lane_s = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(lane.points, axis=0).T))]) for lane in lanes]
    s = np.concatenate(lane_s)
    lane_length = np.array([ls[-1] for ls in lane_s], dtype=np.float64)

    # --- lanes
    lane_type = np.array([int(lane.type) for lane in lanes], dtype=np.int8)
    driving = lane_type == LaneType.DRIVING
    lane_junction = np.array([xmap.roads[lane.key[0]].junction for lane in lanes], dtype=np.int64)
    succ, pred, dropped = _topology(xmap, lanes, index)
    nb = _neighbours(xmap, lanes, index)
    lane_turn = np.full(len(lanes), int(RouteCommand.LANE_FOLLOW), dtype=np.int8)
    for i in np.flatnonzero(lane_junction >= 0).tolist():
        lane_turn[i] = int(_turn(lanes[i].headings))

    # --- signals
    sig = _signals(cmap, xmap, lanes, index, lane_s, lane_junction, succ, pred)
    stop_lane = np.array(sig.stop_lane, dtype=np.int64)
    stop_s = np.array(sig.stop_s, dtype=np.float64)

    # --- surfaces
    lane_polygons = [_lane_polygon(lane.points, lane.headings, lane.widths) for lane in lanes]
    xmin, ymin, xmax, ymax = shapely.total_bounds(lane_polygons)

    road_map = RoadMap(
        name=name,
        xodr=xodr,
        lane_keys=[(int(lane.key[0]), int(lane.key[1]), int(lane.key[2])) for lane in lanes],
        lane_type=lane_type,
        lane_start=lane_start,
        lane_length=lane_length,
        lane_road=np.array([lane.key[0] for lane in lanes], dtype=np.int64),
        lane_junction=lane_junction,
        lane_speed_limit=_speed_limits(xmap, lanes, lane_junction, pred),
        lane_left=nb["left"],
        lane_right=nb["right"],
        lane_change_left=nb["change_left"],
        lane_change_right=nb["change_right"],
        lane_mark_left=nb["mark_left"],
        lane_mark_right=nb["mark_right"],
        lane_successors=succ,
        lane_predecessors=pred,
        succ_start=np.concatenate([[0], np.cumsum([len(x) for x in succ])]).astype(np.int64),
        succ_index=np.array([j for x in succ for j in x], dtype=np.int64),
        lane_turn=lane_turn,
        points=points,
        headings=headings,
        s=s,
        widths=widths,
        point_lane=np.repeat(np.arange(len(lanes), dtype=np.int64), counts),
        conflicts=_conflicts(lanes, lane_junction, driving, succ, pred),
        signal_kind=np.array(sig.kind, dtype=np.int8),
        signal_xodr_id=sig.xodr_id,
        signal_position=np.array(sig.position, dtype=np.float64).reshape(-1, 2),
        signal_junction=np.array(sig.junction, dtype=np.int64),
        stop_lane=stop_lane,
        stop_s=stop_s,
        stop_signal=np.array(sig.stop_signal, dtype=np.int64),
        stop_segment=_stop_segments(stop_lane, stop_s, lane_start, s, points, headings, widths),
        drivable_area=_union([p for p, d in zip(lane_polygons, driving) if d]),
        sidewalk_area=_union([p for p, t in zip(lane_polygons, lane_type) if t == LaneType.SIDEWALK]),
        lane_polygons=lane_polygons,
        bounds=(float(xmin), float(ymin), float(xmax), float(ymax)),
        graph=_graph(
            driving, lane_length, succ, nb["left"], nb["right"], nb["change_left"], nb["change_right"]
        ),
    )
    road_map.cache["xodr_s"] = np.concatenate([lane.road_s for lane in lanes])
    road_map.cache["curves_fixed"] = n_fixed
    road_map.cache["dropped_links"] = [(lanes[a].key, lanes[b].key) for a, b in dropped]
    return road_map
