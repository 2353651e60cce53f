"""The embedded simulator: CPU-only, deterministic, batched over worlds (structure of arrays).

``EmbeddedSimulator`` implements :class:`sim_bridge.api.Simulator`; hot paths are numpy array
operations and numba kernels over ``[B, N]`` arrays, never Python loops over actors.

Importing the package drops stale compiled kernels first (see :func:`drop_stale_kernel_cache`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["drop_stale_kernel_cache"]


def drop_stale_kernel_cache() -> bool:
    """Delete this package's numba cache files when any of its sources changed; returns whether
    it did.

    numba's ``cache=True`` checks only the source file of the function it cached, not the files of
    the functions it calls: after an edit to ``traffic.py`` the cached ``step.step_worlds`` would
    keep running the old driver code. A digest of every module here, kept beside the cache,
    catches that. Racing processes are harmless (numba treats a vanished cache file as a miss).
    A custom ``NUMBA_CACHE_DIR`` is left alone.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(here.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    cache = here / "__pycache__"
    stamp = cache / "kernels.sha256"
    try:
        if stamp.read_text(encoding="ascii") == digest.hexdigest():
            return False
    except OSError:
        pass  # no stamp yet: treat the cache as stale
    try:
        cache.mkdir(exist_ok=True)
        for stale in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            stale.unlink(missing_ok=True)
        tmp = cache / f"kernels.sha256.{os.getpid()}.tmp"
        tmp.write_text(digest.hexdigest(), encoding="ascii")
        os.replace(tmp, stamp)
    except OSError:
        return False  # a read-only install: numba then compiles in memory or keeps its cache
    return True


drop_stale_kernel_cache()
