"""The CARLA-protocol server against the real ``carla==0.9.16`` client.

Client code runs in a subprocess (a protocol mistake crashes the client process rather than
raising) and prints one JSON line that the test reads. The server runs in this process, on free
ports, so the tests can also look at its world directly.
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

import numpy as np
import pytest

pytest.importorskip("carla")

from sim_bridge.carla_server import CarlaServer, CarlaServerConfig, wire
from sim_bridge.carla_server.world import LIGHT_TIMES
from sim_bridge.embedded.config import EmbeddedConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}

PRELUDE = """
import json, math, sys, time
import carla
client = carla.Client("127.0.0.1", {port})
client.set_timeout(10.0)
world = client.get_world()
settings = world.get_settings()
settings.synchronous_mode = True
settings.fixed_delta_seconds = 0.05
world.apply_settings(settings)
carla_map = world.get_map()
spawn_points = carla_map.get_spawn_points()
library = world.get_blueprint_library()
"""
OUT = """
import json
def out(**values):
    print("RESULT " + json.dumps(values), flush=True)
"""


def _client(
    port: int, body: str, timeout: float = 90.0, prelude: bool = True, env: dict | None = None
) -> dict:
    """Run ``body`` in a fresh Python with the real client (``env`` added to its environment);
    the dict it passed to ``out``."""
    code = OUT + (PRELUDE.format(port=port) if prelude else "") + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**ENV, **(env or {})}, capture_output=True, text=True,
        timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"client failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[CarlaServer]:
    cfg = CarlaServerConfig(
        port=0, sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, physics_dt=0.05)
    )
    with CarlaServer(cfg) as srv:
        yield srv


# ----------------------------------------------------------------------------------- layouts


def test_world_state_record_is_119_bytes_and_settings_round_trip() -> None:
    rec = np.zeros(2, wire.ACTOR_RECORD)
    msg = wire.world_state(7, 0.35, 0.05, 1, 0.0, rec)
    assert len(msg) == 48 + 36 + 2 * 119
    s = wire.EpisodeSettings(synchronous_mode=True, fixed_delta_seconds=0.05)
    assert wire.EpisodeSettings.unpack(s.pack()) == s
    assert wire.EpisodeSettings.unpack(wire.EpisodeSettings().pack()).fixed_delta_seconds is None


# ----------------------------------------------------------------------------------- connection


def test_client_connects_reads_map_blueprints_and_settings(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        s = world.get_settings()
        ids = [bp.id for bp in library]
        out(version=client.get_server_version(), map=carla_map.name, spawns=len(spawn_points),
            sync=s.synchronous_mode, fixed=s.fixed_delta_seconds, ids=ids,
            xodr=len(carla_map.to_opendrive()), topology=len(carla_map.get_topology()))
        """,
    )
    assert r["version"] == "0.9.16"
    assert r["map"] == server.world.map_name
    assert r["spawns"] == len(server.world.spawn_points) > 10
    assert r["sync"] is True and r["fixed"] == pytest.approx(0.05)
    assert {
        "vehicle.tesla.model3",
        "walker.pedestrian.0001",
        "sensor.other.collision",
        "sensor.other.lane_invasion",
    } <= set(r["ids"])
    assert r["xodr"] == len(server.world.road_map.xodr) and r["topology"] > 0
    assert server.world.dt == pytest.approx(0.05)


def test_no_server_gives_a_clear_client_error() -> None:
    port = _free_port()
    r = _client(
        port,
        f"""
        import carla
        client = carla.Client("127.0.0.1", {port})
        client.set_timeout(1.0)
        try:
            client.get_server_version()
            out(error=None)
        except RuntimeError as exc:
            out(error=str(exc))
        """,
        prelude=False,
    )
    assert r["error"] is not None and "time-out" in r["error"] and f"127.0.0.1:{port}" in r["error"]


def test_unknown_rpc_answers_an_error_naming_the_call(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        try:
            world.get_environment_objects()
            out(error=None)
        except RuntimeError as exc:
            out(error=str(exc), version=client.get_server_version())
        """,
    )
    assert "get_environment_objects" in r["error"] and "not implemented" in r["error"]
    assert r["version"] == "0.9.16"  # the connection still works


# ----------------------------------------------------------------------------------- physics


def test_throttle_and_steer_move_the_vehicle_the_right_way_in_carla_frame(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        tf = spawn_points[3]
        car = world.spawn_actor(library.find("vehicle.tesla.model3"), tf)
        world.tick()
        start = car.get_transform()
        car.apply_control(carla.VehicleControl(throttle=1.0))
        for _ in range(20):  # 1 s
            world.tick()
        moved = car.get_location() - start.location
        fwd = start.get_forward_vector()
        v = car.get_velocity()
        yaw_straight = car.get_transform().rotation.yaw
        car.apply_control(carla.VehicleControl(throttle=0.3, steer=0.5))  # right
        for _ in range(20):
            world.tick()
        yaw_turned = car.get_transform().rotation.yaw
        out(along=moved.x * fwd.x + moved.y * fwd.y, across=moved.x * fwd.y - moved.y * fwd.x,
            v_along=v.x * fwd.x + v.y * fwd.y, start_yaw=start.rotation.yaw, yaw_straight=yaw_straight,
            yaw_turned=yaw_turned, id=car.id, control=car.get_control().steer, bbox=car.bounding_box.extent.x)
        car.destroy()
        """,
    )
    # 3 m/s² (throttle 1 = max_accel) for 1 s, less drag 0.02/s: ½·a·t² ≈ 1.5 m, v ≈ 3 m/s
    assert r["along"] == pytest.approx(1.49, abs=0.03)
    assert abs(r["across"]) < 1e-3
    assert r["v_along"] == pytest.approx(2.97, abs=0.03)
    assert r["yaw_straight"] == pytest.approx(r["start_yaw"], abs=1e-3)
    # CARLA's yaw is clockwise from above: steering right increases it
    turned = (r["yaw_turned"] - r["yaw_straight"] + 180.0) % 360.0 - 180.0
    assert 5.0 < turned < 90.0
    assert r["control"] == pytest.approx(0.5) and r["bbox"] == pytest.approx(2.4)
    assert r["id"] not in server.world.actors  # destroyed


def test_walker_control_walks_in_the_commanded_direction(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        tf = carla.Transform(carla.Location(x=spawn_points[0].location.x, y=spawn_points[0].location.y + 30.0))
        walker = world.spawn_actor(library.find("walker.pedestrian.0001"), tf)
        world.tick()
        start = walker.get_location()
        walker.apply_control(carla.WalkerControl(direction=carla.Vector3D(0.0, 1.0, 0.0), speed=1.5))
        for _ in range(20):
            world.tick()
        end = walker.get_location()
        out(dx=end.x - start.x, dy=end.y - start.y)
        walker.destroy()
        """,
    )
    assert r["dy"] == pytest.approx(1.5, abs=0.01) and abs(r["dx"]) < 1e-3


# ----------------------------------------------------------------------------------- sensors


def test_collision_sensor_reports_the_vehicle_hit(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        tf = spawn_points[8]
        bp = library.find("vehicle.audi.a2")
        car = world.spawn_actor(bp, tf)
        parked = world.spawn_actor(bp, carla.Transform(tf.location + tf.get_forward_vector() * 8.0, tf.rotation))
        events = []
        sensor = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=car)
        sensor.listen(lambda e: events.append((e.frame, e.actor.id, e.other_actor.id, e.other_actor.type_id,
                                               e.normal_impulse.x, e.normal_impulse.y)))
        lane = world.spawn_actor(library.find("sensor.other.lane_invasion"), carla.Transform(), attach_to=car)
        car.apply_control(carla.VehicleControl(throttle=1.0))
        frames = [world.tick() for _ in range(60)]
        time.sleep(0.3)
        fwd = tf.get_forward_vector()
        first = events[0] if events else None
        out(n=len(events), first=first, car=car.id, parked=parked.id, last_frame=frames[-1],
            impulse_along=(first[4] * fwd.x + first[5] * fwd.y) if first else 0.0,
            sensor_type=sensor.type_id, lane_type=lane.type_id)
        sensor.stop()
        for a in (sensor, lane, car, parked):
            a.destroy()
        """,
    )
    assert r["n"] > 0, "no collision event"
    frame, self_id, other_id, other_type, _, _ = r["first"]
    assert self_id == r["car"] and other_id == r["parked"] and other_type == "vehicle.audi.a2"
    assert frame <= r["last_frame"]
    assert r["impulse_along"] < 0.0  # pushed back, against the direction of travel
    assert r["sensor_type"] == "sensor.other.collision" and r["lane_type"] == "sensor.other.lane_invasion"


def test_a_car_with_dynamic_doors_opens_one_into_the_road(server: CarlaServer) -> None:
    """``open_door`` (RPC ``open_vehicle_door``): an open front-left door widens the car's body
    to its left by the blueprint's ``door_width``, as the embedded OPEN_DOOR behaviour; the car's
    transform stays; a car without dynamic doors does not change, nor a second door on the same
    side; closing restores."""
    r = _client(
        server.port,
        """
        doors = {bp.id: bp.get_attribute("has_dynamic_doors").as_bool() for bp in library.filter("vehicle.*")}
        bp = library.find("vehicle.mercedes.coupe_2020")
        bp.set_attribute("door_width", "1.3")
        tf = spawn_points[20]
        car = world.spawn_actor(bp, tf)
        plain = world.spawn_actor(library.find("vehicle.audi.a2"),
                                  carla.Transform(tf.location + tf.get_forward_vector() * 12.0, tf.rotation))
        world.tick()
        car.open_door(carla.VehicleDoor.FL)
        plain.open_door(carla.VehicleDoor.FL)
        car.open_door(carla.VehicleDoor.RL)  # the same side: no wider
        world.tick()
        loc = car.get_transform()
        out(doors=doors, car=car.id, plain=plain.id, moved=loc.location.distance_2d(tf.location),
            yaw=loc.rotation.yaw - tf.rotation.yaw)
        """,
    )
    assert r["doors"]["vehicle.mercedes.coupe_2020"] and r["doors"]["vehicle.lincoln.mkz_2020"]
    assert not r["doors"]["vehicle.audi.a2"]
    assert r["moved"] < 0.05 and abs(r["yaw"]) < 1e-3  # the car stays where it stands
    world, st = server.world, server.world.sim.state
    car, plain = world.actors[r["car"]].slot, world.actors[r["plain"]].slot
    assert st.width[0, car] == pytest.approx(2.0 + 1.3) and st.width[0, plain] == pytest.approx(1.8)
    # the body's centre 0.65 m to the car's left (+y of its own frame, ours) of its origin
    origin = world.transform_of(world.actors[r["car"]])
    from sim_bridge.frames import carla_to_map

    ox, oy, yaw = carla_to_map(origin.x, origin.y, origin.yaw)
    left = -math.sin(yaw) * (st.x[0, car] - ox) + math.cos(yaw) * (st.y[0, car] - oy)
    ahead = math.cos(yaw) * (st.x[0, car] - ox) + math.sin(yaw) * (st.y[0, car] - oy)
    assert left == pytest.approx(0.65, abs=1e-6) and ahead == pytest.approx(0.0, abs=1e-6)
    closed = _client(
        server.port,
        f"""
        car = world.get_actor({r["car"]})
        car.close_door(carla.VehicleDoor.All)
        world.tick()
        out(moved=car.get_transform().location.distance(carla.Location({origin.x}, {origin.y}, 0.0)))
        """,
    )
    assert closed["moved"] < 0.05
    assert st.width[0, car] == pytest.approx(2.0) and world.transform_of(world.actors[r["car"]]) == origin
    for actor_id in (r["car"], r["plain"]):
        world.destroy(actor_id)


# ----------------------------------------------------------------------------------- autopilot


def _lane_offset_body(tm_line: str, spawn: int) -> str:
    """A car spawned at ``spawn_points[spawn]``, put on autopilot by ``tm_line``, driven 120 ticks.
    Each test spawns at its own point: a client killed on a time-out leaves its car behind (as on
    CARLA), and the next test must not fail for that."""
    return f"""
        car = world.spawn_actor(library.find("vehicle.audi.a2"), spawn_points[{spawn}])
        world.tick()
        start = car.get_location()
        {tm_line}
        offsets = []
        for i in range(120):
            world.tick()
            loc = car.get_location()
            wp = carla_map.get_waypoint(loc)
            offsets.append(wp.transform.location.distance(loc))
        out(moved=start.distance(car.get_location()), max_offset=max(offsets), speed=car.get_velocity().length())
        car.destroy()
        """


def test_autopilot_by_the_clients_traffic_manager_drives_along_its_lane(server: CarlaServer) -> None:
    tm_port = _free_port()
    line = f"tm = client.get_trafficmanager({tm_port}); tm.set_synchronous_mode(True); car.set_autopilot(True, {tm_port})"
    r = _client(server.port, _lane_offset_body(line, spawn=20))
    assert r["moved"] > 10.0
    assert r["max_offset"] < 0.6


def test_a_traffic_manager_that_lost_its_tick_signal_is_woken(server: CarlaServer, tmp_path: Path) -> None:
    """The 0.9.16 client's Traffic Manager can miss the signal of a tick and hang its client for
    good (``sim_bridge.carla_server.tm_watch``). A preloaded shim makes it miss the first one, every
    time; the server wakes it and the client drives on as if nothing had happened."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler to build the shim that loses the signal")
    shim = tmp_path / "tm_lost_wakeup.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(shim), str(ROOT / "tests" / "tm_lost_wakeup.c"), "-ldl", "-lpthread"],
                   check=True, capture_output=True)  # fmt: skip
    before = server.traffic_managers.wakeups
    tm_port = _free_port()
    line = f"tm = client.get_trafficmanager({tm_port}); tm.set_synchronous_mode(True); car.set_autopilot(True, {tm_port})"
    shimmed = {"LD_PRELOAD": str(shim)}
    try:
        r = _client(server.port, _lane_offset_body(line, spawn=24), env=shimmed)  # hangs unless woken
    except (subprocess.TimeoutExpired, AssertionError) as exc:  # say what the watch saw (rare in CI)
        raise AssertionError(
            f"{exc}\nthe server's Traffic Manager watch:\n{server.traffic_managers.describe()}"
        ) from exc
    assert server.traffic_managers.wakeups > before, server.traffic_managers.describe()
    assert r["moved"] > 10.0 and r["max_offset"] < 0.6


def test_autopilot_by_the_npc_driver_drives_along_its_lane(server: CarlaServer) -> None:
    line = "client.apply_batch_sync([carla.command.SetAutopilot(car, True)])"
    r = _client(server.port, _lane_offset_body(line, spawn=28))
    assert r["moved"] > 20.0
    assert r["max_offset"] < 0.6


# ----------------------------------------------------------------------------------- actors


def test_a_spawn_into_another_body_fails_as_on_carla(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        bp = library.find("vehicle.audi.a2")
        first = world.spawn_actor(bp, spawn_points[40])
        try:
            world.spawn_actor(bp, spawn_points[40])
            raised = ""
        except RuntimeError as exc:
            raised = str(exc)
        tried = world.try_spawn_actor(bp, spawn_points[40])
        batch = client.apply_batch_sync([carla.command.SpawnActor(bp, spawn_points[40])])
        first.destroy()
        again = world.try_spawn_actor(bp, spawn_points[40])
        out(raised=raised, tried=tried is None, batch=batch[0].error, again=again is not None)
        again.destroy()
        """,
    )
    assert "collision at spawn position" in r["raised"]
    assert r["tried"] and "collision at spawn position" in r["batch"]
    assert r["again"]  # the place is free once the first car is gone


def test_batch_spawn_and_destroy(server: CarlaServer) -> None:
    r = _client(
        server.port,
        """
        bp = library.find("vehicle.nissan.micra")
        res = client.apply_batch_sync([carla.command.SpawnActor(bp, spawn_points[i]) for i in range(30, 35)], True)
        ids = [x.actor_id for x in res]
        listed = sorted(a.id for a in world.get_actors().filter("vehicle.nissan.*"))
        bad = client.apply_batch_sync([carla.command.DestroyActor(999999)])
        gone = client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], True)
        after = [a.id for a in world.get_actors().filter("vehicle.nissan.*")]
        out(ids=ids, errors=[x.error for x in res], listed=listed, bad=bad[0].error,
            gone=[x.error for x in gone], after=after)
        """,
    )
    assert len(set(r["ids"])) == 5 and r["errors"] == [""] * 5
    assert r["listed"] == sorted(r["ids"])
    assert "999999" in r["bad"]
    assert r["gone"] == [""] * 5 and r["after"] == []
    assert not set(r["ids"]) & set(server.world.actors)


def test_actors_outlive_their_client_unless_destroyed_on_disconnect(server: CarlaServer) -> None:
    body = """
        car = world.spawn_actor(library.find("vehicle.toyota.prius"), spawn_points[40])
        out(id=car.id)
        """
    kept = _client(server.port, body)["id"]
    assert kept in server.world.actors  # as CARLA: actors persist after their client leaves
    server.world.destroy(kept)
    cfg = CarlaServerConfig(port=0, destroy_on_disconnect=True, sim=server.config.sim)
    with CarlaServer(cfg) as other:
        gone = _client(other.port, body)["id"]
        deadline = time.monotonic() + 5.0
        while gone in other.world.actors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone not in other.world.actors
        assert other.world.sim.free_slot(0, 0) == 1  # its slot is free again


def test_two_clients_share_one_world(server: CarlaServer) -> None:
    ticker = textwrap.dedent(
        OUT
        + PRELUDE.format(port=server.port)
        + """
car = world.spawn_actor(library.find("vehicle.tesla.model3"), spawn_points[50])
car.apply_control(carla.VehicleControl(throttle=0.5))
print("SPAWNED", car.id, flush=True)
for _ in range(100):
    world.tick()
    time.sleep(0.02)
car.destroy()
out(id=car.id)
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", ticker], env=ENV, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("SPAWNED"), line
        car_id = int(line.split()[1])
        r = _client(
            server.port,
            f"""
            import carla
            client = carla.Client("127.0.0.1", {server.port})
            client.set_timeout(10.0)
            world = client.get_world()
            frames = [world.wait_for_tick().frame for _ in range(5)]
            car = world.get_actor({car_id})
            x0 = car.get_location().x
            world.wait_for_tick(); world.wait_for_tick(); world.wait_for_tick()
            out(frames=frames, type=car.type_id, dx=abs(car.get_location().x - x0) + abs(car.get_location().y))
            """,
            prelude=False,
        )
        assert r["frames"] == sorted(r["frames"]) and len(set(r["frames"])) == 5
        assert r["type"] == "vehicle.tesla.model3" and r["dx"] > 0.0
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0


# ----------------------------------------------------------------------------------- CLI


def test_drive_serve_carla_serves_the_real_client() -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "drive.cli", "serve-carla", "town=grid", f"port={port}"]
    proc = subprocess.Popen(
        cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("serving") or not line:
                break
        assert line.startswith("serving CARLA 0.9.16 on 127.0.0.1"), line
        r = _client(
            port,
            """
            car = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), spawn_points[0])
            frame = world.tick()
            out(version=client.get_server_version(), map=carla_map.name, frame=frame,
                x=car.get_location().x, sx=spawn_points[0].location.x)
            """,
        )
        assert r["version"] == "0.9.16" and r["map"].endswith("grid_0")
        assert math.isclose(r["x"], r["sx"], abs_tol=1e-3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_generate_opendrive_world_loads_our_xodr(server: CarlaServer) -> None:
    from sim_bridge.maps.towns import make_town

    cfg = CarlaServerConfig(port=0, sim=server.config.sim)
    with CarlaServer(cfg) as other:
        xodr = make_town("grid", 3)
        r = _client(
            other.port,
            """
            old = carla_map.name
            car = world.spawn_actor(library.find("vehicle.audi.a2"), spawn_points[0])
            from sim_bridge.maps.towns import make_town
            xodr = make_town("grid", 3)
            world = client.generate_opendrive_world(xodr, carla.OpendriveGenerationParameters(), reset_settings=False)
            m = world.get_map()
            out(old=old, new=m.name, same=m.to_opendrive() == xodr, actors=len(world.get_actors().filter("vehicle.*")),
                sync=world.get_settings().synchronous_mode, frame=world.tick())
            """,
        )
        assert r["same"] and r["new"] != r["old"] and r["actors"] == 0
        assert r["sync"] is True and r["frame"] > 0
        assert other.world.road_map.xodr == xodr and other.world.episode_id == 2


def _before_a_light(server: CarlaServer, distance: float) -> tuple[int, list[float], float, float]:
    """A light's stop line with ``distance`` m of lane before it: (signal, CARLA x, y, yaw there,
    stop-line position along the lane's heading as x·cos + y·sin in CARLA's frame, lane heading)."""
    from sim_bridge.frames import map_to_carla
    from sim_bridge.maps.road_map import SignalKind

    rm = server.world.road_map
    for k in np.argsort(-rm.stop_s):
        sig, lane = int(rm.stop_signal[k]), int(rm.stop_lane[k])
        if rm.signal_kind[sig] == SignalKind.TRAFFIC_LIGHT and rm.stop_s[k] > distance + 5.0:
            xy, yaw = rm.pose_at(np.array([lane, lane]), np.array([rm.stop_s[k] - distance, rm.stop_s[k]]))
            cx, cy, cyaw = map_to_carla(xy[:, 0], xy[:, 1], yaw)
            heading = math.radians(float(cyaw[0]))
            stop_along = float(cx[1] * math.cos(heading) + cy[1] * math.sin(heading))
            return sig, [float(cx[0]), float(cy[0]), float(cyaw[0])], stop_along, heading
    raise AssertionError("the grid town has no traffic light with a long enough approach")


def test_traffic_lights_are_actors_and_the_traffic_manager_stops_at_red(server: CarlaServer) -> None:
    sig, (x, y, yaw), stop_along, heading = _before_a_light(server, 35.0)
    tm_port = _free_port()
    xodr_id = server.world.road_map.signal_xodr_id[sig]
    r = _client(
        server.port,
        f"""
        lights = list(world.get_actors().filter("traffic.traffic_light"))
        mine = [l for l in lights if l.get_opendrive_id() == {xodr_id!r}]
        for light in lights:
            light.set_state(carla.TrafficLightState.Red)
        tm = client.get_trafficmanager({tm_port}); tm.set_synchronous_mode(True)
        world.tick()  # the new TM's first cycle is over (a car registered during it stays parked)
        car = world.spawn_actor(library.find("vehicle.audi.a2"),
                                carla.Transform(carla.Location(x={x}, y={y}, z=0.3), carla.Rotation(yaw={yaw})))
        world.tick()
        far = dict(state=str(car.get_traffic_light_state()), at_light=car.is_at_traffic_light())
        car.set_autopilot(True, {tm_port})
        for _ in range(300):  # 15 s
            world.tick()
        loc = car.get_location()
        held = dict(along=loc.x * math.cos({heading}) + loc.y * math.sin({heading}), speed=car.get_velocity().length(),
                    state=str(car.get_traffic_light_state()), at_light=car.is_at_traffic_light(),
                    light=car.get_traffic_light().id if car.get_traffic_light() else -1)
        world.reset_all_traffic_lights()
        mine[0].set_state(carla.TrafficLightState.Green)
        for _ in range(200):
            world.tick()
        loc = car.get_location()
        out(n=len(lights), mine=[l.id for l in mine], far=far, held=held, frozen=mine[0].is_frozen(),
            later=loc.x * math.cos({heading}) + loc.y * math.sin({heading}))
        car.set_autopilot(False, {tm_port})
        world.reset_all_traffic_lights()
        car.destroy()
        """,
    )
    assert r["n"] == len(server.world.light_signal) > 0 and len(r["mine"]) == 1
    # 35 m before the light, out of its reach: Green and at no light, as a CARLA vehicle reports (a
    # state other than Green there makes the client's Traffic Manager treat the junction ahead as
    # unsignalised: stop, and give way to whoever is inside)
    assert r["far"] == {"state": "Green", "at_light": False}
    held = r["held"]
    assert held["state"] == "Red" and held["at_light"] and held["light"] == r["mine"][0]
    assert held["speed"] < 0.1
    assert stop_along - 12.0 < held["along"] < stop_along  # waited before the stop line
    assert r["later"] > stop_along + 5.0  # and drove on at green


def test_traffic_light_times_freeze_and_group_reset(server: CarlaServer) -> None:
    """``set_green_time`` / ``yellow`` / ``red`` show in the light's state; once every light has the
    same times the world's cycle runs on them; ``freeze`` holds the state shown, ``reset_group``
    lets the group's lights cycle again."""
    world = server.world
    before = world.sim.state.sig_timing[0].tolist()
    try:
        r = _client(
            server.port,
            """
            lights = list(world.get_actors().filter("traffic.traffic_light"))
            one = lights[0]
            one.set_green_time(4.0); one.set_yellow_time(1.5); one.set_red_time(0.5)
            world.tick()
            first = [(l.get_green_time(), l.get_yellow_time(), l.get_red_time()) for l in lights[:2]]
            for light in lights[1:]:
                light.set_green_time(4.0); light.set_yellow_time(1.5); light.set_red_time(0.5)
            world.tick()
            state = one.state
            one.freeze(True)
            held = []
            for _ in range(200):  # 10 s: more than a phase
                world.tick()
                held.append(one.state == state)
            frozen = one.is_frozen()
            group = [l.id for l in one.get_group_traffic_lights()]
            one.reset_group()
            world.tick()
            out(first=first, held=all(held), frozen=frozen, after=one.is_frozen(), group=group)
            """,
        )
        assert r["first"] == [[4.0, 1.5, 0.5], before]  # one light set, the others as they were
        assert r["held"] and r["frozen"] and not r["after"]
        assert len(r["group"]) >= 2
        assert world.sim.state.sig_timing[0].tolist() == [4.0, 1.5, 0.5]  # all alike: the cycle's
    finally:
        for light in world.light_signal:
            for phase, seconds in zip(LIGHT_TIMES, before, strict=True):
                world.set_light_time(light, phase, seconds)
    assert world.sim.state.sig_timing[0].tolist() == before


def test_an_ai_walker_controller_walks_its_walker_along_the_sidewalk(server: CarlaServer) -> None:
    from sim_bridge.frames import map_to_carla
    from sim_bridge.maps.road_map import LaneType

    rm = server.world.road_map
    lanes = rm.sidewalk_lanes
    lane = int(lanes[np.argmax(rm.lane_length[lanes])])
    xy, yaw = rm.pose_at(np.array([lane]), np.array([0.5 * rm.lane_length[lane]]))
    x, y, cyaw = (float(v[0]) for v in map_to_carla(xy[:, 0], xy[:, 1], yaw))
    r = _client(
        server.port,
        f"""
        bp = library.find("walker.pedestrian.0002")
        bp.set_attribute("speed", "1.5")
        walker = world.spawn_actor(bp, carla.Transform(carla.Location(x={x}, y={y}, z=1.0), carla.Rotation(yaw={cyaw})))
        world.tick()
        ai = world.spawn_actor(library.find("controller.ai.walker"), carla.Transform(), attach_to=walker)
        world.tick()
        start = walker.get_location()
        for _ in range(10):
            world.tick()
        still = walker.get_location().distance(start)
        ai.start()
        ai.go_to_location(start + carla.Location(x=20.0))  # the client's navigation: not seen by the server
        ai.set_max_speed(1.5)
        for _ in range(60):  # 3 s
            world.tick()
        end = walker.get_location()
        speed = walker.get_velocity().length()
        ai.stop()
        ai.destroy()
        world.tick()
        world.tick()
        out(still=still, walked=end.distance(start), end=[end.x, end.y], speed=speed,
            after=walker.get_velocity().length(), nav=world.get_random_location_from_navigation())
        walker.destroy()
        """,
    )
    assert r["still"] < 0.01  # a controller not started leaves its walker standing
    assert r["speed"] == pytest.approx(1.5, abs=0.05)  # the walker's speed attribute
    assert 3.0 < r["walked"] < 1.5 * 3.0 + 0.2
    from sim_bridge.frames import carla_to_map

    ex, ey, _ = carla_to_map(r["end"][0], r["end"][1], 0.0)
    proj = rm.project(np.array([[ex, ey]]), np.zeros(1), lane_types=(LaneType.SIDEWALK,), max_distance=1.0)
    assert proj.lane[0] >= 0  # along the sidewalk
    assert r["after"] == 0.0  # its controller destroyed, it stands
    assert r["nav"] is None  # no navigation mesh here


def test_asynchronous_mode_ticks_on_its_own(server: CarlaServer) -> None:
    cfg = CarlaServerConfig(port=0, sim=server.config.sim)  # a fresh server starts asynchronous, as CARLA's
    with CarlaServer(cfg) as other:
        r = _client(
            other.port,
            f"""
            import carla
            client = carla.Client("127.0.0.1", {other.port})
            client.set_timeout(10.0)
            world = client.get_world()
            snaps = [world.wait_for_tick() for _ in range(10)]
            out(sync=world.get_settings().synchronous_mode, frames=[s.frame for s in snaps],
                dts=[s.timestamp.delta_seconds for s in snaps])
            """,
            prelude=False,
        )
    assert r["sync"] is False
    assert r["frames"] == list(range(r["frames"][0], r["frames"][0] + 10))  # every tick, none skipped
    assert r["dts"] == pytest.approx([0.05] * 10)
