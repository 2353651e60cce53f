"""Builders from composed configs to objects (the one place that maps config names to classes)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from drive.world import WorldConfig
from planning import registry
from planning.base import Agent
from sim_bridge import backends
from sim_bridge.api import Simulator
from sim_bridge.backends import BackendConfig


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


def sim_config(node: DictConfig | dict[str, Any], **overrides: object) -> BackendConfig:
    """The ``sim`` group as its backend's config (``backend`` names it; default ``embedded``),
    with those ``overrides`` applied that the backend's schema has."""
    name = node.get("backend") or "embedded"
    schema = backends.get(str(name)).config
    known = {f.name for f in dataclasses.fields(schema)}
    # overrides are what a pipeline needs of any backend (one world, one thread, no BEV…); a
    # backend without such a setting (a server has no thread count) has nothing to change
    return dataclasses.replace(to_object(node, schema), **{k: v for k, v in overrides.items() if k in known})


def simulator(node: DictConfig | dict[str, Any], **overrides: object) -> Simulator:
    """The simulator the ``sim`` group describes, built through the backend registry."""
    return backends.make_simulator(sim_config(node, **overrides))


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
