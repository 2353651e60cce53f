"""The map catalog: :class:`~sim_bridge.api.MapRef` → :class:`RoadMap`, cached in process.

A ref names either an OpenDRIVE file (``ref.xodr``) or a procedural town (``ref.town`` +
``ref.seed``, see :mod:`sim_bridge.maps.towns`). Built maps are kept in a small in-process cache
(the :data:`CACHE_SIZE` most recently used) keyed by ``ref.key()`` and, for files, the file's
modification time and size, so an edited file is read again. Cached maps are shared: callers
treat them as read-only (their ``cache`` dict is for derived products computed once per map).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from sim_bridge.api import MapRef
from sim_bridge.maps.road_map import MapError, RoadMap
from sim_bridge.maps.towns import make_town

__all__ = ["CACHE_SIZE", "clear_cache", "load_map", "read_xodr", "save_town"]

CACHE_SIZE = 8
"""Maps kept in the in-process cache."""

_CacheKey = tuple[str, int, int]
_cache: OrderedDict[_CacheKey, RoadMap] = OrderedDict()
_lock = threading.Lock()


def read_xodr(path: str | os.PathLike[str]) -> str:
    """The text of an OpenDRIVE file; :class:`MapError` naming the path if it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MapError(
            f"cannot read OpenDRIVE file {str(p)!r} ({exc.__class__.__name__}: {exc}); "
            "check MapRef.xodr points to a readable UTF-8 .xodr file"
        ) from exc


def _file_stamp(path: str) -> tuple[int, int]:
    """``(mtime [ns], size [bytes])`` of ``path``; :class:`MapError` if it is missing."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MapError(
            f"OpenDRIVE file {path!r} not found or not accessible ({exc.strerror}); "
            "check MapRef.xodr (relative paths are taken from the working directory "
            f"{os.getcwd()!r})"
        ) from exc
    return st.st_mtime_ns, st.st_size


def load_map(ref: MapRef) -> RoadMap:
    """The :class:`RoadMap` of ``ref``, built once and then served from the cache.

    An OpenDRIVE file (``ref.xodr``) takes precedence over the procedural town. Raises
    :class:`MapError` for a missing or unreadable file, an unknown town name, or a map that does
    not parse.
    """
    if ref.xodr:
        key: _CacheKey = (ref.key(), *_file_stamp(ref.xodr))
    else:
        key = (ref.key(), 0, 0)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if ref.xodr:
        text, name = read_xodr(ref.xodr), Path(ref.xodr).stem
    else:
        text, name = make_town(ref.town, ref.seed), f"{ref.town}_{ref.seed}"
    road_map = RoadMap.from_opendrive(text, name)
    with _lock:
        _cache[key] = road_map
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return road_map


def clear_cache() -> None:
    """Forget every cached map."""
    with _lock:
        _cache.clear()


def save_town(name: str, seed: int, path: str | os.PathLike[str]) -> Path:
    """Write town ``name`` with ``seed`` as an ``.xodr`` file at ``path`` (atomically: a temporary
    file in the same folder, then ``os.replace``); returns the path. Creates missing folders."""
    text = make_town(name, seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
