"""Executors: run one function over many items (episodes of a suite, collection jobs) inline, on a
local process pool or on Ray, delivering each outcome to the parent as soon as it is known.

``Executor.map(fn, items, on_result)`` is the one public method. It calls ``on_result(item,
outcome)`` in the calling thread of the parent process, once per item, in completion order, where
``outcome`` is ``fn(item)``'s return value or the exception it ended with:

* ``fn`` raised → that exception (the remote traceback is attached as its ``__cause__``; see
  :func:`error_text`);
* the worker process died (signal, ``os._exit``, segfault, out of memory) →
  :class:`WorkerCrashed`; the other items still run.

So a finished result is never lost because a later item failed, and the caller writes its records
as they arrive. ``fn`` must be a top-level function (pickled by reference) and items picklable.

Worker processes set ``NUMBA_NUM_THREADS=1`` and ``OMP_NUM_THREADS=1`` (and the BLAS equivalents)
before ``fn``'s module or any item is unpickled, so N workers use N cores, not N × cores.

Local workers die with their parent: a parent killed with ``kill -9`` (which runs no clean-up)
leaves no orphan worker behind, nor multiprocessing's resource tracker (it exits when the last
process holding its pipe does). On Linux the kernel sends the worker ``SIGKILL`` when the parent
dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a watchdog thread polls ``os.getppid()``.
"""

from __future__ import annotations

import abc
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
"""Environment of every worker process (set before heavy modules are imported there)."""

EXECUTORS = ("inline", "local", "ray")
"""Names accepted by :func:`make_executor`."""

OnResult = Callable[[Any, Any], None]
"""``on_result(item, result_or_exception)``, called in the parent."""


class WorkerCrashed(RuntimeError):
    """The worker process running an item died before returning (signal, ``os._exit``, segfault,
    out of memory, lost Ray node)."""


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in another process (its ``__cause__``)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""' if self.args else ""


def error_text(exc: BaseException) -> str:
    """Full text of an outcome exception: its traceback and, for a worker's exception, the
    worker-side traceback (for ``EpisodeResult.error``)."""
    return "".join(traceback.format_exception(exc)).rstrip()


def _set_worker_env() -> None:
    """Pool initializer / first step of a Ray task: one thread per worker process."""
    os.environ.update(WORKER_ENV)


#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``
_PR_SET_PDEATHSIG = 1
#: seconds between the watchdog's looks at the parent (where prctl is not available)
_WATCHDOG_PERIOD = 0.5


def _init_local_worker(parent: int) -> None:
    """Initializer of a local pool worker: the worker environment, and death with ``parent``."""
    _set_worker_env()
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this process when process ``parent`` (its parent) dies, however it dies."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), name="die-with-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCHDOG_PERIOD)
    os._exit(1)


def _check_fn(fn: Callable[[Any], Any]) -> None:
    """``fn`` must pickle by reference (a module-level function), on every executor alike."""
    try:
        pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"Executor.map needs a top-level function (picklable by reference) as fn; "
            f"{name!r} is not ({e}). Move it to module level; bind extra arguments by making them "
            "part of each item."
        ) from e


class Executor(abc.ABC):
    """Runs ``fn`` over items, delivering outcomes as they complete (see the module docstring).

    Subclasses fill :meth:`_map`; :meth:`map` does the checks and guarantees that every item's
    outcome is delivered exactly once. Use as a context manager, or call :meth:`close`, to release
    what the executor holds (a Ray instance it started)."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], on_result: OnResult) -> None:
        """Run ``fn(item)`` for every item; ``on_result(item, outcome)`` in this thread as each ends.

        ``outcome`` is the return value, or the exception ``fn`` raised, or :class:`WorkerCrashed`.
        An exception raised by ``on_result`` itself stops the map and propagates (outstanding items
        are cancelled)."""
        _check_fn(fn)
        items = list(items)
        delivered = [False] * len(items)

        def deliver(index: int, outcome: Any) -> None:
            if delivered[index]:
                raise RuntimeError(f"{type(self).__name__} delivered item {index} twice (a bug)")
            delivered[index] = True
            on_result(items[index], outcome)

        if items:
            self._map(fn, items, deliver)
        missing = [i for i, d in enumerate(delivered) if not d]
        if missing:
            raise RuntimeError(f"{type(self).__name__} lost the outcome of items {missing} (a bug)")

    @abc.abstractmethod
    def _map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], deliver: Callable[[int, Any], None]
    ) -> None:
        """Run ``fn`` over ``items``; call ``deliver(index, outcome)`` in this thread once per index."""

    def close(self) -> None:
        """Release what the executor holds (default: nothing)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_workers() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor(Executor):
    """Process pool on this machine (``spawn`` start method), or inline with ``workers=0``.

    Each worker slot is its own one-process :class:`~concurrent.futures.ProcessPoolExecutor` running
    one item at a time, so a worker that dies is attributed exactly: its item is reported as
    :class:`WorkerCrashed`, the slot gets a fresh process and the other slots go on undisturbed.
    Processes are reused across items within a slot (start-up and imports are paid once per slot).

    ``workers=0`` runs every item in the calling process, in order (debugging; deterministic). There
    an exception from ``fn`` is still delivered, but a crash of ``fn`` kills the caller, and the
    worker environment (:data:`WORKER_ENV`) is not applied.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0 (0: inline, None: one per core), got {workers}")
        self.workers = default_workers() if workers is None else workers

    def _map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], deliver: Callable[[int, Any], None]
    ) -> None:
        if self.workers == 0:
            self._map_inline(fn, items, deliver)
        else:
            self._map_pool(fn, items, deliver)

    @staticmethod
    def _map_inline(
        fn: Callable[[Any], Any], items: Sequence[Any], deliver: Callable[[int, Any], None]
    ) -> None:
        for index, item in enumerate(items):
            try:
                outcome = fn(item)
            except (Exception, SystemExit) as e:  # delivered, like a worker's exception
                outcome = e
            deliver(index, outcome)

    def _map_pool(
        self, fn: Callable[[Any], Any], items: Sequence[Any], deliver: Callable[[int, Any], None]
    ) -> None:
        context = multiprocessing.get_context("spawn")

        def new_slot() -> ProcessPoolExecutor:
            return ProcessPoolExecutor(
                1, mp_context=context, initializer=_init_local_worker, initargs=(os.getpid(),)
            )

        slots = [new_slot() for _ in range(min(self.workers, len(items)))]
        running: dict[Future[Any], tuple[int, int]] = {}  # future → (slot, item index)
        queue = iter(range(len(items)))
        clean = False

        def submit(slot: int, index: int) -> None:
            try:
                future = slots[slot].submit(fn, items[index])
            except BrokenProcessPool:  # its worker died after delivering its last outcome
                slots[slot].shutdown(wait=True)  # (a library aborting the process on its way out)
                slots[slot] = new_slot()
                future = slots[slot].submit(fn, items[index])
            running[future] = (slot, index)

        try:
            for slot in range(len(slots)):
                submit(slot, next(queue))
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    slot, index = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as e:
                        outcome = WorkerCrashed(
                            f"the worker process running item {index} died (killed by a signal, "
                            "os._exit, a segfault or the out-of-memory killer)"
                        )
                        outcome.__cause__ = e
                        slots[slot].shutdown(wait=True)
                        slots[slot] = new_slot()
                    except (Exception, SystemExit) as e:  # fn's, rebuilt here with its remote traceback
                        outcome = e
                    deliver(index, outcome)
                    following = next(queue, None)
                    if following is not None:
                        submit(slot, following)
            clean = True
        finally:
            for pool in slots:
                pool.shutdown(wait=clean, cancel_futures=True)


def _ray_task(payload: bytes) -> Any:
    """Body of every Ray task: worker environment first, then unpickle ``(fn, item)`` and run."""
    _set_worker_env()
    fn, item = pickle.loads(payload)
    return fn(item)


class RayExecutor(Executor):
    """One Ray task per item (``num_cpus=1`` each), outcomes delivered as tasks complete.

    Connects to ``address`` (``None``: the ``RAY_ADDRESS`` environment variable, else a new local
    instance with ``num_cpus`` CPUs) unless Ray is already initialised in this process; an instance
    started here is shut down by :meth:`close`. The workers of a new local instance get this
    process's ``sys.path`` (they import ``fn``'s module as a spawned pool would); on a cluster the
    package must be installed on the nodes (or shipped with a Ray ``runtime_env``). Tasks are not retried (``max_retries=0``): a worker
    that dies is reported as :class:`WorkerCrashed` for its item, like :class:`LocalExecutor`
    does, and the resume logic decides what to run again.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        if num_cpus is not None and num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 (None: all cores), got {num_cpus}")
        self.address = address
        self.num_cpus = num_cpus
        self._started = False

    @staticmethod
    def _ray() -> Any:
        try:
            import ray
        except ImportError as e:
            raise ImportError(
                "RayExecutor needs Ray: pip install 'hours2drive[ray]' (or pip install 'ray>=2.9'), "
                "or use the 'local' executor"
            ) from e
        return ray

    def _ensure_initialised(self) -> Any:
        ray = self._ray()
        if not ray.is_initialized():
            env = dict(WORKER_ENV)
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                # A local instance imports what this process imports (as a spawned pool does):
                # its workers get this process's sys.path (test modules, a repo not installed).
                env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p or os.curdir) for p in sys.path)
            ray.init(
                address=self.address,
                num_cpus=self.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
            self._started = True
        return ray

    def _map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], deliver: Callable[[int, Any], None]
    ) -> None:
        ray = self._ensure_initialised()
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        refs: dict[Any, int] = {}
        for index, item in enumerate(items):
            try:
                payload = pickle.dumps((fn, item))
            except (pickle.PicklingError, AttributeError, TypeError) as e:
                deliver(index, e)  # as a process pool reports an unpicklable item
                continue
            refs[task.remote(payload)] = index
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    index = refs.pop(ref)
                    deliver(index, self._outcome(ray, ref, index))
        finally:
            for ref in refs:  # left only if on_result raised
                ray.cancel(ref)

    @staticmethod
    def _outcome(ray: Any, ref: Any, index: int) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # fn raised: deliver its own exception
            cause = e.cause if isinstance(e.cause, BaseException) else e
            if cause is not e:
                cause.__cause__ = RemoteTraceback(str(e))
            return cause
        except ray.exceptions.RayError as e:  # the worker (or its node) died
            crashed = WorkerCrashed(f"the Ray worker running item {index} died: {type(e).__name__}: {e}")
            crashed.__cause__ = e
            return crashed

    def close(self) -> None:
        """Shut down the Ray instance this executor started (not one it found running)."""
        if self._started:
            self._ray().shutdown()
            self._started = False


def make_executor(name: str, workers: int | None = None) -> Executor:
    """Executor by config name: ``inline`` (in this process), ``local`` (process pool of
    ``workers``, default one per core; 0 is inline) or ``ray`` (``workers``: CPUs of a local Ray
    instance; the cluster at ``RAY_ADDRESS`` if set)."""
    if name == "inline":
        if workers not in (None, 0):
            raise ValueError(
                f"executor 'inline' runs in this process; workers must be unset or 0, got {workers}"
            )
        return LocalExecutor(0)
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(num_cpus=workers)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
