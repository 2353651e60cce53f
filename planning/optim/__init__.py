"""Sampling-based optimisers over action sequences (CEM, MPPI); they know only ``rollout_fn`` and
``cost_fn`` (``planning.optim.base``)."""

from __future__ import annotations

from planning.optim.base import CostFn, Optimizer, Plan, RolloutFn, SamplerConfig
from planning.optim.cem import CEM
from planning.optim.mppi import MPPI

#: optimiser names (``agent.optimizer``) → classes
OPTIMIZERS: dict[str, type[Optimizer]] = {"cem": CEM, "mppi": MPPI}


def make_optimizer(name: str, config: SamplerConfig | None = None, seed: int = 0) -> Optimizer:
    """The optimiser ``name`` (``cem`` or ``mppi``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](config, seed=seed)


__all__ = [
    "CEM",
    "MPPI",
    "OPTIMIZERS",
    "CostFn",
    "Optimizer",
    "Plan",
    "RolloutFn",
    "SamplerConfig",
    "make_optimizer",
]
