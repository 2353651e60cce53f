"""The results of a suite run: a crash-safe, resumable store of episode records, and the run's
manifest.

A run owns one directory (``out_dir``)::

    out_dir/
      manifest.json    RunManifest: suite, agent, config, code version, start time (atomic write)
      results.jsonl    one JSON line per state change of an episode, keyed by EpisodeResult.name
      results.lock     advisory lock file (appends and compaction exclude each other)
      run.lock         the pid of the process running the suite (:meth:`ResultStore.owned`)

An episode is written ``STARTED`` before it runs (:meth:`ResultStore.mark_started`), then once more
with its final status (:meth:`ResultStore.record`). :meth:`ResultStore.load` keeps the last line of
each name. On resume, :meth:`ResultStore.pending` returns the episodes to run again: every name that
is not *finished*.

Which episodes are finished
    ``DONE`` and ``AGENT_ERROR``: the agent had its chance and its outcome is a result (an agent
    that raises scores as it scores; re-running it would give the same answer).
    ``CRASHED`` is **retried** on resume: a crash is a failure of the simulator or of the
    infrastructure (a killed worker, a CARLA time-out), never the agent's result, and is never
    silently scored. ``STARTED`` (the process died during the episode) is retried too.

Why a ``kill -9`` at any instant loses nothing already finished
    * Every record is one ``os.write`` of one complete line (``json + "\\n"``) on a descriptor
      opened with ``O_APPEND``, then ``os.fsync``. :meth:`record` returns only after both, so a
      finished episode is on disk before the runner moves on. Data written by ``write`` is in the
      kernel's page cache and survives the death of the process; ``fsync`` makes it survive a power
      cut or an OS crash too.
    * ``O_APPEND`` makes the seek-to-end and the write one atomic step, so lines from several
      processes never interleave. The lock serialises appenders anyway, so an appender can check
      that the file ends in a newline and start on a fresh line after a torn one.
    * A kill can tear only the line being written at that instant. That line is the *newer* state
      of one episode; its older line (or none) stays, so the episode reads as not finished and is
      re-run. :meth:`load` skips the torn line with a warning.
    * :meth:`compact` writes the compacted file to a temporary file in the same directory, fsyncs
      it, ``os.replace``-s it over ``results.jsonl`` (an atomic rename) and fsyncs the directory: a
      kill leaves either the old complete file or the new complete file, never a mixture. It holds
      the lock, so no append can land in the file being replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.records import EpisodeResult, Status
from sim_bridge import runfolder
from sim_bridge.runfolder import code_version, write_bytes_atomic, write_json_atomic

_plain = runfolder.plain
_fsync_dir = runfolder.fsync_dir

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "results.lock"
RUN_LOCK_FILE = "run.lock"

FINISHED = frozenset({Status.DONE, Status.AGENT_ERROR})
"""Final statuses that are not re-run on resume (``CRASHED`` and ``STARTED`` are)."""


class ManifestMismatch(ValueError):
    """The run directory holds a run of another suite, agent or config."""


class RunBusy(RuntimeError):
    """Another live process is running a suite into the same run directory."""


# ---------------------------------------------------------------------------------------------
# manifest (atomic files, the code version and the field-by-field diff: sim_bridge.runfolder)


def _diff_paths(a: Any, b: Any, prefix: str) -> list[str]:
    """Dotted paths where two plain JSON values differ (``config.planner.horizon``)."""
    return [d.path for d in runfolder.differences(a, b, prefix=prefix)]


@dataclass(frozen=True)
class RunManifest:
    """What a run directory holds results of. ``suite``, ``agent`` and ``config`` must match when a
    run is resumed; ``code_version`` and ``started`` are informative."""

    suite: str
    """Suite name."""
    agent: str
    """Agent name (and checkpoint, where the caller includes it)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved run config (plain JSON values)."""
    code_version: str = ""
    """``git rev-parse HEAD`` (``+dirty`` if modified), ``""`` if unknown."""
    started: str = ""
    """Start time of the run, ISO 8601 UTC."""

    @classmethod
    def create(cls, suite: str, agent: str, config: dict[str, Any]) -> RunManifest:
        """A manifest for a run starting now, with the current code version."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(suite=suite, agent=agent, config=_plain(config), code_version=code_version(), started=now)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: RunManifest) -> list[str]:
        """Fields (dotted paths inside ``config``) in which two runs differ; ``[]`` if compatible."""
        out = [name for name in ("suite", "agent") if getattr(self, name) != getattr(other, name)]
        return out + _diff_paths(_plain(self.config), _plain(other.config), "config")


# ---------------------------------------------------------------------------------------------
# store


class ResultStore:
    """Episode records of one run, as JSON lines in ``out_dir/results.jsonl`` (see the module
    docstring for the file layout, the resume rule and the crash-safety argument).

    Safe to use from several processes at once (each append is one locked ``O_APPEND`` write).
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RESULTS_FILE
        self.manifest_path = self.out_dir / MANIFEST_FILE
        self._lock_path = self.out_dir / LOCK_FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
            _fsync_dir(self.out_dir)

    # -- manifest ---------------------------------------------------------------------------

    def open_run(self, manifest: RunManifest, *, force: bool = False) -> RunManifest:
        """Start or resume the run described by ``manifest``; returns the manifest in force.

        A new directory gets ``manifest`` written (atomically). A directory with a manifest is a
        resume: its suite, agent and config must equal ``manifest``'s, else
        :class:`ManifestMismatch` names every differing field. With ``force=True`` a mismatching
        manifest is replaced by ``manifest`` (the old records stay and are resumed). A different
        code version only warns. On a compatible resume the stored manifest is kept (its start
        time is that of the run's first start).
        """
        if not self.manifest_path.exists():
            write_json_atomic(self.manifest_path, manifest.to_dict())
            return manifest
        stored = self.read_manifest()
        assert stored is not None
        diff = stored.differences(manifest)
        if diff and not force:
            raise ManifestMismatch(
                f"{self.out_dir} holds results of another run: {', '.join(diff)} differ "
                f"(stored suite={stored.suite!r} agent={stored.agent!r}; "
                f"now suite={manifest.suite!r} agent={manifest.agent!r}). "
                "Use a new output directory, or pass force=True to resume into this one anyway."
            )
        if diff:
            warnings.warn(
                f"{self.out_dir}: resuming with different {', '.join(diff)} (force=True); "
                "the records already there were produced with the old values",
                stacklevel=2,
            )
            write_json_atomic(self.manifest_path, manifest.to_dict())
            return manifest
        if stored.code_version != manifest.code_version:
            warnings.warn(
                f"{self.out_dir}: resuming a run started at code version {stored.code_version or '?'} "
                f"with code version {manifest.code_version or '?'}",
                stacklevel=2,
            )
        return stored

    def read_manifest(self) -> RunManifest | None:
        """The stored manifest, ``None`` if the run has none yet."""
        try:
            text = self.manifest_path.read_text()
        except FileNotFoundError:
            return None
        try:
            return RunManifest.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(
                f"{self.manifest_path} is not a valid run manifest ({e}); delete it or use a new "
                "output directory"
            ) from e

    # -- ownership --------------------------------------------------------------------------

    @contextlib.contextmanager
    def owned(self, what: str = "a suite") -> Iterator[None]:
        """This process alone runs episodes into the directory while the block runs, else
        :class:`RunBusy` naming the owner's pid. ``run.lock`` holds the owner's pid under an
        exclusive ``flock``, which the kernel releases when the owner dies however it dies: the
        lock of a dead (``kill -9``) owner is stale and simply taken over, its pid overwritten."""
        path = self.out_dir / RUN_LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
                raise RunBusy(
                    f"another process ({owner}) is running {what} into {self.out_dir} (it holds "
                    f"{path.name}); wait for it to finish, or give another out=…"
                ) from None
            os.ftruncate(fd, 0)
            since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            os.pwrite(fd, f"pid {os.getpid()}, since {since}".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- writing ----------------------------------------------------------------------------

    def mark_started(self, result: EpisodeResult) -> None:
        """Record that ``result.name`` is about to run (``result.status`` must be ``STARTED``)."""
        if result.status != Status.STARTED:
            raise ValueError(
                f"mark_started({result.name!r}) got status {result.status.value!r}; it writes "
                "status 'started' only (use record() for a final status)"
            )
        self._append(result)

    def record(self, result: EpisodeResult) -> None:
        """Record the final outcome of ``result.name`` (DONE, CRASHED or AGENT_ERROR). Returns once
        the line is on disk (fsynced)."""
        if result.status == Status.STARTED:
            raise ValueError(
                f"record({result.name!r}) got status 'started'; give a final status "
                f"({', '.join(s.value for s in Status if s != Status.STARTED)}) or use mark_started()"
            )
        self._append(result)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive advisory lock of the run directory (released by the kernel if we die)."""
        return runfolder.locked(self._lock_path)

    def _append(self, result: EpisodeResult) -> None:
        line = (json.dumps(result.to_dict(), allow_nan=True) + "\n").encode()
        with self._locked():
            runfolder.append_line(self.path, line)

    # -- reading ----------------------------------------------------------------------------

    def load(self) -> dict[str, EpisodeResult]:
        """Latest record of every episode, by name, in the order names first appear. A line that
        does not parse (the torn last line of a killed writer) is skipped with a warning."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        out: dict[str, EpisodeResult] = {}
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                result = EpisodeResult.from_dict(json.loads(raw))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                where = "last line" if number == len(lines) else f"line {number}"
                warnings.warn(
                    f"{self.path}: {where} is not a complete record ({type(e).__name__}: {e}); "
                    "ignored (a process was killed while writing it; its episode will be re-run)",
                    stacklevel=2,
                )
                continue
            out[result.name] = result
        return out

    def finished(self) -> set[str]:
        """Names whose latest status is DONE or AGENT_ERROR (not re-run on resume)."""
        return {name for name, r in self.load().items() if r.status in FINISHED}

    def pending(self, names: Iterable[str]) -> list[str]:
        """The names, in the given order, still to run: not finished (never run, STARTED, CRASHED).
        Names must be unique (they key the records)."""
        names = list(names)
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(f"episode names must be unique within a suite; repeated: {duplicates}")
        done = self.finished()
        return [n for n in names if n not in done]

    # -- maintenance ------------------------------------------------------------------------

    def compact(self) -> int:
        """Rewrite ``results.jsonl`` atomically with only the latest line per episode (run at the end
        of a suite, when no other process appends). Returns the number of records kept."""
        with self._locked():
            latest = self.load()
            text = "".join(json.dumps(r.to_dict(), allow_nan=True) + "\n" for r in latest.values())
            write_bytes_atomic(self.path, text.encode())
            for stale in self.out_dir.glob(f".{RESULTS_FILE}.*.tmp"):  # left by a kill mid-compact
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        return len(latest)
