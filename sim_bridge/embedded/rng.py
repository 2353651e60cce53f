"""Counter-based random numbers: deterministic per world, whatever the batch it runs in.

``uniform(seed, counter, stream, n)`` hashes (world seed, step counter, call site, index) with
SplitMix64, so world ``b`` draws the same numbers whether it runs alone or among 63 others.
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, inline="always")
def splitmix64(x: np.uint64) -> np.uint64:  # numba: uint64 wrapping arithmetic
    """One SplitMix64 mixing round (wrapping uint64 arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def hash_uniform(seed: np.uint64, counter: int, stream: int, index: int) -> float:
    """A uniform draw in ``[0, 1)`` from four integers."""
    h = splitmix64(seed ^ splitmix64(np.uint64(counter) * np.uint64(0x9E3779B97F4A7C15)))
    h = splitmix64(h ^ splitmix64(np.uint64(stream) + np.uint64(0x632BE59BD9B4E019)))
    h = splitmix64(h ^ np.uint64(index))
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def _uniform(seeds: np.ndarray, counters: np.ndarray, stream: int, n: int) -> np.ndarray:
    out = np.empty((seeds.shape[0], n))
    for b in range(seeds.shape[0]):
        for i in range(n):
            out[b, i] = hash_uniform(seeds[b], counters[b], stream, i)
    return out


def uniform(seeds: np.ndarray, counters: np.ndarray, stream: int, n: int) -> np.ndarray:
    """``float [B, n]`` uniforms in ``[0, 1)`` for worlds with ``seeds [B]`` (uint64) at ``counters [B]``.

    ``stream`` separates call sites so two draws in the same step are independent.
    """
    return _uniform(
        np.asarray(seeds, dtype=np.uint64), np.asarray(counters, dtype=np.int64), int(stream), int(n)
    )


def world_seed(seed: int) -> np.uint64:
    """Scramble a user seed into a well-mixed world seed."""
    return np.uint64(splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
