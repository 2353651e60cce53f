"""The two sockets of a CARLA server: msgpack-RPC (rpclib's dialect) and the sensor streams.

RPC: a request is ``[0, msgid, name, params]`` and is answered ``[1, msgid, error, result]``; a
notification ``[2, name, params]`` is not answered. The 0.9.16 client puts its call metadata
``[is_async]`` first in ``params``; :class:`RpcServer` strips it. Handlers run on the
connection's thread; the dispatcher serialises what must be.

Streams: a client connects, sends its 4-byte stream id and then only reads frames
``[u32 length][payload]``. :class:`StreamServer` keeps the subscribers of each stream id.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from typing import Any

import msgpack

log = logging.getLogger(__name__)

#: ``dispatch(connection id, name, args) -> reply`` (a packed Response) or ``None`` for no reply
Dispatch = Callable[[int, str, list], Any]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class RpcServer:
    """Serves ``dispatch`` over msgpack-RPC on ``(host, port)`` in background threads."""

    def __init__(
        self, host: str, port: int, dispatch: Dispatch, on_disconnect: Callable[[int], None]
    ) -> None:
        owner = self
        self._dispatch = dispatch
        self._on_disconnect = on_disconnect
        self._next = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        self._server = _Server((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="carla-rpc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._conns):
                _close(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._next += 1
            cid = self._next
            self._conns.add(conn)
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        try:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return
                unpacker.feed(data)
                for msg in unpacker:
                    reply = self._handle(cid, msg)
                    if reply is not None:
                        conn.sendall(reply)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            self._on_disconnect(cid)

    def _handle(self, cid: int, msg: list) -> bytes | None:
        if msg[0] == 2:  # notification
            _, name, params = msg
            self._call(cid, name, params)
            return None
        _, msgid, name, params = msg
        result = self._call(cid, name, params)
        return msgpack.packb([1, msgid, None, result], use_bin_type=True)

    def _call(self, cid: int, name: str, params: list) -> Any:
        if params and isinstance(params[0], list) and len(params[0]) == 1 and isinstance(params[0][0], bool):
            params = params[1:]  # the client's call metadata [is_async]
        return self._dispatch(cid, name, params)


class StreamServer:
    """Pushes frames to the subscribers of each stream id."""

    def __init__(self, host: str, port: int, on_subscribe: Callable[[int, socket.socket], None]) -> None:
        owner = self
        self._subs: dict[int, list[tuple[socket.socket, threading.Lock]]] = {}
        self._lock = threading.Lock()
        self._on_subscribe = on_subscribe

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        self._server = _Server((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="carla-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            subs = [s for lst in self._subs.values() for s, _ in lst]
            self._subs.clear()
        for s in subs:
            _close(s)

    def has_subscribers(self, stream_id: int) -> bool:
        with self._lock:
            return bool(self._subs.get(stream_id))

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        while len(head) < 4:
            part = conn.recv(4 - len(head))
            if not part:
                return
            head += part
        (stream_id,) = struct.unpack("<I", head)
        entry = (conn, threading.Lock())
        with self._lock:
            self._subs.setdefault(stream_id, []).append(entry)
        self._on_subscribe(stream_id, conn)
        try:
            while conn.recv(1 << 12):  # the client never writes again; b"" means it left
                pass
        except OSError:
            pass
        finally:
            self._drop(stream_id, entry)

    def _drop(self, stream_id: int, entry: tuple[socket.socket, threading.Lock]) -> None:
        with self._lock:
            lst = self._subs.get(stream_id, [])
            if entry in lst:
                lst.remove(entry)
        _close(entry[0])

    def send(self, stream_id: int, payload: bytes) -> None:
        """Send one frame to every subscriber of ``stream_id`` (dropping those that left)."""
        with self._lock:
            subs = list(self._subs.get(stream_id, ()))
        frame = struct.pack("<I", len(payload)) + payload
        for entry in subs:
            sock, lock = entry
            try:
                with lock:
                    sock.sendall(frame)
            except OSError:
                self._drop(stream_id, entry)

    def send_to(self, sock: socket.socket, stream_id: int, payload: bytes) -> None:
        """Send one frame to one subscriber."""
        with self._lock:
            entry = next((e for e in self._subs.get(stream_id, ()) if e[0] is sock), None)
        if entry is None:
            return
        try:
            with entry[1]:
                sock.sendall(struct.pack("<I", len(payload)) + payload)
        except OSError:
            self._drop(stream_id, entry)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
