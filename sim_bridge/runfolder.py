"""Run folders: the one implementation of atomic files, settings manifests, "resume only if the
settings match" and the code version, used by every long command (``drive eval``, ``collect``,
``train``, ``train-bc``, ``curve``) and by the stores under them (``scenarios.results``,
``world_model.shards``, ``world_model.train``).

Why here. ``world_model`` may import neither ``scenarios`` nor ``drive``, ``scenarios`` may not import
``world_model``, and all of them import ``sim_bridge`` (the bottom layer, see DESIGN.md). This module
uses only the standard library, so it adds no dependency to any of them.

Atomic files
    :func:`write_bytes_atomic` writes a temporary file in the target's folder, ``fsync``-s it,
    ``os.replace``-s it over the target (an atomic rename on POSIX) and ``fsync``-s the folder: a
    reader, or a ``kill -9`` at any instant, sees the old complete file or the new complete one.
    :func:`append_line` appends one complete line with one ``O_APPEND`` write and ``fsync``; a line
    torn by a kill is skipped by :func:`read_lines`.

Settings
    A run's settings are plain JSON values (nested dicts). :func:`differences` compares two of them
    field by field, by dotted path (``optim.lr``), ignoring the paths a resume may change;
    :func:`check_settings` raises :class:`SettingsMismatch` naming every differing field with its
    stored and new values. :func:`open_manifest` is the whole rule for a run folder's
    ``run.json``-style manifest: create it, or resume only if the settings match.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FieldDiff",
    "RunFolderBusy",
    "SettingsMismatch",
    "append_line",
    "check_settings",
    "code_version",
    "differences",
    "fsync_dir",
    "locked",
    "open_manifest",
    "plain",
    "read_lines",
    "remove_stale_tmp",
    "write_bytes_atomic",
    "write_json_atomic",
]


class RunFolderBusy(RuntimeError):
    """Another process holds a run folder's lock (the message says which and what to do)."""


class SettingsMismatch(ValueError):
    """A run folder holds a run with other settings (the message names every differing field)."""

    def __init__(self, message: str, diffs: list[FieldDiff]) -> None:
        super().__init__(message)
        self.diffs = diffs


# ---------------------------------------------------------------------------------------------
# atomic files


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory entry change (create, rename) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: readers (and a crash at any instant) see either the
    old file or the new one. Written to a temporary file in the same directory, fsynced, renamed.
    Creates missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`write_bytes_atomic`).
    NaN and infinities are refused (they are not JSON)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode())


def remove_stale_tmp(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files (``.<name>.*.tmp``) a kill during an atomic write left in
    ``folder``; returns how many. Call it only while no other process writes there."""
    count = 0
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            count += 1
    return count


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], busy: str = "") -> Iterator[None]:
    """Exclusive advisory ``flock`` on ``path`` (released by the kernel if the process dies). With
    ``busy``, a lock held elsewhere raises :class:`RunFolderBusy` with that message at once
    instead of waiting for it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise RunFolderBusy(busy) from None
        yield
    finally:
        os.close(fd)


def append_line(path: str | os.PathLike[str], line: bytes) -> None:
    """Append ``line`` (one complete line, ending in ``\\n``) to ``path`` with one ``O_APPEND``
    write and ``fsync``. If the file ends in a torn line (a writer killed mid-write), the new line
    starts on a fresh one. Callers that append from several processes hold :func:`locked`."""
    if not line.endswith(b"\n"):
        raise ValueError("append_line: the line must end with a newline")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)  # read: the tail check
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write to {path} ({written} of {len(line)} bytes): disk full?")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order; a line that does not parse (torn by a
    kill) is skipped with a warning; a missing file reads as empty."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            warnings.warn(f"{path}: line {number} is not a complete record ({e}); ignored", stacklevel=2)
            continue
        out.append(obj)
    return out


# ---------------------------------------------------------------------------------------------
# code version


def code_version(repo: str | os.PathLike[str] | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding this package (or ``repo``), with ``+dirty``
    when the work tree has changes; ``""`` where git or the repository is not available."""
    cwd = Path(repo) if repo is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------
# settings


def plain(obj: Any) -> Any:
    """JSON round trip: what a manifest file will hold (tuples → lists, keys → str)."""
    return json.loads(json.dumps(obj, sort_keys=True, allow_nan=False))


_ABSENT = "<absent>"


@dataclass(frozen=True)
class FieldDiff:
    """One field in which two settings differ: its dotted ``path`` and both values (``<absent>``
    where one side lacks it)."""

    path: str
    stored: Any
    now: Any

    def describe(self, old: str = "stored") -> str:
        """``"optim.lr: stored 0.001, now 0.01"`` (``old`` names the stored side)."""
        return f"{self.path}: {old} {self.stored}, now {self.now}"


def _ignored(path: str, ignore: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in ignore)


def differences(stored: Any, now: Any, *, ignore: Iterable[str] = (), prefix: str = "") -> list[FieldDiff]:
    """Every field in which two plain settings differ, by dotted path (``config.planner.horizon``),
    sorted; nested dicts are compared key by key, anything else as a whole. Paths in ``ignore``
    (and everything under them) do not count."""
    ignore = tuple(ignore)
    if isinstance(stored, dict) and isinstance(now, dict):
        out: list[FieldDiff] = []
        for key in sorted(set(stored) | set(now), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if _ignored(path, ignore):
                continue
            if key not in stored or key not in now:
                out.append(FieldDiff(path, stored.get(key, _ABSENT), now.get(key, _ABSENT)))
            else:
                out.extend(differences(stored[key], now[key], ignore=ignore, prefix=path))
        return out
    return [] if stored == now else [FieldDiff(prefix, stored, now)]


def check_settings(
    stored: Any, now: Any, *, where: str, ignore: Iterable[str] = (), advice: str = ""
) -> None:
    """Raise :class:`SettingsMismatch` if ``stored`` and ``now`` differ outside ``ignore``; the
    message names ``where``, every differing field with both values, and ``advice``."""
    diffs = differences(plain(stored), plain(now), ignore=ignore)
    if diffs:
        raise SettingsMismatch(
            f"{where} holds a run with other settings; differing fields: "
            + "; ".join(d.describe() for d in diffs)
            + ". "
            + (advice or "Use the stored settings to resume, or give a new out folder."),
            diffs,
        )


def open_manifest(
    folder: str | os.PathLike[str],
    settings: dict[str, Any],
    *,
    kind: str,
    file: str = "run.json",
    resumable: Iterable[str] = (),
    advice: str = "",
) -> dict[str, Any]:
    """Start or resume the run in ``folder``: the manifest ``folder/file`` holds ``kind``, the
    ``settings``, the code version and the start time.

    A new folder gets the manifest (atomically). An existing one is a resume, allowed only if its
    kind and settings match (but for the dotted paths in ``resumable``); else
    :class:`SettingsMismatch` names every differing field. On a resume the stored settings are
    updated to ``settings`` (the resumable fields may have changed) and a different code version
    warns. Returns the manifest in force."""
    path = Path(folder) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    now = {"kind": kind, "settings": plain(settings)}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path} is not a valid run manifest ({e}); delete it or use a new folder"
            ) from e
        check_settings(
            {"kind": stored.get("kind"), "settings": stored.get("settings")},
            now,
            where=str(folder),
            ignore=[f"settings.{p}" for p in resumable],
            advice=advice,
        )
        version = code_version()
        if stored.get("code_version") != version:
            warnings.warn(
                f"{folder}: resuming a run started at code version {stored.get('code_version') or '?'} "
                f"with code version {version or '?'}",
                stacklevel=2,
            )
        stored["settings"] = now["settings"]
        stored.setdefault("resumed", 0)
        stored["resumed"] += 1
        write_json_atomic(path, stored)
        return dict(stored)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest = {**now, "code_version": code_version(), "started": started, "resumed": 0}
    write_json_atomic(path, manifest)
    return manifest
