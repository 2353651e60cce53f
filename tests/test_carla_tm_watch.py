"""The CARLA server's watch over its clients' Traffic Managers, and the bridge's over its own ticks
(no ``carla`` client needed).

The hang they undo is reproduced with the real client in ``test_carla_server.py``
(``test_a_traffic_manager_that_lost_its_tick_signal_is_woken``) and ``test_carla_bridge.py``
(``test_the_bridge_wakes_a_traffic_manager_that_lost_its_tick_signal``); here their rules and call.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator

import msgpack
import pytest

from sim_bridge.carla.tick_watch import TickWatch
from sim_bridge.carla_server.tm_watch import TrafficManagerWatch


def _cycle(watch: TrafficManagerWatch, cid: int) -> None:
    """One synchronous tick of a client whose Traffic Manager cycles: tick, then its batch."""
    for name in ("tick_cue", "get_vehicle_light_states", "apply_batch", "get_episode_settings"):
        with watch.call(cid, name):
            pass


@pytest.fixture
def watch() -> TrafficManagerWatch:
    w = TrafficManagerWatch(wake_after=2.0, synchronous=lambda: True)
    w.register(owner=1, host="127.0.0.1", port=8000)
    return w


def test_a_tick_not_cycled_for_is_a_hang_once_silent(watch: TrafficManagerWatch) -> None:
    _cycle(watch, 1)
    last = watch._clients[1].last
    assert watch.hung(last + 60.0) == []  # every tick cycled: an idle client is no hang
    with watch.call(1, "tick_cue"):
        pass
    last = watch._clients[1].last
    assert watch.hung(last + 1.0) == []  # not silent long enough
    (tm,) = watch.hung(last + 2.0)
    assert (tm.host, tm.port, tm.owner) == ("127.0.0.1", 8000, 1)
    assert watch.hung(last + 3.0) == []  # once per wake_after
    assert len(watch.hung(last + 4.0)) == 1  # still hung (woken before its thread waited): again
    with watch.call(1, "apply_batch"):  # woken, it cycled: the next missed tick is a new hang
        pass
    with watch.call(1, "tick_cue"):
        pass
    assert watch.hung(last + 5.0) == []  # a wake-up counts as activity
    assert len(watch.hung(last + 6.0)) == 1


def test_no_hang_while_a_call_is_answered_in_asynchronous_mode_or_for_another_client() -> None:
    sync = [True]
    watch = TrafficManagerWatch(wake_after=2.0, synchronous=lambda: sync[0])
    watch.register(owner=1, host="127.0.0.1", port=8000)
    with watch.call(2, "tick_cue"):  # another client ticks: client 1's main thread is not in tick()
        pass
    assert watch.hung(watch._clients[2].last + 60.0) == []
    with watch.call(1, "tick_cue"):
        pass
    with watch.call(1, "get_actors_by_id"):
        assert watch.hung(watch._clients[1].last + 60.0) == []  # a call of its TM's cycle is answered
    sync[0] = False
    assert watch.hung(watch._clients[1].last + 60.0) == []  # only a synchronous TM waits for ticks
    sync[0] = True
    watch.disconnected(1)  # its process left: its TM went with it
    assert watch.get(8000) is None and watch.hung(1e9) == []


@pytest.fixture
def fake_tm() -> Iterator[tuple[int, list]]:
    """A Traffic Manager's RPC server (rpclib's msgpack-RPC) that records the calls it answers."""
    calls: list = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        unpacker = msgpack.Unpacker()
        with conn:
            while len(calls) < 2 and (data := conn.recv(4096)):
                unpacker.feed(data)
                for _, msgid, name, params in unpacker:
                    calls.append((name, params))
                    conn.sendall(msgpack.packb([1, msgid, None, None]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], calls
    thread.join(timeout=10)
    listener.close()


def test_waking_turns_synchronous_mode_off_then_on_in_one_write(fake_tm: tuple[int, list]) -> None:
    port, calls = fake_tm
    watch = TrafficManagerWatch(wake_after=2.0, synchronous=lambda: True)
    watch.register(owner=1, host="127.0.0.1", port=port)
    tm = watch.get(port)
    assert tm is not None and watch.wake(tm)
    assert calls == [("set_synchronous_mode", [False]), ("set_synchronous_mode", [True])]
    assert watch.wakeups == 1


def test_a_traffic_manager_that_is_gone_is_reported_not_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    watch = TrafficManagerWatch(wake_after=2.0, synchronous=lambda: True)
    watch.register(owner=1, host="127.0.0.1", port=port)
    tm = watch.get(port)
    assert tm is not None and not watch.wake(tm)
    assert watch.wakeups == 0 and watch.attempts == 1
    assert "wake-ups tried=1 answered=0" in watch.describe()


def test_the_watch_describes_each_traffic_manager_for_a_failure_message(watch: TrafficManagerWatch) -> None:
    assert "(client 1): no call seen from its client" in watch.describe()
    _cycle(watch, 1)
    with watch.call(1, "tick_cue"):  # a tick its TM has not cycled for
        pass
    last = watch._clients[1].last
    assert len(watch.hung(last + 2.5)) == 1  # woken (its wake-up not tried here)
    text = watch.describe(now=last + 3.0)
    assert "wake-ups tried=0 answered=0" in text
    assert (
        "TM 127.0.0.1:8000 (client 1): ticks=2 last batch at tick 1 in_flight=0 silent 3.0 s, woken 0.5 s ago"
        in text
    )


def test_a_tick_running_past_wake_after_is_woken_again_while_it_runs() -> None:
    woken: list[float] = []
    watch = TickWatch(wake_after=0.2, wake=lambda: woken.append(time.monotonic()))
    try:
        for _ in range(3):
            with watch.ticking():
                time.sleep(0.02)  # quick ticks: nothing to wake
        assert woken == []
        start = time.monotonic()
        with watch.ticking():
            time.sleep(1.0)  # stuck: woken after 0.2 s, then every 0.2 s
        n = len(woken)
        assert 2 <= n <= 5 and watch.wakeups == n
        assert woken[0] - start >= 0.19 and all(b - a >= 0.19 for a, b in itertools.pairwise(woken))
        time.sleep(0.3)
        assert len(woken) == n  # the tick returned: no more
    finally:
        watch.stop()
    off = TickWatch(wake_after=0.0, wake=lambda: woken.append(0.0))
    with off.ticking():
        time.sleep(0.1)
    assert off.wakeups == 0 and off._thread is None  # 0: never, and no thread
