"""The OpenDRIVE XML: the structure CARLA's parser does not expose, and curve fixes before CARLA reads it.

:func:`read_xml` checks that a text is OpenDRIVE and reads, per road, its lane sections, lane
links, speed and road-type records, road marks and signal validities, plus the junctions'
connections, into the ``X*`` dataclasses below (lane ids as in the file: negative ids drive along
the road's s). :func:`fix_curves` rewrites near-degenerate spirals and arcs that CARLA evaluates
wrongly. The tables here map the XML's lane and road-mark type strings to the map's enums.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from sim_bridge.maps.road_map import LaneType, MapError, MarkType

#: spirals whose curvature changes less than this [1/m] × length² [m²] are read as arcs (see fix_curves)
SPIRAL_AS_ARC = 1e-4
#: arcs whose curvature [1/m] × length² [m²] is below this are read as lines (see fix_curves)
ARC_AS_LINE = 1e-3

#: one km/h [m/s]
KMH = 1.0 / 3.6
_SPEED_UNITS = {"m/s": 1.0, "km/h": KMH, "kmh": KMH, "mph": 0.44704}

#: OpenDRIVE lane type → the map's lane type (any other is LaneType.OTHER)
LANE_TYPES = {
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

#: OpenDRIVE roadMark type → the map's mark type (any other is MarkType.OTHER)
XML_MARKS = {
    "none": MarkType.NONE,
    "solid": MarkType.SOLID,
    "broken": MarkType.BROKEN,
    "solid solid": MarkType.SOLID_SOLID,
    "solid broken": MarkType.SOLID_BROKEN,
    "broken solid": MarkType.BROKEN_SOLID,
    "broken broken": MarkType.BROKEN_BROKEN,
}


@dataclass
class XLane:
    id: int
    type: str
    preds: list[int]
    succs: list[int]
    speeds: list[tuple[float, float]]
    """``(sOffset, max [m/s])`` records."""
    marks: list[tuple[float, str]]
    """``(sOffset, roadMark type)`` records."""


@dataclass
class XSection:
    s0: float
    s1: float
    lanes: dict[int, XLane]
    center_marks: list[tuple[float, str]]
    """``(sOffset, roadMark type)`` records of the centre lane (id 0)."""


@dataclass
class XLink:
    element_type: str  # "road" | "junction"
    element_id: int
    contact: str  # "start" | "end" (roads only)


@dataclass
class XRoad:
    id: int
    length: float
    junction: int
    types: list[tuple[float, str, float | None]]
    """``(s, road type, speed [m/s] or None)`` records."""
    sections: list[XSection]
    pred: XLink | None
    succ: XLink | None
    signals: dict[str, list[tuple[int, int]]]
    """Signal (or signal reference) id → explicit ``<validity>`` lane ranges (empty: none given)."""

    def section_at(self, s: float) -> int:
        starts = [sec.s0 for sec in self.sections]
        return max(0, int(np.searchsorted(starts, s, side="right")) - 1)


@dataclass
class XConnection:
    incoming: int
    connecting: int
    contact: str
    lane_links: list[tuple[int, int]]


@dataclass
class XMap:
    roads: dict[int, XRoad]
    junctions: dict[int, list[XConnection]] = field(default_factory=dict)


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


def _read_link(el: ET.Element | None) -> XLink | None:
    if el is None or el.get("elementId") is None:
        return None
    return XLink(
        (el.get("elementType") or "road").lower(),
        _int(el.get("elementId"), "link elementId"),
        (el.get("contactPoint") or "start").lower(),
    )


def _read_marks(lane: ET.Element) -> list[tuple[float, str]]:
    return sorted(
        (_float(m.get("sOffset")), (m.get("type") or "none").lower()) for m in lane.findall("roadMark")
    )


def read_xml(xodr: str) -> XMap:
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
    roads: dict[int, XRoad] = {}
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
                lanes[lid] = XLane(
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
            sections.append(XSection(_float(sec.get("s")), length, lanes, center_marks))
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
        roads[rid] = XRoad(
            rid,
            length,
            _int(r.get("junction") or "-1", "road junction"),
            types,
            sections,
            _read_link(None if link is None else link.find("predecessor")),
            _read_link(None if link is None else link.find("successor")),
            signals,
        )
    junctions: dict[int, list[XConnection]] = {}
    for j in root.findall("junction"):
        conns = []
        for c in j.findall("connection"):
            if c.get("incomingRoad") is None or c.get("connectingRoad") is None:
                continue
            conns.append(
                XConnection(
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
    return XMap(roads, junctions)


#: georeference of the maps this project writes (and of any map read without one): a transverse
#: Mercator projection centred on latitude 0, longitude 0, the default CARLA falls back to
DEFAULT_GEOREFERENCE = "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
_HEADER = re.compile(r"<header\b[^>]*?(/>|>(.*?)</header>)", re.DOTALL)
_GEOREFERENCE = re.compile(r"<geoReference\b[^>]*?(?:/>|>(.*?)</geoReference>)", re.DOTALL)


def with_georeference(xodr: str) -> str:
    """``xodr`` with :data:`DEFAULT_GEOREFERENCE` in its header when it has none CARLA can read
    (one naming ``+lat_0`` and ``+lon_0``); CARLA's parser then has nothing to warn about (it
    would print "cannot parse georeference" on every load and use the same default)."""
    header = _HEADER.search(xodr)
    if header is None:
        return xodr
    inner = header.group(2) or ""
    geo = _GEOREFERENCE.search(inner)
    if geo is not None and "+lat_0=" in (geo.group(1) or "") and "+lon_0=" in (geo.group(1) or ""):
        return xodr
    element = f"<geoReference><![CDATA[{DEFAULT_GEOREFERENCE}]]></geoReference>"
    if geo is not None:
        inner = inner[: geo.start()] + element + inner[geo.end() :]
    else:
        inner = element + inner
    start = header.group(0)[: header.start(1) - header.start(0)]
    return xodr[: header.start()] + f"{start}>{inner}</header>" + xodr[header.end() :]


_GEOMETRY_CURVE = re.compile(r"(<geometry\b[^>]*>)(\s*)<(spiral|arc)\b([^>]*?)(?:/>|>\s*</(?:spiral|arc)>)")


def _attr(tag_text: str, name: str) -> float:
    m = re.search(rf"\b{name}\s*=\s*[\"']([^\"']*)[\"']", tag_text)
    return math.nan if m is None else _float(m.group(1), math.nan)


def fix_curves(xodr: str) -> tuple[str, int]:
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
