"""Builders from composed configs to objects (the one place that maps config names to classes)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from planning.base import Agent
from planning.lane_follower import LaneFollower, LaneFollowerConfig
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.sensors.layout import BevGeometry
from drive.world import WorldConfig

AGENTS = ("lane_follower",)


def to_object(node: DictConfig, cls: type):
    """A structured config node → an instance of its schema dataclass."""
    obj = OmegaConf.to_object(node)
    if not isinstance(obj, cls):
        obj = cls(**obj)  # type: ignore[arg-type]
    return obj


def embedded_config(node: DictConfig, **overrides: object) -> EmbeddedConfig:
    """The ``sim`` group as a frozen :class:`EmbeddedConfig` (nested dataclasses included)."""
    cfg = to_object(node, EmbeddedConfig)
    fields = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    fields["bev"] = BevGeometry(**vars(fields["bev"])) if not isinstance(fields["bev"], BevGeometry) else fields["bev"]
    fields.update(overrides)
    return EmbeddedConfig(**fields)


def simulator(node: DictConfig, **overrides: object) -> EmbeddedSimulator:
    return EmbeddedSimulator(embedded_config(node, **overrides))


def world(node: DictConfig) -> WorldConfig:
    return to_object(node, WorldConfig)


def agent(node: DictConfig) -> Agent:
    name = node.name
    if name == "lane_follower":
        return LaneFollower(to_object(node.lane_follower, LaneFollowerConfig))
    raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}")
