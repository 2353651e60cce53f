"""Simulator backends by name (``sim=embedded|carla``), each with its own config schema.

Every place that needs a simulator (the ``drive`` commands, the Gymnasium environments, suite and
collection workers) builds it here from a backend config: a dataclass that derives from
:class:`BackendConfig` and names its backend in ``backend``. A backend registers its name, its
schema and a factory; the factory imports the implementation only when called, so that listing
backends never imports a client library (the CARLA backend needs the ``carla`` package and a
server).

    >>> from sim_bridge.embedded.config import EmbeddedConfig
    >>> sim = make_simulator(EmbeddedConfig(num_worlds=4))   # an EmbeddedSimulator
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim_bridge.api import Simulator
from sim_bridge.sensors.layout import BevGeometry


class BackendError(ValueError):
    """An unknown backend name, or a config that does not belong to its backend."""


@dataclass
class BackendConfig:
    """What every backend's config has: the observation contract's sizes and the batch."""

    backend: str = ""
    """Registered backend name (``embedded``, ``carla``); each schema sets its own."""
    num_worlds: int = 1
    """Worlds stepped together (``B``)."""
    max_objects: int = 32
    """Rows of the object list."""
    bev: BevGeometry = field(default_factory=BevGeometry)


@dataclass(frozen=True)
class Backend:
    """A registered backend."""

    name: str
    config: type
    """Its config schema (a :class:`BackendConfig` subclass whose ``backend`` default is ``name``)."""
    factory: Callable[[Any], Simulator]
    """Builds a simulator from a config of that schema."""
    description: str
    preflight: Callable[[Any], None] | None = None
    """Checks, before a suite or a collection runs, that the simulator can be built from a config
    (a server answers, of the right version; started when the config says how); raises
    :class:`~sim_bridge.api.SimulatorUnavailable` saying what to do. ``None``: nothing to check."""
    max_workers: int | None = None
    """Worker processes that may share one config (``None``: any; a server is one world: 1)."""
    connection: tuple[str, ...] = ()
    """Config fields that say where and how to reach the simulator, not what it simulates (host,
    port, time-outs): a run folder resumes across changes of these."""
    server: bool = False
    """The simulator is a server that can fail apart from the worker (time-out, lost server):
    episodes it interrupts, and workers whose client died with it, are run again after
    :attr:`preflight` (which may restart it)."""


_BACKENDS: dict[str, Backend] = {}
_builtin_registered = False


def register(backend: Backend) -> None:
    """Add (or replace) a backend. Its schema must be a :class:`BackendConfig` naming it."""
    if not (dataclasses.is_dataclass(backend.config) and issubclass(backend.config, BackendConfig)):
        raise BackendError(
            f"backend {backend.name!r}: config {backend.config!r} is not a BackendConfig dataclass"
        )
    if backend.config().backend != backend.name:
        raise BackendError(
            f"backend {backend.name!r}: its config's default `backend` is {backend.config().backend!r}"
        )
    _BACKENDS[backend.name] = backend


def names() -> list[str]:
    """Registered backend names, sorted."""
    _register_builtin()
    return sorted(_BACKENDS)


def get(name: str) -> Backend:
    """The backend registered as ``name``; an error listing the known ones otherwise."""
    _register_builtin()
    try:
        return _BACKENDS[name]
    except KeyError:
        raise BackendError(
            f"unknown simulator backend {name!r}; known backends: {', '.join(names())}"
        ) from None


def make_simulator(config: BackendConfig) -> Simulator:
    """A simulator of ``config``'s backend, built from it."""
    backend = get(config.backend)
    if not isinstance(config, backend.config):
        raise BackendError(
            f"backend {backend.name!r} takes a {backend.config.__name__}, got a {type(config).__name__}"
        )
    return backend.factory(config)


def preflight(config: BackendConfig) -> None:
    """Run the backend's :attr:`Backend.preflight` on ``config`` (nothing for a backend without)."""
    backend = get(config.backend)
    if backend.preflight is not None:
        backend.preflight(config)


def results_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A ``sim`` config (plain dict) without its backend's :attr:`Backend.connection` fields:
    the settings that results depend on (what a run folder's manifest compares)."""
    skip = get(str(config.get("backend") or "embedded")).connection
    return {k: v for k, v in config.items() if k not in skip}


def workers_for(config: BackendConfig, requested: int | None) -> int | None:
    """The worker count to use with ``config``: ``requested`` (``None``: the backend's maximum,
    or the executor's default), refused with a message when above what the backend serves."""
    limit = get(config.backend).max_workers
    if limit is None:
        return requested
    if requested is None:
        return limit
    if requested > limit:
        raise BackendError(
            f"backend {config.backend!r} serves {limit} worker(s) per server (one world per "
            f"server); got workers={requested}: run workers={limit}, or one server per worker "
            "(one command per server, each with its own sim.port and out folder)"
        )
    return requested


def _embedded(config: Any) -> Simulator:
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    return EmbeddedSimulator(config)


def _carla(config: Any) -> Simulator:
    from sim_bridge.carla.simulator import CarlaSimulator

    return CarlaSimulator(config)


def _carla_preflight(config: Any) -> None:
    from sim_bridge.carla.connection import preflight as carla_preflight

    carla_preflight(config)


def _register_builtin() -> None:
    """The backends that ship with the package (on first use: their configs import this module)."""
    global _builtin_registered
    if _builtin_registered:
        return
    _builtin_registered = True
    from sim_bridge.embedded.config import EmbeddedConfig

    register(
        Backend(
            "embedded",
            EmbeddedConfig,
            _embedded,
            "the embedded CPU simulator: batched, deterministic, no server",
        )
    )
    from sim_bridge.carla.config import CarlaConfig

    register(
        Backend(
            "carla",
            CarlaConfig,
            _carla,
            "a CARLA 0.9.16 server (or `drive serve-carla`) through the carla client: one world per server",
            preflight=_carla_preflight,
            connection=(
                "host",
                "port",
                "timeout",
                "load_timeout",
                "tm_port",
                "tm_wake_after",
                "restart_command",
                "restart_wait",
            ),
            max_workers=1,
            server=True,
        )
    )
