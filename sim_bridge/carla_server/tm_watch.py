"""The clients' Traffic Managers: their registry, and waking one that lost its tick signal.

A ``carla==0.9.16`` client runs its Traffic Manager (TM) in a thread of its own process. In
synchronous mode ``world.tick()`` hands each frame to that thread through two condition variables
whose flags are set and notified without the mutex the waiter checks them under
(``TrafficManagerLocal::SynchronousTick`` and ``Run``). When the main thread sets the TM's start
flag and notifies while the TM thread is between checking that flag and waiting, the notification
is lost: the TM thread waits for a signal that already came, the main thread waits for a cycle
that never runs, and the client hangs with no CPU use, past every time-out. This is
carla-simulator/carla#9172, fixed in CARLA's sources after 0.9.16 (#9344), so in no 0.9.16 client.

Why it is frequent here: at the top of every cycle the TM thread asks ``get_episode_settings``, on
the client's one RPC connection. When it asks late, its request arrives together with the main
thread's next ``tick_cue``; this server answers both, ticking inside ``tick_cue``, within about a
millisecond, so both client threads are released at once and run the two unlocked sections side
by side. (A real CARLA server answers ``tick_cue`` at once and streams the frame only after
simulating it, tens of milliseconds later.) On a loaded 2-core machine about one run in five of
2000 ticks with the client's TM hung (gdb: the TM thread waiting in ``Run`` with its start flag
set, the main thread waiting in ``SynchronousTick``).

The server sees the hang: a ``tick_cue`` from the connection that registered a TM (its main
thread is then in ``world.tick()``), no ``apply_batch`` since (every TM cycle ends with one, even
empty), nothing in flight and nothing new from that connection for ``wake_after``. It then calls
the TM's own RPC server (its address, registered by ``add_traffic_manager_running``):
``set_synchronous_mode(False)`` then ``(True)``. The first sets the TM's start flag and notifies
it again; the TM thread, which read synchronous mode before it waited, runs the missed cycle,
wakes the main thread and goes back to waiting in synchronous mode. A wake-up while the client
was merely slow would run one extra TM cycle on the same frame, and the next few ticks might not
wait for the TM (its done flag is left set): it degrades, it never hangs. (The bridge wakes its own
TM the same way from the client side, for servers that do not: ``sim_bridge.carla.tick_watch``.)

The other unlocked pair (the TM's done flag, lost while the main thread checks it) would leave
no tick without a cycle; it needs a preemption inside a few instructions and was never seen.

A second client race no server can undo: a new TM (or one back from asynchronous mode) first runs
one cycle on the last frame its client received; a vehicle registered before that cycle but spawned
after that frame is taken for destroyed and never driven (seen on a loaded machine: a TM car
standing still for 300 ticks, its TM sending empty batches and asking the car's box every cycle,
as for an actor it does not drive). Clients tick once after ``tm.set_synchronous_mode(True)``
before they register vehicles (the bridge does).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgpack

log = logging.getLogger(__name__)


@dataclass
class _Client:
    """What one RPC connection did, as far as a hung Traffic Manager shows."""

    ticks: int = 0  # ``tick_cue`` calls answered
    cycled: int = 0  # ``ticks`` when it last sent ``apply_batch``
    woken: float = 0.0  # when its TM was last woken [s, monotonic]
    in_flight: int = 0  # calls being answered
    last: float = 0.0  # when a call of it last started or ended [s, monotonic]


@dataclass(frozen=True)
class TrafficManagerAddress:
    """A client's Traffic Manager: its RPC server and the connection that registered it."""

    host: str
    port: int
    owner: int


class TrafficManagerWatch:
    """The Traffic Manager registry and the watch that wakes a hung one (see the module doc).

    ``wake_after`` [s]: how long a connection stays silent after a tick its TM did not cycle for
    before the TM is woken (0: never). ``synchronous()`` says whether the world is in
    synchronous mode (only there does a TM wait for ticks)."""

    def __init__(self, wake_after: float, synchronous: Callable[[], bool]) -> None:
        self.wake_after = float(wake_after)
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._tms: dict[int, TrafficManagerAddress] = {}  # by TM port
        self._clients: dict[int, _Client] = {}
        self.wakeups = 0
        """Traffic Managers woken so far."""
        self.attempts = 0
        """Wake-ups tried so far, answered or not (``wakeups`` counts the answered ones)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="carla-tm-watch", daemon=True)

    def start(self) -> None:
        if self.wake_after > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ registry

    def register(self, owner: int, host: str, port: int) -> None:
        with self._lock:
            self._tms[int(port)] = TrafficManagerAddress(str(host), int(port), owner)

    def get(self, port: int) -> TrafficManagerAddress | None:
        with self._lock:
            return self._tms.get(int(port))

    def remove(self, port: int) -> None:
        with self._lock:
            self._tms.pop(int(port), None)

    def disconnected(self, cid: int) -> None:
        """A connection closed: its Traffic Managers went with its process."""
        with self._lock:
            self._clients.pop(cid, None)
            for port in [p for p, tm in self._tms.items() if tm.owner == cid]:
                del self._tms[port]

    # ------------------------------------------------------------------ activity

    @contextlib.contextmanager
    def call(self, cid: int, name: str) -> Iterator[None]:
        """Around the answer to call ``name`` from connection ``cid``."""
        with self._lock:
            c = self._clients.setdefault(cid, _Client())
            c.in_flight += 1
            c.last = time.monotonic()
            if name == "apply_batch":
                c.cycled = c.ticks
        try:
            yield
        finally:
            with self._lock:
                c.in_flight -= 1
                c.last = time.monotonic()
                if name == "tick_cue":
                    c.ticks += 1

    def hung(self, now: float) -> list[TrafficManagerAddress]:
        """The Traffic Managers to wake at time ``now`` [s, monotonic]: again every ``wake_after``
        while one stays hung (a wake-up that comes before its thread waits is lost too)."""
        if not self._synchronous():
            return []
        out = []
        with self._lock:
            for tm in self._tms.values():
                c = self._clients.get(tm.owner)
                if c is None or c.in_flight or c.ticks <= c.cycled:
                    continue
                if now - max(c.last, c.woken) >= self.wake_after:
                    c.woken = now
                    out.append(tm)
        return out

    # ------------------------------------------------------------------ waking

    def _watch(self) -> None:
        every = min(0.25, self.wake_after / 4.0)
        while not self._stop.wait(every):
            for tm in self.hung(time.monotonic()):
                self.wake(tm)

    def wake(self, tm: TrafficManagerAddress) -> bool:
        """Make ``tm`` run its missed cycle (:func:`wake_traffic_manager`); whether it answered."""
        log.warning(
            "the Traffic Manager at %s:%d (client %d) missed its tick signal (a race in the CARLA "
            "0.9.16 client, carla-simulator/carla#9172): waking it",
            tm.host, tm.port, tm.owner,
        )  # fmt: skip
        woken = wake_traffic_manager(tm.host, tm.port)
        with self._lock:
            self.attempts += 1
            self.wakeups += int(woken)
        return woken

    def describe(self, now: float | None = None) -> str:
        """What the watch knows, one line per registered Traffic Manager: its client's ticks, the
        tick of its last batch, the calls in flight, the seconds since its last call and since it
        was last woken; and the wake-ups tried and answered (for a failure message: why a hung
        client was or was not woken)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            lines = [f"synchronous={self._synchronous()} wake_after={self.wake_after:g} s "
                     f"wake-ups tried={self.attempts} answered={self.wakeups}"]  # fmt: skip
            for tm in self._tms.values():
                c = self._clients.get(tm.owner)
                if c is None:
                    lines.append(f"TM {tm.host}:{tm.port} (client {tm.owner}): no call seen from its client")
                    continue
                woken = f"{now - c.woken:.1f} s ago" if c.woken else "never"
                lines.append(
                    f"TM {tm.host}:{tm.port} (client {tm.owner}): ticks={c.ticks} last batch at tick "
                    f"{c.cycled} in_flight={c.in_flight} silent {now - c.last:.1f} s, woken {woken}"
                )
        return "\n".join(lines)


def wake_traffic_manager(host: str, port: int) -> bool:
    """Make the Traffic Manager whose RPC server is at ``host:port`` run a cycle it missed:
    ``set_synchronous_mode(False)`` then ``(True)`` (see the module doc); whether it answered both.
    One implementation for this server's watch and the bridge's (``sim_bridge.carla.tick_watch``)."""
    requests = [msgpack.packb([0, i, "set_synchronous_mode", [i == 1]]) for i in (0, 1)]
    try:
        with socket.create_connection((host, port), timeout=5.0) as sock:
            sock.sendall(b"".join(requests))  # in one write: the TM is back in synchronous mode
            unpacker = msgpack.Unpacker()  # before its thread, woken, finishes the cycle
            replies: list = []
            while len(replies) < len(requests):
                data = sock.recv(1 << 12)
                if not data:
                    break
                unpacker.feed(data)
                replies.extend(unpacker)
    except OSError as exc:
        log.warning("could not wake the Traffic Manager at %s:%d: %s", host, port, exc)
        return False
    return len(replies) == len(requests)
