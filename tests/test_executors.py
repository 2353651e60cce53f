"""Executors: inline, local process pool and Ray deliver the same outcomes, in the parent, with a
raising item or a dying worker reported for that item only."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from scenarios.executors import (
    WORKER_ENV,
    Executor,
    LocalExecutor,
    RayExecutor,
    WorkerCrashed,
    error_text,
    make_executor,
)

# -- item functions (top level: workers import them by reference) -----------------------------------

NUMBA_THREADS_AT_IMPORT = os.environ.get("NUMBA_NUM_THREADS")
"""What a process had set when it imported this module (workers: before unpickling ``fn``)."""


def seeded_sum(seed: int) -> float:
    """Deterministic: the same seed gives the same float in any process."""
    return float(np.random.default_rng(seed).normal(size=1000).sum())


def raise_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x * x


def exit_on_two(x: int) -> int:
    if x == 2:
        os._exit(1)
    return x * x


def sigkill_on_two(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def die_after_returning_two(x: int) -> int:
    """Item 2 returns, then its process dies (as the CARLA client aborts its process from a
    thread after the episode's result is sent, when its server is gone)."""
    if x == 2:
        import time

        def die() -> None:
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=die, daemon=True).start()
    return x * x


def worker_facts(x: int) -> tuple[int, str | None, str | None]:
    """(pid, NUMBA_NUM_THREADS when this module was imported, OMP_NUM_THREADS now)."""
    return os.getpid(), NUMBA_THREADS_AT_IMPORT, os.environ.get("OMP_NUM_THREADS")


class Collector:
    """An ``on_result`` that remembers outcomes and where it was called from."""

    def __init__(self) -> None:
        self.outcomes: dict[Any, Any] = {}
        self.calls: list[tuple[int, int]] = []  # (pid, thread id)

    def __call__(self, item: Any, outcome: Any) -> None:
        assert item not in self.outcomes, f"{item} delivered twice"
        self.outcomes[item] = outcome
        self.calls.append((os.getpid(), threading.get_ident()))


def run(executor: Executor, fn: Any, items: list[Any]) -> Collector:
    collector = Collector()
    executor.map(fn, items, collector)
    assert set(collector.outcomes) == set(items)
    assert set(collector.calls) == {(os.getpid(), threading.get_ident())}  # in the parent's thread
    return collector


def assert_failure_reported(
    collector: Collector, bad: int, kind: type[BaseException], good: list[int]
) -> None:
    assert isinstance(collector.outcomes[bad], kind)
    assert {x: collector.outcomes[x] for x in good} == {x: x * x for x in good}


# -- inline and local ------------------------------------------------------------------------------

SEEDS = [11, 3, 7, 0, 42, 5]


def test_inline_and_local_give_identical_results() -> None:
    inline = run(make_executor("inline"), seeded_sum, SEEDS).outcomes
    local = run(make_executor("local", 2), seeded_sum, SEEDS).outcomes
    assert local == inline
    assert inline == {s: seeded_sum(s) for s in SEEDS}


def test_inline_runs_in_order_in_this_process() -> None:
    collector = run(LocalExecutor(0), worker_facts, [2, 0, 1])
    assert list(collector.outcomes) == [2, 0, 1]
    assert {pid for pid, _, _ in collector.outcomes.values()} == {os.getpid()}


def test_local_workers_are_other_processes_with_one_thread_each() -> None:
    facts = run(LocalExecutor(2), worker_facts, list(range(4))).outcomes.values()
    pids = {pid for pid, _, _ in facts}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {(numba, omp) for _, numba, omp in facts} == {("1", "1")}


@pytest.mark.parametrize("workers", [0, 2])
def test_an_item_raising_is_reported_and_the_others_finish(workers: int) -> None:
    collector = run(LocalExecutor(workers), raise_on_three, list(range(6)))
    assert_failure_reported(collector, 3, ValueError, [0, 1, 2, 4, 5])
    assert str(collector.outcomes[3]) == "item 3 is bad"
    assert "raise_on_three" in error_text(collector.outcomes[3])  # the worker-side traceback


@pytest.mark.parametrize("fn", [exit_on_two, sigkill_on_two])
def test_a_dying_worker_is_reported_as_a_crash_and_the_rest_complete(fn: Any) -> None:
    collector = run(LocalExecutor(2), fn, list(range(6)))
    assert_failure_reported(collector, 2, WorkerCrashed, [0, 1, 3, 4, 5])
    assert "item 2 died" in str(collector.outcomes[2])


def test_a_worker_that_dies_after_delivering_is_replaced_before_the_next_item() -> None:
    import time

    collector = Collector()

    def on_result(item: Any, outcome: Any) -> None:
        collector(item, outcome)
        if item == 2:
            time.sleep(1.5)  # the worker of item 2 dies meanwhile: its pool is broken

    LocalExecutor(1).map(die_after_returning_two, list(range(5)), on_result)
    assert collector.outcomes == {x: x * x for x in range(5)}  # nothing charged to the next item


def test_an_unpicklable_item_is_reported_for_that_item_only() -> None:
    lock = threading.Lock()  # cannot be pickled
    collector = Collector()
    LocalExecutor(2).map(worker_facts, [0, lock, 2], collector)
    assert isinstance(collector.outcomes[lock], TypeError)
    assert {collector.outcomes[x][1] for x in (0, 2)} == {"1"}


def test_on_result_raising_stops_the_map() -> None:
    def on_result(item: Any, outcome: Any) -> None:
        raise KeyError("disk full")

    with pytest.raises(KeyError, match="disk full"):
        LocalExecutor(2).map(seeded_sum, range(5), on_result)


def test_fn_must_be_a_top_level_function() -> None:
    with pytest.raises(TypeError, match="top-level function"):
        LocalExecutor(0).map(lambda x: x, [1], Collector())


def test_make_executor_names_and_errors() -> None:
    assert isinstance(make_executor("local", 3), LocalExecutor) and make_executor("local", 3).workers == 3  # type: ignore[attr-defined]
    assert make_executor("inline").workers == 0  # type: ignore[attr-defined]
    assert isinstance(make_executor("ray", 2), RayExecutor)
    with pytest.raises(ValueError, match="choose one of inline, local, ray"):
        make_executor("dask", 2)
    with pytest.raises(ValueError, match="workers must be unset or 0"):
        make_executor("inline", 4)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        LocalExecutor(-1)


def test_empty_items_call_nothing() -> None:
    collector = Collector()
    LocalExecutor(2).map(seeded_sum, [], collector)
    assert collector.outcomes == {}


# -- Ray (one local instance for the module) --------------------------------------------------------


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hours2drive[ray]')")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    executor = RayExecutor(num_cpus=2)
    yield executor
    executor.close()
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_gives_the_same_results_as_inline_in_the_parent(ray_executor: RayExecutor) -> None:
    inline = run(make_executor("inline"), seeded_sum, SEEDS).outcomes
    assert run(ray_executor, seeded_sum, SEEDS).outcomes == inline


@pytest.mark.slow
def test_ray_workers_run_with_one_thread(ray_executor: RayExecutor) -> None:
    facts = run(ray_executor, worker_facts, [0, 1]).outcomes.values()
    assert os.getpid() not in {pid for pid, _, _ in facts}
    assert {(numba, omp) for _, numba, omp in facts} == {(WORKER_ENV["NUMBA_NUM_THREADS"], "1")}


@pytest.mark.slow
def test_ray_item_raising_is_reported_with_its_own_type(ray_executor: RayExecutor) -> None:
    collector = run(ray_executor, raise_on_three, list(range(6)))
    assert_failure_reported(collector, 3, ValueError, [0, 1, 2, 4, 5])
    assert type(collector.outcomes[3]) is ValueError and str(collector.outcomes[3]) == "item 3 is bad"
    assert "raise_on_three" in error_text(collector.outcomes[3])


@pytest.mark.slow
def test_ray_dying_worker_is_reported_as_a_crash(ray_executor: RayExecutor) -> None:
    collector = run(ray_executor, exit_on_two, list(range(5)))
    assert_failure_reported(collector, 2, WorkerCrashed, [0, 1, 3, 4])


@pytest.mark.slow
def test_ray_executor_does_not_own_an_instance_it_found(ray_executor: RayExecutor) -> None:
    import ray

    run(ray_executor, seeded_sum, [1])  # the module's executor has started Ray
    guest = RayExecutor()
    assert run(guest, seeded_sum, [1]).outcomes == {1: seeded_sum(1)}
    guest.close()
    assert ray.is_initialized()
