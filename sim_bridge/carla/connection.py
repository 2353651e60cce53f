"""Connecting to a CARLA server with errors that say what to do; starting one when asked."""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from typing import Any

from sim_bridge.api import SimulatorUnavailable
from sim_bridge.carla.config import CarlaConfig
from sim_bridge.carla_server.wire import CARLA_VERSION

log = logging.getLogger(__name__)

#: seconds between connection attempts while a restarted server starts
RETRY_PERIOD = 2.0


class CarlaConnectionError(SimulatorUnavailable):
    """No CARLA server answered, or one of another version, or it stopped answering."""


class CarlaVersionError(CarlaConnectionError):
    """The server answered with another version than the client's (no restart helps)."""


def connect(host: str, port: int, timeout: float) -> Any:
    """A ``carla.Client`` to ``host:port`` whose server speaks CARLA 0.9.16.

    Raises :class:`CarlaConnectionError` naming the host, port, expected version and time-out when
    no server answers in time, :class:`CarlaVersionError` when the server's version differs.
    """
    import carla

    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout))
    try:
        version = client.get_server_version()
    except RuntimeError as exc:
        raise CarlaConnectionError(
            f"no CARLA {CARLA_VERSION} server answered at {host}:{port} within {timeout:g} s ({exc}); "
            f"start one (CarlaUE4.sh -carla-rpc-port={port}, or `drive serve-carla port={port}`), "
            "set sim.restart_command to have it started, or set sim.host / sim.port / sim.timeout"
        ) from exc
    if version != CARLA_VERSION:
        raise CarlaVersionError(
            f"the CARLA server at {host}:{port} is version {version}; this bridge speaks {CARLA_VERSION} "
            f"(the client is pinned to carla=={CARLA_VERSION}: the wire layouts differ between versions); "
            f"run a CARLA {CARLA_VERSION} server there"
        )
    return client


def start_server(config: CarlaConfig) -> subprocess.Popen:
    """Run ``config.restart_command`` (split like a shell would, run without one) in its own
    session, so that it outlives this process as a server started by hand does."""
    assert config.restart_command
    argv = shlex.split(config.restart_command)
    log.warning("no CARLA server at %s:%d: starting `%s`", config.host, config.port, config.restart_command)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.warning("started the CARLA server: pid %d", proc.pid)
        return proc
    except OSError as exc:
        raise CarlaConnectionError(
            f"sim.restart_command={config.restart_command!r} could not be run ({exc}); "
            "give a command on the PATH, e.g. `drive serve-carla port=2000`"
        ) from exc


def ensure_server(config: CarlaConfig) -> Any:
    """A client to the configured server, checked for version; when none answers and
    ``config.restart_command`` is set, start the server with it and wait up to
    ``config.restart_wait`` for it to answer. Raises :class:`CarlaConnectionError` (what to do)."""
    try:
        return connect(config.host, config.port, config.timeout)
    except CarlaVersionError:
        raise
    except CarlaConnectionError:
        if not config.restart_command:
            raise
    proc = start_server(config)
    deadline = time.monotonic() + config.restart_wait
    while True:
        try:
            return connect(config.host, config.port, min(config.timeout, RETRY_PERIOD))
        except CarlaVersionError:
            raise
        except CarlaConnectionError as exc:
            if proc.poll() is not None:
                raise CarlaConnectionError(
                    f"sim.restart_command={config.restart_command!r} exited with status "
                    f"{proc.returncode} before a server answered at {config.host}:{config.port}"
                ) from exc
            if time.monotonic() > deadline:
                raise CarlaConnectionError(
                    f"the server started by sim.restart_command={config.restart_command!r} did not "
                    f"answer at {config.host}:{config.port} within sim.restart_wait="
                    f"{config.restart_wait:g} s (CARLA {CARLA_VERSION} expected)"
                ) from exc
            time.sleep(RETRY_PERIOD)


def preflight(config: CarlaConfig) -> None:
    """Before a suite runs: the server answers and speaks 0.9.16 (started when configured)."""
    ensure_server(config)
