"""Builders from composed configs to objects (the one place that maps config names to classes)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from drive.world import WorldConfig
from planning import registry
from planning.base import Agent
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A dataclass instance from a plain dict, nested dataclasses included; unknown keys fail."""
    hints = typing.get_type_hints(cls)
    names = {fd.name for fd in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)  # type: ignore[arg-type]
        kwargs[key] = value
    return cls(**kwargs)


def to_object(node: DictConfig | dict[str, Any], cls: type) -> Any:
    """A composed config node (typed or plain) → an instance of the schema dataclass ``cls``."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return from_dict(cls, data)  # type: ignore[arg-type]


def embedded_config(node: DictConfig | dict[str, Any], **overrides: object) -> EmbeddedConfig:
    """The ``sim`` group as an :class:`EmbeddedConfig` with ``overrides`` applied."""
    return dataclasses.replace(to_object(node, EmbeddedConfig), **overrides)


def simulator(node: DictConfig | dict[str, Any], **overrides: object) -> EmbeddedSimulator:
    return EmbeddedSimulator(embedded_config(node, **overrides))


def world(node: DictConfig | dict[str, Any]) -> WorldConfig:
    return to_object(node, WorldConfig)


def agent(node: DictConfig | dict[str, Any], seed: int = 0) -> Agent:
    """The agent a composed ``agent`` (or ``driver``) group, or its plain-dict form, names: its
    ``name`` picks the entry of ``planning.registry``, the other fields are the entry's settings."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    assert isinstance(plain, dict)
    data = {str(k): v for k, v in plain.items()}
    name = data.pop("name", None)
    if name is None:
        raise ValueError(f"the agent config has no name; known agents: {', '.join(registry.names())}")
    entry = registry.entry(str(name))
    return registry.build_agent(entry.name, from_dict(entry.config, data), seed=seed)
