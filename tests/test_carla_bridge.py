"""The CARLA backend (``sim_bridge.carla``) driven against our CARLA-protocol server.

The bridge uses the real ``carla`` client, so each episode runs in a subprocess (a protocol
mistake crashes the client process); the server runs in this process on free ports.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("carla")

from sim_bridge.api import ActorKind
from sim_bridge.carla_server import CarlaServer, CarlaServerConfig
from sim_bridge.embedded.config import EmbeddedConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(code: str, timeout: float = 300.0, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"bridge run failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def server() -> Iterator[CarlaServer]:
    cfg = CarlaServerConfig(
        port=0, sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05)
    )
    with CarlaServer(cfg) as srv:
        yield srv


EPISODE = """
import json
import numpy as np
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, BevChannel, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane, lane]), np.array([10.0, 40.0]))
ego = Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
parked = ActorSpec(ActorKind.VEHICLE, Pose(float(xy[1, 0]), float(xy[1, 1]), float(yaw[1])),
                   behaviour=Behaviour(kind=BehaviourKind.STOPPED))
spec = WorldSpec(map=MapRef("grid"), ego=ego, actors=(parked,), vehicles=3, pedestrians=0, route_length=150.0)

carla_sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))
embedded = EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1))
runs = {{}}
for name, sim in (("carla", carla_sim), ("embedded", embedded)):
    obs = sim.reset(spec, seed=3)
    first = obs
    speeds, progress, hit, hit_kind, hit_step, off_road, on_route = [], [], -1, -1, -1, [], []
    for k in range(60):
        obs, ev = sim.step(np.array([[0.6, 0.0]]))
        speeds.append(float(ev.ego_speed[0])); progress.append(float(ev.route_progress[0]))
        off_road.append(bool(ev.off_road[0])); on_route.append(bool(ev.on_route_lanes[0]))
        if ev.collision[0] and hit_step < 0:
            hit, hit_kind, hit_step = int(ev.collision_actor[0]), int(ev.collision_kind[0]), k
    fields = ("bev", "ego", "objects", "objects_mask", "object_ids", "pose")
    runs[name] = dict(
        shapes={{f: list(getattr(obs, f).shape) for f in fields}},
        dtypes={{f: str(getattr(obs, f).dtype) for f in fields}},
        first_pose=first.pose[0].tolist(),
        drivable=int((first.bev[0, BevChannel.DRIVABLE] > 0).sum()),
        vehicles_px=int((first.bev[0, BevChannel.VEHICLES] > 0).sum()),
        objects=int(first.objects_mask.sum()),
        speeds=speeds, progress=progress, hit_kind=hit_kind, hit_step=hit_step, off_road=any(off_road[:10]),
        on_route=all(on_route[:10]), route_length=float(ev.route_length[0]), dt=sim.dt,
        hit_in_objects=bool(hit in first.object_ids[0].tolist()) if hit >= 0 else False,
    )
    sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_the_bridge_drives_an_episode_like_the_embedded_backend(server: CarlaServer) -> None:
    r = _run(EPISODE.format(port=server.port, tm_port=_free_port()))
    c, e = r["carla"], r["embedded"]
    assert c["shapes"] == e["shapes"] and c["dtypes"] == e["dtypes"]
    assert c["dt"] == e["dt"] == pytest.approx(0.1)
    assert c["first_pose"] == pytest.approx(e["first_pose"], abs=1e-3)  # the ego starts where asked
    assert c["route_length"] == pytest.approx(e["route_length"], rel=1e-6)
    # the same actuator mapping on both: accel 0.6 → 1.8 m/s², the same speeds before the crash
    n = min(c["hit_step"], e["hit_step"]) - 1
    assert n > 10
    assert c["speeds"][:n] == pytest.approx(e["speeds"][:n], abs=0.05)
    assert c["progress"][n] > c["progress"][0] > 0.0
    assert not c["off_road"] and c["on_route"]
    # BEV and object list see the road, the ego and the parked car ahead
    assert c["drivable"] > 1000 and c["vehicles_px"] > 0 and c["objects"] >= 1
    assert abs(c["drivable"] - e["drivable"]) < 0.05 * e["drivable"]
    # the collision sensor's event becomes the same StepEvents collision
    assert c["hit_kind"] == e["hit_kind"] == 0  # ActorKind.VEHICLE
    assert abs(c["hit_step"] - e["hit_step"]) <= 2
    assert c["hit_in_objects"]


def test_no_server_names_host_port_version_and_time_out() -> None:
    port = _free_port()
    r = _run(
        f"""
        import json
        from sim_bridge.api import MapRef, WorldSpec
        from sim_bridge.carla import CarlaConfig, CarlaConnectionError, CarlaSimulator
        sim = CarlaSimulator(CarlaConfig(port={port}, timeout=1.0))
        try:
            sim.reset(WorldSpec(map=MapRef("grid")), seed=0)
            print("RESULT " + json.dumps(dict(error=None)))
        except CarlaConnectionError as exc:
            print("RESULT " + json.dumps(dict(error=str(exc))))
        """
    )
    msg = r["error"]
    assert msg is not None
    assert f"127.0.0.1:{port}" in msg and "0.9.16" in msg and "1 s" in msg


def test_sim_carla_config_composes_with_host_and_port_overrides() -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from drive.cli import CONF_DIR
    from drive.schemas import register
    from sim_bridge.carla import CarlaConfig

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="sim/carla", overrides=["sim.host=10.0.0.5", "sim.port=2010"])
    conf = OmegaConf.to_object(cfg.sim)
    assert isinstance(conf, CarlaConfig)
    assert (conf.host, conf.port, conf.physics_dt) == ("10.0.0.5", 2010, 0.05)


RED_LIGHT = """
import json
import numpy as np
from sim_bridge.api import LightState, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import SignalKind

rm = load_map(MapRef("grid"))
k = next(int(k) for k in np.argsort(-rm.stop_s)
         if rm.signal_kind[rm.stop_signal[k]] == SignalKind.TRAFFIC_LIGHT and rm.stop_s[k] > 45.0)
sig, lane = int(rm.stop_signal[k]), int(rm.stop_lane[k])
xy, yaw = rm.pose_at(np.array([lane]), np.array([rm.stop_s[k] - 20.0]))
spec = WorldSpec(map=MapRef("grid"), ego=Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])), ego_speed=8.0, vehicles=0,
                 pedestrians=0, route_length=80.0, signal_states=((sig, LightState.RED),))
runs = {{}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    obs = sim.reset(spec, seed=0)
    lights = sim.light_states()[0]
    red, step = -1, -1
    for i in range(60):
        obs, ev = sim.step(np.array([[0.5, 0.0]]))
        if ev.red_light[0] >= 0 and red < 0:
            red, step = int(ev.red_light[0]), i
    runs[name] = dict(red=red, step=step, line=int(lights[k]), lines=lights.tolist())
    sim.close()
runs["sig"] = sig
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_the_bridge_reads_carlas_traffic_lights_and_reports_red_light_runs(server: CarlaServer) -> None:
    r = _run(RED_LIGHT.format(port=server.port, tm_port=_free_port()))
    c, e = r["carla"], r["embedded"]
    assert c["line"] == e["line"] == 2  # LightState.RED, frozen by signal_states
    assert len(c["lines"]) == len(e["lines"])
    assert c["red"] == e["red"] == r["sig"]
    assert abs(c["step"] - e["step"]) <= 1


LEFT_BEHIND = """
import json
import os
import numpy as np
from sim_bridge.api import MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.maps.catalog import load_map

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane]), np.array([{s}]))
spec = WorldSpec(map=MapRef("grid"), ego=Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])), ego_speed=5.0,
                 vehicles=0, pedestrians=0, route_length=100.0)
sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))
sim.reset(spec, seed=0)
for _ in range(5):
    sim.step(np.array([[0.8, 0.0]]))
vehicles = sorted(a.id for a in sim._world.get_actors().filter("vehicle.*"))
print("RESULT " + json.dumps(dict(ego=sim._ego.id, vehicles=vehicles)), flush=True)
if {die}:
    os._exit(0)  # a worker that dies: no close, its ego stays on the server with its throttle on
sim.close()
"""


def test_a_dead_clients_actors_are_cleared_before_the_first_world_state_arrives() -> None:
    """A client dies mid-episode (its ego left on the server, throttle on). The next client's first
    world state arrives late (as on a loaded machine): listing the actors at once would see none
    and leave the dead client's ego driving through the new episode. The bridge ticks first, sees
    it and destroys it."""
    cfg = CarlaServerConfig(
        port=0, sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05)
    )
    with CarlaServer(cfg) as srv:
        dead = _run(LEFT_BEHIND.format(port=srv.port, tm_port=_free_port(), s=10.0, die=True))
        assert dead["ego"] in dead["vehicles"]
        first = srv._streams._on_subscribe

        def late(stream_id: int, sock: socket.socket) -> None:
            time.sleep(2.0)
            first(stream_id, sock)

        srv._streams._on_subscribe = late
        nxt = _run(LEFT_BEHIND.format(port=srv.port, tm_port=_free_port(), s=60.0, die=False))
        assert dead["ego"] not in nxt["vehicles"] and nxt["vehicles"] == [nxt["ego"]], (dead, nxt)


def test_a_server_that_dies_mid_episode_raises_a_connection_error() -> None:
    cfg = CarlaServerConfig(
        port=0, sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05)
    )
    srv = CarlaServer(cfg).start()
    code = f"""
        import json, sys
        import numpy as np
        from sim_bridge.api import MapRef, WorldSpec
        from sim_bridge.carla import CarlaConfig, CarlaConnectionError, CarlaSimulator
        sim = CarlaSimulator(CarlaConfig(port={srv.port}, tm_port={_free_port()}, timeout=2.0))
        sim.reset(WorldSpec(map=MapRef("grid"), vehicles=0, pedestrians=0), seed=0)
        sim.step(np.zeros((1, 2)))
        print("STEPPED", flush=True)
        sys.stdin.readline()  # the test stops the server now
        try:
            for _ in range(5):
                sim.step(np.zeros((1, 2)))
            print("RESULT " + json.dumps(dict(error=None)), flush=True)
        except CarlaConnectionError as exc:
            print("RESULT " + json.dumps(dict(error=str(exc))), flush=True)
        """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=ENV, cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("STEPPED"), line
    finally:
        srv.stop()
    out, _ = proc.communicate("\n", timeout=120)
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert result["error"] is not None and f"127.0.0.1:{srv.port}" in result["error"]
    assert "stopped answering" in result["error"]


SCRIPTED = """
import json
import numpy as np
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane, lane, lane]), np.array([10.0, 40.0, 70.0]))
pose = [Pose(float(xy[i, 0]), float(xy[i, 1]), float(yaw[i])) for i in range(3)]
lead = ActorSpec(ActorKind.VEHICLE, pose[1], speed=8.0, target_speed=8.0,
                 behaviour=Behaviour(kind=BehaviourKind.BRAKE, trigger_time=2.0, decel=6.0))
parked = ActorSpec(ActorKind.VEHICLE, pose[2], behaviour=Behaviour(kind=BehaviourKind.STOPPED, trigger_time=1.0))
walker = ActorSpec(ActorKind.PEDESTRIAN, Pose(pose[0].x + 30.0, pose[0].y + 30.0, 0.0), speed=1.5,
                   behaviour=Behaviour(kind=BehaviourKind.CROSS, trigger_time=0.5))
spec = WorldSpec(map=MapRef("grid"), ego=pose[0], actors=(lead, parked, walker), vehicles=0, pedestrians=0)
runs = {{}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    sim.reset(spec, seed=0)
    a = sim.actor_arrays()
    ids = [int(a.ids[0, j]) for j in range(a.shape[1]) if a.active[0, j] and j > 0]
    start = {{i: (float(a.x[0, j]), float(a.y[0, j])) for j, i in enumerate(a.ids[0]) if a.active[0, j]}}
    track = {{i: [] for i in ids}}
    for k in range(50):
        sim.step(np.array([[-1.0, 0.0]]))
        a = sim.actor_arrays()
        for j in range(a.shape[1]):
            if int(a.ids[0, j]) in track:
                track[int(a.ids[0, j])].append((float(a.x[0, j]), float(a.y[0, j]), float(a.speed[0, j])))
    kinds = {{int(a.ids[0, j]): int(a.kind[0, j]) for j in range(a.shape[1]) if a.active[0, j]}}
    def near(p):
        return min(ids, key=lambda i: np.hypot(start[i][0] - p.x, start[i][1] - p.y))
    runs[name] = dict(lead=[t[2] for t in track[near(lead.pose)]],
                      parked=[t[2] for t in track[near(parked.pose)]],
                      walker=[np.hypot(t[0] - track[near(walker.pose)][0][0], t[1] - track[near(walker.pose)][0][1])
                              for t in track[near(walker.pose)]])
    sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_scripted_scenario_actors_behave_on_carla_as_on_the_embedded_backend(server: CarlaServer) -> None:
    r = _run(SCRIPTED.format(port=server.port, tm_port=_free_port()))
    for name in ("carla", "embedded"):
        run = r[name]
        lead, parked, walker = run["lead"], run["parked"], run["walker"]
        assert lead[15] > 5.0, (name, lead[:20])  # cruising before its trigger at 2 s
        assert lead[35] < lead[19] - 4.0 or lead[35] < 0.5, (name, lead)  # then brakes hard
        assert parked[5] < 0.1 and parked[-1] > 2.0, (name, parked)  # stands, then drives off at 1 s
        assert walker[-1] > 4.0, (name, walker)  # crosses once triggered at 0.5 s


STOP_SIGN = """
import json
import numpy as np
from sim_bridge.api import MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import SignalKind

rm = load_map(MapRef("grid"))
k = next(int(k) for k in np.argsort(-rm.stop_s)
         if rm.signal_kind[rm.stop_signal[k]] == SignalKind.STOP_SIGN and rm.stop_s[k] > 45.0)
sig, lane = int(rm.stop_signal[k]), int(rm.stop_lane[k])
def spec(before, speed):
    xy, yaw = rm.pose_at(np.array([lane]), np.array([rm.stop_s[k] - before]))
    return WorldSpec(map=MapRef("grid"), ego=Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])), ego_speed=speed,
                     vehicles=0, pedestrians=0, route_length=80.0)
runs = {{}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    for case, (before, speed) in (("ran", (20.0, 8.0)), ("stopped", (6.0, 0.0))):
        sim.reset(spec(before, speed), seed=0)
        events, passed = [], 0.0
        for i in range(40):
            obs, ev = sim.step(np.array([[0.5, 0.0]]))
            events.append(int(ev.stop_sign[0]))
            passed = float(ev.route_progress[0])
        hits = [i for i, e in enumerate(events) if e >= 0]
        runs[name + "_" + case] = dict(signal=events[hits[0]] if hits else -1, step=hits[0] if hits else -1,
                                       n=len(hits), progress=passed)
    sim.close()
runs["sig"] = sig
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_the_bridge_reports_stop_sign_runs_by_the_embedded_rule(server: CarlaServer) -> None:
    r = _run(STOP_SIGN.format(port=server.port, tm_port=_free_port()))
    for name in ("carla", "embedded"):
        ran, stopped = r[f"{name}_ran"], r[f"{name}_stopped"]
        assert ran["signal"] == r["sig"] and ran["n"] == 1, (name, ran)  # drove through: one run
        assert stopped["signal"] == -1 and stopped["progress"] > 8.0, (
            name,
            stopped,
        )  # stopped, crossed: none
    assert abs(r["carla_ran"]["step"] - r["embedded_ran"]["step"]) <= 1


WALKERS = """
import json
import numpy as np
from sim_bridge.api import ActorKind, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import LaneType

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane]), np.array([10.0]))
spec = WorldSpec(map=MapRef("grid"), ego=Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])), vehicles=0,
                 pedestrians=4)
sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))
sim.reset(spec, seed=0)
def walkers():
    a = sim.actor_arrays()
    return {{int(a.ids[0, j]): (float(a.x[0, j]), float(a.y[0, j])) for j in range(a.shape[1])
            if a.active[0, j] and a.kind[0, j] == int(ActorKind.PEDESTRIAN)}}
start = walkers()
for _ in range(30):  # 3 s
    obs, _ = sim.step(np.array([[-1.0, 0.0]]))
end = walkers()
moved = [float(np.hypot(end[i][0] - start[i][0], end[i][1] - start[i][1])) for i in start if i in end]
pts = np.array([end[i] for i in end]).reshape(-1, 2)
proj = rm.project(pts, np.zeros(len(pts)), lane_types=(LaneType.SIDEWALK,), max_distance=1.0)
sim.close()
print("RESULT " + json.dumps(dict(n=len(start), moved=moved, on_sidewalk=(proj.lane >= 0).tolist())), flush=True)
"""


def test_background_pedestrians_walk_the_sidewalks_led_by_ai_walker_controllers(server: CarlaServer) -> None:
    r = _run(WALKERS.format(port=server.port, tm_port=_free_port()))
    assert r["n"] == 4
    assert len(r["moved"]) == 4 and min(r["moved"]) > 2.0  # 1.1 to 1.7 m/s for 3 s
    assert all(r["on_sidewalk"])
    kinds = [a.blueprint.id for a in server.world.actors.values()]
    assert not [k for k in kinds if k.startswith(("walker.", "controller."))]  # closed: all destroyed


VEHICLES_KEPT = """
import json
import numpy as np
from sim_bridge.api import ActorKind, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.carla.walkers import WALKER_REFRESH_PERIOD
from sim_bridge.maps.catalog import load_map

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane]), np.array([10.0]))
ego = Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
spec = WorldSpec(map=MapRef("grid"), ego=ego, ego_speed=12.0, vehicles=6, pedestrians=0, traffic_radius={radius},
                 route_length=150.0)
sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))
every = round(WALKER_REFRESH_PERIOD / sim.dt)
def placed():
    a = sim.actor_arrays()
    ids = {{v.id for v in sim._background}}
    return {{int(a.ids[0, j]): (float(a.x[0, j]), float(a.y[0, j]), float(a.speed[0, j])) for j in range(a.shape[1])
            if a.active[0, j] and int(a.ids[0, j]) in ids}}
runs = []
for run in range(2):  # the same seed twice: the same vehicles at the same places
    sim.reset(spec, seed=0)
    first = placed()
    seen, after_refresh = set(first), []
    for k in range(60):  # 6 s at about 12 m/s
        a = sim.actor_arrays()
        ex, ey = float(a.x[0, 0]), float(a.y[0, 0])  # where the bridge sees the ego at the step's start
        sim.step(np.array([[0.0, 0.0]]))
        now = placed()
        seen |= set(now)
        if k % every == every - 1:  # the bridge replaced the far vehicles at this step's start
            after_refresh.append(sorted(float(np.hypot(x - ex, y - ey)) for x, y, _ in now.values()))
    on_server = sorted(v.id for v in sim._world.get_actors().filter("vehicle.*") if v.id != sim._ego.id)
    runs.append(dict(first=sorted(first.values()), n_first=len(first), seen=len(seen), after_refresh=after_refresh,
                     tracked=sorted(v.id for v in sim._background), on_server=on_server))
sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_background_vehicles_are_kept_within_the_traffic_radius_of_the_ego(server: CarlaServer) -> None:
    """The ego drives about 70 m with a 60 m ``traffic_radius``: background vehicles start moving,
    every second the bridge destroys those it has left behind (off the Traffic Manager first) and
    spawns as many as find a free spawn point 40 m or more from the ego, so after each replacement
    all of them are within the radius; the server holds exactly the vehicles the bridge tracks, and the same seed gives the
    same vehicles at the same places."""
    radius = 60.0
    runs = _run(VEHICLES_KEPT.format(port=server.port, tm_port=_free_port(), radius=radius))
    for run in runs:
        assert run["n_first"] == 6 and all(v > 0.0 for _, _, v in run["first"])  # moving from the start
        assert run["seen"] > 6  # some were replaced
        for dists in run["after_refresh"]:
            # within the radius (they drove on for a step); at most six, and a free place for most
            assert 4 <= len(dists) <= 6 and max(dists) <= radius + 2.0, dists
        assert run["tracked"] == run["on_server"]  # the replaced ones are gone from the server
    # the same places (read after the reset's tick, a tick of the Traffic Manager's driving apart)
    first = [np.array(run["first"])[:, :2] for run in runs]
    assert first[0] == pytest.approx(first[1], abs=0.2)


WALKERS_KEPT = """
import json
import sys
import numpy as np
from sim_bridge.api import ActorKind, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.carla.walkers import WALKER_REFRESH_PERIOD
from sim_bridge.maps.catalog import load_map

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane]), np.array([10.0]))
ego = Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
spec = WorldSpec(map=MapRef("grid"), ego=ego, ego_speed=12.0, vehicles=0, pedestrians=4, traffic_radius={radius},
                 route_length=150.0)
sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))
every = round(WALKER_REFRESH_PERIOD / sim.dt)
def walkers():
    a = sim.actor_arrays()
    return {{int(a.ids[0, j]): (float(a.x[0, j]), float(a.y[0, j])) for j in range(a.shape[1])
            if a.active[0, j] and a.kind[0, j] == int(ActorKind.PEDESTRIAN)}}
runs = []
for run in range(2):  # the same seed twice: the same walkers, at the same places
    sim.reset(spec, seed=0)
    first, seen, after_refresh = walkers(), set(), []
    for k in range(60):  # 6 s at about 12 m/s
        a = sim.actor_arrays()
        ex, ey = float(a.x[0, 0]), float(a.y[0, 0])  # where the bridge sees the ego at the step's start
        sim.step(np.array([[0.0, 0.0]]))
        now = walkers()
        seen |= set(now)
        if k % every == every - 1:  # the bridge replaced the far walkers at this step's start
            after_refresh.append(sorted(float(np.hypot(x - ex, y - ey)) for x, y in now.values()))
    a = sim.actor_arrays()
    runs.append(dict(first=sorted(first), seen=sorted(seen), after_refresh=after_refresh,
                     driven=float(np.hypot(a.x[0, 0] - xy[0, 0], a.y[0, 0] - xy[0, 1])),
                     walkers=sorted(w.id for w in sim._walkers.walkers),
                     controllers=sorted(c.id for c in sim._walkers.controllers)))
print("RESULT " + json.dumps(runs), flush=True)
sys.stdin.readline()  # the test reads the server's actors now
sim.close()
"""


def test_background_pedestrians_are_kept_within_the_traffic_radius_of_the_ego(server: CarlaServer) -> None:
    """The ego drives about 70 m, more than twice the 30 m ``traffic_radius``: every second the bridge
    destroys the walkers (and their AI controllers) it has left behind and spawns as many around it,
    so after each replacement all four are within the radius; the server holds exactly the walkers
    and controllers the bridge tracks (the replaced ones destroyed), and the same seed gives the
    same walkers at the same places."""
    radius = 30.0
    code = WALKERS_KEPT.format(port=server.port, tm_port=_free_port(), radius=radius)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=ENV, cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        lines = [proc.stdout.readline()]
        while lines[-1] and not lines[-1].startswith("RESULT "):
            lines.append(proc.stdout.readline())
        with server.world.lock:  # the last episode still runs: its actors on the server
            live = {i: a.blueprint.id for i, a in server.world.actors.items()}
            destroyed = set(server.world.destroyed)
    finally:
        out, err = proc.communicate("\n", timeout=120)
    assert proc.returncode == 0 and lines[-1].startswith("RESULT "), (
        f"bridge run failed (rc {proc.returncode}):\n{''.join(lines)}{out}\n{err}"
    )
    runs = json.loads(lines[-1][len("RESULT ") :])
    for r in runs:
        assert r["driven"] > 2.0 * radius
        assert len(r["after_refresh"]) == 6
        for dists in r["after_refresh"]:  # 0.5 m: the walkers' 0.1 s step, float32 poses
            assert len(dists) == 4 and max(dists) <= radius + 0.5, r["after_refresh"]
        replaced = set(r["seen"]) - set(r["walkers"])
        assert set(r["first"]) & replaced and len(r["seen"]) >= 8  # left behind, replaced
    for again, once in zip(runs[1]["after_refresh"], runs[0]["after_refresh"], strict=True):
        assert again == pytest.approx(once, abs=1e-3)  # the same seed, the same walkers
    last = runs[-1]
    assert sorted(i for i, b in live.items() if b.startswith("walker.")) == last["walkers"]
    assert sorted(i for i, b in live.items() if b.startswith("controller.")) == last["controllers"]
    assert set(last["seen"]) - set(last["walkers"]) <= destroyed
    kinds = [a.blueprint.id for a in server.world.actors.values()]
    assert not [k for k in kinds if k.startswith(("walker.", "controller."))]  # closed: all destroyed


class _FakeActor:
    """A walker or controller: its id; ``stop`` is logged."""

    def __init__(self, actor_id: int, log: list) -> None:
        self.id, self._log = actor_id, log

    def stop(self) -> None:
        self._log.append(("stop", self.id))


def test_walkers_left_behind_are_destroyed_controller_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """``keep_walkers_near`` on a fake client: the walker beyond the radius and the one the server
    no longer has lose their controllers (stopped, then destroyed before the walkers, in one
    batch, CARLA's order); the near one is kept, and as many as are missing are spawned."""
    import carla

    from sim_bridge.api import MapRef
    from sim_bridge.carla import walkers as w
    from sim_bridge.maps.catalog import load_map

    log: list = []
    where = {1: (10.0, -5.0), 2: (40.0, 0.0)}  # CARLA frame: 11.2 m and 40 m from the ego at 0, 0
    group = w.Walkers(
        walkers=[_FakeActor(i, log) for i in (1, 2, 3)],  # 3: gone from the server
        controllers=[_FakeActor(i, log) for i in (11, 12, 13)],
        targets=[(0.0, 0.0, 0.0)] * 3,
        speeds=[1.2, 1.4, 1.6],
    )
    snapshot = SimpleNamespace(
        find=lambda i: (
            SimpleNamespace(get_transform=lambda: carla.Transform(carla.Location(*where[i], 0.0)))
            if i in where
            else None
        )
    )
    world = SimpleNamespace(get_snapshot=lambda: snapshot)
    client = SimpleNamespace(
        apply_batch_sync=lambda batch, _due: log.append(("destroy", [c.actor_id for c in batch])) or []
    )
    asked: list = []
    new = w.Walkers(
        walkers=[_FakeActor(4, log)],
        controllers=[_FakeActor(14, log)],
        targets=[(1.0, 2.0, 0.0)],
        speeds=[1.5],
    )
    monkeypatch.setattr(w, "spawn_walkers", lambda *a: asked.append((a[4], a[6])) or new)
    kept, spawned = w.keep_walkers_near(
        client, world, None, load_map(MapRef("grid")), group, 3, (0.0, 0.0), (15.0, 30.0),
        np.random.default_rng(0), lambda x, y, yaw: None,
    )  # fmt: skip
    assert log == [("stop", 12), ("stop", 13), ("destroy", [12, 13, 2, 3])]
    assert [a.id for a in kept.walkers] == [1] and [a.id for a in kept.controllers] == [11]
    assert kept.speeds == [1.2]
    assert asked == [(2, (15.0, 30.0))] and spawned is new  # two missing, at 15 to 30 m
    assert [a.id for a in (kept + spawned).walkers] == [1, 4]


SIGNAL_CYCLE = """
import json
import time
import carla
import numpy as np
from sim_bridge.api import LightState, MapRef, Pose, SignalTiming, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import SignalKind

rm = load_map(MapRef("grid"))
k = next(int(k) for k in np.argsort(-rm.stop_s)
         if rm.signal_kind[rm.stop_signal[k]] == SignalKind.TRAFFIC_LIGHT and rm.stop_s[k] > 45.0)
sig, lane = int(rm.stop_signal[k]), int(rm.stop_lane[k])
xy, yaw = rm.pose_at(np.array([lane]), np.array([rm.stop_s[k] - 30.0]))
timing = SignalTiming(green=2.0, yellow=1.0, all_red=0.5, random_offset=True)
spec = WorldSpec(map=MapRef("grid"), ego=Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])), vehicles=0,
                 pedestrians=0, route_length=80.0, signals=timing, signal_states=((sig, LightState.RED),))
runs = {{"line": k}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    sim.reset(spec, seed=5)
    states = [sim.light_states()[0].tolist()]
    for i in range(80):
        sim.step(np.array([[-1.0, 0.0]]))
        states.append(sim.light_states()[0].tolist())
    runs[name] = states
    if name == "carla":
        client = carla.Client("127.0.0.1", {port})  # another client: what CARLA's lights report
        client.set_timeout(20.0)
        world = client.get_world()
        for _ in range(100):  # its first world state comes on the stream
            lights = world.get_actors().filter("traffic.traffic_light*")
            if len(lights):
                break
            time.sleep(0.1)
        runs["times"] = sorted({{(l.get_green_time(), l.get_yellow_time(), l.get_red_time()) for l in lights}})
        runs["frozen"] = all(l.is_frozen() for l in lights)
    sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_the_bridge_runs_the_specs_signal_cycle_on_carlas_lights(server: CarlaServer) -> None:
    """``WorldSpec.signals`` on CARLA: the bridge sets CARLA's lights to our cycle (seeded group
    offsets, phases, the spec's frozen light), so the states it reads back after reset and after
    every step are the embedded backend's, step by step."""
    r = _run(SIGNAL_CYCLE.format(port=server.port, tm_port=_free_port()))
    c, e = np.array(r["carla"]), np.array(r["embedded"])
    assert c.shape == e.shape == (81, e.shape[1]) and e.shape[1] > 4
    for step, (cs, es) in enumerate(zip(c, e, strict=True)):
        assert cs.tolist() == es.tolist(), f"step {step}: CARLA {cs.tolist()} != embedded {es.tolist()}"
    assert (e[:, r["line"]] == 2).all()  # held red by signal_states
    changes = (np.diff(e, axis=0) != 0).sum()
    assert changes >= 10 and {0, 1, 2} <= set(e.ravel().tolist())  # 8 s of a 7 s cycle: all states
    assert r["times"] == [[2.0, 1.0, 0.5]] and r["frozen"]  # CARLA's lights report the spec's times


DOOR = """
import json
import numpy as np
from scenarios.families import make_scenario
from sim_bridge.api import ActorKind
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.sensors.layout import ObjectFeature

spec = make_scenario("vehicle_opens_door", dict(traffic=0, pedestrians=0, door_width=1.2, trigger=24.0), seed=0)
(car,) = [a for a in spec.world.actors if a.kind == ActorKind.STATIC]
runs = {{}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    obs = sim.reset(spec.world, seed=0)
    a = sim.actor_arrays()
    j = 1 + int(np.argmin(np.hypot(a.x[0, 1:] - car.pose.x, a.y[0, 1:] - car.pose.y) + 1e6 * ~a.active[0, 1:]))
    car_id, car_kind = int(a.ids[0, j]), int(a.kind[0, j])
    boxes, hits, seen, hit_kinds = [], [], [], []
    for i in range(50):
        obs, ev = sim.step(np.array([[0.0, 0.0]]))
        a = sim.actor_arrays()
        j = int(np.flatnonzero(a.ids[0] == car_id)[0])
        boxes.append([float(v[0, j]) for v in (a.x, a.y, a.yaw, a.length, a.width)])
        hits.append(int(ev.collision_actor[0]) if ev.collision[0] else -1)
        hit_kinds.append(int(ev.collision_kind[0]) if ev.collision[0] else -1)
        row = np.flatnonzero(obs.object_ids[0] == car_id)
        seen.append(float(obs.objects[0, row[0], ObjectFeature.WIDTH]) if len(row) else -1.0)
    runs[name] = dict(car=car_id, kind=car_kind, boxes=boxes, hits=hits, hit_kinds=hit_kinds, seen=seen)
    sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def _door_edge(box: list[float], side: float) -> np.ndarray:
    """The middle of a box's ``side`` (+1 left, -1 right) edge (map frame) [m]."""
    x, y, yaw, _, width = box
    return np.array([x - math.sin(yaw) * 0.5 * width * side, y + math.cos(yaw) * 0.5 * width * side])


def test_a_parked_cars_door_opens_on_carla_as_on_the_embedded_backend(server: CarlaServer) -> None:
    """``vehicle_opens_door`` through the bridge and our server: the car's door opens (``open_door``,
    FL: the family's door opens to the car's left) when the ego comes within the trigger, the car's
    box widens by ``door_width`` into the lane exactly where the embedded backend's does, and the
    ego, driving on, hits the door."""
    r = _run(DOOR.format(port=server.port, tm_port=_free_port()))
    c, e = r["carla"], r["embedded"]
    opened = {}
    for name, run in (("carla", c), ("embedded", e)):
        widths = [b[4] for b in run["boxes"]]
        k = next(i for i, w in enumerate(widths) if w > widths[0] + 1e-6)
        assert widths[k] - widths[0] == pytest.approx(1.2, abs=1e-6), name  # widened by door_width
        assert run["seen"][k] == pytest.approx(widths[k], abs=1e-4), name  # in the observation's objects
        opened[name] = k
    assert abs(opened["carla"] - opened["embedded"]) <= 1
    k = max(opened.values())
    # the door side (the car's left, into the lane) lies where the embedded one does, closed and open;
    # CARLA's car is 0.2 m wider than the spec's 1.8 m, towards the kerb
    assert _door_edge(c["boxes"][0], 1.0) == pytest.approx(_door_edge(e["boxes"][0], 1.0), abs=0.02)
    assert _door_edge(c["boxes"][k], 1.0) == pytest.approx(_door_edge(e["boxes"][k], 1.0), abs=0.02)
    assert c["boxes"][k][2] == pytest.approx(e["boxes"][k][2], abs=1e-3)
    # the ego drives into the door: a collision with the car on both, at about the same time
    hit = {name: next(i for i, h in enumerate(run["hits"]) if h == run["car"]) for name, run in r.items()}
    assert hit["carla"] > opened["carla"] and hit["embedded"] > opened["embedded"]
    assert abs(hit["carla"] - hit["embedded"]) <= 2
    # a parked car is a CARLA vehicle on its hand brake, and a static obstacle to the sensors and
    # the collision events on both (an agent passes it rather than queueing behind it)
    for name, run in r.items():
        assert run["kind"] == int(ActorKind.STATIC), name
        assert run["hit_kinds"][hit[name]] == int(ActorKind.STATIC), name


CUT_IN = """
import json
import numpy as np
from scenarios.families import make_scenario
from sim_bridge.api import ActorKind
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map

spec = make_scenario("cut_in_highway", dict(vehicles=4, pedestrians=0, side="left"), seed=0)
(cutter,) = [a for a in spec.world.actors if a.kind == ActorKind.VEHICLE]
rm = load_map(spec.world.map)
runs = {{}}
for name, sim in (("carla", CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0))),
                  ("embedded", EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1)))):
    sim.reset(spec.world, seed=0)
    a = sim.actor_arrays()
    j = 1 + int(np.argmin(np.hypot(a.x[0, 1:] - cutter.pose.x, a.y[0, 1:] - cutter.pose.y) + 1e6 * ~a.active[0, 1:]))
    car = int(a.ids[0, j])
    lateral, speed = [], []
    for i in range(60):  # the ego holds its speed: the cutter closes in front of it
        sim.step(np.array([[0.0, 0.0]]))
        a = sim.actor_arrays()
        j = int(np.flatnonzero(a.ids[0] == car)[0])
        # the cutter's offset from the centre of the ego's lane, once its centre is on that lane
        on = rm.project(np.stack([a.x[0, [0, j]], a.y[0, [0, j]]], axis=1), a.yaw[0, [0, j]])
        lateral.append(float(on.lateral[1]) if on.lane[1] == on.lane[0] else None)
        speed.append(float(a.speed[0, j]))
    runs[name] = dict(lateral=lateral, speed=speed)
    sim.close()
print("RESULT " + json.dumps(runs), flush=True)
"""


def test_a_highway_cut_in_happens_on_carla_as_on_the_embedded_backend(server: CarlaServer) -> None:
    """``cut_in_highway`` (18 m/s, from the left) through the bridge and our server: the client's
    Traffic Manager cannot force a lane change at that speed (carla#5224), so the bridge steers the
    cutter (``sim_bridge.carla.lane_change``): it enters the ego's lane within a step of the
    embedded backend's cutter, settles on its centre, and keeps its cruise speed."""
    r = _run(CUT_IN.format(port=server.port, tm_port=_free_port()))
    entered = {}
    for name, run in r.items():
        lateral = run["lateral"]
        assert lateral[0] is None, name  # in the neighbour lane
        assert any(v is not None for v in lateral), (name, lateral)  # it cuts in …
        entered[name] = next(i for i, v in enumerate(lateral) if v is not None)
        assert all(v is not None and abs(v) < 0.5 for v in lateral[-10:]), (name, lateral)  # … to the centre
        assert min(run["speed"]) > 15.0, (name, run["speed"])  # cruising at 18 m/s throughout
    assert abs(entered["carla"] - entered["embedded"]) <= 2, entered


TM_WAKE = """
import json
import logging
import numpy as np
from sim_bridge.api import ActorKind, ActorSpec, MapRef, Pose, WorldSpec
from sim_bridge.carla import CarlaConfig, CarlaSimulator
from sim_bridge.maps.catalog import load_map

woken = []
class Woken(logging.Handler):
    def emit(self, record):
        woken.append(record.getMessage())
logging.getLogger("sim_bridge.carla.simulator").addHandler(Woken())

rm = load_map(MapRef("grid"))
lane = int(rm.driving_lanes[np.argmax(rm.lane_length[rm.driving_lanes])])
xy, yaw = rm.pose_at(np.array([lane, lane]), np.array([10.0, 30.0]))
ego = Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))
car = ActorSpec(ActorKind.VEHICLE, Pose(float(xy[1, 0]), float(xy[1, 1]), float(yaw[1])), target_speed=6.0)
spec = WorldSpec(map=MapRef("grid"), ego=ego, actors=(car,), vehicles=0, pedestrians=0, route_length=150.0)
sim = CarlaSimulator(CarlaConfig(port={port}, tm_port={tm_port}, timeout=20.0, tm_wake_after=2.0))
sim.reset(spec, seed=0)
a = sim.actor_arrays()
car_id, start = int(a.ids[0, 1]), np.array([a.x[0, 1], a.y[0, 1]])
for _ in range(30):
    sim.step(np.array([[-1.0, 0.0]]))
a = sim.actor_arrays()
j = int(np.flatnonzero(a.ids[0] == car_id)[0])
moved = float(np.hypot(a.x[0, j] - start[0], a.y[0, j] - start[1]))
sim.close()
print("RESULT " + json.dumps(dict(woken=woken, moved=moved)), flush=True)
"""


def test_the_bridge_wakes_a_traffic_manager_that_lost_its_tick_signal(tmp_path: Path) -> None:
    """The 0.9.16 client's Traffic Manager can miss a tick's signal and hang ``world.tick()`` for
    good (carla#9172; ``sim_bridge.carla.tick_watch``). A preloaded shim makes it miss the first
    one, every time; with the server's own watch off (as on a CARLA server) the bridge wakes it
    and the episode runs on, the TM's car driving."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler to build the shim that loses the signal")
    shim = tmp_path / "tm_lost_wakeup.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(shim), str(ROOT / "tests" / "tm_lost_wakeup.c"), "-ldl", "-lpthread"],
                   check=True, capture_output=True)  # fmt: skip
    cfg = CarlaServerConfig(
        port=0,
        tm_wake_after=0.0,
        sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05),
    )
    with CarlaServer(cfg) as srv:
        r = _run(TM_WAKE.format(port=srv.port, tm_port=_free_port()), env={"LD_PRELOAD": str(shim)})
        assert srv.traffic_managers.wakeups == 0  # the server did not wake it: the bridge did
    assert len(r["woken"]) >= 1 and "carla#9172" in r["woken"][0]
    assert r["moved"] > 5.0  # 3 s at up to 6 m/s: the TM drove its car after the wake-up
