"""What the observation says for certain about imagined ego poses: the road's edge and the
obstacles that do not move (from the BEV), and where walkers and vehicles are heading (from the
object list).

A world model has to *learn* how other road users move; it should not have to learn where the
kerb is or that a parked car stays where it is, yet a 1 h model gets both wrong in poses its
experience rarely holds:

- **off-road.** The model's ``off_road`` head is poorly calibrated away from the lane centre.
  Measured on the exam (``pedestrian_crossing_grid7_000_s102``, seed-0 1 h hazards model in an
  ensemble): after braking for the walker part-way through a right turn, every start and waiting
  too were predicted off-road, so the planner waited 80 s for a time-out while 4 of 9 gentle
  starts truly stay on the road.
- **static obstacles.** Behind a parked car every way of moving off, the swerves included, gets a
  collision risk of 0.09-0.59 from the model, while 17 of 18 are truly collision-free (forked and
  driven), so the planner waits there (``parked_obstacle``: 0 % success for every training seed).

The observation already draws both (``BevChannel.DRIVABLE``, ``BevChannel.STATIC``) around the
ego, and the planner's futures hold the ego's own imagined poses (``Futures.xy``, ``Futures.yaw``:
the bicycle's with ``ego_motion=kinematic``). With ``geometry.off_road=bev`` and
``geometry.statics=bev`` (:class:`GeometryConfig`) the planner reads them there:

- ``off_road`` per step is ``1 -`` the least drivable of the box's four corners, sampled
  bilinearly (each pixel is 0 or 1 at its centre, so the value ramps across a pixel at an edge and
  the optimiser feels the kerb coming), as the simulators' own test reads the map
  (``sim_bridge.embedded.ego_track.ego_situation``: a corner off the drivable raster). Steps whose
  box leaves the picture keep the model's value.
- **statics** are taken out of the model's input (the channel is cleared before encoding, a
  picture like the many without statics the model was trained on) and handled by geometry: the
  collision risk with them is the largest STATIC value at a grid of points over the imagined box
  (inflated by ``static_margin``), combined with the model's risk from everything else as
  ``1 - (1 - p_model)(1 - p_static)``; the free gap ahead is the smaller of the model's and the
  distance from the front bumper to the nearest STATIC pixel in the box's corridor.

- **walkers** (``geometry.pedestrians=objects``) stay in the model's input, but the 1 h model
  barely sees them (a walker 6 m ahead in the lane, and the planner accelerated into it: the
  exam's ``occluded_pedestrian`` and ``pedestrian_crossing`` collisions of the seed-1 model). The
  observation's object list gives each walker's position and velocity; moved on at that velocity,
  a walker touching the imagined box at a step makes that step's collision risk 1, falling to 0
  at ``pedestrian_margin`` from the box (graded: an ego already close to a walker, every plan
  starting inside the margin, still sees which way is away), combined with the model's as above.
  The margin never asks for more room than the ego keeps by standing where it is: beside a
  walker, waiting adds no risk, and any move closer does.

- **vehicles** (``geometry.vehicles=objects``) stay in the model's input too, but one BEV frame
  shows no motion, so a 1 h model cannot tell a car crossing the junction from one waiting at it
  (the exam's ``red_light_runner``: 33-50 % success), nor an oncoming car from a parked one when
  pulling out around an obstacle (``parked_obstacle``: 6 vehicle collisions of the seed-0 model).
  The object list gives each vehicle's velocity; moved on at it (constant velocity and heading,
  the forecast of nuPlan's PDM planners), the vehicle's box (a stadium around its axis plus its
  four corners, which the stadium's round ends cut off: without them a car queued in the next
  lane or beside the ego in a curve was 0.2-0.4 m closer than forecast, and the exam's 4 h models
  drove into such cars in ``urban_route``) touching the imagined box makes the step's risk 1,
  falling to 0 at ``vehicle_margin``. Followers in the ego's own lane are left
  out (a constant-velocity follower runs into every ego that brakes). The model's risk stays: it
  has learned that a lead car brakes, which no constant-velocity forecast knows.

- **the gap ahead** (``geometry.gap_ahead=objects``) that the ``proximity`` cost keeps is read
  from the object list too, at the same forecast: the nearest actor (statics and walkers
  included) in the imagined box's corridor, with the model's definition of the gap. The model's
  ``gap_ahead`` head is the least accurate it has (mean error 3.8-5.4 m on held-out data at
  0.25 h), and an untrained model's saturates the term (its gap is ~0 for every plan, so it
  prices none), which left the planner on an untrained model measured without it. Measured on the
  exam with the seed-0 1 h hazards model of stop 23 (`agent=planner`): DS 90.6 and 3 vehicle
  collisions with ``objects`` against 91.8 and 12 with the model's gap, and 90.6 and 3 with no
  ``proximity`` term at all: the fewer collisions are paid for in time-outs behind a
  ``parked_obstacle`` (79.5 against 88.5), so the presets keep ``model``.

Nothing privileged is read: only the observation's picture, whose layout (``resolution``,
``ego_from_bottom``) the agent presets take from ``sim.bev``, and its object list. A static actor
that changes its shape (a door opening) is seen once it has.

Letters: ``B`` worlds, ``N`` sequences, ``H`` horizon, ``P`` pixels per side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from planning.futures import Futures
from sim_bridge.api import EgoVehicle, Observation
from sim_bridge.sensors.layout import BevChannel, BevGeometry

#: where an estimate comes from (``agent.geometry.off_road``, ``agent.geometry.statics``)
SOURCES = ("model", "bev")
#: where the collision risk with pedestrians (``agent.geometry.pedestrians``) and with moving
#: vehicles (``agent.geometry.vehicles``) comes from
PEDESTRIAN_SOURCES = ("model", "objects")
VEHICLE_SOURCES = PEDESTRIAN_SOURCES
#: above this many STATIC pixels in a picture the gap ahead samples the corridor instead of taking
#: every pixel into every imagined pose's frame (a parked car is ~40 pixels at 0.5 m)
MAX_GAP_PIXELS = 400
#: radius of the circle a walker is taken as [m] (the walkers' boxes are 0.5-0.7 m); its box's four
#: corners are added (up to 0.49 m from its centre), as a vehicle's (:data:`CORNERS`)
PEDESTRIAN_RADIUS = 0.35
#: points of the box's grid along its length and across its width (static collisions)
BOX_GRID = (7, 3)
#: where the free gap ahead (``Futures.gap_ahead``, the ``proximity`` cost) comes from
#: (``agent.geometry.gap_ahead``)
GAP_SOURCES = ("model", "objects")
#: the least effective margin the graded risk falls over [m] (:func:`_added_risk`)
MIN_MARGIN = 0.05
#: points along a vehicle's axis (its box taken as a stadium: this segment, radius half its width;
#: the box's corners, which the stadium's round ends cut off by up to 0.2 of the width, are added)
VEHICLE_POINTS = 5
#: a box's corners as signs of (half length, half width)
CORNERS = np.array([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
#: a vehicle behind the ego's rear, within this lateral distance of its axis [m] and heading within
#: 45° of it, is a follower: its collisions with a braking ego are its own, not forecast
FOLLOWER_LANE = 1.75


@dataclass
class GeometryConfig:
    """What the planner reads from the observed BEV instead of the model (``agent.geometry.*``;
    :mod:`planning.bev_geometry`)."""

    off_road: str = field(default="model", metadata={"choices": SOURCES})
    """``model``: the world model's ``off_road`` head; ``bev``: the BEV's drivable channel at the
    imagined box's corners (the model's head only where the box leaves the picture)."""
    statics: str = field(default="model", metadata={"choices": SOURCES})
    """``model``: the model sees static obstacles and predicts the collisions with them; ``bev``:
    they are cleared from the model's input, and the collision risk and gap ahead with them come
    from the BEV's STATIC channel at the imagined box."""
    pedestrians: str = field(default="model", metadata={"choices": PEDESTRIAN_SOURCES})
    """``model``: the collision risk with walkers is the model's alone; ``objects``: also the
    closeness of the imagined box to the walkers of the observation's object list moved on at
    their observed velocity (the model still sees them)."""
    vehicles: str = field(default="model", metadata={"choices": VEHICLE_SOURCES})
    """``model``: the collision risk with vehicles is the model's alone; ``objects``: also the
    closeness of the imagined box to the vehicles of the object list moved on at their observed
    velocity (constant velocity, as nuPlan's PDM planners forecast; followers in the ego's lane
    left out), combined with the model's, which still sees them and how they brake."""
    lead_brake: float = field(default=0.0, metadata={"min": 0})
    """Deceleration [m/s²] at which a lead (a vehicle ahead of the ego's front, within
    :data:`FOLLOWER_LANE` of its axis, heading within 45° of it) is forecast to brake to a stop
    with ``vehicles=objects``, instead of holding its velocity (0: constant velocity for all). A
    constant-velocity lead never brakes, so without the model's collision head nothing tells the
    planner that the car ahead may stop hard."""
    oncoming_parallel: float = field(default=0.0, metadata={"min": 0, "max": 45})
    """An oncoming vehicle (heading within this angle [°] of the ego's reverse axis) is forecast
    moving parallel to that axis at its speed instead of at its own heading (0: at its heading).
    A car drifting over the centre line to an offset holds a heading a few degrees off its lane
    for a second; held for the horizon, it crosses the whole road (the exam's ``invading_turn``:
    an oncoming car 8° off, forecast into and across the ego's lane, and the ego swerved into the
    car's own lane, where it met it). Measured at 10° with the 1 h models of seeds 0 and 1 on the
    exam's invading_turn, cut_in_urban, signalised_left_turn and urban_route (24 episodes): DS
    86.1 → 89.2 and 85.6 → 85.5; three of the four one-lane invading_turn collisions gone, but
    urban_route moved both ways by up to 44 DS an episode, with 4 at-fault pedestrian collisions
    for seed 1: not in the ``planner`` preset."""
    lead_width: float = field(default=FOLLOWER_LANE, metadata={"gt": 0})
    """Half-width [m] of the band ahead of the ego, along its axis, in which a vehicle heading
    within 45° of it is a lead for ``lead_brake`` (1.75: the ego's own lane; 5.25: the lanes
    beside it too, where a lane change goes)."""
    vehicle_margin: float = field(default=0.5, metadata={"gt": 0})
    """Distance between a vehicle and the imagined box at which that risk reaches 0 (1 at
    contact) [m]; less where the ego standing still would keep less."""
    pedestrian_margin: float = field(default=0.5, metadata={"gt": 0})
    """Distance beyond a walker's circle (:data:`PEDESTRIAN_RADIUS`) at which that risk reaches 0
    (1 at contact) [m]; less where the ego standing still would keep less."""
    resolution: float = field(default=BevGeometry.resolution, metadata={"gt": 0})
    """The BEV's scale [m/px]: ``sim.bev.resolution`` (the agent presets interpolate it)."""
    ego_from_bottom: float = field(default=BevGeometry.ego_from_bottom, metadata={"min": 0})
    """Distance from the ego's centre to the BEV's bottom edge [m]: ``sim.bev.ego_from_bottom``."""
    off_road_margin: float = field(default=0.0, metadata={"min": 0})
    """Added to the ego's half length and half width at the corners tested off-road [m]."""
    static_margin: float = field(default=0.3, metadata={"min": 0})
    """Added to the ego's half length and half width where static collisions are tested [m]
    (the picture's half-pixel rounding, and the bicycle's error over the horizon)."""
    gap_ahead: str = field(default="model", metadata={"choices": GAP_SOURCES})
    """``model``: the free gap ahead is the model's ``gap_ahead`` head (the smaller of it and the
    statics' gap with ``statics=bev``); ``objects``: it is read from the observation alone, the
    nearest actor of the object list (statics and walkers included) moved on at its observed
    velocity into the imagined box's corridor, or the nearest STATIC pixel with ``statics=bev``
    (:func:`object_gap`); the model's head is not read."""
    model_collision: float = field(default=1.0, metadata={"min": 0, "max": 1})
    """Scale of the model's collision probability before the geometry's risks are combined
    with it (1: as predicted; 0: the collision risk is the geometry's alone, the ``planner``
    preset's: a 1 h model's faint risks on the moves through a busy junction made the planner
    swerve into a kerb or stand until a time-out, README "What the curve found")."""
    gap_range: float = field(default=30.0, metadata={"gt": 0})
    """How far ahead of the front bumper statics count for the gap [m] (the model's gap head is
    capped at 30 m)."""

    def check(self) -> None:
        for name, allowed in (
            ("off_road", SOURCES),
            ("statics", SOURCES),
            ("pedestrians", PEDESTRIAN_SOURCES),
            ("vehicles", VEHICLE_SOURCES),
            ("gap_ahead", GAP_SOURCES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"geometry.{name}={value!r}; allowed: {', '.join(allowed)}")


def box_points(
    xy: np.ndarray, yaw: np.ndarray, half_length: float, half_width: float, grid: tuple[int, int] = (2, 2)
) -> np.ndarray:
    """``[..., G, 2]`` points of a ``grid = (along, across)`` spanning boxes centred at
    ``xy [..., 2]`` with heading ``yaw [...]`` [rad], edges included (``(2, 2)``: the four corners,
    rear right, rear left, front right, front left) [m]."""
    lx = np.linspace(-half_length, half_length, grid[0])
    ly = np.linspace(-half_width, half_width, grid[1])
    gx, gy = (a.ravel() for a in np.meshgrid(lx, ly, indexing="ij"))
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x = xy[..., 0:1] + c * gx - s * gy
    y = xy[..., 1:2] + s * gx + c * gy
    return np.stack([x, y], axis=-1)


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image [B, P, P]`` (values at pixel centres ``r + 0.5, c + 0.5``) at
    continuous coordinates ``rows, cols [B, ...]``: ``(value [B, ...], inside [B, ...])``; outside
    the picture the value is 0 and ``inside`` False."""
    B, height, width = image.shape
    inside = (rows >= 0.0) & (rows <= height) & (cols >= 0.0) & (cols <= width)  # False for NaN
    r = np.clip(np.nan_to_num(rows - 0.5, nan=-1.0), 0.0, height - 1.0)
    c = np.clip(np.nan_to_num(cols - 0.5, nan=-1.0), 0.0, width - 1.0)
    r0 = np.minimum(np.floor(r).astype(np.int64), height - 2)
    c0 = np.minimum(np.floor(c).astype(np.int64), width - 2)
    fr, fc = r - r0, c - c0
    b = np.arange(B).reshape((B,) + (1,) * (rows.ndim - 1))
    v00 = image[b, r0, c0]
    v01 = image[b, r0, c0 + 1]
    v10 = image[b, r0 + 1, c0]
    v11 = image[b, r0 + 1, c0 + 1]
    value = (1 - fr) * ((1 - fc) * v00 + fc * v01) + fr * ((1 - fc) * v10 + fc * v11)
    return np.where(inside, value, 0.0), inside


def _layout(bev: np.ndarray, cfg: GeometryConfig) -> BevGeometry:
    if bev.shape[-2] != bev.shape[-1]:
        raise ValueError(f"the BEV must be square, got {bev.shape[-2]}×{bev.shape[-1]} px")
    return BevGeometry(
        size=int(bev.shape[-1]), resolution=cfg.resolution, ego_from_bottom=cfg.ego_from_bottom
    )


def _sample(bev: np.ndarray, channel: BevChannel, points: np.ndarray, cfg: GeometryConfig):
    """Channel ``channel`` of ``bev [B, C, P, P]`` at ego-frame ``points [B, ...,  2]``."""
    pix = _layout(bev, cfg).ego_to_pixel(points)
    return sample_bilinear(bev[:, int(channel)].astype(np.float32) / 255.0, pix[..., 0], pix[..., 1])


def bev_off_road(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Off-road risk of imagined ego poses ``xy [B, N, H, 2]`` [m], ``yaw [B, N, H]`` [rad] (the
    planning-time ego frame) from ``bev [B, C, P, P]``: ``(p [B, N, H] float32 in [0, 1], known
    [B, N, H])``, ``1 -`` the least drivable corner, and whether all four lie in the picture."""
    corners = box_points(
        xy, yaw, 0.5 * ego.length + cfg.off_road_margin, 0.5 * ego.width + cfg.off_road_margin
    )
    value, inside = _sample(bev, BevChannel.DRIVABLE, corners, cfg)
    return (1.0 - value.min(axis=-1)).astype(np.float32), inside.all(axis=-1)


def bev_static_collision(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]`` in ``[0, 1]``: the largest STATIC value at :data:`BOX_GRID` points over
    the imagined boxes inflated by ``static_margin`` (0 where the picture shows none)."""
    m = cfg.static_margin
    points = box_points(xy, yaw, 0.5 * ego.length + m, 0.5 * ego.width + m, BOX_GRID)
    value, _ = _sample(bev, BevChannel.STATIC, points, cfg)
    return value.max(axis=-1).astype(np.float32)


def bev_static_gap(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]``: free distance from the imagined front bumper to the nearest STATIC
    pixel (set, its centre within half a pixel of the box's corridor ahead), up to ``gap_range``
    [m]; ``inf`` where none. Each world's few STATIC pixels are taken into every imagined pose's
    frame at once (a parked car is ~40 pixels)."""
    geometry = _layout(bev, cfg)
    half_px = 0.5 * cfg.resolution
    B = xy.shape[0]
    out = np.full(xy.shape[:-1], np.inf, dtype=np.float32)
    for b in range(B):
        mask = bev[b, int(BevChannel.STATIC)] >= 128
        rows, cols = np.nonzero(mask)
        if not len(rows):
            continue
        if len(rows) > MAX_GAP_PIXELS:  # a picture full of statics: sample the corridor instead
            out[b] = _corridor_gap(mask, geometry, xy[b], yaw[b], ego, cfg)
            continue
        px = (geometry.ego_row - (rows + 0.5)) * cfg.resolution  # [K] ego frame of the picture
        py = (geometry.ego_col - (cols + 0.5)) * cfg.resolution
        c, s = np.cos(yaw[b])[..., None], np.sin(yaw[b])[..., None]  # [N, H, 1]
        dx, dy = px - xy[b, ..., 0, None], py - xy[b, ..., 1, None]  # [N, H, K]
        along, across = c * dx + s * dy, -s * dx + c * dy
        ahead = along - 0.5 * ego.length - half_px
        inside = (np.abs(across) < 0.5 * ego.width + half_px) & (along > -0.5 * ego.length)
        gap = np.where(inside, np.maximum(ahead, 0.0), np.inf).min(axis=-1)
        out[b] = np.where(gap <= cfg.gap_range, gap, np.inf)
    return out


def _corridor_gap(
    mask: np.ndarray,
    geometry: BevGeometry,
    xy: np.ndarray,
    yaw: np.ndarray,
    ego: EgoVehicle,
    cfg: GeometryConfig,
) -> np.ndarray:
    """``[N, H]`` gap to the first set pixel of ``mask [P, P]`` along the corridor ahead of the
    poses ``xy [N, H, 2]``, ``yaw [N, H]``, sampled every half pixel (nearest pixel) [m]."""
    step = 0.5 * cfg.resolution
    d = np.arange(0.0, cfg.gap_range + 1e-9, step)  # [S]
    across = np.array([-0.5 * ego.width, 0.0, 0.5 * ego.width])
    c, s = np.cos(yaw)[..., None, None], np.sin(yaw)[..., None, None]
    ax, ay = (0.5 * ego.length + d)[:, None], across[None, :]
    x = xy[..., 0, None, None] + c * ax - s * ay  # [N, H, S, 3]
    y = xy[..., 1, None, None] + s * ax + c * ay
    pix = geometry.ego_to_pixel(np.stack([x, y], -1))
    size = mask.shape[0]
    inside = (pix[..., 0] >= 0) & (pix[..., 0] < size) & (pix[..., 1] >= 0) & (pix[..., 1] < size)
    r = np.clip(np.nan_to_num(pix[..., 0], nan=-1.0), 0, size - 1).astype(np.int64)
    k = np.clip(np.nan_to_num(pix[..., 1], nan=-1.0), 0, size - 1).astype(np.int64)
    hit = (mask[r, k] & inside).any(axis=-1)  # [N, H, S]
    return np.where(hit.any(axis=-1), d[np.argmax(hit, axis=-1)], np.inf)


def _box_distance(
    px: np.ndarray, py: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle
) -> np.ndarray:
    """``[B, N, M, H, ...]`` distance [m] from points ``px, py [B, M, H, ...]`` (the planning-time
    ego frame) to the imagined ego boxes ``xy [B, N, H, 2]``, ``yaw [B, N, H]`` (0 inside)."""
    index = (slice(None), slice(None), None, slice(None)) + (None,) * (px.ndim - 3)
    bx, by = xy[..., 0][index], xy[..., 1][index]  # [B, N, 1, H, ...]
    c, s = np.cos(yaw)[index], np.sin(yaw)[index]
    dx, dy = px[:, None] - bx, py[:, None] - by
    along, across = c * dx + s * dy, -s * dx + c * dy
    out_x = np.maximum(np.abs(along) - 0.5 * ego.length, 0.0)
    out_y = np.maximum(np.abs(across) - 0.5 * ego.width, 0.0)
    return np.hypot(out_x, out_y)


def _added_risk(distance: np.ndarray, standing: np.ndarray, margin: float) -> np.ndarray:
    """Risk in ``[0, 1]`` of an imagined box ``distance`` [m] from an actor (``[B, N, M, H]``),
    given the distance ``standing`` (``[B, 1, M, H]``) the ego would keep from it by standing
    where it is: 1 at contact, falling linearly to 0 at an effective margin, ``margin`` or the
    standing clearance if that is less (never below 0). A margin is a preference for room, and an
    ego already closer than ``margin`` to a standing walker cannot get that room by waiting: a
    plain margin priced waiting there like a crash (each step's risk near 1), so the planner
    picked whichever plan gained the most progress, driving into the walker (the exam's
    ``urban_route``, seed 1: 4 at-fault pedestrian collisions from a standstill). With the
    effective margin, standing still adds nothing, creeping closer adds the share of the clearance
    it eats, and contact is 1 whatever standing would have done."""
    effective = np.clip(standing, 0.0, margin)
    return np.clip((effective - distance) / np.maximum(effective, MIN_MARGIN), 0.0, 1.0)


def _standing(xy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ego's present box at every step, shaped like ``xy [B, N, H, 2]`` with ``N = 1``."""
    return np.zeros_like(xy[:, :1]), np.zeros_like(yaw[:, :1])


def _reachable(
    cx: np.ndarray, cy: np.ndarray, extent: np.ndarray, xy: np.ndarray, ego: EgoVehicle, margin: float
) -> np.ndarray:
    """``[B, M]``: whether an actor whose forecast centre is ``cx, cy [B, M, H]`` (``extent [B, M]``
    from its centre to its farthest point) can come within ``margin`` of any imagined box
    ``xy [B, N, H, 2]`` at all: some step's centre within the farthest imagined centre's distance
    plus the box's half diagonal, ``extent`` and ``margin``. The others are skipped (exact: they
    score 0), which keeps the forecast to the few actors near the ego."""
    radius = np.hypot(xy[..., 0], xy[..., 1]).max(axis=(1, 2)) + np.hypot(ego.length, ego.width) / 2
    closest = np.hypot(cx, cy).min(axis=-1)  # [B, M]
    return closest <= radius[:, None] + extent + margin


def _forecast_risk(
    px: np.ndarray,
    py: np.ndarray,
    radius: float | np.ndarray,
    actor: np.ndarray,
    xy: np.ndarray,
    yaw: np.ndarray,
    ego: EgoVehicle,
    margin: float,
) -> np.ndarray:
    """``float32 [B, N, H]``: the largest :func:`_added_risk` over the actors ``actor [B, M]``
    (False: left out) whose forecast shapes are the points ``px, py [B, M, H, K]`` inflated by
    ``radius`` [m] (a scalar, or per actor and point ``[B, 1, M, 1, K]``), against the imagined
    boxes ``xy [B, N, H, 2]``, ``yaw [B, N, H]`` and against the ego standing where it is."""
    distance = (_box_distance(px, py, xy, yaw, ego) - radius).min(axis=-1)  # [B, N, M, H]
    standing = (_box_distance(px, py, *_standing(xy, yaw), ego) - radius).min(axis=-1)  # [B, 1, M, H]
    p = _added_risk(distance, standing, margin)
    p = np.where(actor[:, None, :, None], p, 0.0)
    return p.max(axis=2).astype(np.float32)


def object_pedestrian_collision(
    obs: Observation, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, dt: float, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]`` in ``[0, 1]``: how close the imagined box at the end of step ``h``
    (``xy [B, N, H, 2]``, ``yaw [B, N, H]``) comes to the walkers of ``obs.objects`` moved on at
    their observed velocity for ``h + 1`` steps of ``dt`` [s]: 1 where a walker's circle
    (:data:`PEDESTRIAN_RADIUS`) or one of its box's corners touches the box, falling linearly to 0
    at ``pedestrian_margin`` beyond, or at the clearance the ego keeps by standing still if that is less
    (:func:`_added_risk`: graded, so that a planner already near a walker is told which way is
    away, and waiting beside one costs nothing)."""
    from sim_bridge.api import ObjectFeature as OF

    objects, mask = obs.objects.astype(np.float64), obs.objects_mask
    walker = mask & (objects[..., OF.IS_PEDESTRIAN] > 0.5)  # [B, M]
    B, N, H = yaw.shape
    if not walker.any():
        return np.zeros((B, N, H), dtype=np.float32)
    t = dt * np.arange(1, H + 1)  # [H]
    wx = objects[..., OF.X, None] + objects[..., OF.VX, None] * t  # [B, M, H]
    wy = objects[..., OF.Y, None] + objects[..., OF.VY, None] * t
    half_length, half_width = 0.5 * objects[..., OF.LENGTH], 0.5 * objects[..., OF.WIDTH]  # [B, M]
    extent = np.maximum(np.hypot(half_length, half_width), PEDESTRIAN_RADIUS)
    walker &= _reachable(wx, wy, extent, xy, ego, cfg.pedestrian_margin)
    keep = walker.any(axis=0)  # actor slots any world must forecast
    if not keep.any():
        return np.zeros((B, N, H), dtype=np.float32)
    o, walker, wx, wy = objects[:, keep], walker[:, keep], wx[:, keep], wy[:, keep]
    half_length, half_width = half_length[:, keep, None], half_width[:, keep, None]  # [B, M, 1]
    # the circle's centre (radius PEDESTRIAN_RADIUS), then the box's four corners (radius 0)
    along = np.concatenate([np.zeros_like(half_length), half_length * CORNERS[:, 0]], -1)  # [B, M, 5]
    across = np.concatenate([np.zeros_like(half_width), half_width * CORNERS[:, 1]], -1)
    radius = np.concatenate([np.full_like(half_length, PEDESTRIAN_RADIUS), 0.0 * across[..., 1:]], -1)
    px, py = _body_points(o, wx, wy, along, across)  # [B, M, H, 5]
    return _forecast_risk(px, py, radius[:, None, :, None, :], walker, xy, yaw, ego, cfg.pedestrian_margin)


def _body_points(
    o: np.ndarray, cx: np.ndarray, cy: np.ndarray, along: np.ndarray, across: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``px, py [B, M, H, K]``: the points ``along, across [B, M, K]`` of each actor's own frame
    [m] (its heading from ``o [B, M, F]``, the object list) placed at its forecast centres
    ``cx, cy [B, M, H]``."""
    from sim_bridge.api import ObjectFeature as OF

    c, s = o[..., OF.COS_YAW, None], o[..., OF.SIN_YAW, None]  # [B, M, 1]
    px = cx[..., None] + (c * along - s * across)[:, :, None, :]
    py = cy[..., None] + (s * along + c * across)[:, :, None, :]
    return px, py


def _vehicle_centres(
    o: np.ndarray, t: np.ndarray, ego: EgoVehicle, lead_brake: float, lead_width: float = FOLLOWER_LANE
) -> tuple[np.ndarray, np.ndarray]:
    """Forecast centres ``(cx, cy) [B, M, H]`` of the objects ``o [B, M, F]`` at times ``t [H]``
    [s]: at their observed velocity, but a lead (ahead of the ego's front, within ``lead_width``
    [m] of its axis, heading within 45° of it) braking at ``lead_brake`` [m/s²]
    to a stop where that is > 0: ``s = v t - a t² / 2`` up to ``v² / 2a``, along its velocity."""
    from sim_bridge.api import ObjectFeature as OF

    vx, vy = o[..., OF.VX, None], o[..., OF.VY, None]  # [B, M, 1]
    dx, dy = vx * t, vy * t  # [B, M, H]
    if lead_brake > 0:
        lead = (
            (o[..., OF.X] > 0.5 * ego.length)
            & (np.abs(o[..., OF.Y]) < lead_width)
            & (o[..., OF.COS_YAW] > np.cos(np.pi / 4))
        )[..., None]  # [B, M, 1]
        speed = np.hypot(vx, vy)
        stop = speed / lead_brake  # [B, M, 1] time to stand
        tb = np.minimum(t, stop)
        share = np.where(
            speed > 1e-6, (speed * tb - 0.5 * lead_brake * tb**2) / np.maximum(speed * t, 1e-9), 0.0
        )
        dx, dy = np.where(lead, dx * share, dx), np.where(lead, dy * share, dy)
    return o[..., OF.X, None] + dx, o[..., OF.Y, None] + dy


def _oncoming_parallel(o: np.ndarray, angle: float) -> np.ndarray:
    """The vehicles ``o [B, M, F]`` with those heading within ``angle`` [°] of the ego's reverse
    axis turned parallel to it (``GeometryConfig.oncoming_parallel``), their speed kept."""
    from sim_bridge.api import ObjectFeature as OF

    near = (o[..., OF.COS_YAW] < 0.0) & (np.abs(o[..., OF.SIN_YAW]) < np.sin(np.radians(angle)))
    speed = np.hypot(o[..., OF.VX], o[..., OF.VY])
    out = o.copy()
    out[..., OF.COS_YAW] = np.where(near, -1.0, o[..., OF.COS_YAW])
    out[..., OF.SIN_YAW] = np.where(near, 0.0, o[..., OF.SIN_YAW])
    out[..., OF.VX] = np.where(near, -speed, o[..., OF.VX])
    out[..., OF.VY] = np.where(near, 0.0, o[..., OF.VY])
    return out


def object_vehicle_collision(
    obs: Observation, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, dt: float, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]`` in ``[0, 1]``: how close the imagined box at the end of step ``h``
    comes to the (non-static) vehicles of ``obs.objects`` moved on at their observed velocity and
    heading for ``h + 1`` steps of ``dt`` [s]. A vehicle is the stadium of radius half its width
    around its axis (:data:`VEHICLE_POINTS` points); the risk is 1 at contact, falling linearly to
    0 at ``vehicle_margin`` or at the clearance a standing ego keeps (:func:`_added_risk`).
    Followers (behind the ego's rear, within :data:`FOLLOWER_LANE` of its axis, heading within 45°
    of it) are left out: a constant-velocity follower would run into any
    ego that brakes, and braking is not what causes a rear-end collision. With ``lead_brake`` a
    lead is forecast braking to a stop (:func:`_vehicle_centres`); with ``oncoming_parallel`` an
    oncoming vehicle nearly parallel to the ego is forecast parallel to it (:func:`_oncoming_parallel`)."""
    from sim_bridge.api import ObjectFeature as OF

    o, mask = obs.objects.astype(np.float64), obs.objects_mask
    vehicle = mask & (o[..., OF.IS_VEHICLE] > 0.5) & (o[..., OF.IS_STATIC] < 0.5)  # [B, M]
    follower = (
        (o[..., OF.X] < -0.5 * ego.length)
        & (np.abs(o[..., OF.Y]) < FOLLOWER_LANE)
        & (o[..., OF.COS_YAW] > np.cos(np.pi / 4))
    )
    vehicle &= ~follower
    B, N, H = yaw.shape
    if not vehicle.any():
        return np.zeros((B, N, H), dtype=np.float32)
    t = dt * np.arange(1, H + 1)  # [H]
    if cfg.oncoming_parallel > 0:
        o = _oncoming_parallel(o, cfg.oncoming_parallel)
    cx, cy = _vehicle_centres(o, t, ego, cfg.lead_brake, cfg.lead_width)  # [B, M, H]
    reach = _reachable(
        cx, cy, 0.5 * np.hypot(o[..., OF.LENGTH], o[..., OF.WIDTH]), xy, ego, cfg.vehicle_margin
    )
    vehicle &= reach
    keep = vehicle.any(axis=0)  # actor slots any world must forecast
    if not keep.any():
        return np.zeros((B, N, H), dtype=np.float32)
    o, vehicle, cx, cy = o[:, keep], vehicle[:, keep], cx[:, keep], cy[:, keep]
    half_length, half_width = 0.5 * o[..., OF.LENGTH], 0.5 * o[..., OF.WIDTH]  # [B, M]
    half_axis = np.maximum(half_length - half_width, 0.0)
    u = np.linspace(-1.0, 1.0, VEHICLE_POINTS)  # [K]
    # the stadium's axis points (radius half the width), then the box's four corners (radius 0)
    axis_points = np.zeros(half_width.shape + u.shape)  # [B, M, K]
    along = np.concatenate([half_axis[..., None] * u, half_length[..., None] * CORNERS[:, 0]], -1)
    across = np.concatenate([axis_points, half_width[..., None] * CORNERS[:, 1]], -1)  # [B, M, K + 4]
    radius = np.concatenate([axis_points + half_width[..., None], 0.0 * across[..., -4:]], -1)
    px, py = _body_points(o, cx, cy, along, across)  # [B, M, H, K + 4]
    return _forecast_risk(px, py, radius[:, None, :, None, :], vehicle, xy, yaw, ego, cfg.vehicle_margin)


def object_gap(
    obs: Observation, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, dt: float, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]``: free distance from the imagined front bumper at the end of step ``h``
    (``xy [B, N, H, 2]``, ``yaw [B, N, H]``) to the nearest actor of ``obs.objects`` (any kind)
    moved on at its observed velocity for ``h + 1`` steps of ``dt`` [s], among those whose centre
    is ahead of the imagined centre and whose box (its extent across the imagined heading) reaches
    into the box's corridor (its width plus ``CORRIDOR_MARGIN`` each side): the definition of the
    model's gap target (``world_model.proximity``, whose constant and extents it shares) at imagined
    poses. Floored at 0; ``inf`` where no actor is within ``gap_range``."""
    from sim_bridge.api import ObjectFeature as OF
    from world_model.proximity import CORRIDOR_MARGIN, box_extents

    o, mask = obs.objects.astype(np.float64), obs.objects_mask
    B, N, H = yaw.shape
    out = np.full((B, N, H), np.inf, dtype=np.float32)
    if not mask.any():
        return out
    t = dt * np.arange(1, H + 1)  # [H]
    cx = o[..., OF.X, None] + o[..., OF.VX, None] * t  # [B, M, H]
    cy = o[..., OF.Y, None] + o[..., OF.VY, None] * t
    half_l, half_w = 0.5 * o[..., OF.LENGTH], 0.5 * o[..., OF.WIDTH]  # [B, M]
    reach = mask & _reachable(cx, cy, np.hypot(half_l, half_w), xy, ego, cfg.gap_range)
    keep = reach.any(axis=0)  # actor slots any world must look at
    if not keep.any():
        return out
    cx, cy, reach = cx[:, keep], cy[:, keep], reach[:, keep]
    half_l, half_w = half_l[:, keep, None], half_w[:, keep, None]  # [B, M, 1]
    actor_yaw = np.arctan2(o[:, keep, OF.SIN_YAW], o[:, keep, OF.COS_YAW])[..., None]  # [B, M, 1]
    ex, ey, eyaw = xy[:, :, None, :, 0], xy[:, :, None, :, 1], yaw[:, :, None]  # [B, N, 1, H]
    c, s = np.cos(eyaw), np.sin(eyaw)
    dx, dy = cx[:, None] - ex, cy[:, None] - ey  # [B, N, M, H]
    along, across = c * dx + s * dy, -s * dx + c * dy
    rel = actor_yaw[:, None] - eyaw  # [B, N, M, H]
    lat_extent, lon_extent = box_extents(np.cos(rel), np.sin(rel), half_l[:, None], half_w[:, None])
    inside = (
        reach[:, None, :, None]
        & (along > 0.0)
        & (np.abs(across) - lat_extent < 0.5 * ego.width + CORRIDOR_MARGIN)
    )
    gap = np.where(inside, np.maximum(along - lon_extent - 0.5 * ego.length, 0.0), np.inf).min(axis=2)
    return np.where(gap <= cfg.gap_range, gap, np.inf).astype(np.float32)


def model_input(obs: Observation, cfg: GeometryConfig) -> np.ndarray:
    """The BEV the world model encodes: ``obs.bev``, with the STATIC channel cleared when
    ``statics=bev`` (the geometry handles them)."""
    if cfg.statics != "bev" or not obs.bev[:, int(BevChannel.STATIC)].any():
        return obs.bev
    bev = obs.bev.copy()
    bev[:, int(BevChannel.STATIC)] = 0
    return bev


def apply(futures: Futures, obs: Observation, ego: EgoVehicle, dt: float, cfg: GeometryConfig) -> Futures:
    """``futures`` with what ``cfg`` reads from the observation ``obs`` (module doc; ``dt``: the
    decision period [s]); unchanged when every source is ``model``."""
    cfg.check()
    bev = obs.bev
    changes: dict[str, np.ndarray] = {}
    if cfg.model_collision != 1.0:
        changes["collision"] = (futures.collision * float(cfg.model_collision)).astype(np.float32)
    if cfg.off_road == "bev":
        p, known = bev_off_road(bev, futures.xy, futures.yaw, ego, cfg)
        changes["off_road"] = np.where(known, p, futures.off_road).astype(np.float32)
    if cfg.gap_ahead == "objects":  # the model's head is not read
        changes["gap_ahead"] = object_gap(obs, futures.xy, futures.yaw, ego, dt, cfg)
    if cfg.statics == "bev" and bev[:, int(BevChannel.STATIC)].any():
        p = bev_static_collision(bev, futures.xy, futures.yaw, ego, cfg)
        collision = changes.get("collision", futures.collision)
        changes["collision"] = (1.0 - (1.0 - collision) * (1.0 - p)).astype(np.float32)
        gap = bev_static_gap(bev, futures.xy, futures.yaw, ego, cfg)
        changes["gap_ahead"] = np.minimum(changes.get("gap_ahead", futures.gap_ahead), gap).astype(np.float32)
    if cfg.pedestrians == "objects":
        p = object_pedestrian_collision(obs, futures.xy, futures.yaw, ego, dt, cfg)
        collision = changes.get("collision", futures.collision)
        changes["collision"] = (1.0 - (1.0 - collision) * (1.0 - p)).astype(np.float32)
    if cfg.vehicles == "objects":
        p = object_vehicle_collision(obs, futures.xy, futures.yaw, ego, dt, cfg)
        collision = changes.get("collision", futures.collision)
        changes["collision"] = (1.0 - (1.0 - collision) * (1.0 - p)).astype(np.float32)
    return dataclasses.replace(futures, **changes) if changes else futures


__all__ = [
    "GAP_SOURCES",
    "PEDESTRIAN_RADIUS",
    "PEDESTRIAN_SOURCES",
    "SOURCES",
    "VEHICLE_SOURCES",
    "GeometryConfig",
    "apply",
    "bev_off_road",
    "bev_static_collision",
    "bev_static_gap",
    "box_points",
    "model_input",
    "object_gap",
    "object_pedestrian_collision",
    "object_vehicle_collision",
    "sample_bilinear",
]
