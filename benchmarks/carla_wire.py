"""Ticks per second through CARLA's wire protocol versus the embedded simulator directly.

Run ``python benchmarks/carla_wire.py`` (``--ticks 400 --npcs 30``). It starts ``drive serve-carla``
on free ports in a subprocess (the server's own process, as a CARLA server is) and, with the real
``carla`` client in this process, measures on the procedural grid town, 1 ego + ``npcs`` vehicles,
synchronous mode at ``fixed_delta_seconds`` = 0.05 s, one JSON line each:

- ``wire_npc_driver``: ``world.tick()`` with the ego's ``apply_control`` every tick, NPCs on
  autopilot by the server's NPC driver (``SetAutopilot`` batch command), ego pose read back;
- ``wire_traffic_manager``: the same with the NPCs driven by the client's own Traffic Manager
  (its planning runs in this process, as with a real CARLA server);
- ``bridge``: ``CarlaSimulator.step`` (2 ticks per 0.1 s decision, snapshot read back, BEV,
  object list and events), 30 background vehicles;
- ``embedded``: ``EmbeddedSimulator.step`` on the same map with one physics step of 0.05 s per
  step, no BEV (what the server does per tick), and with the BEV at 0.1 s decisions.

Real CARLA runs about 20 ticks/s in synchronous mode on a GPU machine (Town maps, rendering).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def wire(port: int, ticks: int, npcs: int, traffic_manager: bool) -> dict:
    import carla

    client = carla.Client("127.0.0.1", port)
    client.set_timeout(30.0)
    world = client.get_world()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    points = world.get_map().get_spawn_points()
    library = world.get_blueprint_library()
    ego = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), points[0])
    bp = library.find("vehicle.audi.a2")
    tm_port = _free_port()
    if traffic_manager:
        tm = client.get_trafficmanager(tm_port)
        tm.set_synchronous_mode(True)
        batch = [carla.command.SpawnActor(bp, points[5 + 7 * i]) for i in range(npcs)]
        ids = [r.actor_id for r in client.apply_batch_sync(batch, True)]
        for actor in world.get_actors(ids):
            actor.set_autopilot(True, tm_port)
    else:
        SetAutopilot, FutureActor = carla.command.SetAutopilot, carla.command.FutureActor
        batch = [
            carla.command.SpawnActor(bp, points[5 + 7 * i]).then(SetAutopilot(FutureActor, True, tm_port))
            for i in range(npcs)
        ]
        ids = [r.actor_id for r in client.apply_batch_sync(batch, True)]
    for _ in range(20):  # warm-up
        world.tick()
    control = carla.VehicleControl(throttle=0.3)
    t0 = time.perf_counter()
    for _ in range(ticks):
        ego.apply_control(control)
        world.tick()
        ego.get_transform()
    elapsed = time.perf_counter() - t0
    moving = sum(a.get_velocity().length() > 0.5 for a in world.get_actors(ids))
    if traffic_manager:
        client.apply_batch_sync([carla.command.SetAutopilot(i, False, tm_port) for i in ids])
    client.apply_batch_sync([carla.command.DestroyActor(i) for i in [*ids, ego.id]], True)
    name = "wire_traffic_manager" if traffic_manager else "wire_npc_driver"
    return {
        "bench": name,
        "npcs": npcs,
        "ticks": ticks,
        "ticks_per_s": _rate(ticks, elapsed),
        "npcs_moving": moving,
    }


def bridge(port: int, steps: int, npcs: int) -> dict:
    from sim_bridge.api import MapRef, WorldSpec
    from sim_bridge.carla import CarlaConfig, CarlaSimulator

    sim = CarlaSimulator(CarlaConfig(port=port, tm_port=_free_port(), timeout=30.0))
    sim.reset(WorldSpec(map=MapRef("grid"), vehicles=npcs, pedestrians=0, traffic_radius=400.0), seed=0)
    for _ in range(10):
        sim.step(np.array([[0.3, 0.0]]))
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step(np.array([[0.3, 0.0]]))
    elapsed = time.perf_counter() - t0
    sim.close()
    return {"bench": "bridge", "npcs": npcs, "steps": steps, "steps_per_s": _rate(steps, elapsed),
            "ticks_per_s": _rate(2 * steps, elapsed)}  # fmt: skip


def embedded(steps: int, npcs: int, bev: bool) -> dict:
    from sim_bridge.api import MapRef, WorldSpec
    from sim_bridge.embedded.config import EmbeddedConfig
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    dt = 0.1 if bev else 0.05
    cfg = EmbeddedConfig(num_worlds=1, threads=1, render_bev=bev, physics_dt=0.05, decision_dt=dt)
    with EmbeddedSimulator(cfg) as sim:
        sim.reset(WorldSpec(map=MapRef("grid"), vehicles=npcs, pedestrians=0, traffic_radius=400.0), seed=0)
        for _ in range(10):
            sim.step(np.array([[0.3, 0.0]]))
        t0 = time.perf_counter()
        for _ in range(steps):
            sim.step(np.array([[0.3, 0.0]]))
        elapsed = time.perf_counter() - t0
    name = "embedded_bev_0.1s" if bev else "embedded_tick_0.05s"
    return {"bench": name, "npcs": npcs, "steps": steps, "steps_per_s": _rate(steps, elapsed),
            "ticks_per_s": _rate(steps * round(dt / 0.05), elapsed)}  # fmt: skip


BENCHES = ("wire_npc_driver", "wire_traffic_manager", "bridge", "embedded_tick", "embedded_bev")


def run_one(name: str, port: int, ticks: int, npcs: int) -> dict:
    if name == "wire_npc_driver":
        return wire(port, ticks, npcs, traffic_manager=False)
    if name == "wire_traffic_manager":
        return wire(port, ticks, npcs, traffic_manager=True)
    if name == "bridge":
        return bridge(port, ticks // 2, npcs)
    if name == "embedded_tick":
        return embedded(ticks, npcs, bev=False)
    return embedded(ticks // 2, npcs, bev=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--npcs", type=int, default=30)
    parser.add_argument("--only", choices=BENCHES, help="one measurement against a running server (internal)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only, args.port, args.ticks, args.npcs)), flush=True)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
    for name in BENCHES:  # each in a fresh client process and server: Traffic Managers linger
        port = _free_port()
        cmd = [sys.executable, "-m", "drive.cli", "serve-carla", f"port={port}"]
        server = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("serving"):
                raise SystemExit(f"drive serve-carla did not start: {line!r}")
            one = [
                sys.executable,
                __file__,
                "--only",
                name,
                f"--port={port}",
                f"--ticks={args.ticks}",
                f"--npcs={args.npcs}",
            ]
            out = subprocess.run(one, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
