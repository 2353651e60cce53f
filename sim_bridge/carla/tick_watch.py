"""Waking the client's own Traffic Manager when a tick waits on it for good, against any server.

The ``carla==0.9.16`` client's Traffic Manager (TM) can miss the signal of a synchronous tick
(carla-simulator/carla#9172; the race: :mod:`sim_bridge.carla_server.tm_watch`): ``world.tick()``
then waits for a TM cycle that never runs, past its own time-out, whatever the server. Our server
(``drive serve-carla``) wakes such a TM itself; a CARLA server does not. So the bridge ticks under a
:class:`TickWatch`: a thread that, once a tick has run ``wake_after`` seconds, calls ``wake``, and
again every ``wake_after`` while that tick stays stuck.

The bridge's ``wake`` makes its TM run the missed cycle as the server's watch does:
``set_synchronous_mode(False)`` then ``(True)`` on the TM's own RPC server (its port on this host,
:func:`sim_bridge.carla_server.tm_watch.wake_traffic_manager`). Not through the client's
``TrafficManager`` object: its calls wait on a lock the stuck tick holds (seen: from a second
thread, ``tm.set_synchronous_mode(False)`` never returned). A wake while the tick waits on a slow
server instead runs one extra TM cycle on the frame the TM has, and the next tick may not wait for
the TM: it degrades, never hangs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator


class TickWatch:
    """Calls ``wake()`` when a tick (the block under :meth:`ticking`) has run ``wake_after`` [s],
    on a thread of its own (0: never). ``wakeups``: how many times so far."""

    def __init__(self, wake_after: float, wake: Callable[[], None]) -> None:
        self.wake_after = float(wake_after)
        self._wake = wake
        self._cond = threading.Condition()
        self._since: float | None = None  # when the tick under way started, or was last woken [s]
        self._stop = False
        self._thread: threading.Thread | None = None
        self.wakeups = 0

    @contextlib.contextmanager
    def ticking(self) -> Iterator[None]:
        """Around one tick."""
        if self.wake_after <= 0.0:
            yield
            return
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stop = False
                self._thread = threading.Thread(target=self._watch, name="carla-tick-watch", daemon=True)
                self._thread.start()
            self._since = time.monotonic()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._since = None
                self._cond.notify()

    def stop(self) -> None:
        """End the watch's thread (a later tick starts it again)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _watch(self) -> None:
        with self._cond:
            while not self._stop:
                if self._since is None:
                    self._cond.wait()
                    continue
                late = time.monotonic() - self._since - self.wake_after
                if late < 0.0:
                    self._cond.wait(-late)
                    continue
                self._since = time.monotonic()  # again after another wake_after, if still stuck
                self.wakeups += 1
                self._cond.release()  # the tick may end meanwhile
                try:
                    self._wake()
                finally:
                    self._cond.acquire()
