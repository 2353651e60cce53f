"""The one agent registry: agent names → settings dataclass and factory.

Every pipeline builds its agents through this table (``drive eval`` and ``drive render`` from the
``agent`` group, ``drive collect`` from the ``driver`` group; ``drive.build.agent`` turns a config
node into the entry's settings). Each entry's settings are the fields of its config group beside
``name`` (``agent=planner agent.checkpoint=… agent.costs.collision.weight=…``); :func:`schema`
adds that ``name`` field for Hydra's ConfigStore, so a misspelt key fails at compose time.

A factory takes ``(settings, seed)``: ``seed`` seeds whatever the agent draws at random (an
exploration driver's noise, an optimiser's samples); per-episode seeds go through
:meth:`planning.base.Agent.seed`. Factories import their agent lazily, so reading the table (or
composing a config) never imports torch.

Registering another agent (e.g. the oracle planner): ``register("oracle_planner", OracleConfig,
make_oracle)`` at import of a module that ``drive.build`` imports, and a ``drive/conf/agent/
oracle_planner.yaml`` naming ``oracle_planner_schema``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from planning.base import Agent
from planning.bc import BCConfig
from planning.expert import ExpertConfig
from planning.explore import ExploreConfig
from planning.lane_follower import LaneFollowerConfig
from planning.oracle import OracleConfig
from planning.world_model_planner import PlannerConfig

AgentFactory = Callable[[Any, int], Agent]
"""``(settings, seed) -> Agent``."""


@dataclass(frozen=True)
class AgentEntry:
    """One registered agent."""

    name: str
    config: type
    """The settings dataclass (the group's fields besides ``name``)."""
    factory: AgentFactory
    doc: str = ""
    """One line for listings and errors."""


_AGENTS: dict[str, AgentEntry] = {}
_SCHEMAS: dict[str, type] = {}


def register(name: str, config: type, factory: AgentFactory, doc: str = "") -> None:
    """Add (or replace) the agent ``name``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"agent {name!r}: settings must be a dataclass, got {config!r}")
    _AGENTS[name] = AgentEntry(name, config, factory, doc)
    _SCHEMAS.pop(name, None)


def names() -> tuple[str, ...]:
    """Registered agent names, in registration order."""
    return tuple(_AGENTS)


class UnknownAgent(ValueError):
    """An agent name the registry does not know."""


def entry(name: str) -> AgentEntry:
    """The entry of ``name``; an :class:`UnknownAgent` error listing the known agents otherwise."""
    if name not in _AGENTS:
        known = ", ".join(f"{n} ({e.doc})" if e.doc else n for n, e in _AGENTS.items())
        raise UnknownAgent(f"unknown agent {name!r}; known agents: {known}")
    return _AGENTS[name]


def build_agent(name: str, settings: Any = None, seed: int = 0) -> Agent:
    """A fresh agent ``name`` with ``settings`` (an instance of its settings class; ``None``: the
    defaults)."""
    e = entry(name)
    if settings is None:
        settings = e.config()
    if not isinstance(settings, e.config):
        raise TypeError(f"agent {name!r} takes {e.config.__name__} settings, got {type(settings).__name__}")
    return e.factory(settings, int(seed))


def schema(name: str) -> type:
    """The Hydra schema of ``name``'s config group: its settings dataclass plus ``name``."""
    if name not in _SCHEMAS:
        e = entry(name)
        _SCHEMAS[name] = dataclasses.make_dataclass(
            f"{e.config.__name__}Node",
            [("name", str, dataclasses.field(default=name))],
            bases=(e.config,),
        )
    return _SCHEMAS[name]


# ------------------------------------------------------------------------------ built-in agents


def _lane_follower(cfg: LaneFollowerConfig, seed: int) -> Agent:
    from planning.lane_follower import LaneFollower

    return LaneFollower(cfg)


def _expert(cfg: ExpertConfig, seed: int) -> Agent:
    from planning.expert import Expert

    return Expert(cfg)


def _explore(cfg: ExploreConfig, seed: int) -> Agent:
    from planning.explore import ExplorationDriver

    return ExplorationDriver(cfg, seed=seed)


def _oracle_planner(cfg: OracleConfig, seed: int) -> Agent:
    from planning.oracle import OraclePlanner

    return OraclePlanner(cfg, seed=seed)


def _bc(cfg: BCConfig, seed: int) -> Agent:
    from planning.bc import BCAgent

    return BCAgent(cfg)


def _planner(cfg: PlannerConfig, seed: int) -> Agent:
    from planning.world_model_planner import WorldModelPlanner

    return WorldModelPlanner(cfg, seed=seed)


register("lane_follower", LaneFollowerConfig, _lane_follower, "pure pursuit on the route, blind to others")
register("expert", ExpertConfig, _expert, "privileged rule-based planner")
register("explore", ExploreConfig, _explore, "noisy blind lane following for exploration data")
register("planner", PlannerConfig, _planner, "cost-based planner over the world model's imagined futures")
register("bc", BCConfig, _bc, "behaviour cloning of the expert's demonstrations (action chunks)")
register(
    "oracle_planner",
    OracleConfig,
    _oracle_planner,
    "the planner with forked simulator worlds as its model (privileged)",
)


__all__ = ["AgentEntry", "AgentFactory", "build_agent", "entry", "names", "register", "schema"]
