"""The backend registry: every command and the Gymnasium environments build their simulator through
it, and every registered backend keeps the observation contract (parametrised over the registry)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra.core.config_store import ConfigStore

from drive import build
from drive.cli import compose_config
from sim_bridge import backends
from sim_bridge.api import MapRef, Simulator, StepEvents, WorldEvents, WorldSpec
from sim_bridge.backends import Backend, BackendConfig, BackendError
from sim_bridge.carla.config import CarlaConfig
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.gym_env import DriveEnv, DriveVectorEnv
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM

#: backends that run on any machine (the CARLA one needs a server: its tests start one)
LOCAL = [name for name in backends.names() if name != "carla"]
SMALL = dict(render_bev=True, max_vehicles=8, max_pedestrians=4, max_statics=2)


@dataclass
class CountingConfig(EmbeddedConfig):
    """A registered test backend: the embedded simulator, counting how often it is built."""

    backend: str = "counting"


BUILT: list[BackendConfig] = []


def _counting(config: CountingConfig) -> Simulator:
    BUILT.append(config)
    return EmbeddedSimulator(config)


@pytest.fixture
def counting() -> Iterator[list[BackendConfig]]:
    backends.register(Backend("counting", CountingConfig, _counting, "test"))
    ConfigStore.instance().store(group="sim", name="counting", node=CountingConfig)
    BUILT.clear()
    yield BUILT
    backends._BACKENDS.pop("counting", None)


def test_world_events_mirror_step_events() -> None:
    assert [f.name for f in dataclasses.fields(WorldEvents)] == [
        f.name for f in dataclasses.fields(StepEvents)
    ]


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(BackendError, match=r"unknown simulator backend 'nope'; known backends: .*embedded"):
        backends.get("nope")
    with pytest.raises(BackendError, match="unknown simulator backend"):
        build.simulator({"backend": "nope"})


def test_a_config_must_belong_to_its_backend() -> None:
    with pytest.raises(BackendError, match="default `backend` is 'embedded'"):
        backends.register(Backend("other", EmbeddedConfig, _counting, "wrong schema"))
    with pytest.raises(BackendError, match="takes a CountingConfig"):
        backends.register(Backend("counting", CountingConfig, _counting, "test"))
        try:
            bad = dataclasses.replace(EmbeddedConfig(), backend="counting")
            backends.make_simulator(bad)
        finally:
            backends._BACKENDS.pop("counting", None)


@pytest.mark.parametrize("name", LOCAL)
def test_every_command_composes_each_backend_to_its_schema(name: str) -> None:
    schema = backends.get(name).config
    for command in ("eval", "collect", "render", "bench_sim", "bench_eval"):
        cfg = compose_config(command, [f"sim={name}"])
        config = build.sim_config(cfg.sim)
        assert type(config) is schema and config.backend == name


@pytest.mark.parametrize("name", LOCAL)
def test_backend_keeps_the_observation_contract_and_is_deterministic(name: str) -> None:
    """Observation shapes and dtypes, events per world, and same seed → same result."""
    schema = backends.get(name).config
    config = dataclasses.replace(schema(), num_worlds=2, **SMALL)
    spec = WorldSpec(map=MapRef("straight"), vehicles=3, pedestrians=2, route_length=150.0)
    runs = []
    for _ in range(2):
        with backends.make_simulator(config) as sim:
            obs = sim.reset(spec, seed=[5, 6])
            g = config.bev
            assert obs.bev.shape == (2, g.num_channels, g.size, g.size) and obs.bev.dtype == np.uint8
            assert obs.ego.shape == (2, EGO_DIM) and obs.objects.shape == (2, config.max_objects, OBJECT_DIM)
            trace = []
            for _ in range(10):
                obs, ev = sim.step(np.array([[0.5, 0.0], [0.2, 0.1]]))
                assert isinstance(ev.world(1), WorldEvents)
                trace.append((obs.ego.copy(), ev.ego_x.copy(), ev.route_progress.copy()))
            runs.append(trace)
    for (a_ego, a_x, a_p), (b_ego, b_x, b_p) in zip(*runs, strict=True):
        assert np.array_equal(a_ego, b_ego) and np.array_equal(a_x, b_x) and np.array_equal(a_p, b_p)


def test_gym_envs_build_through_the_registry(counting: list[BackendConfig]) -> None:
    env = DriveEnv(config=CountingConfig(**SMALL), spec=WorldSpec(map=MapRef("straight"), vehicles=0))
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    env.close()
    vec = DriveVectorEnv(num_envs=3, config=CountingConfig(**SMALL), spec=WorldSpec(map=MapRef("straight")))
    vec.close()
    assert [c.num_worlds for c in counting] == [1, 3]


def test_commands_build_their_simulator_through_the_registry(
    counting: list[BackendConfig], tmp_path: Path
) -> None:
    """``drive render`` and ``drive eval`` (inline executor) with ``sim=counting`` build that backend."""
    from drive.pipelines import eval as eval_pipeline
    from drive.pipelines import render

    cfg = compose_config(
        "render", ["sim=counting", "world.town=straight", "steps=3", f"out={tmp_path}/r.gif"]
    )
    assert render.run(cfg) == 0
    assert len(counting) == 1 and (tmp_path / "r.gif").exists()
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: one\nentries:\n  - file: scenarios/examples/lead_brake_straight.yaml\n")
    cfg = compose_config(
        "eval",
        ["sim=counting", "agent=lane_follower", "executor=inline", f"out={tmp_path}/eval", "tensorboard=false",
         "worst_gifs=0", f"suite_file={suite}"],
    )  # fmt: skip
    eval_pipeline.run(cfg)
    assert len(counting) >= 2 and all(isinstance(c, CountingConfig) for c in counting)


def test_the_carla_backend_builds_through_the_registry_and_keeps_the_contract() -> None:
    """``sim=carla`` against ``drive``'s own CARLA-protocol server: the registry builds the CARLA
    backend from the composed config, and its observations have the contract's shapes (the real
    ``carla`` client runs in a subprocess)."""
    pytest.importorskip("carla")
    import json
    import os
    import subprocess
    import sys
    import textwrap

    from sim_bridge.carla_server import CarlaServer, CarlaServerConfig

    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(
        """
        import json
        import numpy as np
        from drive import build
        from drive.cli import compose_config
        from sim_bridge.api import MapRef, WorldSpec

        cfg = compose_config("eval", ["sim=carla", "sim.port={port}", "sim.tm_port={tm}", "sim.timeout=20"])
        sim = build.simulator(cfg.sim, num_worlds=1, threads=1)
        obs = sim.reset(WorldSpec(map=MapRef("straight"), vehicles=2, pedestrians=0, route_length=100.0), seed=3)
        for _ in range(5):
            obs, ev = sim.step(np.array([[0.5, 0.0]]))
        print("RESULT " + json.dumps({{"type": type(sim).__name__, "bev": list(obs.bev.shape),
                                      "ego": list(obs.ego.shape), "objects": list(obs.objects.shape),
                                      "speed": float(ev.ego_speed[0])}}))
        sim.close()
        """
    )
    with CarlaServer(CarlaServerConfig(port=0, sim=EmbeddedConfig(num_worlds=1, threads=1))) as server:
        tm = server.port + 17
        proc = subprocess.run(
            [sys.executable, "-c", code.format(port=server.port, tm=tm)],
            env={**os.environ, "PYTHONPATH": str(root), "NUMBA_NUM_THREADS": "1"},
            capture_output=True, text=True, timeout=300, cwd=root,
        )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    out = json.loads(lines[-1][len("RESULT ") :])
    g = CarlaConfig().bev
    assert out["type"] == "CarlaSimulator"
    assert out["bev"] == [1, g.num_channels, g.size, g.size] and out["ego"] == [1, EGO_DIM]
    assert out["objects"] == [1, CarlaConfig().max_objects, OBJECT_DIM] and out["speed"] > 0.0
