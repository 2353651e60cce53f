"""Connecting to a CARLA server with errors that say what to do."""

from __future__ import annotations

from typing import Any

from sim_bridge.carla_server.wire import CARLA_VERSION


class CarlaConnectionError(RuntimeError):
    """No CARLA server answered, or one of another version."""


def connect(host: str, port: int, timeout: float) -> Any:
    """A ``carla.Client`` to ``host:port`` whose server speaks CARLA 0.9.16.

    Raises :class:`CarlaConnectionError` naming the host, port, expected version and time-out when
    no server answers in time, or when the server's version differs.
    """
    import carla

    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout))
    try:
        version = client.get_server_version()
    except RuntimeError as exc:
        raise CarlaConnectionError(
            f"no CARLA {CARLA_VERSION} server answered at {host}:{port} within {timeout:g} s ({exc}); "
            f"start one (CarlaUE4.sh -carla-rpc-port={port}, or `drive serve-carla port={port}`) "
            "or set sim.host / sim.port / sim.timeout"
        ) from exc
    if version != CARLA_VERSION:
        raise CarlaConnectionError(
            f"the CARLA server at {host}:{port} is version {version}; this bridge speaks {CARLA_VERSION} "
            f"(the client is pinned to carla=={CARLA_VERSION}: the wire layouts differ between versions)"
        )
    return client
