"""ResultStore: JSON-lines records with resume, crash safety (kill -9 of a writer or a compactor),
run manifests and atomic JSON files."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.records import EpisodeResult, Infraction, InfractionKind, Status
from scenarios.results import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ManifestMismatch,
    ResultStore,
    RunManifest,
    write_json_atomic,
)

REPO = Path(__file__).resolve().parents[1]


def episode(name: str, status: Status = Status.DONE, **changes: object) -> EpisodeResult:
    return EpisodeResult(name=name, family="cut_in", params={"gap": 12.5}, seed=3, status=status, **changes)  # type: ignore[arg-type]


# -- round trip, last line wins, resume logic -------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    full = episode(
        "a",
        agent="expert",
        termination="route_completed",
        route_length=120.0,
        route_completion=100.0,
        infractions=[Infraction(InfractionKind.RED_LIGHT, 3.5, 1.0, -2.0, actor=4, at_fault=True)],
        min_speed_ratios=[0.5, 1.25],
        scores={"driving_score": 70.0},
    )
    store.mark_started(episode("a", Status.STARTED))
    store.record(full)
    assert ResultStore(tmp_path).load() == {"a": full}  # a fresh store reads what the first wrote
    assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 2  # STARTED then DONE


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(list(Status))), max_size=15))
def test_last_line_per_name_wins_and_pending_follows_status(writes: list[tuple[str, Status]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = ResultStore(d)
        expected: dict[str, Status] = {}
        for i, (name, status) in enumerate(writes):
            result = episode(name, status, sim_time=float(i))
            store.mark_started(result) if status == Status.STARTED else store.record(result)
            expected[name] = status
        loaded = store.load()
        assert {n: r.status for n, r in loaded.items()} == expected
        last_index = {name: i for i, (name, _) in enumerate(writes)}
        assert {n: r.sim_time for n, r in loaded.items()} == {n: float(i) for n, i in last_index.items()}
        finished = {n for n, s in expected.items() if s in (Status.DONE, Status.AGENT_ERROR)}
        assert store.finished() == finished
        assert store.pending("dcbae") == [n for n in "dcbae" if n not in finished]
        assert store.compact() == len(expected)
        assert {n: r.status for n, r in store.load().items()} == expected
        assert len(Path(d, RESULTS_FILE).read_text().splitlines()) == len(expected)


def test_crashed_and_started_episodes_are_retried_on_resume(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for name, status in [("done", Status.DONE), ("agent", Status.AGENT_ERROR), ("crash", Status.CRASHED)]:
        store.mark_started(episode(name, Status.STARTED))
        store.record(episode(name, status))
    store.mark_started(episode("interrupted", Status.STARTED))
    assert store.finished() == {"done", "agent"}
    assert store.pending(["never", "crash", "done", "interrupted", "agent"]) == [
        "never",
        "crash",
        "interrupted",
    ]


def test_wrong_status_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    with pytest.raises(ValueError, match="use record"):
        store.mark_started(episode("a", Status.DONE))
    with pytest.raises(ValueError, match="final status"):
        store.record(episode("a", Status.STARTED))
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        store.pending(["a", "b", "a"])
    assert (tmp_path / RESULTS_FILE).read_text() == ""


# -- torn lines ---------------------------------------------------------------------------------


def test_torn_last_line_is_ignored_with_a_warning_and_the_next_append_starts_afresh(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.record(episode("a"))
    store.mark_started(episode("b", Status.STARTED))
    line = json.dumps(episode("b").to_dict()) + "\n"
    with open(tmp_path / RESULTS_FILE, "a") as f:
        f.write(line[: len(line) // 2])  # a writer killed in the middle of its line
    with pytest.warns(UserWarning, match="last line is not a complete record"):
        loaded = store.load()
    assert {n: r.status for n, r in loaded.items()} == {"a": Status.DONE, "b": Status.STARTED}
    with pytest.warns(UserWarning, match="last line"):
        assert store.pending(["a", "b"]) == ["b"]

    store.record(episode("c"))  # lands on its own line, not glued to the torn one
    with pytest.warns(UserWarning, match="line 3 is not a complete record"):
        assert set(store.load()) == {"a", "b", "c"}
    with pytest.warns(UserWarning, match="line 3"):
        store.compact()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {n: r.status for n, r in store.load().items()} == {
            "a": Status.DONE,
            "b": Status.STARTED,
            "c": Status.DONE,
        }


# -- crash safety with real processes ---------------------------------------------------------------

APPENDER = textwrap.dedent(
    """
    import sys
    from scenarios.records import EpisodeResult, Status
    from scenarios.results import ResultStore
    store = ResultStore(sys.argv[1])
    pad = "x" * 100_000  # long lines: a kill often lands inside a write
    i = 0
    while True:
        store.record(EpisodeResult(name=f"ep{i}", status=Status.DONE, error=pad))
        print(i, flush=True)  # acknowledged: record() has returned
        i += 1
    """
)

COMPACTOR = textwrap.dedent(
    """
    import sys
    from scenarios.results import ResultStore
    store = ResultStore(sys.argv[1])
    while True:
        print(store.compact(), flush=True)
    """
)


def _run_then_kill(script: str, out_dir: Path, acknowledgements: int, seed: int) -> list[str]:
    """Start ``script``, wait for some acknowledgements, SIGKILL it at a random instant; return
    every line it printed (each printed after the operation it acknowledges returned)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(out_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    printed = []
    for _ in range(acknowledgements):
        line = proc.stdout.readline()
        assert line, f"the writer subprocess ended early (exit code {proc.poll()})"
        printed.append(line.strip())
    time.sleep(random.Random(seed).uniform(0.0, 0.02))
    os.kill(proc.pid, signal.SIGKILL)
    printed += [line.strip() for line in proc.stdout]  # acknowledged before the kill
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return printed


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_of_an_appender_loses_no_acknowledged_record(tmp_path: Path, seed: int) -> None:
    acknowledged = _run_then_kill(APPENDER, tmp_path, acknowledgements=10, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn last line is allowed (and ignored)
        loaded = ResultStore(tmp_path).load()
    expected = {f"ep{i}" for i in acknowledged}
    assert expected <= set(loaded)
    assert set(loaded) <= expected | {f"ep{len(acknowledged)}"}  # at most the one being written
    assert all(r.status == Status.DONE and len(r.error) == 100_000 for r in loaded.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_during_compact_leaves_a_complete_file(tmp_path: Path, seed: int) -> None:
    store = ResultStore(tmp_path)
    pad = "y" * 20_000
    for i in range(60):  # 120 lines, 60 episodes: every compact rewrites a ~1 MB file
        store.mark_started(episode(f"ep{i}", Status.STARTED, error=pad))
        store.record(episode(f"ep{i}", error=pad))
    printed = _run_then_kill(COMPACTOR, tmp_path, acknowledgements=3, seed=seed)
    assert set(printed) == {"60"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torn line, ever
        loaded = store.load()
    assert set(loaded) == {f"ep{i}" for i in range(60)}
    assert all(r.status == Status.DONE for r in loaded.values())
    assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 60
    store.compact()
    assert not list(tmp_path.glob(".*.tmp"))  # a temporary file left by the kill is cleaned


def _append_many(out_dir: str, worker: int, count: int) -> None:
    store = ResultStore(out_dir)
    for i in range(count):
        store.record(episode(f"w{worker}-{i}", error="z" * (1000 * (i % 7))))


def test_concurrent_appenders_never_interleave(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ResultStore(tmp_path).load()
    assert set(loaded) == {f"w{w}-{i}" for w in range(3) for i in range(40)}
    assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 120


# -- manifest -------------------------------------------------------------------------------------


def manifest(**changes: object) -> RunManifest:
    base = RunManifest(
        suite="exam",
        agent="wm_planner",
        config={"planner": {"horizon": 16, "samples": 256}, "sim": {"dt": 0.1}},
        code_version="abc123",
        started="2026-01-01T00:00:00+00:00",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_manifest_is_written_then_a_compatible_resume_keeps_it(tmp_path: Path) -> None:
    first = manifest()
    assert ResultStore(tmp_path).open_run(first) == first
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["config"]["planner"]["horizon"] == 16
    later = manifest(started="2026-01-02T00:00:00+00:00")
    assert ResultStore(tmp_path).open_run(later) == first  # start time of the first start stays
    with pytest.warns(UserWarning, match="code version abc123 with code version def456"):
        ResultStore(tmp_path).open_run(manifest(code_version="def456"))


def test_manifest_mismatch_names_every_differing_field(tmp_path: Path) -> None:
    ResultStore(tmp_path).open_run(manifest())
    other = manifest(
        suite="train",
        config={"planner": {"horizon": 8, "samples": 256}, "sim": {"dt": 0.1, "threads": 1}},
    )
    with pytest.raises(ManifestMismatch) as err:
        ResultStore(tmp_path).open_run(other)
    message = str(err.value)
    for fieldname in ("suite", "config.planner.horizon", "config.sim.threads"):
        assert fieldname in message
    for same in ("agent,", "config.planner.samples", "config.sim.dt"):
        assert same not in message
    assert "force=True" in message
    with pytest.warns(UserWarning, match="force=True"):
        assert ResultStore(tmp_path).open_run(other, force=True) == other
    assert ResultStore(tmp_path).read_manifest() == other


def test_manifest_config_compares_as_json(tmp_path: Path) -> None:
    ResultStore(tmp_path).open_run(manifest(config={"size": (96, 96)}))
    ResultStore(tmp_path).open_run(manifest(config={"size": [96, 96]}))  # same once written


def test_manifest_create_records_code_version_and_time() -> None:
    m = RunManifest.create("exam", "expert", {"seed": 1})
    assert m.started.endswith("+00:00")
    if (REPO / ".git").exists():
        assert len(m.code_version.split("+")[0]) == 40


# -- atomic JSON ----------------------------------------------------------------------------------


def test_write_json_atomic_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": [1, 2.5], "b": "x"})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": "x"}
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # refused before anything is written
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left
