"""Suites through the CARLA backend against ``drive serve-carla``, and its server faults.

``drive eval sim=carla`` runs in a subprocess (the real ``carla`` client crashes its process on a
protocol mistake); the servers run as ``drive serve-carla`` subprocesses (or in this process where
the test needs to change one), on free ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("carla")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
DRIVE = [sys.executable, "-m", "drive.cli"]


def _free_port() -> int:
    """A port whose successor is free too (the server's streams use port + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free pair of ports")


def _serve(port: int) -> subprocess.Popen:
    """``drive serve-carla port=…``, returned once it serves."""
    proc = subprocess.Popen(
        [*DRIVE, "serve-carla", f"port={port}"], env=ENV, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("serving") or not line:
            break
    assert line.startswith("serving"), line
    return proc


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def _final(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in _records(out) if r["status"] != "started"}


def _eval(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DRIVE, "eval", "agent=expert", "worst_gifs=0", "tensorboard=false", *args],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = _free_port()
    proc = _serve(port)
    try:
        yield port
    finally:
        _stop(proc.pid)
        proc.wait(timeout=60)


def test_smoke_suite_through_the_bridge_agrees_with_the_embedded_run(server: int, tmp_path: Path) -> None:
    carla = _eval(
        "sim=carla", f"sim.port={server}", f"sim.tm_port={_free_port()}", "sim.timeout=60",
        "suite=smoke", f"out={tmp_path / 'carla'}",
    )  # fmt: skip
    assert carla.returncode == 0, carla.stderr[-3000:]
    embedded = _eval("suite=smoke", "executor=inline", f"out={tmp_path / 'embedded'}")
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    c, e = _final(tmp_path / "carla"), _final(tmp_path / "embedded")
    assert set(c) == set(e) and len(c) == 4
    for name in e:
        # Same scenario, seed and expert; the states differ by the wire (float32 poses), the spawn
        # 0.5 m above the road, and the scenario triggers being read once per decision (0.1 s) by
        # the bridge instead of every physics step (0.05 s): a step or two, never an outcome.
        assert c[name]["status"] == e[name]["status"] == "done", (name, c[name].get("error"))
        assert c[name]["termination"] == e[name]["termination"], name
        assert c[name]["route_completion"] == pytest.approx(e[name]["route_completion"], abs=2.0), name
        dc, de = c[name]["scores"]["driving_score"], e[name]["scores"]["driving_score"]
        assert dc == pytest.approx(de, abs=2.0), name
        assert sorted(i["kind"] for i in c[name]["infractions"]) == sorted(
            i["kind"] for i in e[name]["infractions"]
        ), name
        assert c[name]["sim_time"] == pytest.approx(e[name]["sim_time"], abs=0.5), name
    summary = json.loads((tmp_path / "carla" / "summary.json").read_text())
    assert summary["run"]["realtime_factor"] > 0.0
    # the worker closed its simulator on its way out: nothing of the last episode is left on the
    # server (its ego would drive on into whatever the next client runs)
    assert _actors_on(server) == []


def _actors_on(port: int) -> list[str]:
    """The vehicles, walkers, sensors and controllers on the server at ``port`` (a client in a
    subprocess, on an up-to-date world state)."""
    code = textwrap.dedent(
        f"""
        import carla
        client = carla.Client("127.0.0.1", {port}); client.set_timeout(20.0)
        world = client.get_world()
        world.tick() if world.get_settings().synchronous_mode else world.wait_for_tick(20.0)
        kinds = ("vehicle", "walker", "sensor", "controller")
        print("ACTORS", ",".join(sorted(a.type_id for a in world.get_actors() if a.type_id.split(".")[0] in kinds)))
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("ACTORS"))
    return [t for t in line[len("ACTORS ") :].split(",") if t]


def test_no_server_is_one_error_before_anything_runs(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "absent"
    r = _eval("sim=carla", f"sim.port={port}", "sim.timeout=1", "suite=smoke", f"out={out}", timeout=300)
    assert r.returncode == 1
    err = r.stderr
    assert f"127.0.0.1:{port}" in err and "0.9.16" in err and "within 1 s" in err
    assert f"drive serve-carla port={port}" in err  # what to do
    assert not out.exists()  # nothing ran, nothing recorded


def test_a_server_of_another_version_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from sim_bridge.carla_server import CarlaServer, CarlaServerConfig, wire
    from sim_bridge.embedded.config import EmbeddedConfig

    cfg = CarlaServerConfig(port=0, sim=EmbeddedConfig(num_worlds=1, threads=1, render_bev=False))
    with CarlaServer(cfg) as srv:

        def old_version(cid: int, *args: object) -> list:
            return wire.ok("0.9.15")

        srv._handlers["version"] = old_version
        out = tmp_path / "old"
        r = _eval(
            "sim=carla", f"sim.port={srv.port}", "sim.timeout=20", "suite=smoke", f"out={out}", timeout=300
        )
    assert r.returncode == 1
    assert "version 0.9.15" in r.stderr and "0.9.16" in r.stderr and f"127.0.0.1:{srv.port}" in r.stderr
    assert not out.exists()


def test_workers_above_one_per_server_are_refused(tmp_path: Path) -> None:
    r = _eval("sim=carla", "workers=2", "suite=smoke", f"out={tmp_path / 'w'}", timeout=300)
    assert r.returncode == 1 and "workers=2" in r.stderr and "one world per server" in r.stderr
    bench = subprocess.run([*DRIVE, "bench", "eval", "sim=carla"], env=ENV, cwd=ROOT, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert bench.returncode == 1 and "workers=2" in bench.stderr  # its default is 2


def test_a_server_killed_mid_suite_is_restarted_and_the_suite_completes(tmp_path: Path) -> None:
    port = _free_port()
    first = _serve(port)
    out = tmp_path / "killed"
    restart = f"{sys.executable} -m drive.cli serve-carla port={port}"
    cmd = [
        *DRIVE, "eval", "agent=expert", "worst_gifs=0", "tensorboard=false", "sim=carla",
        f"sim.port={port}", f"sim.tm_port={_free_port()}", "sim.timeout=20", f"sim.restart_command='{restart}'",
        "suite=smoke", f"out={out}",
    ]  # fmt: skip
    log = tmp_path / "eval.log"
    restarted: list[int] = []
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while "[1/4]" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # the second episode is under way
        _stop(first.pid)  # the server dies mid-episode
        first.wait(timeout=60)
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        text = log.read_text()
        restarted = [int(w.split()[-1]) for w in text.splitlines() if "started the CARLA server: pid" in w]
        for pid in restarted:
            _stop(pid)
        if proc.poll() is None:
            proc.kill()
    assert len(restarted) == 1, text[-3000:]  # restarted once, by sim.restart_command
    # the interrupted episode was recorded crashed (the log line; the run folder keeps the final
    # record of each episode once compacted), naming the server, then run again
    crashed = [ln for ln in text.splitlines() if "'status': 'crashed'" in ln]
    assert crashed, text[-3000:]
    assert any(f"127.0.0.1:{port}" in ln for ln in text.splitlines() if " crashed: " in ln), text[-3000:]
    final = _final(out)
    assert len(final) == 4 and all(r["status"] == "done" for r in final.values()), final
    # every episode completes its route, the re-run one too: no actor of an earlier episode stands
    # in its way (a dead worker's ego and lead car once did, when the next client listed the
    # server's actors before its first world state had arrived)
    assert all(r["route_completion"] > 90.0 for r in final.values()), final
    assert "running them again" in text


def test_drive_bench_carla_prints_one_json_line_per_measurement(tmp_path: Path) -> None:
    suite = tmp_path / "one.yaml"
    suite.write_text(
        f"name: one\nentries:\n  - file: {ROOT / 'scenarios/examples/crossing_pedestrian.yaml'}\n"
    )
    r = subprocess.run(
        [*DRIVE, "bench", "carla", "ticks=20", "npcs=3", "benches=[wire_npc_driver,embedded_tick,suite_bridge]",
         f"suite_file={suite}"],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    lines = {
        d["bench"]: d for d in map(json.loads, (ln for ln in r.stdout.splitlines() if ln.startswith("{")))
    }
    assert set(lines) == {"wire_npc_driver", "embedded_tick", "suite_bridge"}, r.stdout
    assert lines["wire_npc_driver"]["ticks_per_s"] > 0 and lines["wire_npc_driver"]["npcs_moving"] == 3
    assert lines["embedded_tick"]["ticks_per_s"] > 0
    suite_line = lines["suite_bridge"]
    assert suite_line["episodes"] == suite_line["done"] == 1 and suite_line["realtime_factor"] > 0
    assert suite_line["mean_driving_score"] == 100.0  # the expert lets the pedestrian cross


def test_a_run_folder_resumes_across_a_new_server_address() -> None:
    from sim_bridge.backends import results_settings

    carla = {"backend": "carla", "host": "10.0.0.5", "port": 2010, "timeout": 3.0, "tm_port": 8010,
             "restart_command": "drive serve-carla port=2010", "physics_dt": 0.05, "max_actors": 64}  # fmt: skip
    assert results_settings(carla) == {"backend": "carla", "physics_dt": 0.05, "max_actors": 64}
    embedded = {"backend": "embedded", "threads": 1, "physics_dt": 0.05}
    assert results_settings(embedded) == embedded  # nothing of the embedded backend is an address
