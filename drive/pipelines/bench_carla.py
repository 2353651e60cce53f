"""``drive bench carla``: throughput through CARLA 0.9.16's wire protocol against the embedded
simulator directly, and the real-time factor of a suite through the bridge; one JSON line each.

Every measurement gets a fresh ``drive serve-carla`` on free ports (the server's own process, as a
CARLA server is) and a fresh client process (the real ``carla`` client; Traffic Managers linger
in the process that made them). On the procedural grid town, 1 ego + ``npcs`` vehicles,
synchronous mode at ``fixed_delta_seconds`` = 0.05 s:

- ``wire_npc_driver``: ``world.tick()`` with the ego's ``apply_control`` every tick, NPCs on
  autopilot by the server's NPC driver (``SetAutopilot`` batch command), ego pose read back;
- ``wire_traffic_manager``: the same with the NPCs driven by the client's own Traffic Manager
  (its planning runs in the client process, as with a real CARLA server);
- ``bridge``: ``CarlaSimulator.step`` (2 ticks per 0.1 s decision, snapshot read back, BEV,
  object list and events), ``npcs`` background vehicles;
- ``embedded_tick`` / ``embedded_bev``: ``EmbeddedSimulator.step`` on the same map, one 0.05 s
  physics step per step without BEV (what the server does per tick), and 0.1 s decisions with BEV;
- ``suite_bridge`` / ``suite_embedded``: the ``suite`` (default ``smoke``) with ``agent`` through
  ``drive eval``'s runner on one worker, simulated seconds per wall second (real-time factor).

Real CARLA runs about 20 ticks/s in synchronous mode on a GPU machine (Town maps, rendering).
``python benchmarks/carla_wire.py`` runs this command.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[2]
BENCHES = (
    "wire_npc_driver",
    "wire_traffic_manager",
    "bridge",
    "embedded_tick",
    "embedded_bev",
    "suite_bridge",
    "suite_embedded",
)
#: measurements that need a server
SERVED = ("wire_npc_driver", "wire_traffic_manager", "bridge", "suite_bridge")


@dataclass
class BenchCarlaConfig:
    """``drive bench carla``: which measurements, how long."""

    ticks: int = 400
    """Server ticks timed per wire measurement (the bridge and BEV runs time half as many 0.1 s steps)."""
    npcs: int = 30
    """Background vehicles besides the ego."""
    benches: list[str] = field(default_factory=lambda: list(BENCHES))
    """Measurements to run (names in the module doc)."""
    timeout: float = 120.0
    """Client time-out [s] (a loaded machine loads maps slowly)."""
    agent: Any = None
    """Agent of the suite runs (``agent=expert``)."""
    suite: Any = MISSING
    """Suite of the real-time-factor runs (``suite=smoke``)."""
    suite_file: str | None = None
    """Run the suite in this YAML file instead."""


def _free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))  # the server's streams
                return port
            except OSError:
                continue
    raise RuntimeError("no free pair of ports on 127.0.0.1")


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


# ----------------------------------------------------------------------------------- measurements


def wire(port: int, ticks: int, npcs: int, traffic_manager: bool, timeout: float) -> dict:
    import carla

    client = carla.Client("127.0.0.1", port)
    client.set_timeout(timeout)
    world = client.get_world()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    points = world.get_map().get_spawn_points()
    library = world.get_blueprint_library()
    ego = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), points[0])
    bp = library.find("vehicle.audi.a2")
    tm_port = _free_port()
    chosen = [points[(5 + 7 * i) % len(points)] for i in range(npcs)]
    if traffic_manager:
        tm = client.get_trafficmanager(tm_port)
        tm.set_synchronous_mode(True)
        ids = [
            r.actor_id
            for r in client.apply_batch_sync([carla.command.SpawnActor(bp, p) for p in chosen], True)
        ]
        for actor in world.get_actors(ids):
            actor.set_autopilot(True, tm_port)
    else:
        SetAutopilot, FutureActor = carla.command.SetAutopilot, carla.command.FutureActor
        batch = [
            carla.command.SpawnActor(bp, p).then(SetAutopilot(FutureActor, True, tm_port)) for p in chosen
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
    return {"bench": name, "npcs": npcs, "ticks": ticks, "ticks_per_s": _rate(ticks, elapsed),
            "npcs_moving": moving}  # fmt: skip


def bridge(port: int, steps: int, npcs: int, timeout: float) -> dict:
    from sim_bridge.api import MapRef, WorldSpec
    from sim_bridge.carla import CarlaConfig, CarlaSimulator

    sim = CarlaSimulator(CarlaConfig(port=port, tm_port=_free_port(), timeout=timeout))
    sim.reset(WorldSpec(map=MapRef("grid"), vehicles=npcs, pedestrians=0, traffic_radius=400.0), seed=0)
    for _ in range(10):
        sim.step(np.array([[0.3, 0.0]]))
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step(np.array([[0.3, 0.0]]))
    elapsed = time.perf_counter() - t0
    spawned = int(sim.actor_arrays().active.sum()) - 1
    sim.close()
    return {"bench": "bridge", "npcs": spawned, "steps": steps, "steps_per_s": _rate(steps, elapsed),
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
    name = "embedded_bev" if bev else "embedded_tick"
    return {"bench": name, "npcs": npcs, "steps": steps, "steps_per_s": _rate(steps, elapsed),
            "ticks_per_s": _rate(steps * round(dt / 0.05), elapsed)}  # fmt: skip


def suite_rtf(name: str, port: int, job: dict) -> dict:
    """The suite through the runner on one worker process: simulated s per wall s."""
    from drive.pipelines.eval import _make_agent, _make_sim
    from scenarios.executors import LocalExecutor
    from scenarios.records import EpisodeResult, Status
    from scenarios.runner import EpisodeJob, run_episode
    from scenarios.suites import load_suite, suite_from_dict

    suite = load_suite(job["suite_file"]) if job["suite_file"] else suite_from_dict(job["suite"], "suite")
    sim = {"backend": "carla", "port": port, "tm_port": _free_port(), "timeout": job["timeout"]}
    if name == "suite_embedded":
        sim = {"backend": "embedded", "threads": 1}
    jobs = [EpisodeJob(spec=spec, agent_factory=functools.partial(_make_agent, job["agent"]),
                       sim_factory=functools.partial(_make_sim, sim), sim_key=repr(sorted(sim.items())),
                       agent_name=job["agent"]["name"], save_replays="none")
            for spec in suite.scenarios]  # fmt: skip
    results: list[Any] = []
    with LocalExecutor(1) as executor:  # the worker's start-up and first map load are not timed
        executor.map(run_episode, jobs[:1], lambda j, outcome: None)
        t0 = time.perf_counter()
        executor.map(run_episode, jobs, lambda j, outcome: results.append(outcome))
        wall = time.perf_counter() - t0
    done = [r for r in results if isinstance(r, EpisodeResult) and r.status == Status.DONE]
    sim_s = sum(r.sim_time for r in done)
    return {"bench": name, "suite": suite.name, "episodes": len(jobs), "done": len(done),
            "sim_s": round(sim_s, 1), "wall_s": round(wall, 1), "realtime_factor": round(sim_s / wall, 2),
            "mean_driving_score": round(float(np.mean([r.scores["driving_score"] for r in done])), 1)
            if done else None}  # fmt: skip


def measure(name: str, port: int, job: dict) -> dict:
    ticks, npcs, timeout = job["ticks"], job["npcs"], job["timeout"]
    if name in ("wire_npc_driver", "wire_traffic_manager"):
        return wire(port, ticks, npcs, name == "wire_traffic_manager", timeout)
    if name == "bridge":
        return bridge(port, ticks // 2, npcs, timeout)
    if name in ("embedded_tick", "embedded_bev"):
        return embedded(ticks if name == "embedded_tick" else ticks // 2, npcs, bev=name == "embedded_bev")
    return suite_rtf(name, port, job)


# ----------------------------------------------------------------------------------- command


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "NUMBA_NUM_THREADS": "1"}  # fmt: skip


def _serve(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "drive.cli", "serve-carla", f"port={port}"]
    server = subprocess.Popen(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("serving"):
        server.kill()
        raise RuntimeError(f"`{' '.join(cmd)}` did not start: {line!r}")
    return server


def run(cfg: DictConfig) -> int:
    conf = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(conf, dict)
    unknown = sorted(set(conf["benches"]) - set(BENCHES))
    if unknown:
        print(
            f"drive bench carla: unknown benches {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr
        )
        return 2
    job = {k: conf[k] for k in ("ticks", "npcs", "timeout", "agent", "suite", "suite_file")}
    for name in conf["benches"]:
        port = _free_port()
        server = _serve(port) if name in SERVED else None
        try:
            cmd = [sys.executable, "-m", "drive.pipelines.bench_carla", name, str(port), json.dumps(job)]
            out = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode != 0 or not lines:
                print(json.dumps({"bench": name, "error": out.stderr.strip()[-500:]}), flush=True)
                continue
            print(lines[-1], flush=True)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=60)
    return 0


if __name__ == "__main__":  # one measurement in a fresh client process (internal)
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))), flush=True)
