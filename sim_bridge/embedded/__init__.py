"""The embedded simulator: CPU-only, deterministic, batched over worlds (structure of arrays).

``EmbeddedSimulator`` implements :class:`sim_bridge.api.Simulator`; hot paths are numpy array
operations and numba kernels over ``[B, N]`` arrays, never Python loops over actors.
"""
