"""Background pedestrians on CARLA: walkers led by CARLA's AI walker controllers, kept around the ego.

The embedded backend keeps ``spec.pedestrians`` background pedestrians walking the sidewalks
around the ego. On CARLA the bridge spawns as many walkers at reset, on sidewalk points of the map
(its OpenDRIVE sidewalks, the same on every server) between ``BACKGROUND_MIN_DISTANCE`` and
``spec.traffic_radius`` from the ego, each with a ``controller.ai.walker``. CARLA's recipe: the
controllers are started after a tick (a controller needs its walker in a frame), then sent to
another sidewalk point at a walking speed drawn as the embedded backend draws it (1.1 to 1.7 m/s,
also the walker's ``speed`` attribute). A CARLA server walks them there on its navigation mesh;
our CARLA-protocol server, which has none, walks them along the sidewalks as its own background
pedestrians (``sim_bridge.carla_server``).

As the embedded backend despawns background actors beyond the radius and spawns others, the bridge
calls :func:`keep_walkers_near` at reset (with none yet) and every ``WALKER_REFRESH_PERIOD`` (1 s)
of an episode: it destroys the walkers (controller first) farther than ``spec.traffic_radius``
from the ego, or gone from the server, and spawns new ones up to ``spec.pedestrians`` as at
reset, drawn from the episode's seeded generator. A spawn the server refuses (a point taken by
another body: "Spawn failed because of collision at spawn position") is skipped; the next call
tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_bridge.frames import carla_to_map
from sim_bridge.maps.road_map import RoadMap

#: the AI controller's blueprint
WALKER_AI = "controller.ai.walker"
#: spacing of the candidate points along each sidewalk [m]
SIDEWALK_SPACING = 5.0
#: walkers are spawned this much higher than vehicles, clear of the ground [m]
WALKER_LIFT = 1.0
#: episode time between two calls of :func:`keep_walkers_near` [s]: an ego at 15 m/s drives 15 m in
#: between, little against a ``traffic_radius`` of 30 to 120 m; a call with nothing to replace
#: sends the server nothing (positions come from the client's last snapshot)
WALKER_REFRESH_PERIOD = 1.0


@dataclass
class Walkers:
    """Background walkers and their controllers (CARLA actors), in the same order."""

    walkers: list[Any] = field(default_factory=list)
    controllers: list[Any] = field(default_factory=list)
    targets: list[tuple[float, float, float]] = field(default_factory=list)
    """Where each is sent: ``(x, y, yaw)``, map frame [m, rad]."""
    speeds: list[float] = field(default_factory=list)
    """Walking speed of each [m/s]."""

    def __len__(self) -> int:
        return len(self.walkers)

    def select(self, keep: np.ndarray) -> Walkers:
        """The walkers where ``keep [N]`` (bool) is set, in order."""
        idx = np.flatnonzero(keep)
        return Walkers(*([column[i] for i in idx] for column in self._columns()))

    def __add__(self, other: Walkers) -> Walkers:
        return Walkers(*(a + b for a, b in zip(self._columns(), other._columns(), strict=True)))

    def _columns(self) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        return self.walkers, self.controllers, self.targets, self.speeds


def sidewalk_points(rm: RoadMap, spacing: float = SIDEWALK_SPACING) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` [m] along the middle of every sidewalk: ``xy [N, 2]``, ``yaw [N]``
    (map frame; empty where the map has no sidewalks)."""
    lanes = rm.sidewalk_lanes
    if not len(lanes):
        return np.zeros((0, 2)), np.zeros(0)
    per_lane = [np.arange(0.5 * spacing, max(float(rm.lane_length[i]), 0.0), spacing) for i in lanes]
    lane = np.concatenate([np.full(len(s), i) for i, s in zip(lanes, per_lane, strict=True)])
    s = np.concatenate(per_lane)
    return rm.pose_at(lane.astype(np.int64), s)


def keep_walkers_near(
    client: Any,
    world: Any,
    library: Any,
    rm: RoadMap,
    walkers: Walkers,
    count: int,
    ego_xy: tuple[float, float],
    distance: tuple[float, float],
    rng: np.random.Generator,
    transform: Callable[[float, float, float], Any],
) -> tuple[Walkers, Walkers]:
    """Keep ``count`` walkers within ``distance[1]`` [m] of ``ego_xy`` (map frame): destroy those
    of ``walkers`` farther away or gone from the server (:func:`destroy_walkers`), then spawn as
    many as are missing at ``distance = (min, max)`` [m] (:func:`spawn_walkers`, drawn from ``rng``).
    Returns ``(kept, new)``; start ``new`` with :func:`start_walkers` after a tick."""
    xy = walker_xy(walkers, world)
    near = np.hypot(xy[:, 0] - ego_xy[0], xy[:, 1] - ego_xy[1]) <= distance[1]  # NaN (gone): far
    if not near.all():
        destroy_walkers(client, walkers.select(~near))
    kept = walkers.select(near)
    new = spawn_walkers(client, world, library, rm, count - len(kept), ego_xy, distance, rng, transform)
    return kept, new


def walker_xy(walkers: Walkers, world: Any) -> np.ndarray:
    """``[N, 2]`` where each walker is in the world's last snapshot (map frame) [m]; NaN for a walker
    the server no longer has."""
    if not len(walkers):
        return np.zeros((0, 2))
    snapshot = world.get_snapshot()
    xy = np.full((len(walkers), 2), np.nan)
    for n, walker in enumerate(walkers.walkers):
        state = snapshot.find(walker.id)
        if state is not None:
            where = state.get_transform().location
            xy[n] = carla_to_map(where.x, where.y)[:2]
    return xy


def spawn_walkers(
    client: Any,
    world: Any,
    library: Any,
    rm: RoadMap,
    count: int,
    ego_xy: tuple[float, float],
    distance: tuple[float, float],
    rng: np.random.Generator,
    transform: Callable[[float, float, float], Any],
) -> Walkers:
    """Spawn up to ``count`` walkers with AI controllers on sidewalk points whose distance from
    ``ego_xy`` (map frame) is within ``distance = (min, max)`` [m]; ``transform(x, y, yaw)`` places
    an actor (map frame to a ``carla.Transform``). Spawns the server refuses are skipped (a walker
    whose controller it refuses is destroyed). Start them with :func:`start_walkers` after a tick."""
    import carla

    out = Walkers()
    if count <= 0:
        return out
    xy, yaw = sidewalk_points(rm)
    d = np.hypot(xy[:, 0] - ego_xy[0], xy[:, 1] - ego_xy[1])
    near = np.flatnonzero((d >= distance[0]) & (d <= distance[1]))
    chosen = rng.permutation(near)[:count]
    if not len(chosen):
        return out
    targets = rng.permutation(near)[: len(chosen)] if len(near) >= len(chosen) else chosen
    speeds = 1.1 + 0.6 * rng.random(len(chosen))
    models = sorted(bp.id for bp in library.filter("walker.pedestrian.*"))
    batch = []
    for k, i in enumerate(chosen):
        bp = library.find(models[int(rng.integers(len(models)))])
        if bp.has_attribute("speed"):
            bp.set_attribute("speed", f"{speeds[k]:.2f}")
        where = transform(float(xy[i, 0]), float(xy[i, 1]), float(yaw[i]))
        where.location.z += WALKER_LIFT
        batch.append(carla.command.SpawnActor(bp, where))
    spawned = [(k, r.actor_id) for k, r in enumerate(client.apply_batch_sync(batch, False)) if not r.error]
    if not spawned:
        return out
    ai = library.find(WALKER_AI)
    answers = client.apply_batch_sync(
        [carla.command.SpawnActor(ai, carla.Transform(), w) for _, w in spawned], False
    )
    kept = [(k, w, r.actor_id) for (k, w), r in zip(spawned, answers, strict=True) if not r.error]
    actors = {a.id: a for a in world.get_actors([i for _, w, c in kept for i in (w, c)])}
    for k, w, c in kept:
        if w in actors and c in actors:
            out.walkers.append(actors[w])
            out.controllers.append(actors[c])
            t = int(targets[k])
            out.targets.append((float(xy[t, 0]), float(xy[t, 1]), float(yaw[t])))
            out.speeds.append(float(speeds[k]))
    # a walker without its controller would stand untracked: destroy it (controller first)
    ours = {a.id for a in out.walkers} | {a.id for a in out.controllers}
    strays = [c for _, _, c in kept if c not in ours] + [w for _, w in spawned if w not in ours]
    if strays:
        client.apply_batch_sync([carla.command.DestroyActor(i) for i in strays], False)
    return out


def start_walkers(walkers: Walkers, transform: Callable[[float, float, float], Any]) -> None:
    """Start every controller and send its walker to its target at its speed (after a tick)."""
    for controller, (x, y, yaw), speed in zip(
        walkers.controllers, walkers.targets, walkers.speeds, strict=True
    ):
        controller.start()
        controller.go_to_location(transform(x, y, yaw).location)
        controller.set_max_speed(speed)


def destroy_walkers(client: Any, walkers: Walkers) -> None:
    """Destroy the walkers and their controllers in CARLA's order: stop the controllers, then
    destroy them, then the walkers (one batch)."""
    import carla

    for controller in walkers.controllers:
        controller.stop()
    ids = [a.id for a in walkers.controllers] + [a.id for a in walkers.walkers]
    if ids:
        client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
