"""What an evaluated episode produces: its infractions and its result record.

Criteria (``scenarios.criteria``) fill an :class:`EpisodeResult` from the simulator's step events;
metrics (``scenarios.metrics``) score it; the runner writes it as one JSON line
(``scenarios.results``). Every field is plain data so a record round-trips through JSON exactly.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class InfractionKind(str, enum.Enum):
    """Infractions and episode terminations, named as the CARLA Leaderboard names them."""

    COLLISION_PEDESTRIAN = "collisions_pedestrian"
    COLLISION_VEHICLE = "collisions_vehicle"
    COLLISION_STATIC = "collisions_layout"
    RED_LIGHT = "red_light"
    STOP_SIGN = "stop_infraction"
    OFF_ROAD = "off_road"
    WRONG_WAY = "wrong_way"
    OUTSIDE_ROUTE_LANES = "outside_route_lanes"
    MIN_SPEED = "min_speed_infractions"
    SCENARIO_TIMEOUT = "scenario_timeouts"
    ROUTE_DEVIATION = "route_dev"
    AGENT_BLOCKED = "vehicle_blocked"
    ROUTE_TIMEOUT = "route_timeout"


class Status(str, enum.Enum):
    """Lifecycle of an episode record (written ``STARTED`` before the episode runs)."""

    STARTED = "started"
    DONE = "done"
    CRASHED = "crashed"
    """The simulator or the runner failed (never silently scored)."""
    AGENT_ERROR = "agent_error"
    """The agent raised or returned NaN/inf; the suite goes on."""


@dataclass
class Infraction:
    """One infraction: what, when [s], where [m] (map frame), with whom, and details."""

    kind: InfractionKind
    time: float
    x: float
    y: float
    actor: int = -1
    """Other actor's id for collisions, signal index for red lights and stop signs, else -1."""
    value: float = 0.0
    """A magnitude where one applies (e.g. % of route outside lanes, min-speed ratio, impact speed)."""
    at_fault: bool | None = None
    """nuPlan at-fault classification for collisions (``None`` where not classified)."""
    detail: str = ""


@dataclass
class EpisodeResult:
    """An episode's record: identity, outcome, infractions and scores."""

    name: str
    family: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    agent: str = ""
    status: Status = Status.STARTED
    termination: str = ""
    """Why the episode ended: route_completed, route_timeout, route_deviation, agent_blocked,
    scenario_timeout, collision (when ``end_on_collision``), agent_error, crashed."""
    error: str = ""
    """Traceback or message for crashed / agent_error."""
    route_length: float = 0.0
    """[m]"""
    route_completion: float = 0.0
    """[%] 0..100"""
    distance_driven: float = 0.0
    """[m]"""
    sim_time: float = 0.0
    """[s]"""
    wall_time: float = 0.0
    """[s]"""
    infractions: list[Infraction] = field(default_factory=list)
    outside_route_lanes: float = 0.0
    """[%] of the route driven outside its lanes."""
    min_speed_ratios: list[float] = field(default_factory=list)
    """Ego mean speed / traffic mean speed per checkpoint [%] (Leaderboard min-speed test)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Metrics (``scenarios.metrics``): driving_score, infraction_penalty, … (both LB versions)."""
    replay: str = ""
    """Path of the episode's replay (.npz), if saved."""
    agent_stats: dict[str, float] = field(default_factory=dict)
    """What the agent reported about the episode (``Agent.episode_stats``: e.g. the planner's
    mean cost per term ``plan/cost_<term>`` and ``plan/shield_overrides``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (enums as their values)."""
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        out["infractions"] = [{**dataclasses.asdict(i), "kind": i.kind.value} for i in self.infractions]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeResult:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["status"] = Status(data.get("status", Status.STARTED))
        data["infractions"] = [
            Infraction(**{**i, "kind": InfractionKind(i["kind"])}) for i in data.get("infractions", [])
        ]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
