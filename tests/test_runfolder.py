"""sim_bridge.runfolder: atomic files under a crash, the field-by-field diff, the resume rule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sim_bridge import runfolder
from sim_bridge.runfolder import (
    SettingsMismatch,
    append_line,
    check_settings,
    differences,
    open_manifest,
    read_lines,
    write_bytes_atomic,
    write_json_atomic,
)


def test_crash_before_rename_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"step": 1})

    def crash(*args: object) -> None:
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"step": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"step": 1}
    assert list(tmp_path.glob(".*.tmp")) == []  # the temporary file is removed on the way out


def test_kill_9_during_writes_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """A child rewrites a 2 MB file in a loop; kill -9 at some instant: the file is complete."""
    path = tmp_path / "big.bin"
    write_bytes_atomic(path, b"A" * 2_000_000)
    script = textwrap.dedent(
        f"""
        from sim_bridge.runfolder import write_bytes_atomic
        print("ready", flush=True)
        i = 0
        while True:
            i += 1
            write_bytes_atomic({str(path)!r}, bytes([65 + i % 26]) * 2_000_000)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    data = path.read_bytes()
    assert len(data) == 2_000_000 and len(set(data)) == 1  # one whole version, never a mixture
    assert runfolder.remove_stale_tmp(tmp_path) >= 0
    assert list(tmp_path.glob(".*.tmp")) == []


def test_append_line_recovers_from_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_line(path, b'{"a": 1}\n')
    with open(path, "ab") as f:
        f.write(b'{"a": 2, "torn')  # a writer killed mid-line
    append_line(path, b'{"a": 3}\n')
    with pytest.warns(UserWarning, match="not a complete record"):
        assert read_lines(path) == [{"a": 1}, {"a": 3}]
    with pytest.raises(ValueError, match="newline"):
        append_line(path, b"{}")


def test_differences_name_every_field_by_dotted_path() -> None:
    stored = {"optim": {"lr": 0.001, "steps": 10}, "model": {"latent": 64}, "seed": 0}
    now = {"optim": {"lr": 0.01, "steps": 20}, "model": {"latent": 64, "extra": 1}, "seed": 0}
    diffs = differences(stored, now, ignore=["optim.steps"])
    assert [d.path for d in diffs] == ["model.extra", "optim.lr"]
    assert diffs[0].describe() == "model.extra: stored <absent>, now 1"
    assert diffs[1].describe("checkpoint") == "optim.lr: checkpoint 0.001, now 0.01"
    assert differences(stored, stored) == []
    with pytest.raises(SettingsMismatch, match=r"optim\.lr: stored 0\.001, now 0\.01") as info:
        check_settings(stored, now, where="out/x", ignore=["optim.steps"])
    assert "out/x" in str(info.value) and "model.extra" in str(info.value)
    assert "optim.steps" not in str(info.value)
    assert [d.path for d in info.value.diffs] == ["model.extra", "optim.lr"]


def test_open_manifest_resumes_only_if_the_settings_match(tmp_path: Path) -> None:
    settings = {"hours": 1.0, "optim": {"lr": 0.1, "steps": 5}}
    first = open_manifest(tmp_path, settings, kind="train", resumable=["optim.steps"])
    assert first["settings"] == settings and first["resumed"] == 0
    assert "code_version" in first and first["started"]
    # a resumable field may change; the manifest then records the new value
    again = open_manifest(tmp_path, {**settings, "optim": {"lr": 0.1, "steps": 9}}, kind="train",
                          resumable=["optim.steps"])  # fmt: skip
    assert again["resumed"] == 1 and again["started"] == first["started"]
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["optim"]["steps"] == 9
    # anything else refuses, naming the fields
    with pytest.raises(SettingsMismatch, match=r"settings\.hours: stored 1\.0, now 2\.0"):
        open_manifest(tmp_path, {**settings, "hours": 2.0}, kind="train", resumable=["optim.steps"])
    with pytest.raises(SettingsMismatch, match=r"kind: stored train, now collect"):
        open_manifest(tmp_path, settings, kind="collect", resumable=["optim.steps"])


def test_code_version_is_the_commit_of_this_checkout() -> None:
    version = runfolder.code_version()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    ).stdout.strip()
    assert version.removesuffix("+dirty") == head
    assert runfolder.code_version("/") == ""


def test_locked_with_busy_refuses_at_once_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from sim_bridge.runfolder import locked
            with locked({str(lock)!r}):
                print("held", flush=True)
                time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = pytest.raises(runfolder.RunFolderBusy, match="another run is here")
        with busy, runfolder.locked(lock, busy="another run is here"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with runfolder.locked(lock, busy="another run is here"):  # released when its holder died
        pass
